#include "allocator/block.h"

#include "allocator/report.h"

namespace polymalloc::allocator {

void Block::report_corrupted_link(const Block* b) {
  report_misuse("malloc", "corrupted free list (a freed block was written to): link to", b);
}

void Block::report_overwritten_guard(const Block* b) {
  report_misuse("malloc", "corrupted free list (a freed block was written to): cached block",
                reinterpret_cast<const unsigned char*>(b) + kHeaderBytes);
}

}  // namespace polymalloc::allocator
