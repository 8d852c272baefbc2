// soak: a mixed multi-threaded workload against the process's malloc (a variant put there by
// LD_PRELOAD; testing/soak.sh runs each one) for a set time, checking as it goes and at the
// end. Threads replace random blocks in their own slot arrays (power-law sizes from 1 byte to
// 1 MiB, by malloc, calloc, realloc and posix_memalign), hand every 64th block to another
// thread to free, and check each block's tag bytes before freeing it. Once a second it
// samples the resident memory. Then the idle phase: with every block freed, the process
// sleeps --idle-seconds (longer than the default release delay, POLYMALLOC_RELEASE_DELAY_MS),
// makes one more malloc and free of 1 MiB (a slow path in every allocator, whose tick gives
// memory back: fast paths read no clock), and reports the RSS
// after the release beside the RSS right after the workload.
//
//   soak [--seconds N] [--threads N] [--slots N] [--idle-seconds N]
//
// Fails (exit 1, with the reason) if a block's bytes changed, an allocation was refused, the
// peak RSS exceeds 2 × the most the workload held + 32 MiB, the RSS over the last quarter
// of the run grew past the RSS of the first quarter by more than a quarter + 16 MiB (a leak),
// or the variant's heap check (polymalloc_check_heap, when the malloc has one) fails.
#include <dlfcn.h>
#include <malloc.h>
#include <stdlib.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "testing/process_memory.h"
#include "testing/random.h"

namespace polymalloc::testing {
namespace {

struct Options {
  int seconds = 60;
  int threads = 4;
  std::size_t slots = 500;
  int idle_seconds = 2;
};

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr,
               "soak: %s\nusage: soak [--seconds N] [--threads N] [--slots N] "
               "[--idle-seconds N]\n",
               message.c_str());
  std::exit(2);
}

long parse_number(const std::string& flag, const char* text, long least, long most) {
  char* end = nullptr;
  errno = 0;
  const long value = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || errno != 0 || value < least || value > most) {
    usage_error(flag + " wants a whole number from " + std::to_string(least) + " to " +
                std::to_string(most) + ", not '" + text + "'");
  }
  return value;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag != "--seconds" && flag != "--threads" && flag != "--slots" &&
        flag != "--idle-seconds") {
      usage_error("unknown argument '" + flag + "'");
    }
    if (i + 1 >= argc) usage_error(flag + " needs a value");
    if (flag == "--idle-seconds") {
      o.idle_seconds = static_cast<int>(parse_number(flag, argv[++i], 0, 3600));
      continue;
    }
    const long value = parse_number(flag, argv[++i], 1, 1000000);
    if (flag == "--seconds") o.seconds = static_cast<int>(value);
    if (flag == "--threads") o.threads = static_cast<int>(value);
    if (flag == "--slots") o.slots = static_cast<std::size_t>(value);
  }
  return o;
}

std::atomic<bool> g_failed{false};
std::atomic<bool> g_stop{false};

// Bytes the workload holds now, and at most so far.
std::atomic<std::int64_t> g_live{0};
std::atomic<std::int64_t> g_peak_live{0};

