// How the OS layer stays visible to ThreadSanitizer. polymalloc maps memory with raw system
// calls (async-signal-safe, no libc state), which TSan does not intercept: it would keep a
// previous mapping's access history at a reused address and report races between unrelated
// owners. (Its AnnotateNewMemory hook is a no-op in the runtime Debian ships.) Under TSan the
// mapping calls therefore go through libc, whose interceptors clear that history.
#pragma once

#if defined(__SANITIZE_THREAD__)
#define POLYMALLOC_HAS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define POLYMALLOC_HAS_TSAN 1
#endif
#endif

namespace polymalloc::platform {

#if POLYMALLOC_HAS_TSAN
inline constexpr bool kMapThroughLibc = true;
#else
inline constexpr bool kMapThroughLibc = false;
#endif

}  // namespace polymalloc::platform
