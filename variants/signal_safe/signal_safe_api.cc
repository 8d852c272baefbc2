// signal_safe's own C API (declared in <polymalloc/polymalloc.h>), over the variant as built.
#include <polymalloc/polymalloc.h>

#include "allocator/c_api.h"
#include "variants/signal_safe/signal_safe.h"

extern "C" POLYMALLOC_EXPORT void polymalloc_signal_safe_enable_mmap(void) noexcept {
  polymalloc::variants::SignalSafe::enable_mmap();
}

extern "C" POLYMALLOC_EXPORT int polymalloc_signal_safe_is_lock_free(void) noexcept {
  return polymalloc::variants::SignalSafe::kIsLockFree ? 1 : 0;
}
