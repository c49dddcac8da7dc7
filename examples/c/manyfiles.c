// Probe: creates empty files in IEXEC_OUT until it is refused, then exits 1.
// The executor's bound on files must stop it (OUTPUT_TOO_LARGE).
#include <stdio.h>
#include <stdlib.h>

int main(void) {
  const char *out = getenv("IEXEC_OUT");
  char path[4096];
  for (long i = 0; i < 1000000; i++) {
    snprintf(path, sizeof path, "%s/f%ld", out, i);
    FILE *f = fopen(path, "w");
    if (f == NULL) {
      fprintf(stderr, "refused after %ld files\n", i);
      return 1;
    }
    fclose(f);
  }
  return 0;
}
