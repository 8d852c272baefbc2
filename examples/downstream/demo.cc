// A small program whose malloc, new and libc-internal allocations are polymalloc's: it
// says which variant it runs on and checks the heap after some work.
#include <malloc.h>
#include <polymalloc/polymalloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <map>
#include <string>

int main() {
  std::map<std::string, int> words;
  for (int i = 0; i < 100000; ++i) words["word" + std::to_string(i * 7919 % 5000)] += 1;
  char* copy = strdup("downstream");
  void* big = malloc(8 << 20);  // NULL on signal_safe unless mmap is enabled
  if (big == nullptr) {
    fprintf(stderr, "downstream demo: malloc(8 MiB) failed\n");
    return 1;
  }
  memset(big, 1, 8 << 20);
  free(big);
  free(copy);
  const char* problem = polymalloc_check_heap(nullptr);
  printf("downstream demo on polymalloc %s %s: %zu distinct words, heap %s\n", polymalloc_variant(),
         polymalloc_version(), words.size(), problem == nullptr ? "consistent" : problem);
  return problem == nullptr ? 0 : 1;
}
