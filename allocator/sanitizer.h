// What polymalloc tells AddressSanitizer, so that a client's use-after-free or use of a never
// allocated byte inside a polymalloc heap is reported: free payloads are poisoned, live ones
// unpoisoned (ASan's manual poisoning interface). Without ASan every call here is a no-op.
// The allocator's own bookkeeping inside free memory (headers, list links) is compiled
// unchecked (kUncheckedByAsan), since it legitimately lives in poisoned bytes.
#pragma once

#include <cstddef>

#if defined(__SANITIZE_ADDRESS__)
#define POLYMALLOC_HAS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define POLYMALLOC_HAS_ASAN 1
#endif
#endif

#if POLYMALLOC_HAS_ASAN
#include <sanitizer/asan_interface.h>
#endif

// Marks a function that reads or writes allocator metadata in poisoned (free) memory.
#define POLYMALLOC_UNCHECKED_BY_ASAN __attribute__((no_sanitize("address")))

// The operations every malloc/free runs: forced inline into the variant's entry points (GNU
// attribute syntax: clang takes no [[...]] list after POLYMALLOC_UNCHECKED_BY_ASAN),
// except under ASan, where an unchecked function must stay out of line (forced into a
// checked caller it would be instrumented after all).
#if POLYMALLOC_HAS_ASAN
#define POLYMALLOC_HOT_PATH inline
#else
#define POLYMALLOC_HOT_PATH __attribute__((always_inline)) inline
#endif

namespace polymalloc::allocator {

#if POLYMALLOC_HAS_ASAN
inline constexpr bool kUnderAsan = true;
inline void poison_free(const void* p, std::size_t bytes) { ASAN_POISON_MEMORY_REGION(p, bytes); }
inline void unpoison_live(const void* p, std::size_t bytes) {
  ASAN_UNPOISON_MEMORY_REGION(p, bytes);
}
// For tests: whether ASan would report an access to p / to any byte of [p, p + bytes).
inline bool is_poisoned(const void* p) { return __asan_address_is_poisoned(p) != 0; }
inline bool any_poisoned(const void* p, std::size_t bytes) {
  return __asan_region_is_poisoned(const_cast<void*>(p), bytes) != nullptr;
}
#else
inline constexpr bool kUnderAsan = false;
inline void poison_free(const void*, std::size_t) {}
inline void unpoison_live(const void*, std::size_t) {}
inline bool is_poisoned(const void*) { return false; }
inline bool any_poisoned(const void*, std::size_t) { return false; }
#endif

}  // namespace polymalloc::allocator
