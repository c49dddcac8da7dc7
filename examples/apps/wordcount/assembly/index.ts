// wordcount: counts lines, words and bytes of the dataset
// ($IEXEC_IN/$IEXEC_DATASET_FILENAME) and of each input file
// ($IEXEC_IN/$IEXEC_INPUT_FILE_NAME_n), writes the counts to
// $IEXEC_OUT/result.txt and stdout, and names result.txt as the
// deterministic output in $IEXEC_OUT/computed.json.
import { readFile, writeText, env, lastErrno } from "../../common/assembly/wasi-io";
import { count } from "../../common/assembly/count";

const inDir = env("IEXEC_IN");
const outDir = env("IEXEC_OUT");
const names = new Array<string>();
const dataset = env("IEXEC_DATASET_FILENAME");
if (dataset.length > 0) names.push(dataset);
const nInputs = I32.parseInt(env("IEXEC_INPUT_FILES_NUMBER") || "0");
for (let i = 1; i <= nInputs; i++) names.push(env("IEXEC_INPUT_FILE_NAME_" + i.toString()));

let report = "";
let failed = false;
for (let i = 0; i < names.length; i++) {
  const data = readFile(inDir + "/" + names[i]);
  if (data == null) {
    process.stderr.write("wordcount: cannot read " + names[i] + " (errno " + lastErrno.toString() + ")\n");
    failed = true;
    continue;
  }
  report += count(names[i], data);
}
process.stdout.write(report);
if (!writeText(outDir + "/result.txt", report)) {
  process.stderr.write("wordcount: cannot write result.txt (errno " + lastErrno.toString() + ")\n");
  process.exit(2);
}
writeText(outDir + "/computed.json", "{\"deterministic-output-path\":\"" + outDir + "/result.txt\"}\n");
if (failed) process.exit(1);
