/* A C program built outside Bazel against an installed polymalloc (pkg-config): it says which
 * variant and version it runs on, after some work that goes through malloc. */
#include <polymalloc/polymalloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
  enum { kBlocks = 1000 };
  char* blocks[kBlocks];
  for (int i = 0; i < kBlocks; ++i) {
    blocks[i] = malloc((size_t)(16 + i % 512));
    if (blocks[i] == NULL) return 1;
    memset(blocks[i], i & 0xff, (size_t)(16 + i % 512));
  }
  for (int i = 0; i < kBlocks; ++i) free(blocks[i]);
  const char* problem = polymalloc_check_heap(NULL);
  printf("make example on polymalloc %s %s (header %s): heap %s\n", polymalloc_variant(),
         polymalloc_version(), POLYMALLOC_VERSION_STRING, problem == NULL ? "consistent" : problem);
  return problem == NULL ? 0 : 1;
}
