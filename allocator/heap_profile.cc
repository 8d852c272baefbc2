// The heap profiler's slow parts (heap_profile.h): the sampling decision, the stack walk,
// the table of samples and the profile's output. Nothing here allocates or takes a lock.
#include "allocator/heap_profile.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <sys/auxv.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <bit>
#include <cstring>

#include "allocator/report.h"
#include "allocator/settings.h"
#include "atomics/atomics.h"
#include "platform/platform.h"

// This module's ELF header (the linker's symbol), declared as bytes of unknown length: the
// program headers lie beyond the header, and are copied out rather than read in place.
extern "C" const char __ehdr_start[];

namespace polymalloc::allocator {
namespace {

// ---- sampling ----

// The count that never runs out: due() then never stops a thread again.
constexpr std::int64_t kNever = std::int64_t{1} << 62;

// The scale of this thread's draws, kept once its first count is drawn (0 before): the
// sampling mean times ln 2 / 2^32 (exponential()). The settings are fixed at start-up, and a
// sample then reads one word rather than ask them again.
thread_local constinit double t_draw_scale [[gnu::tls_model("initial-exec")]] = 0;
thread_local constinit std::uint64_t t_random [[gnu::tls_model("initial-exec")]] = 0;

// xorshift64*: the thread's own generator, seeded from the process's random word and the
// thread's address. Never 0: the state never is, and the multiplier is odd.
std::uint64_t next_random() {
  std::uint64_t x = t_random;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  t_random = x;
  return x * 0x2545f4914f6cdd1du;
}

// The profiler's arithmetic without libm, which a static link of the allocator would then
// have to name (the archive is linked as any C library's is, with no -lm).
constexpr double kLn2 = 0.6931471805599453;

// ln(m) for m in [1, 2], to double precision, at compile time: ln(m) = 2 atanh(z) with
// z = (m - 1) / (m + 1) <= 1/3, whose odd series z^(2k+1) / (2k+1) is summed to k = 20.
constexpr double log_of_mantissa(double m) {
  const double z = (m - 1) / (m + 1), z2 = z * z;
  double sum = 0, power = z;
  for (int k = 0; k <= 20; ++k, power *= z2) sum += power / (2 * k + 1);
  return 2 * sum;
}

// log2(1 + i / kLogKnotsPerOctave) in units of 2^-32, for i = 0 … kLogKnotsPerOctave.
constexpr unsigned kLogKnotBits = 8;
constexpr unsigned kLogKnotsPerOctave = 1u << kLogKnotBits;
constexpr std::array<std::uint64_t, kLogKnotsPerOctave + 1> kLog2Knots = [] {
  std::array<std::uint64_t, kLogKnotsPerOctave + 1> knots{};
  for (unsigned i = 0; i <= kLogKnotsPerOctave; ++i) {
    const double m = 1.0 + static_cast<double>(i) / kLogKnotsPerOctave;
    knots[i] = static_cast<std::uint64_t>(log_of_mantissa(m) / kLn2 * 0x1.0p32 + 0.5);
  }
  return knots;
}();
static_assert(kLog2Knots[0] == 0 && kLog2Knots[kLogKnotsPerOctave] == std::uint64_t{1} << 32 &&
              kLog2Knots[128] - 2512394810u + 1 <= 2);  // log2(1.5) 2^32 = 2512394809.98

// -log2(x / 2^64) in units of 2^-32, for x in [1, 2^64): the log of a uniform draw from
// (0, 1), in integers. x = 2^(63 - lead) (1 + f) with f in [0, 1), and log2(1 + f)
// interpolated between the two knots around it. Linear interpolation of log2 over steps of
// 1/256 errs by at most (1/256)^2 / (8 ln 2) = 2.8e-6 (low, as log2 is concave), which
// lengthens an interval of mean R by at most 2e-6 R bytes (1 byte at 512 KiB), far below what
// sampling resolves. No division, no branch, and no floating point but the final scaling: a
// division and a branch that went either way half the time were once most of a sample's time
// (perf, pair_loop at 256 KiB).
[[gnu::always_inline]] inline std::uint64_t minus_log2_of_draw(std::uint64_t x) {
  const int lead = std::countl_zero(x);
  const std::uint64_t f = x << lead << 1;  // the bits after the leading one, at the top
  const unsigned i = static_cast<unsigned>(f >> (64 - kLogKnotBits));
  const std::uint64_t within = f << kLogKnotBits >> 32;          // the next 32 bits: i's fraction
  const std::uint64_t step = kLog2Knots[i + 1] - kLog2Knots[i];  // below 2^25
  const std::uint64_t log2_1_plus_f = kLog2Knots[i] + (step * within >> 32);  // below 2^32
  return (static_cast<std::uint64_t>(lead + 1) << 32) - log2_1_plus_f;
}

// 1 - e^(-x) for x >= 0, accurate for small x too (where 1 - exp would cancel): the series
// below 0.5, else e^(-x) from 2^-k e^(-r) with r = x - k ln 2 in [0, ln 2).
double one_minus_exp_minus(double x) {
  if (x < 0.5) {
    double term = x, sum = 0;  // x - x^2/2! + x^3/3! - ...
    for (int k = 1; k <= 20; ++k) {
      sum += term;
      term *= -x / (k + 1);
    }
    return sum;
  }
  if (x > 700) return 1;
  const int k = static_cast<int>(x / kLn2);
  const double r = x - k * kLn2;
  double term = 1, e_minus_r = 0;  // e^(-r) by its series, r < ln 2
  for (int i = 1; i <= 25; ++i) {
    e_minus_r += term;
    term *= -r / i;
  }
  double scale = 1;
  for (int i = 0; i < k; ++i) scale *= 0.5;
  return 1 - e_minus_r * scale;
}

// The scale of exponential() for sampling mean `mean`: -ln(u) R = -log2(u) ln 2 R, and
// minus_log2_of_draw() counts in 2^-32.
double draw_scale_of(std::uint64_t mean) { return static_cast<double>(mean) * kLn2 * 0x1.0p-32; }

// A draw from the exponential distribution with the mean that `scale` was made from
// (draw_scale_of()), at least 1. The product is below 2^46 (-log2 u <= 64, the mean <= 1 TiB).
// Inlined into take(), where a sample's draw is made.
[[gnu::always_inline]] inline std::int64_t exponential(double scale) {
  const auto minus_log2 = static_cast<std::int64_t>(minus_log2_of_draw(next_random()));
  const double draw = static_cast<double>(minus_log2) * scale;
  return draw < 1.0 ? 1 : static_cast<std::int64_t>(draw);
}

// ---- the stack walk ----

// The largest frame the walk steps over: a frame pointer further up is not taken for one.
constexpr std::uintptr_t kMaxFrameBytes = std::uintptr_t{1} << 20;

// The part of this thread's stack known to be readable: it starts at the page of the
// sampling function's own frame (the code runs on it) and grows a page span at a time
// toward the callers, each span asked of the kernel once (os_readable), so that a walk
// through known frames makes no system call. A frame pointer outside the known part and
// more than kMaxGrowth beyond it is not taken for a frame (the caller's code keeps no frame
// pointer, and the register holds something else), so a stray value costs no system call.
constexpr std::uintptr_t kMaxGrowth = std::uintptr_t{64} << 10;

thread_local constinit std::uintptr_t t_readable_low [[gnu::tls_model("initial-exec")]] = 0;
thread_local constinit std::uintptr_t t_readable_high [[gnu::tls_model("initial-exec")]] = 0;

// The known part, [low, high); empty (high 0) before the thread's first walk.
struct Known {
  std::uintptr_t low;
  std::uintptr_t high;
};

// Sets the known part. Empty while it changes: a signal handler's walk on this thread
// meanwhile starts afresh rather than trust half an update.
void set_readable(Known known) {
  t_readable_high = 0;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  t_readable_low = known.low;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  t_readable_high = known.high;
}

// The known part as one update left it: its end is read on both sides of its start, and
// taken as empty if a signal handler's walk changed it in between.
Known known_part() {
  const std::uintptr_t high = t_readable_high;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  const std::uintptr_t low = t_readable_low;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  return Known{low, t_readable_high == high ? high : 0};
}

// The two words of a frame: the caller's frame pointer, then the return address into it.
constexpr std::uintptr_t kFrameBytes = 2 * sizeof(std::uintptr_t);

std::uintptr_t page_down(std::uintptr_t a) { return a & ~(platform::page_size() - 1); }
std::uintptr_t page_up(std::uintptr_t a) { return page_down(a + platform::page_size() - 1); }

// The sampling function's own frame at fp lies outside the known part `was`: asks the
// kernel whether it can be read, and makes its pages the known part (joined to the old one
// where they touch; another stack, or the thread's first walk, starts it afresh). The new
// known part, or an empty one if the frame cannot be read.
[[gnu::noinline]] Known know_own_frame(std::uintptr_t fp, Known was) {
  const std::uintptr_t end = fp + kFrameBytes;
  const std::uintptr_t fp_page = page_down(fp), end_page = page_up(end);
  if (end < fp ||
      !platform::os_readable(reinterpret_cast<const void*>(fp_page), end_page - fp_page)) {
    return Known{0, 0};
  }
  const bool touching = was.high != 0 && end_page >= was.low && fp_page <= was.high;
  const Known now = touching ? Known{std::min(fp_page, was.low), std::max(end_page, was.high)}
                             : Known{fp_page, end_page};
  set_readable(now);
  return now;
}

// A caller's frame at fp ends past the known part: taken for a frame only
// within kMaxGrowth of it and where the kernel says the pages between can be read, which
// then join the known part. Its new end, or 0.
[[gnu::noinline]] std::uintptr_t know_callers_frame(std::uintptr_t fp, Known known) {
  const std::uintptr_t end = fp + kFrameBytes;
  const std::uintptr_t end_page = page_up(end);
  if (end < fp || end_page - known.high > kMaxGrowth ||
      !platform::os_readable(reinterpret_cast<const void*>(known.high), end_page - known.high)) {
    return 0;
  }
  set_readable(Known{known.low, end_page});
  return end_page;
}

// This module's executable segments, when it is a shared object of its own (the preloaded
// library): return addresses inside them are the allocator's frames, dropped from the top
// of a stack. Linked into the program, there is no telling them apart; the exported
// functions jump to the sampling function (front_end.h), so its caller is the client's.
struct CodeRange {
  std::uintptr_t low = 0;
  std::uintptr_t high = 0;
};
constinit CodeRange g_own_code[4] = {};
constinit unsigned g_own_code_count = 0;
constinit CodeRange g_own_code_hull = {};      // from the lowest range's start to the highest's end
constinit std::uint32_t g_own_code_state = 0;  // 0: not found yet, 1: found

// Once a process (out of line: the walk that asks is_own_code() keeps no ELF header in its
// frame).
[[gnu::noinline, gnu::cold]] void find_own_code() {
  ElfW(Ehdr) header;
  std::memcpy(&header, __ehdr_start, sizeof(header));
  const char* phdrs = __ehdr_start + header.e_phoff;
  if (reinterpret_cast<std::uintptr_t>(phdrs) != getauxval(AT_PHDR)) {  // not the program
    std::uintptr_t base = 0;
    bool based = false;
    unsigned n = 0;
    for (unsigned i = 0; i < header.e_phnum; ++i) {
      ElfW(Phdr) ph;
      std::memcpy(&ph, phdrs + i * sizeof(ph), sizeof(ph));
      if (ph.p_type != PT_LOAD) continue;
      if (!based) {  // the first loaded segment holds the ELF header
        base = reinterpret_cast<std::uintptr_t>(__ehdr_start) - (ph.p_vaddr & ~(ph.p_align - 1));
        based = true;
      }
      if ((ph.p_flags & PF_X) != 0 && n < 4) {
        const CodeRange r{base + ph.p_vaddr, base + ph.p_vaddr + ph.p_memsz};
        g_own_code[n++] = r;
        if (n == 1 || r.low < g_own_code_hull.low) g_own_code_hull.low = r.low;
        if (r.high > g_own_code_hull.high) g_own_code_hull.high = r.high;
      }
    }
    g_own_code_count = n;
  }
  atomics::store_release(&g_own_code_state, 1u);
}

bool is_own_code(std::uintptr_t address) {
  if (atomics::load_acquire(&g_own_code_state) == 0) find_own_code();
  // The client's frames, all but the first few of a walk, fall outside the hull: one test.
  if (address - g_own_code_hull.low >= g_own_code_hull.high - g_own_code_hull.low) return false;
  for (unsigned i = 0; i < g_own_code_count; ++i) {
    if (address >= g_own_code[i].low && address < g_own_code[i].high) return true;
  }
  return false;
}

// ---- the tables of samples and stacks ----

// A sample is a slot of two words, its block's key and its size with the index of its stack;
// each distinct stack is kept once, in a table that only grows. So the samples' table is
// small (512 KiB, touched a page at a time as samples land in it: a page fault each, once),
// and the stacks, which few call sites share out among many samples, take a page each
// only when they are new.

// A key (of a sample's slot) or a hash (of a stack's): empty, claimed by a writer, a sample
// gone (a tombstone: a search goes on past it), or the value itself (a sampled block's
// payload is 16-byte aligned, and a stack's hash is made at least 3).
constexpr std::uintptr_t kEmpty = 0;
constexpr std::uintptr_t kBusy = 1;
constexpr std::uintptr_t kGone = 2;

// A sample's size and stack in one word, so that a slot is written and read whole.
constexpr unsigned kStackBits = 16;
constexpr std::uint64_t kStackMask = (std::uint64_t{1} << kStackBits) - 1;

struct Slot {
  std::uintptr_t key;
  std::uint64_t bytes_stack;  // bytes << kStackBits | the stack's index
};

struct Stack {
  std::uintptr_t hash;
  std::uint32_t depth;
  std::uintptr_t frames[kProfileMaxDepth];
};

// Slots and stacks, and how far from its hash a key may lie: a sample that finds no free
// slot in its window (or whose new stack finds none) is not kept, so every search is
// bounded.
using heap_profile_detail::kBuckets;
using heap_profile_detail::kSlots;
constexpr std::size_t kStacks = std::size_t{1} << 14;
static_assert(kStacks <= kStackMask + 1);
constexpr std::size_t kWindow = 32;
// How many live samples' keys fall in each of kBuckets buckets, first, where
// HeapProfile::may_be_sampled() reads them inline: free() of a big block that was not
// sampled (most of them) finds a zero here, in 8 KiB that stay in the cache, and skips the
// search of the slots (a cache miss, on every free of a block big enough to be a sample).
struct Tables {
  std::uint16_t live_in_bucket[kBuckets];
  Slot slots[kSlots];
  Stack stacks[kStacks];
};
static_assert(offsetof(Tables, live_in_bucket) == 0, "may_be_sampled() reads them at g_tables");

Tables* tables() {
  return static_cast<Tables*>(atomics::load_acquire(&heap_profile_detail::g_tables));
}

// The tables, mapped on the first sample (the loser of a race unmaps its copy).
Tables* tables_or_create() {
  if (Tables* t = tables()) return t;
  auto* fresh = static_cast<Tables*>(platform::os_map_metadata(sizeof(Tables)));
  if (fresh == nullptr) return nullptr;
  void* expected = nullptr;
  if (!atomics::cas_acq_rel(&heap_profile_detail::g_tables, expected, static_cast<void*>(fresh))) {
    platform::os_unmap_metadata(fresh, sizeof(Tables));
    return tables();
  }
  return fresh;
}

std::uintptr_t key_of(const void* payload) { return reinterpret_cast<std::uintptr_t>(payload); }

// Where a key's search starts; its bucket is derived from the same place.
using heap_profile_detail::bucket_of;
using heap_profile_detail::home_of;
using heap_profile_detail::spread;

std::uint16_t* bucket_at(Tables* t, std::size_t home) {
  return &t->live_in_bucket[bucket_of(home)];
}

// The slot that holds key, or nullptr. An empty slot ends the search: slots are claimed in
// window order and never become empty again. Its callers asked may_be_sampled() first.
Slot* find(Tables* t, std::uintptr_t key) {
  const std::size_t home = home_of(key);
  for (std::size_t i = 0; i < kWindow; ++i) {
    Slot& s = t->slots[(home + i) & (kSlots - 1)];
    const std::uintptr_t k = atomics::load_acquire(&s.key);
    if (k == key) return &s;
    if (k == kEmpty) return nullptr;
  }
  return nullptr;
}

bool insert(Tables* t, std::uintptr_t key, std::uint64_t bytes_stack) {
  const std::size_t home = home_of(key);
  for (std::size_t i = 0; i < kWindow; ++i) {
    Slot& s = t->slots[(home + i) & (kSlots - 1)];
    std::uintptr_t k = atomics::load_relaxed(&s.key);
    if ((k == kEmpty || k == kGone) && atomics::cas_acquire(&s.key, k, kBusy)) {
      atomics::fetch_add_relaxed(bucket_at(t, home), std::uint16_t{1});
      atomics::store_relaxed(&s.bytes_stack, bytes_stack);
      atomics::store_release(&s.key, key);
      return true;
    }
  }
  return false;
}

// The sample of key in slot s goes (unless another thread took it first).
void drop(Tables* t, Slot* s, std::uintptr_t key) {
  std::uintptr_t expected = key;
  if (atomics::cas_release(&s->key, expected, kGone)) {
    atomics::fetch_sub_relaxed(bucket_at(t, home_of(key)), std::uint16_t{1});
  }
}

// The stack's hash as the stacks' table keeps it: never one of the marks above.
std::uintptr_t hash_of(const ProfileStack& stack) {
  const std::uintptr_t h = stack.hash ^ stack.depth;
  return h > kGone ? h : h + 3;
}

// Compared inline: a few frames, for which memcmp's call and dispatch cost more.
bool same_frames(const Stack& s, const ProfileStack& stack) {
  if (s.depth != stack.depth) return false;
  for (std::uint32_t d = 0; d < stack.depth; ++d) {
    if (s.frames[d] != stack.frames[d]) return false;
  }
  return true;
}

// The index of `stack` in the stacks' table, added if it is new; kStacks if the table has
// no room for it. A stack that another thread (or an interrupted one) is still writing is
// passed over: the same stack may then be kept twice, and the dump adds them up.
std::size_t stack_index(Tables* t, const ProfileStack& stack) {
  const std::uintptr_t hash = hash_of(stack);
  const std::size_t home = spread(hash, kStacks);
  for (std::size_t i = 0; i < kWindow; ++i) {
    const std::size_t at = (home + i) & (kStacks - 1);
    Stack& s = t->stacks[at];
    std::uintptr_t h = atomics::load_acquire(&s.hash);
    if (h == kEmpty && atomics::cas_acquire(&s.hash, h, kBusy)) {
      s.depth = stack.depth;
      std::memcpy(s.frames, stack.frames, stack.depth * sizeof(stack.frames[0]));
      atomics::store_release(&s.hash, hash);
      return at;
    }
    if (h == hash && same_frames(s, stack)) return at;
  }
  return kStacks;
}

// ---- output ----

// Buffered writes to a descriptor, without allocation.
class Output {
 public:
  explicit Output(int fd) : fd_(fd) {}
  ~Output() { flush(); }
  Output& text(const char* s) {
    while (*s != '\0') put(*s++);
    return *this;
  }
  Output& decimal(std::uint64_t v, unsigned width = 0) {
    char digits[24];
    decimal_text(v, digits);
    for (std::size_t n = std::strlen(digits); width > n; --width) put(' ');
    return text(digits);
  }
  Output& hex(std::uintptr_t v) {
    text("0x");
    for (int shift = 60; shift >= 0; shift -= 4) put("0123456789abcdef"[(v >> shift) & 15]);
    return *this;
  }
  void bytes(const char* data, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) put(data[i]);
  }
  bool ok() const { return ok_; }
  void flush() {
    if (used_ != 0 && !platform::os_write_all(fd_, buffer_, used_)) ok_ = false;
    used_ = 0;
  }

