// Keeps errno as it was across a scope that makes system calls which may set it (munmap,
// madvise): free() and friends must not change errno.
#pragma once

#include <cerrno>

namespace polymalloc::allocator {

class ErrnoPreserved {
 public:
  ErrnoPreserved() : saved_(errno) {}
  ~ErrnoPreserved() { errno = saved_; }
  ErrnoPreserved(const ErrnoPreserved&) = delete;
  ErrnoPreserved& operator=(const ErrnoPreserved&) = delete;

 private:
  int saved_;
};

}  // namespace polymalloc::allocator
