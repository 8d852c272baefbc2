// SbrkHeap, exercised in forked children so that nothing else (the test framework's own
// malloc) moves the program break except where a test moves it on purpose.
#include "platform/sbrk_heap.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>

#include "platform/os.h"

namespace polymalloc::platform {
namespace {

// Runs `body` in a child; the child's exit status is the number of the failed check (0: ok).
template <class Body>
int in_child(Body body) {
  const pid_t child = fork();
  if (child == 0) _exit(body());
  int status = 0;
  if (child < 0 || waitpid(child, &status, 0) != child || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

TEST(SbrkHeapTest, GrowsContiguouslyAndShrinksAtTheBreak) {
  EXPECT_EQ(in_child([] {
              static SbrkHeap heap;
              const std::size_t page = page_size();
              auto* a = static_cast<unsigned char*>(heap.grow(2 * page));
              if (a == nullptr) return 1;
              auto* b = static_cast<unsigned char*>(heap.grow(page));
              if (b != a + 2 * page) return 2;
              a[0] = 1;
              b[page - 1] = 1;
              if (os_break_current() != reinterpret_cast<std::uintptr_t>(b + page)) return 3;
              if (!heap.shrink(page)) return 4;
              if (os_break_current() != reinterpret_cast<std::uintptr_t>(b)) return 5;
              if (heap.contains(b) || !heap.contains(a)) return 6;
              return 0;
            }),
            0);
}

TEST(SbrkHeapTest, ForeignBreakMoveStartsANewRegionAndBlocksShrink) {
  EXPECT_EQ(in_child([] {
              static SbrkHeap heap;
              const std::size_t page = page_size();
              auto* a = static_cast<unsigned char*>(heap.grow(page));
              if (a == nullptr) return 1;
              // Someone else moves the break by an odd amount.
              const std::uintptr_t theirs = os_break_current();
              if (!os_break_set(theirs + 100)) return 2;
              if (heap.shrink(page)) return 3;  // the break is no longer ours
              auto* b = static_cast<unsigned char*>(heap.grow(page));
              if (b == nullptr) return 4;
              const auto start = reinterpret_cast<std::uintptr_t>(b);
              if (start < theirs + 100 || start % page != 0) return 5;  // after theirs, aligned
              b[page - 1] = 1;
              if (!heap.shrink(page)) return 6;  // the new top is ours again
              return 0;
            }),
            0);
}

}  // namespace
}  // namespace polymalloc::platform