 private:
  void put(char c) {
    if (used_ == sizeof(buffer_)) flush();
    buffer_[used_++] = c;
  }
  int fd_;
  bool ok_ = true;
  std::size_t used_ = 0;
  char buffer_[4096];
};

// One stack's in-use figures, scaled up from its samples.
struct Totals {
  double objects;
  double bytes;
};

// The figures one sample of `bytes` stands for: 1 / (1 - e^(-bytes/mean)) allocations of
// its size (the chance that one was sampled), as tcmalloc's profiles count.
Totals scaled(std::uint64_t bytes, double mean) {
  const double size = static_cast<double>(bytes != 0 ? bytes : 1);
  const double p = mean > 0 ? one_minus_exp_minus(size / mean) : 1.0;
  const double objects = p > 0 ? 1.0 / p : 1.0;
  return Totals{objects, objects * size};
}

void add(Totals* totals, const Totals& more) {
  totals->objects += more.objects;
  totals->bytes += more.bytes;
}

void write_line(Output& out, double objects, double bytes) {
  const auto n = static_cast<std::uint64_t>(objects + 0.5);
  const auto b = static_cast<std::uint64_t>(bytes + 0.5);
  out.decimal(n, 6).text(": ").decimal(b, 8).text(" [").decimal(n, 6).text(": ");
  out.decimal(b, 8).text("] @");
}

// The process's memory map, so that pprof resolves addresses to its objects.
void write_memory_map(Output& out) {
  out.text("\nMAPPED_LIBRARIES:\n");
  const int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  char chunk[4096];
  for (;;) {
    const ssize_t n = read(fd, chunk, sizeof(chunk));
    if (n <= 0) break;
    out.bytes(chunk, static_cast<std::size_t>(n));
  }
  close(fd);
}

// Writes the profile to fd: the header with the totals, a line per stack, the memory map.
// The samples are added up per stack in scratch metadata; a sample freed during the dump may
// still show in it.
bool write_profile(int fd) {
  Output out(fd);
  const double mean = static_cast<double>(HeapProfile::sample_bytes());
  Tables* t = tables();
  Totals* per_stack = nullptr;
  constexpr std::size_t kScratchBytes = kStacks * sizeof(Totals);
  Totals all{0, 0};
  if (t != nullptr) {
    per_stack = static_cast<Totals*>(platform::os_map_metadata(kScratchBytes));
    if (per_stack == nullptr) return false;
    for (const Slot& s : t->slots) {
      if (atomics::load_acquire(&s.key) <= kGone) continue;
      const std::uint64_t bytes_stack = atomics::load_relaxed(&s.bytes_stack);
      const Totals sample = scaled(bytes_stack >> kStackBits, mean);
      add(&per_stack[bytes_stack & kStackMask], sample);
      add(&all, sample);
    }
  }
  out.text("heap profile: ");
  write_line(out, all.objects, all.bytes);
  out.text(" heapprofile\n");
  for (std::size_t i = 0; per_stack != nullptr && i < kStacks; ++i) {
    if (per_stack[i].objects == 0) continue;
    const Stack& stack = t->stacks[i];
    write_line(out, per_stack[i].objects, per_stack[i].bytes);
    for (std::uint32_t d = 0; d < stack.depth; ++d) out.text(" ").hex(stack.frames[d]);
    out.text("\n");
  }
  write_memory_map(out);
  out.flush();
  if (per_stack != nullptr) platform::os_unmap_metadata(per_stack, kScratchBytes);
  return out.ok();
}

}  // namespace

