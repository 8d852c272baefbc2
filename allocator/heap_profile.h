// A sampling heap profiler, in the manner of tcmalloc's: which code holds the memory, from a
// running process, at a cost of a few percent.
//
// Each thread counts down the bytes it allocates (due(): a decrement and a branch on the
// fast path). When the count runs out, the allocation is sampled and the next count is drawn
// from an exponential distribution with mean POLYMALLOC_PROFILE_SAMPLE bytes, so that every
// byte allocated is equally likely to be the one that triggers a sample. A sampled block
// must be one that free() looks up on a path it takes anyway: it is served in a block at
// least big enough that free() takes its big-block path, which asks the table (as tcmalloc
// gives a sampled object a span of its own, which its free looks up). A small block pays
// nothing on free for it; a big one, a load and a branch while no sample was ever taken.
//
// The stack is walked by frame pointers from the sampling function the client's call jumps
// to, each frame read only where it is known to be readable (the thread's stack, probed once
// per page with process_vm_readv): no lock, no allocation, no unwinder tables, so a sample is safe
// under the dynamic loader's lock (dlopen allocates while it holds it) and in a signal
// handler. Frames of code built without frame pointers end the walk early.
//
// The samples live in a table of fixed size in the allocator's own metadata, claimed and
// released by CAS, each naming its stack in a second table that keeps every distinct stack
// once. The profile is written in gperftools' heap-profile format, in-use objects
// and bytes scaled up from the samples (each sample of s bytes stands for 1 / (1 - e^(-s/R))
// allocations of its size), followed by the process's memory map, so that google-pprof reads
// it: at exit to POLYMALLOC_PROFILE_FILE (%p: the pid), and on demand through
// polymalloc_dump_heap_profile(path).
#pragma once

#include <cstddef>
#include <cstdint>

#include "atomics/atomics.h"

namespace polymalloc::allocator {

// The deepest stack a sample keeps.
inline constexpr unsigned kProfileMaxDepth = 32;

// A stack's return addresses, innermost first, and their hash, which capture() folds in as
// it walks (the stacks' table finds a stack by it).
struct ProfileStack {
  unsigned depth = 0;
  std::uintptr_t hash = 0;
  std::uintptr_t frames[kProfileMaxDepth];

  // FNV-1a's step, a word at a time.
  static std::uintptr_t fold(std::uintptr_t hash, std::uintptr_t frame) {
    return (hash ^ frame) * 0x100000001b3u;
  }
  // Appends a frame (depth below kProfileMaxDepth).
  void push(std::uintptr_t frame) {
    frames[depth++] = frame;
    hash = fold(hash, frame);
  }
};

namespace heap_profile_detail {
// The tables of samples and stacks (heap_profile.cc), mapped on the first sample: null while
// none was ever taken, which active() asks, inlined into the big-block paths of free() and
// realloc (which ask it with profiling off too). They start with kBuckets counts of live
// samples, one per bucket of keys, which free() reads inline (may_be_sampled()).
inline constinit void* g_tables = nullptr;

// The samples' table has kSlots slots; a key's search starts at its home slot, and the
// bucket that counts it is that slot's low bits.
inline constexpr std::size_t kSlots = std::size_t{1} << 15;
inline constexpr std::size_t kBuckets = std::size_t{1} << 12;
static_assert(kSlots < 65536, "a bucket's 16-bit count reaches kSlots at most");

// A Fibonacci hash of `value` onto `slots` (a power of two) slots.
inline std::size_t spread(std::uintptr_t value, std::size_t slots) {
  return static_cast<std::size_t>(value * 0x9e3779b97f4a7c15u >> 40) & (slots - 1);
}
// A key is a payload address, 16-byte aligned: its low four bits carry nothing.
inline std::size_t home_of(std::uintptr_t key) { return spread(key >> 4, kSlots); }
inline std::size_t bucket_of(std::size_t home) { return home & (kBuckets - 1); }
}  // namespace heap_profile_detail

class HeapProfile {
 public:
  // The fast path's part: counts `bytes` down; true when the count has run out (then take()
  // says whether this allocation is sampled). A thread's first call runs it out.
  [[gnu::always_inline]] static bool due(std::size_t bytes) {
    // In unsigned arithmetic, which wraps (a failing request of nearly SIZE_MAX bytes would
    // overflow a signed subtraction); the same instructions.
    const std::uint64_t left = static_cast<std::uint64_t>(bytes_until_sample_) - bytes;
    bytes_until_sample_ = static_cast<std::int64_t>(left);
    return bytes_until_sample_ < 0;
  }

