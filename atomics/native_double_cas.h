// Double-width CAS in one instruction (cmpxchg16b on x86-64, casp/ldxp-stxp on aarch64),
// inlined by the compiler: lock-free and async-signal-safe, no libatomic call.
#pragma once

#include "atomics/cpu.h"
#include "atomics/double_word.h"

namespace polymalloc::atomics {

struct NativeDoubleCas {
  static constexpr bool kIsLockFree = true;
  static constexpr const char* kName = "native";

  // A template so that merely including this header is fine on CPUs without the instruction.
  template <class W = DoubleWord>
  static bool cas_seq_cst(W* p, W& expected, W desired) {
    static_assert(kHasDoubleCas, "this CPU/compiler has no inline double-width CAS (-mcx16?)");
    // may_alias: the DoubleWord is accessed as one 128-bit unit here and as words elsewhere.
    using U128 [[gnu::may_alias]] = unsigned __int128;
    const U128 want = pack(expected);
    const U128 found = __sync_val_compare_and_swap(reinterpret_cast<U128*>(p), want, pack(desired));
    if (found == want) return true;
    expected =
        DoubleWord{static_cast<std::uintptr_t>(found), static_cast<std::uintptr_t>(found >> 64)};
    return false;
  }

 private:
  static unsigned __int128 pack(const DoubleWord& w) {
    return (static_cast<unsigned __int128>(w.hi) << 64) | w.lo;
  }
};

}  // namespace polymalloc::atomics