std::uint64_t HeapProfile::sample_bytes() {
  return static_cast<std::uint64_t>(Settings::value(Setting::kProfileSample));
}

void HeapProfile::restart_thread_for_tests() {
  bytes_until_sample_ = 0;
  t_draw_scale = 0;
}

bool HeapProfile::take(std::size_t) {
  if (const double scale = t_draw_scale; scale != 0) [[likely]] {
    bytes_until_sample_ = exponential(scale);
    return true;
  }
  return start_thread();
}

bool HeapProfile::start_thread() {
  const std::uint64_t mean = sample_bytes();
  if (mean == 0) {
    bytes_until_sample_ = kNever;
    return false;
  }
  if (!Settings::started()) {
    // Before the process malloc's start-up (the dynamic loader's and libc's blocks) nothing
    // is sampled: a sample then would settle what start-up settles (signal_safe's mmap).
    bytes_until_sample_ = 0;
    return false;
  }
  // The thread's first count: drawn now, as if it had started at 0.
  const double scale = draw_scale_of(mean);
  t_draw_scale = scale;
  t_random = platform::os_random_word() ^ reinterpret_cast<std::uintptr_t>(&t_random);
  if (t_random == 0) t_random = 1;
  bytes_until_sample_ += exponential(scale);
  if (bytes_until_sample_ >= 0) return false;
  bytes_until_sample_ = exponential(scale);
  return true;
}

