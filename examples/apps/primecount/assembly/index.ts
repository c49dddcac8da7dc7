// primecount: how many primes are <= N (argv[1]), for a smart contract.
// Writes $IEXEC_OUT/computed.json with iExec's `callback-data`: the ABI
// encoding of (uint256 n, uint256 count), which the hub passes to the
// request's callback contract (receiveResult) at finalize; the consensus is
// over those bytes. Also writes result.txt and prints "n=N count=C".
import { writeText, env } from "../../common/assembly/wasi-io";

const MAX_N: i32 = 10000000;

const args = process.argv;
let n: i32 = 0;
if (args.length > 1) n = I32.parseInt(args[1]);
if (n < 2 || n > MAX_N) {
  process.stderr.write("primecount: N must be between 2 and " + MAX_N.toString() + "\n");
  process.exit(2);
}

const composite = new Uint8Array(n + 1);
for (let i = 2; i * i <= n; i++) {
  if (composite[i] != 0) continue;
  for (let j = i * i; j <= n; j += i) composite[j] = 1;
}
let count = 0;
for (let i = 2; i <= n; i++) if (composite[i] == 0) count++;

/** One ABI word: a uint256 as 64 hex digits. */
function word (v: i32): string {
  let hex = (<u32>v).toString(16);
  while (hex.length < 64) hex = "0" + hex;
  return hex;
}

const out = env("IEXEC_OUT");
writeText(out + "/result.txt", "n=" + n.toString() + " count=" + count.toString() + "\n");
writeText(out + "/computed.json", "{\"callback-data\":\"0x" + word(n) + word(count) + "\"}\n");
process.stdout.write("n=" + n.toString() + " count=" + count.toString() + "\n");
