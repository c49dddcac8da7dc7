// The app contract in C (README, "The app contract"): reads the dataset and
// the input files from IEXEC_IN, writes its result to IEXEC_OUT and names it
// in computed.json. Build with Debian's clang, lld and wasi-libc:
//   clang --target=wasm32-wasi --sysroot=/usr -O2 -o linecount.wasm linecount.c
// No memory maximum is declared: the executor sets the bound.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Counts the lines and bytes of one file; -1 when it cannot be read.
static long count(const char *dir, const char *name, long *bytes) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "rb");
  if (f == NULL) return -1;
  long lines = 0;
  int c;
  *bytes = 0;
  while ((c = fgetc(f)) != EOF) {
    (*bytes)++;
    if (c == '\n') lines++;
  }
  fclose(f);
  return lines;
}

int main(int argc, char **argv) {
  const char *in = getenv("IEXEC_IN");
  const char *out = getenv("IEXEC_OUT");
  if (in == NULL || out == NULL) {
    fprintf(stderr, "IEXEC_IN and IEXEC_OUT must be set\n");
    return 2;
  }
  char path[4096];
  snprintf(path, sizeof path, "%s/result.txt", out);
  FILE *result = fopen(path, "w");
  if (result == NULL) {
    perror("result.txt");
    return 1;
  }
  // the request's arguments, as the app got them
  fprintf(result, "args");
  for (int i = 1; i < argc; i++) fprintf(result, " %s", argv[i]);
  fprintf(result, "\n");
  const char *dataset = getenv("IEXEC_DATASET_FILENAME");
  if (dataset != NULL) {
    long bytes = 0;
    long lines = count(in, dataset, &bytes);
    if (lines < 0) {
      fprintf(stderr, "cannot read the dataset %s\n", dataset);
      return 1;
    }
    fprintf(result, "dataset lines=%ld bytes=%ld\n", lines, bytes);
  }
  int n = atoi(getenv("IEXEC_INPUT_FILES_NUMBER") != NULL ? getenv("IEXEC_INPUT_FILES_NUMBER") : "0");
  for (int i = 1; i <= n; i++) {
    char var[64];
    snprintf(var, sizeof var, "IEXEC_INPUT_FILE_NAME_%d", i);
    const char *name = getenv(var);
    long bytes = 0;
    long lines = name != NULL ? count(in, name, &bytes) : -1;
    if (lines < 0) {
      fprintf(stderr, "cannot read input file %d\n", i);
      return 1;
    }
    fprintf(result, "%s lines=%ld bytes=%ld\n", name, lines, bytes);
  }
  fclose(result);
  // the deterministic part of the output: the digest workers agree on
  snprintf(path, sizeof path, "%s/computed.json", out);
  FILE *computed = fopen(path, "w");
  if (computed == NULL) {
    perror("computed.json");
    return 1;
  }
  fprintf(computed, "{ \"deterministic-output-path\": \"%s/result.txt\" }\n", out);
  fclose(computed);
  printf("counted %d input file(s)\n", n);
  return 0;
}