namespace {

// One step of the walk, from the frame at *fp to its caller's: false where the walk ends
// there (the next frame pointer does not point above this frame, within kMaxFrameBytes, or
// to memory known to be readable).
[[gnu::always_inline]] inline bool step_out(std::uintptr_t* fp, Known* known) {
  const std::uintptr_t next = *reinterpret_cast<const std::uintptr_t*>(*fp);
  if (next - *fp - 1 >= kMaxFrameBytes || next % sizeof(std::uintptr_t) != 0) return false;
  *fp = next;
  if (next + kFrameBytes <= known->high) [[likely]]
    return true;
  known->high = know_callers_frame(next, *known);
  return known->high != 0;
}

// The return address in the (readable) frame at fp.
std::uintptr_t return_address_in(std::uintptr_t fp) {
  return reinterpret_cast<const std::uintptr_t*>(fp)[1];
}

}  // namespace

// The walk keeps the known part's bounds in registers: a signal handler's walk on this thread
// may change the thread's copy meanwhile (to another stack's), but what this walk knew to be
// readable stays so. A frame pointer only grows along the walk (each caller's frame lies
// above), so the frames past the first are tested against the known part's end alone, and
// within kMaxFrameBytes of the last one their end cannot wrap.
void HeapProfile::capture(const void* frame, ProfileStack* stack) {
  stack->depth = 0;
  stack->hash = 0;
  auto fp = reinterpret_cast<std::uintptr_t>(frame);
  if (fp % sizeof(std::uintptr_t) != 0) return;
  Known known = known_part();
  if (fp < known.low || fp + kFrameBytes > known.high) {
    known = know_own_frame(fp, known);
    if (known.high == 0) return;
  }
  // The allocator's own frames above the client's (in the preloaded library): dropped.
  std::uintptr_t ret = return_address_in(fp);
  for (unsigned own_frames = 1; ret != 0 && is_own_code(ret); ++own_frames) {
    if (own_frames == kProfileMaxDepth || !step_out(&fp, &known)) return;
    ret = return_address_in(fp);
  }
  // The client's, to the end of the chain or kProfileMaxDepth.
  unsigned depth = 0;
  std::uintptr_t hash = 0;
  while (ret != 0) {
    stack->frames[depth++] = ret;
    hash = ProfileStack::fold(hash, ret);
    if (depth == kProfileMaxDepth || !step_out(&fp, &known)) break;
    ret = return_address_in(fp);
  }
  stack->depth = depth;
  stack->hash = hash;
}

