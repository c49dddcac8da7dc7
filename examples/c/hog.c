// Probe: allocates (and touches) 1 MiB blocks until malloc fails, then
// prints how many it got and exits 1. The executor's memory bound must stop
// it (MEMORY_EXCEEDED); clang declares no memory maximum of its own.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// the blocks are chained so the compiler cannot drop them
static void *volatile last;

int main(void) {
  long blocks = 0;
  for (;;) {
    void **p = malloc(1 << 20);
    if (p == NULL) break;
    memset(p, 1, 1 << 20);
    *p = last;
    last = p;
    blocks++;
  }
  fprintf(stderr, "out of memory after %ld MiB\n", blocks);
  return 1;
}
