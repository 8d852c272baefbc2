// A program with two planted bugs for valgrind's memcheck to find in a polymalloc heap: a read
// of a freed block and a block that is never freed (and one still reachable at exit).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
  auto* leaked = static_cast<char*>(malloc(40));
  memset(leaked, 1, 40);
  printf("leaked %p\n", (void*)leaked);
  leaked = nullptr;  // the only pointer to it is gone: "definitely lost"

  auto* freed = static_cast<char*>(malloc(64));
  memset(freed, 2, 64);
  free(freed);
  volatile char c = freed[8];  // use after free
  (void)c;
  printf("freed %p\n", (void*)freed);

  static char* kept;
  kept = static_cast<char*>(malloc(24));  // still reachable at exit
  return kept == nullptr;
}
