// Checks that --//atomics:stack_aba chose the stack it names (argv[1] is the expected kName).
#include <cstdio>
#include <cstring>

#include "atomics/atomics.h"

int main(int argc, char** argv) {
  using polymalloc::atomics::DefaultStack;
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s EXPECTED_STACK_NAME\n", argv[0]);
    return 2;
  }
  if (std::strcmp(DefaultStack::kName, argv[1]) != 0) {
    std::fprintf(stderr, "DefaultStack is '%s', the build setting asked for '%s'\n",
                 DefaultStack::kName, argv[1]);
    return 1;
  }
  alignas(16) static std::uintptr_t node[2];
  DefaultStack stack;
  stack.push(node);
  if (stack.pop() != node || stack.pop() != nullptr) {
    std::fprintf(stderr, "DefaultStack push/pop round trip failed\n");
    return 1;
  }
  std::printf("DefaultStack: %s (lock-free: %s)\n1 passed, 0 failed\n", DefaultStack::kName,
              polymalloc::atomics::kStackIsLockFree ? "yes" : "no");
  return 0;
}