void account(std::int64_t delta) {
  const std::int64_t now = g_live.fetch_add(delta, std::memory_order_relaxed) + delta;
  std::int64_t peak = g_peak_live.load(std::memory_order_relaxed);
  while (now > peak && !g_peak_live.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}

void fail(const char* what, const void* p, std::size_t bytes) {
  if (!g_failed.exchange(true)) {
    std::fprintf(stderr, "soak: %s (block %p, %zu bytes)\n", what, p, bytes);
  }
  g_stop = true;
}

// Power-law sizes: most blocks small, some up to 1 MiB.
std::size_t random_size(Random& random) {
  const unsigned shift = static_cast<unsigned>(random.next() % 21);  // 1 B .. 1 MiB
  return 1 + static_cast<std::size_t>(random.next() % (std::size_t{1} << shift));
}

// A block records its size in its first word (if it has more than one) and a tag derived
// from the size in its last byte.
struct Block {
  unsigned char* p = nullptr;
  std::size_t bytes = 0;
};

void tag(const Block& b) {
  if (b.bytes > sizeof(b.bytes)) std::memcpy(b.p, &b.bytes, sizeof(b.bytes));
  b.p[b.bytes - 1] = static_cast<unsigned char>(b.bytes * 7);
}

bool tag_intact(const Block& b) {
  if (b.bytes > sizeof(b.bytes)) {
    std::size_t head = 0;
    std::memcpy(&head, b.p, sizeof(head));
    if (head != b.bytes) return false;
  }
  return b.p[b.bytes - 1] == static_cast<unsigned char>(b.bytes * 7);
}

void release(const Block& b) {
  if (b.p == nullptr) return;
  if (!tag_intact(b)) fail("a block's bytes changed before free", b.p, b.bytes);
  account(-static_cast<std::int64_t>(b.bytes));
  free(b.p);
}

Block allocate(Random& random) {
  Block b;
  b.bytes = random_size(random);
  void* p = nullptr;
  switch (random.next() % 8) {
    case 0:
      p = calloc(1, b.bytes);
      if (p != nullptr && static_cast<unsigned char*>(p)[b.bytes / 2] != 0) {
        fail("calloc's block is not zero", p, b.bytes);
      }
      break;
    case 1:
      if (posix_memalign(&p, std::size_t{64} << (random.next() % 7), b.bytes) != 0) p = nullptr;
      break;
    default:
      p = malloc(b.bytes);
  }
  if (p == nullptr) fail("an allocation was refused", nullptr, b.bytes);
  b.p = static_cast<unsigned char*>(p);
  if (p == nullptr) return Block{};
  account(static_cast<std::int64_t>(b.bytes));
  tag(b);
  return b;
}

// A mailbox per thread: another thread's blocks, to free (cross-thread frees).
struct Mailbox {
  std::atomic<unsigned char*> p{nullptr};
  std::atomic<std::size_t> bytes{0};
  std::atomic_flag busy = ATOMIC_FLAG_INIT;
};

void worker(int index, const Options& o, std::vector<Mailbox>& mailboxes,
            std::atomic<std::uint64_t>& operations) {
  Random random(static_cast<std::uint64_t>(index) + 11);
  std::vector<Block> slots(o.slots);
  std::uint64_t done = 0;
  while (!g_stop.load(std::memory_order_relaxed)) {
    Block& slot = slots[random.next() % slots.size()];
    if (slot.p != nullptr && random.next() % 4 == 0) {  // realloc keeps the head
      if (!tag_intact(slot)) fail("a block's bytes changed before realloc", slot.p, slot.bytes);
      const std::size_t bytes = random_size(random);
      void* q = realloc(slot.p, bytes);
      if (q == nullptr) {
        fail("a realloc was refused", slot.p, bytes);
        break;
      }
      account(static_cast<std::int64_t>(bytes) - static_cast<std::int64_t>(slot.bytes));
      slot = Block{static_cast<unsigned char*>(q), bytes};
      tag(slot);
    } else if (++done % 64 == 0 && slot.p != nullptr) {  // hand it to the next thread
      Mailbox& box = mailboxes[static_cast<std::size_t>(index + 1) % mailboxes.size()];
      if (!box.busy.test_and_set(std::memory_order_acquire)) {
        release(Block{box.p.load(), box.bytes.load()});
        box.p = slot.p;
        box.bytes = slot.bytes;
        box.busy.clear(std::memory_order_release);
        slot = allocate(random);
      }
    } else {
      release(slot);
      slot = allocate(random);
    }
    operations.fetch_add(1, std::memory_order_relaxed);
  }
  for (const Block& b : slots) release(b);
}

using CheckHeap = const char* (*)(const void**);

// Everything is freed: the RSS now, and after the process sat idle and made one more call.
void idle(const Options& o) {
  const std::uint64_t after_workload = resident_bytes();
  std::this_thread::sleep_for(std::chrono::seconds(o.idle_seconds));
  void* volatile p = malloc(std::size_t{1} << 20);  // a slow path in every allocator
  free(p);
  const std::uint64_t after_idle = resident_bytes();
  std::printf(
      "soak: idle: RSS %.1f MiB with everything freed, %.1f MiB after %d s idle and "
      "one 1 MiB malloc/free\n",
      after_workload / 1048576.0, after_idle / 1048576.0, o.idle_seconds);
}

int run(const Options& o) {
  std::vector<Mailbox> mailboxes(static_cast<std::size_t>(o.threads));
  std::atomic<std::uint64_t> operations{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < o.threads; ++t) {
    threads.emplace_back(worker, t, std::cref(o), std::ref(mailboxes), std::ref(operations));
  }
  std::vector<std::uint64_t> rss;  // one sample a second
  for (int s = 0; s < o.seconds && !g_stop; ++s) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    rss.push_back(resident_bytes());
  }
  g_stop = true;
  for (auto& t : threads) t.join();
  for (Mailbox& box : mailboxes) release(Block{box.p.load(), box.bytes.load()});

  const auto peak_live = static_cast<std::uint64_t>(g_peak_live.load());
  const std::uint64_t peak = peak_resident_bytes();
  const std::size_t quarter = rss.size() / 4;
  std::uint64_t early = 0, late = 0;
  for (std::size_t i = 0; i < rss.size(); ++i) {
    if (i < quarter + 1 && rss[i] > early) early = rss[i];
    if (i >= rss.size() - quarter - 1 && rss[i] > late) late = rss[i];
  }
  std::printf(
      "soak: %llu operations in %zu s on %d threads; peak live %.1f MiB; RSS first "
      "quarter %.1f MiB, last quarter %.1f MiB, peak %.1f MiB\n",
      static_cast<unsigned long long>(operations.load()), rss.size(), o.threads,
      peak_live / 1048576.0, early / 1048576.0, late / 1048576.0, peak / 1048576.0);
  // (Reached on 4 threads in 20 s: 1.54 x the peak live bytes on global_spinlock, 1.34 on
  // partitioned, 1.63 on signal_safe. Before the heaps stopped caching and parking blocks
  // beside free memory, the bound was 3 x + 64 MiB, and the same run broke it: 4.9 x and
  // 8.7 x, still growing.)
  if (peak > 2 * peak_live + (std::uint64_t{32} << 20)) {
    fail("peak RSS beyond 2 x the peak live bytes + 32 MiB", nullptr, peak);
  }
  if (late > early + early / 4 + (std::uint64_t{16} << 20)) {
    fail("RSS kept growing: the last quarter is over the first by more than 25% + 16 MiB", nullptr,
         late);
  }
  auto check_heap = reinterpret_cast<CheckHeap>(dlsym(RTLD_DEFAULT, "polymalloc_check_heap"));
  if (check_heap == nullptr) {
    std::printf("soak: this malloc has no polymalloc_check_heap; the heap was not checked\n");
  } else {
    const void* where = nullptr;
    if (const char* problem = check_heap(&where)) fail(problem, where, 0);
  }
  idle(o);
  if (g_failed) return 1;
  std::printf("soak: passed\n");
  return 0;
}

}  // namespace
}  // namespace polymalloc::testing

int main(int argc, char** argv) {
  return polymalloc::testing::run(polymalloc::testing::parse(argc, argv));
}
