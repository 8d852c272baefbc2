// SbrkHeap: the program break, with foreign moves detected rather than assumed away.
#include "platform/sbrk_heap.h"

#include <errno.h>

#include "platform/os.h"

namespace polymalloc::platform {

void* SbrkHeap::grow(std::size_t bytes) {
  const std::uintptr_t current = os_break_current();
  // Someone else (or nobody yet) set the break: start on the next page boundary after it.
  const std::uintptr_t page = page_size();
  const std::uintptr_t start = current == top_ ? top_ : (current + page - 1) & ~(page - 1);
  if (start + bytes < start || !os_break_set(start + bytes)) {
    errno = ENOMEM;
    return nullptr;
  }
  if (first_ == 0) first_ = start;
  top_ = start + bytes;
  return reinterpret_cast<void*>(start);
}

bool SbrkHeap::shrink(std::size_t bytes) {
  if (bytes > top_ - first_ || os_break_current() != top_) return false;
  if (!os_break_set(top_ - bytes)) return false;
  top_ -= bytes;
  return true;
}

}  // namespace polymalloc::platform
