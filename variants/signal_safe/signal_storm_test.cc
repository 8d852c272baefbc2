// Proof of async-signal safety under fire: worker threads allocate, fill, check and free
// while a high-rate interval timer and pthread_kill deliver signals whose handlers allocate,
// write, check and free too, and may interrupt each other (SA_NODEFER, nothing masked). It
// must end with no byte corrupted, nothing lost (in-use bytes back where they started), a
// consistent heap, and within a time bound that a deadlock would break.
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <sys/time.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "variants/signal_safe/prefixed_api.h"

namespace polymalloc::variants {
namespace {

const allocator::ApiTable& api = signal_safe_api;

std::atomic<std::uint64_t> handler_runs{0};
std::atomic<std::uint64_t> nested_runs{0};
std::atomic<std::uint64_t> corruptions{0};
std::atomic<std::uint64_t> failed_allocations{0};

// Per-thread state a handler may use: plain thread-locals (initial-exec, no allocation).
thread_local std::uint64_t rng_state = 0x9e3779b97f4a7c15u;
thread_local int handler_depth = 0;

std::uint64_t next_random() {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

unsigned char pattern(std::uint64_t seed, std::size_t i) {
  return static_cast<unsigned char>(seed * 31 + i * 7);
}
void fill(void* p, std::size_t n, std::uint64_t seed) {
  auto* bytes = static_cast<unsigned char*>(p);
  for (std::size_t i = 0; i < n; ++i) bytes[i] = pattern(seed, i);
}
bool intact(const void* p, std::size_t n, std::uint64_t seed) {
  const auto* bytes = static_cast<const unsigned char*>(p);
  for (std::size_t i = 0; i < n; ++i) {
    if (bytes[i] != pattern(seed, i)) return false;
  }
  return true;
}

// Every signal runs this: a few blocks of assorted sizes, written, checked, freed.
void allocate_in_handler(int) {
  const int saved_errno = errno;
  if (++handler_depth > 1) nested_runs.fetch_add(1, std::memory_order_relaxed);
  if (handler_depth <= 8) {  // bounds the stack if signals outrun handlers
    void* blocks[4];
    std::size_t sizes[4];
    const int n = 1 + static_cast<int>(next_random() % 4);
    for (int k = 0; k < n; ++k) {
      sizes[k] = 1 + next_random() % (next_random() % 8 == 0 ? 20000 : 300);
      blocks[k] = api.malloc(sizes[k]);
      if (blocks[k] == nullptr) {
        failed_allocations.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      fill(blocks[k], sizes[k], sizes[k] + k);
    }
    for (int k = n; k-- > 0;) {
      if (blocks[k] == nullptr) continue;
      if (!intact(blocks[k], sizes[k], sizes[k] + k)) {
        corruptions.fetch_add(1, std::memory_order_relaxed);
      }
      api.free(blocks[k]);
    }
    handler_runs.fetch_add(1, std::memory_order_relaxed);
  }
  --handler_depth;
  errno = saved_errno;
}

sigset_t storm_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  sigaddset(&set, SIGUSR2);
  sigaddset(&set, SIGALRM);
  return set;
}

void install(int signal) {
  struct sigaction action = {};
  action.sa_handler = &allocate_in_handler;
  action.sa_flags = SA_RESTART | SA_NODEFER;  // handlers interrupt each other, and themselves
  sigemptyset(&action.sa_mask);
  ASSERT_EQ(sigaction(signal, &action, nullptr), 0);
}

// Random replacement in a table of live blocks, each checked before it is freed.
void work(std::atomic<bool>& stop, unsigned seed) {
  rng_state ^= seed * 0x2545f4914f6cdd1du;
  struct Live {
    void* p = nullptr;
    std::size_t n = 0;
    std::uint64_t seed = 0;
  };
  std::vector<Live> table(256);
  std::uint64_t serial = seed;
  while (!stop.load(std::memory_order_relaxed)) {
    Live& slot = table[next_random() % table.size()];
    if (slot.p != nullptr) {
      if (!intact(slot.p, slot.n, slot.seed)) corruptions.fetch_add(1);
      api.free(slot.p);
    }
    slot.n = 1 + next_random() % (next_random() % 16 == 0 ? 70000 : 1000);
    slot.seed = ++serial;
    slot.p = api.malloc(slot.n);
    if (slot.p == nullptr) {
      failed_allocations.fetch_add(1);
      continue;
    }
    fill(slot.p, slot.n, slot.seed);
  }
  for (Live& slot : table) {
    if (slot.p == nullptr) continue;
    if (!intact(slot.p, slot.n, slot.seed)) corruptions.fetch_add(1);
    api.free(slot.p);
  }
}

TEST(SignalStormTest, HandlersThatAllocateInterruptingMallocLoseAndCorruptNothing) {
  install(SIGUSR1);
  install(SIGUSR2);
  install(SIGALRM);
  const std::size_t in_use_before = api.mallinfo2().uordblks;

  std::atomic<bool> stop{false};
  std::atomic<int> finished{0};
  constexpr int kWorkers = 3;
  std::vector<std::thread> workers;
  // Only the workers take the signals: this thread must stay free to notice a deadlock.
  const sigset_t signals = storm_signals();
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &signals, nullptr), 0);
  for (int t = 0; t < kWorkers; ++t) {
    workers.emplace_back([&, t] {
      pthread_sigmask(SIG_UNBLOCK, &signals, nullptr);
      work(stop, 17 + t);
      pthread_sigmask(SIG_BLOCK, &signals, nullptr);
      finished.fetch_add(1);
    });
  }
  std::vector<pthread_t> targets;
  for (auto& w : workers) targets.push_back(w.native_handle());

