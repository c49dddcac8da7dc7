// env: prints its arguments, its environment (sorted), the clock and a few
// random bytes to stdout, so tests can check what the executor hands an app
// and that clock and randomness are deterministic per task.
const args = process.argv;
for (let i = 0; i < args.length; i++) process.stdout.write("arg" + i.toString() + "=" + args[i] + "\n");
const keys = process.env.keys().sort();
for (let i = 0; i < keys.length; i++) process.stdout.write("env " + keys[i] + "=" + process.env.get(keys[i]) + "\n");
process.stdout.write("now=" + Date.now().toString() + "\n");
const rnd = new Uint8Array(8);
crypto.getRandomValues(rnd);
let hex = "";
for (let i = 0; i < rnd.length; i++) hex += (<u32>rnd[i]).toString(16).padStart(2, "0");
process.stdout.write("random=" + hex + "\n");
