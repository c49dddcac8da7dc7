// spin: a sandbox probe that never ends; the executor must stop it.
let counter: u64 = 1;
while (counter != 0) {
  // Wraps around only after 2^64 steps: in practice the loop never ends, and
  // the write below keeps the optimizer from proving it.
  counter++;
  if (counter == 0) process.stdout.write("wrapped\n");
}
