// signal_safe's own C API (signal_safe_api.h), over the variant as built.
#include "variants/signal_safe/signal_safe_api.h"

#include "allocator/c_api.h"
#include "variants/signal_safe/signal_safe.h"

extern "C" POLYMALLOC_EXPORT void polymalloc_signal_safe_enable_mmap(void) {
  polymalloc::variants::SignalSafe::enable_mmap();
}

extern "C" POLYMALLOC_EXPORT int polymalloc_signal_safe_is_lock_free(void) {
  return polymalloc::variants::SignalSafe::kIsLockFree ? 1 : 0;
}
