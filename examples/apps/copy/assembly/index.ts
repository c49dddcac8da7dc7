// copy: the app a dataset allow-list exists to stop. It copies the dataset
// ($IEXEC_IN/$IEXEC_DATASET_FILENAME) to $IEXEC_OUT/copy.bin and stdout,
// so whoever runs it on a dataset gets the plaintext in the result.
import { readFile, writeFile, env, lastErrno } from "../../common/assembly/wasi-io";

const dataset = env("IEXEC_DATASET_FILENAME");
if (dataset.length == 0) {
  process.stderr.write("copy: no dataset\n");
  process.exit(1);
}
const read = readFile(env("IEXEC_IN") + "/" + dataset);
if (read == null) {
  process.stderr.write("copy: cannot read " + dataset + " (errno " + lastErrno.toString() + ")\n");
  process.exit(1);
} else {
  const data = changetype<ArrayBuffer>(read);
  if (!writeFile(env("IEXEC_OUT") + "/copy.bin", data)) {
    process.stderr.write("copy: cannot write copy.bin (errno " + lastErrno.toString() + ")\n");
    process.exit(2);
  }
  process.stdout.write(String.UTF8.decode(data));
}
