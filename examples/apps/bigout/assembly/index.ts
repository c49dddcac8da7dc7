// bigout: writes N bytes (argv[2]) either to $IEXEC_OUT/big.bin (argv[1] =
// "file") or to stdout (argv[1] = "stdout"), to test the output bound.
import { writeFile, env, lastErrno } from "../../common/assembly/wasi-io";

const args = process.argv;
if (args.length < 3) {
  process.stderr.write("usage: bigout file|stdout BYTES\n");
  process.exit(2);
}
const n = I32.parseInt(args[2]);
const chunk = new ArrayBuffer(65536);
memory.fill(changetype<usize>(chunk), 0x61, 65536);
if (args[1] == "file") {
  const data = new ArrayBuffer(n);
  memory.fill(changetype<usize>(data), 0x61, <usize>n);
  if (!writeFile(env("IEXEC_OUT") + "/big.bin", data)) {
    process.stderr.write("bigout: write failed errno=" + lastErrno.toString() + "\n");
    process.exit(1);
  }
} else {
  let left = n;
  while (left > 0) {
    const k = left < 65536 ? left : 65536;
    process.stdout.write(k == 65536 ? chunk : chunk.slice(0, k));
    left -= k;
  }
}
