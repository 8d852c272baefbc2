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

// The sampling mean, kept by the thread once its first count is drawn (0 before): the settings
// are fixed at start-up, and a sample then reads one word rather than ask them again.
thread_local constinit std::uint64_t t_mean [[gnu::tls_model("initial-exec")]] = 0;
thread_local constinit std::uint64_t t_random [[gnu::tls_model("initial-exec")]] = 0;

// xorshift64*: the thread's own generator, seeded from the process's random word and the
// thread's address.
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

// ln(1 + i / kLogKnotsPerOctave) for i = 0 … kLogKnotsPerOctave.
constexpr unsigned kLogKnotBits = 8;
constexpr unsigned kLogKnotsPerOctave = 1u << kLogKnotBits;
constexpr std::array<double, kLogKnotsPerOctave + 1> kLogKnots = [] {
  std::array<double, kLogKnotsPerOctave + 1> knots{};
  for (unsigned i = 0; i <= kLogKnotsPerOctave; ++i) {
    knots[i] = log_of_mantissa(1.0 + static_cast<double>(i) / kLogKnotsPerOctave);
  }
  return knots;
}();
constexpr bool near(double a, double b) { return a - b < 1e-15 && b - a < 1e-15; }
static_assert(near(kLogKnots[0], 0) && near(kLogKnots[128], 0.4054651081081644) &&
              near(kLogKnots[kLogKnotsPerOctave], kLn2));

// ln(x / 2^53) for x in [1, 2^53], the log of a uniform draw from (0, 1]: x = 2^e (1 + f)
// with f in [0, 1), and ln(1 + f) interpolated between the two knots around it. Linear
// interpolation of ln over steps of 1/256 errs by at most (1/256)^2 / 8 = 2e-6, which moves
// an interval of mean R by 2e-6 R bytes (1 byte at 512 KiB), far below what sampling
// resolves. No division and no branch: a division and a branch that went either way half
// the time were most of a sample's time (perf, pair_loop at 256 KiB).
double log_of_draw(std::uint64_t x) {
  const int lead = std::countl_zero(x);
  const std::uint64_t f = x << lead << 1;  // the bits after the leading one, at the top
  const unsigned i = static_cast<unsigned>(f >> (64 - kLogKnotBits));
  const double within = static_cast<double>(f << kLogKnotBits >> 11) * 0x1.0p-53;  // [0, 1)
  const double ln_1_plus_f = kLogKnots[i] + (kLogKnots[i + 1] - kLogKnots[i]) * within;
  return (63 - lead - 53) * kLn2 + ln_1_plus_f;
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

// A draw from the exponential distribution with mean `mean`, at least 1.
std::int64_t exponential(std::uint64_t mean) {
  const double draw = -log_of_draw((next_random() >> 11) + 1) * static_cast<double>(mean);
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

// Sets the known part to [low, high). Empty while it changes: a signal handler's walk on
// this thread meanwhile starts afresh rather than trust half an update.
void set_readable(std::uintptr_t low, std::uintptr_t high) {
  t_readable_high = 0;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  t_readable_low = low;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  t_readable_high = high;
}

// Whether the two words at fp can be read. `own` says fp is the sampling function's own
// frame: where the known part starts, asked of the kernel if it lies elsewhere (another
// stack, or the thread's first walk).
bool readable_frame(std::uintptr_t fp, bool own) {
  const std::uintptr_t end = fp + 2 * sizeof(std::uintptr_t);
  const std::uintptr_t low = t_readable_low, high = t_readable_high;
  if (fp >= low && end <= high) return true;
  const std::uintptr_t page = platform::page_size();
  const std::uintptr_t fp_page = fp & ~(page - 1);
  const std::uintptr_t end_page = (end + page - 1) & ~(page - 1);
  if (own) {
    if (end < fp ||
        !platform::os_readable(reinterpret_cast<const void*>(fp_page), end_page - fp_page)) {
      return false;
    }
    const bool touching = high != 0 && end_page >= low && fp_page <= high;
    set_readable(touching ? std::min(fp_page, low) : fp_page,
                 touching ? std::max(end_page, high) : end_page);
    return true;
  }
  // A caller's frame: above the known part, within reach of it.
  if (high == 0 || fp < low || end < fp || end_page - high > kMaxGrowth) return false;
  if (!platform::os_readable(reinterpret_cast<const void*>(high), end_page - high)) return false;
  set_readable(low, end_page);
  return true;
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

void find_own_code() {
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

std::uintptr_t hash_of(const ProfileStack& stack) {
  std::uintptr_t h = stack.depth;
  for (unsigned d = 0; d < stack.depth; ++d) h = (h ^ stack.frames[d]) * 0x100000001b3u;
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
  t_mean = 0;
}

bool HeapProfile::take(std::size_t) {
  if (const std::uint64_t mean = t_mean; mean != 0) [[likely]] {
    bytes_until_sample_ = exponential(mean);
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
  t_mean = mean;
  t_random = platform::os_random_word() ^ reinterpret_cast<std::uintptr_t>(&t_random);
  if (t_random == 0) t_random = 1;
  bytes_until_sample_ += exponential(mean);
  if (bytes_until_sample_ >= 0) return false;
  bytes_until_sample_ = exponential(mean);
  return true;
}

void HeapProfile::capture(const void* frame, ProfileStack* stack) {
  stack->depth = 0;
  auto fp = reinterpret_cast<std::uintptr_t>(frame);
  bool in_own_code = true;
  // Each frame: the caller's frame pointer, then the return address into the caller.
  for (unsigned steps = 0; steps < 2 * kProfileMaxDepth && stack->depth < kProfileMaxDepth;
       ++steps) {
    if (fp % sizeof(std::uintptr_t) != 0 || !readable_frame(fp, steps == 0)) break;
    const auto* words = reinterpret_cast<const std::uintptr_t*>(fp);
    const std::uintptr_t next = words[0];
    const std::uintptr_t ret = words[1];
    if (ret == 0) break;
    if (in_own_code && is_own_code(ret)) {
      // the allocator's own frame, above the client's: not part of the client's stack
    } else {
      in_own_code = false;
      stack->frames[stack->depth++] = ret;
    }
    if (next <= fp || next - fp > kMaxFrameBytes) break;
    fp = next;
  }
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
