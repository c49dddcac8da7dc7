// escape: a sandbox probe. Tries to read files outside $IEXEC_IN (parent
// directory escapes, absolute paths, a symlink of its own) and to write into
// $IEXEC_IN, and prints one line per attempt: "<op> <path>: denied errno=E"
// or "... ALLOWED".
// Exits 1 if any attempt was allowed, 0 if the sandbox held.
import { readFile, writeText, symlink, lastErrno } from "../../common/assembly/wasi-io";

let allowed = 0;

function tryRead (path: string): void {
  const data = readFile(path);
  if (data == null) {
    process.stdout.write("read " + path + ": denied errno=" + lastErrno.toString() + "\n");
  } else {
    process.stdout.write("read " + path + ": ALLOWED (" + data.byteLength.toString() + " bytes)\n");
    allowed++;
  }
}

function tryWrite (path: string): void {
  if (writeText(path, "scribble")) {
    process.stdout.write("write " + path + ": ALLOWED\n");
    allowed++;
  } else {
    process.stdout.write("write " + path + ": denied errno=" + lastErrno.toString() + "\n");
  }
}

tryRead("/iexec_in/../../etc/passwd");
tryRead("../../etc/passwd");
tryRead("/etc/passwd");
tryRead("/iexec_out/../../../etc/hostname");
function trySymlink (target: string, link: string): void {
  if (symlink(target, link)) {
    process.stdout.write("symlink " + link + " -> " + target + ": ALLOWED\n");
    allowed++;
  } else {
    process.stdout.write("symlink " + link + " -> " + target + ": denied errno=" + lastErrno.toString() + "\n");
  }
}

trySymlink("/etc/passwd", "/iexec_out/passwd");
tryRead("/iexec_out/passwd");
tryWrite("/iexec_in/scribble.txt");
tryWrite("/iexec_in/data.txt");
process.exit(allowed > 0 ? 1 : 0);