  // The interval timer fires every 200 µs at the process (any thread); this thread adds
  // directed signals, as fast as it can send them, for the storm's duration.
  struct itimerval timer = {{0, 200}, {0, 200}};
  ASSERT_EQ(setitimer(ITIMER_REAL, &timer, nullptr), 0);
  const auto start = std::chrono::steady_clock::now();
  const auto storm_end = start + std::chrono::milliseconds(1500);
  std::uint64_t sent = 0;
  while (std::chrono::steady_clock::now() < storm_end) {
    const pthread_t target = targets[next_random() % targets.size()];
    pthread_kill(target, next_random() % 2 == 0 ? SIGUSR1 : SIGUSR2);
    ++sent;
    if (sent % 64 == 0) std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  stop = true;

  // A deadlock (a handler waiting for what the code it interrupted holds) would keep a
  // worker from ever finishing: give them a generous bound, then fail without joining.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (finished.load() < kWorkers && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  struct itimerval off = {};
  setitimer(ITIMER_REAL, &off, nullptr);
  if (finished.load() < kWorkers) {
    std::fprintf(stderr, "signal storm: %d of %d workers still running after 60 s: deadlock\n",
                 kWorkers - finished.load(), kWorkers);
    std::abort();
  }
  for (auto& w : workers) w.join();

  EXPECT_EQ(corruptions.load(), 0u);
  EXPECT_EQ(failed_allocations.load(), 0u);
  EXPECT_GT(handler_runs.load(), 1000u) << "the storm hardly happened";
  std::printf("%llu signals sent, %llu handler runs (%llu nested)\n",
              static_cast<unsigned long long>(sent),
              static_cast<unsigned long long>(handler_runs.load()),
              static_cast<unsigned long long>(nested_runs.load()));
  EXPECT_EQ(api.mallinfo2().uordblks, in_use_before) << "blocks were lost";
  const void* where = nullptr;
  const char* problem = api.check_heap(&where);
  EXPECT_EQ(problem, nullptr) << problem << " at " << where;
}

}  // namespace
}  // namespace polymalloc::variants
