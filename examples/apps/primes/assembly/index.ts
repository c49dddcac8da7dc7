// primes: a sieve of Eratosthenes up to N (argv[1], default 1000000).
// Writes every prime, one a line, to $IEXEC_OUT/primes.txt and prints
// "count=C last=L" to stdout. Compute-heavy for large N; N is capped so the
// sieve fits the module's memory bound.
import { writeText, env } from "../../common/assembly/wasi-io";

const MAX_N: i32 = 50000000;

const args = process.argv;
let n: i32 = 1000000;
if (args.length > 1) n = I32.parseInt(args[1]);
if (n < 2 || n > MAX_N) {
  process.stderr.write("primes: N must be between 2 and " + MAX_N.toString() + "\n");
  process.exit(2);
}

// composite[i] != 0 when i is not prime.
const composite = new Uint8Array(n + 1);
for (let i = 2; i * i <= n; i++) {
  if (composite[i] != 0) continue;
  for (let j = i * i; j <= n; j += i) composite[j] = 1;
}
let count = 0;
let last = 0;
// Primes are listed only up to LIST_MAX so the output stays small for big N.
const LIST_MAX: i32 = 100000;
const parts = new Array<string>();
for (let i = 2; i <= n; i++) {
  if (composite[i] != 0) continue;
  count++;
  last = i;
  if (i <= LIST_MAX) parts.push(i.toString());
}
writeText(env("IEXEC_OUT") + "/primes.txt", parts.join("\n") + "\n");
process.stdout.write("count=" + count.toString() + " last=" + last.toString() + "\n");