bool HeapProfile::record(const void* payload, std::size_t bytes, const ProfileStack& stack) {
  Tables* t = tables_or_create();
  if (t == nullptr) return false;
  const std::size_t index = stack_index(t, stack);
  return index < kStacks && insert(t, key_of(payload), bytes << kStackBits | index);
}

void HeapProfile::forget_sampled(const void* payload) {
  const std::uintptr_t key = key_of(payload);
  Tables* t = tables();
  if (Slot* s = find(t, key)) drop(t, s, key);
}

std::size_t HeapProfile::bytes_of_sampled(const void* payload) {
  const Slot* s = find(tables(), key_of(payload));
  return s != nullptr ? atomics::load_relaxed(&s->bytes_stack) >> kStackBits : 0;
}

void HeapProfile::move_sampled(const void* from, const void* to, std::size_t bytes) {
  const std::uintptr_t key = key_of(from);
  Tables* t = tables();
  Slot* s = find(t, key);
  if (s == nullptr) return;
  const std::uint64_t moved = bytes << kStackBits | (s->bytes_stack & kStackMask);
  if (to != nullptr && key_of(to) == key) {
    atomics::store_relaxed(&s->bytes_stack, moved);
    return;
  }
  if (to != nullptr) insert(t, key_of(to), moved);
  drop(t, s, key);
}

