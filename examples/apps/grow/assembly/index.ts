// grow: a sandbox probe that allocates 1 MiB blocks and keeps them until the
// memory bound stops it. The allocator traps when memory.grow fails.
const kept = new Array<ArrayBuffer>();
while (true) {
  kept.push(new ArrayBuffer(1 << 20));
}
