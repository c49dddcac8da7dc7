// Probe: sleeps the number of seconds in its first argument (WASI poll_oneoff
// on a clock, which blocks the runner), then prints "woke". The executor must
// kill it at its time bound.
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv) {
  int seconds = argc > 1 ? atoi(argv[1]) : 3600;
  struct timespec t = { seconds, 0 };
  nanosleep(&t, NULL);
  printf("woke\n");
  return 0;
}
