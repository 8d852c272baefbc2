/* A C program built outside Bazel against an installed polymalloc (CMake find_package): it
 * grows a buffer with realloc, takes an aligned block, and says which variant it runs on. */
#include <polymalloc/polymalloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int main(void) {
  size_t size = 64;
  unsigned char* buffer = calloc(size, 1);
  while (buffer != NULL && size < ((size_t)1 << 20)) {
    buffer[size - 1] = 1;
    size *= 2;
    unsigned char* grown = realloc(buffer, size);
    if (grown == NULL) free(buffer);
    buffer = grown;
  }
  void* aligned = NULL;
  if (buffer == NULL || posix_memalign(&aligned, 4096, 100) != 0 || (uintptr_t)aligned % 4096) {
    fprintf(stderr, "cmake example: an allocation failed\n");
    return 1;
  }
  free(aligned);
  free(buffer);
  printf("cmake example on polymalloc %s %s\n", polymalloc_variant(), polymalloc_version());
  return 0;
}
