// foldercount: wordcount for a folder dataset. The worker unpacks a folder
// dataset to $IEXEC_IN/$IEXEC_DATASET_FILENAME/ (a folder: wordcount, which
// reads the dataset as one file, cannot open it); foldercount counts lines,
// words and bytes of each path its arguments name inside that folder, writes
// the counts to $IEXEC_OUT/result.txt and stdout, and names result.txt as
// the deterministic output in $IEXEC_OUT/computed.json.
import { readFile, writeText, env, lastErrno } from "../../common/assembly/wasi-io";
import { count } from "../../common/assembly/count";

const folder = env("IEXEC_IN") + "/" + env("IEXEC_DATASET_FILENAME");
const outDir = env("IEXEC_OUT");
const args = process.argv;
let report = "";
let failed = false;
for (let i = 1; i < args.length; i++) {
  const data = readFile(folder + "/" + args[i]);
  if (data == null) {
    process.stderr.write("foldercount: cannot read " + args[i] + " (errno " + lastErrno.toString() + ")\n");
    failed = true;
    continue;
  }
  report += count(args[i], data);
}
process.stdout.write(report);
if (!writeText(outDir + "/result.txt", report)) process.exit(2);
writeText(outDir + "/computed.json", "{\"deterministic-output-path\":\"" + outDir + "/result.txt\"}\n");
if (failed) process.exit(1);