  // Whether the allocation of `bytes` that due() stopped at is sampled; draws the next count.
  // When profiling is off, the count is set so far away that due() never stops again.
  static bool take(std::size_t bytes);

  // The return addresses above frame `frame` (a frame whose caller is the exported function
  // the client called, or the client itself), up to kProfileMaxDepth; in the preloaded
  // library, the allocator's own frames at the top are dropped.
  static void capture(const void* frame, ProfileStack* stack);

  // Records the sample: a block of `bytes` requested at `payload` (the pool's own payload,
  // which free() passes to forget()). False if the table has no room (the block is then not
  // kept as a sample).
  static bool record(const void* payload, std::size_t bytes, const ProfileStack& stack);

  // The block at `payload` is freed: its sample, if it was one, goes. Called where free()
  // takes sampled blocks (class_core.h): big blocks and mappings.
  static void forget(const void* payload) {
    if (may_be_sampled(payload)) forget_sampled(payload);
  }
  // The block at `from` moved to `to` (realloc), now of `bytes`; `to` null where free()
  // will not ask for it (its sample is then forgotten).
  static void moved(const void* from, const void* to, std::size_t bytes) {
    if (may_be_sampled(from)) move_sampled(from, to, bytes);
  }
  // The bytes requested for the block at `payload` if it is a sample, else 0.
  static std::size_t sampled_bytes(const void* payload) {
    return may_be_sampled(payload) ? bytes_of_sampled(payload) : 0;
  }

  // False where the block at `payload` is surely not a sample: no sample was ever taken, or
  // no live sample's key falls in its bucket (most big blocks freed, which then skip the
  // call and the search of the table). Inline: a load, a multiply and a load.
  static bool may_be_sampled(const void* payload) {
    using namespace heap_profile_detail;
    const auto* live_in_bucket =
        static_cast<const std::uint16_t*>(atomics::load_acquire(&g_tables));
    if (live_in_bucket == nullptr) return false;
    const std::size_t home = home_of(reinterpret_cast<std::uintptr_t>(payload));
    return atomics::load_relaxed(&live_in_bucket[bucket_of(home)]) != 0;
  }

  // Whether any sample was ever taken (the tables exist).
  static bool active() { return atomics::load_acquire(&heap_profile_detail::g_tables) != nullptr; }

  // Says once, on stderr, that samples cannot be kept (`why`), and stops this thread's
  // sampling: never a profile that silently misses what it was asked to see.
  static void unsupported(const char* why);

  // Writes the profile to `path`: 0, or -1 with errno (EINVAL: no path or profiling off).
  static int dump(const char* path);
  // At exit: the profile to POLYMALLOC_PROFILE_FILE, if profiling is on.
  static void dump_at_exit_if_requested();

  // The sampling mean in bytes (POLYMALLOC_PROFILE_SAMPLE; 0: off).
  static std::uint64_t sample_bytes();

  // For tests: this thread's countdown starts again (its next allocation asks take()).
  static void restart_thread_for_tests();

 private:
  // take()'s path for a thread's first count, or with profiling off or not yet started.
  [[gnu::noinline]] static bool start_thread();
  static void forget_sampled(const void* payload);
  static void move_sampled(const void* from, const void* to, std::size_t bytes);
  static std::size_t bytes_of_sampled(const void* payload);

  static inline thread_local constinit std::int64_t bytes_until_sample_
      [[gnu::tls_model("initial-exec")]] = 0;
};

}  // namespace polymalloc::allocator
