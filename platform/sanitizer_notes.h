// How the OS layer stays visible to ThreadSanitizer. polymalloc maps memory with raw system
// calls (async-signal-safe, no libc state), which TSan does not intercept: it would keep a
// previous mapping's access history at a reused address and report races between unrelated
// owners. (Its AnnotateNewMemory hook is a no-op in the runtime Debian ships.) Under TSan the
// mapping calls therefore go through libc, whose interceptors clear that history.
//
// AddressSanitizer has the same blind spot for the poison the allocator puts on free memory:
// the shadow outlives the pages, and a later mapping at that address (a page map leaf, a
// test's next heap) would read as poisoned. Pages that leave the allocator lose their poison.
#pragma once

#include <cstddef>

#if defined(__SANITIZE_THREAD__)
#define POLYMALLOC_HAS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define POLYMALLOC_HAS_TSAN 1
#endif
#endif

#if defined(__SANITIZE_ADDRESS__)
#define POLYMALLOC_PLATFORM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define POLYMALLOC_PLATFORM_ASAN 1
#endif
#endif

#if POLYMALLOC_PLATFORM_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace polymalloc::platform {

#if POLYMALLOC_HAS_TSAN
inline constexpr bool kMapThroughLibc = true;
#else
inline constexpr bool kMapThroughLibc = false;
#endif

// Clears ASan's poison on committed pages that are being given back (a no-op without ASan).
// Only for committed ranges: the shadow write costs an eighth of the range's size.
inline void forget_poison(void* address, std::size_t bytes) {
#if POLYMALLOC_PLATFORM_ASAN
  __asan_unpoison_memory_region(address, bytes);
#else
  (void)address;
  (void)bytes;
#endif
}

}  // namespace polymalloc::platform