void HeapProfile::unsupported(const char* why) {
  static constinit std::uint32_t said = 0;
  bytes_until_sample_ = kNever;
  if (atomics::fetch_add_relaxed(&said, 1u) != 0) return;
  LineWriter()
      .text("polymalloc: POLYMALLOC_PROFILE_SAMPLE is set, but ")
      .text(why)
      .text(": no heap profile\n")
      .write_to(STDERR_FILENO);
}

int HeapProfile::dump(const char* path) {
  if (path == nullptr || path[0] == '\0') {
    errno = EINVAL;
    return -1;
  }
  if (sample_bytes() == 0) {
    errno = ENOTSUP;
    return -1;
  }
  const int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return -1;
  const bool written = write_profile(fd);
  const int saved = errno;
  close(fd);
  if (written) return 0;
  errno = saved != 0 ? saved : EIO;
  return -1;
}

void HeapProfile::dump_at_exit_if_requested() {
  if (sample_bytes() == 0) return;
  const char* pattern = Settings::text(Setting::kProfileFile);
  char path[4096];
  const int saved = errno;
  if (pattern == nullptr) {
    LineWriter()
        .text(
            "polymalloc: POLYMALLOC_PROFILE_SAMPLE is set without POLYMALLOC_PROFILE_FILE: no "
            "heap profile at exit (polymalloc_dump_heap_profile() writes one on demand)\n")
        .write_to(STDERR_FILENO);
  } else if (!expand_pid_pattern(pattern, path, sizeof(path)) || dump(path) != 0) {
    LineWriter()
        .text("polymalloc: POLYMALLOC_PROFILE_FILE=")
        .text(pattern)
        .text(" cannot be written; no heap profile\n")
        .write_to(STDERR_FILENO);
  }
  errno = saved;
}

}  // namespace polymalloc::allocator
