// Multi-threaded workloads against the process's malloc, whichever it is: glibc's, or a
// peer's or a polymalloc variant's put there by LD_PRELOAD (benchmarks/compare runs this
// binary once per allocator and workload and tabulates the results). Thread counts are 1, 2
// and twice the CPU count, so the same binary scales to a bigger machine.
//
//   pairs              every thread mallocs and frees blocks of mixed small sizes
//   producer_consumer  threads in pairs: one allocates and hands each block over a ring,
//                      the other frees it (every free is a cross-thread free)
//   larson             every thread replaces random blocks in its own slot array, and
//                      trades arrays with the other threads now and then (larson-style)
//
// Counters: peak_live_bytes (what the workload held at most), peak_rss_bytes (the process's
// peak resident memory) and rss_growth_bytes (peak RSS beyond the RSS before the first
// benchmark); the ratio of growth to live bytes is the memory overhead the runners report.
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "testing/process_memory.h"
#include "testing/random.h"

namespace polymalloc::benchmarks {
namespace {

// Sizes the workloads draw from: small, as most allocations in real programs are.
constexpr std::size_t kSizes[] = {16, 24, 32, 48, 64, 80, 96, 128, 160, 256, 384, 512};
constexpr std::size_t kSizeCount = sizeof(kSizes) / sizeof(kSizes[0]);

using testing::Random;

const std::size_t g_rss_at_start = testing::resident_bytes();

// The workload's live bytes, summed over threads; peak kept.
class LiveBytes {
 public:
  void add(std::ptrdiff_t bytes) {
    const std::ptrdiff_t now = live_.fetch_add(bytes, std::memory_order_relaxed) + bytes;
    std::ptrdiff_t peak = peak_.load(std::memory_order_relaxed);
    while (now > peak && !peak_.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
    }
  }
  std::ptrdiff_t peak() const { return peak_.load(std::memory_order_relaxed); }
  void reset() {
    live_ = 0;
    peak_ = 0;
  }

 private:
  std::atomic<std::ptrdiff_t> live_{0};
  std::atomic<std::ptrdiff_t> peak_{0};
};

LiveBytes g_live;

// Thread 0 reports the memory counters after the timed loop (Google Benchmark stops all
// threads of a run together).
void report_memory(benchmark::State& state) {
  if (state.thread_index() != 0) return;
  state.counters["peak_live_bytes"] = static_cast<double>(g_live.peak());
  const std::size_t peak_rss = testing::peak_resident_bytes();
  state.counters["rss_growth_bytes"] =
      static_cast<double>(peak_rss - std::min(g_rss_at_start, peak_rss));
  state.counters["peak_rss_bytes"] = static_cast<double>(peak_rss);
}

void touch(void* p, std::size_t bytes) {
  static_cast<unsigned char*>(p)[0] = 1;
  static_cast<unsigned char*>(p)[bytes - 1] = 2;
}

// A touched block of `bytes` that records its size in its first word (every size holds one),
// so that whichever thread frees it can account for it.
void* allocate_recorded(std::size_t bytes) {
  void* p = malloc(bytes);
  touch(p, bytes);
  static_cast<std::size_t*>(p)[0] = bytes;
  return p;
}
std::size_t recorded_size(const void* p) { return static_cast<const std::size_t*>(p)[0]; }

void pairs(benchmark::State& state) {
  Random random(state.thread_index() + 1);
  std::size_t i = random.below(kSizeCount);
  for (auto _ : state) {
    const std::size_t bytes = kSizes[i];
    i = i + 1 == kSizeCount ? 0 : i + 1;
    void* p = malloc(bytes);
    touch(p, bytes);
    benchmark::DoNotOptimize(p);
    free(p);
  }
  state.SetItemsProcessed(state.iterations());
  report_memory(state);
}

// A single-producer single-consumer ring of blocks.
class Ring {
 public:
  static constexpr std::size_t kSlots = 1024;
  bool push(void* p) {
    const std::size_t head = head_.load(std::memory_order_relaxed);
    if (head - tail_.load(std::memory_order_acquire) == kSlots) return false;
    slots_[head % kSlots] = p;
    head_.store(head + 1, std::memory_order_release);
    return true;
  }
  void* pop() {
    const std::size_t tail = tail_.load(std::memory_order_relaxed);
    if (head_.load(std::memory_order_acquire) == tail) return nullptr;
    void* p = slots_[tail % kSlots];
    tail_.store(tail + 1, std::memory_order_release);
    return p;
  }

 private:
  alignas(64) std::atomic<std::size_t> head_{0};
  alignas(64) std::atomic<std::size_t> tail_{0};
  void* slots_[kSlots] = {};
};

// Waits politely: spinning threads must not starve the one they wait for when there are
// more threads than CPUs.
void back_off(unsigned& spins) {
  if (++spins > 64) {
    std::this_thread::yield();
    spins = 0;
  }
}

std::unique_ptr<Ring[]> g_rings;

// Threads 2k and 2k+1 are producer and consumer of ring k; an odd thread out does both.
void producer_consumer(benchmark::State& state) {
  const int threads = state.threads();
  const int index = state.thread_index();
  const bool alone = index == threads - 1 && threads % 2 == 1;
  const bool producer = index % 2 == 0;
  Random random(index + 1);
  for (auto _ : state) {
    Ring& ring = g_rings[static_cast<std::size_t>(index / 2)];
    if (alone || producer) {
      const std::size_t bytes = kSizes[random.below(kSizeCount)];
      void* p = allocate_recorded(bytes);
      g_live.add(static_cast<std::ptrdiff_t>(bytes));
      unsigned spins = 0;
      while (!ring.push(p)) back_off(spins);
    }
    if (alone || !producer) {
      void* p;
      unsigned spins = 0;
      while ((p = ring.pop()) == nullptr) back_off(spins);
      g_live.add(-static_cast<std::ptrdiff_t>(recorded_size(p)));
      free(p);
    }
  }
  state.SetItemsProcessed(state.iterations());
  report_memory(state);
}

// Larson-style: random replacement in a per-thread slot array; every kTradeEvery operations
// a thread trades its array (and so the blocks other threads allocated) through a mailbox.
constexpr std::size_t kLarsonSlots = 4096;
constexpr std::size_t kTradeEvery = 4096;
std::atomic<void**> g_mailbox{nullptr};

// A slot array full of fresh random blocks, counted as live.
void** new_slots(Random& random) {
  void** slots = new void*[kLarsonSlots];
  std::ptrdiff_t filled = 0;
  for (std::size_t i = 0; i < kLarsonSlots; ++i) {
    const std::size_t bytes = kSizes[random.below(kSizeCount)];
    slots[i] = allocate_recorded(bytes);
    filled += static_cast<std::ptrdiff_t>(bytes);
  }
  g_live.add(filled);
  return slots;
}

void release_slots(void** slots) {
  for (std::size_t i = 0; i < kLarsonSlots; ++i) {
    g_live.add(-static_cast<std::ptrdiff_t>(recorded_size(slots[i])));
    free(slots[i]);
  }
  delete[] slots;
}

void larson(benchmark::State& state) {
  Random random(state.thread_index() + 7);
  void** slots = new_slots(random);
  std::size_t until_trade = kTradeEvery;
  for (auto _ : state) {
    void*& slot = slots[random.below(kLarsonSlots)];
    const std::size_t old_bytes = recorded_size(slot);
    free(slot);
    const std::size_t bytes = kSizes[random.below(kSizeCount)];
    slot = allocate_recorded(bytes);
    g_live.add(static_cast<std::ptrdiff_t>(bytes) - static_cast<std::ptrdiff_t>(old_bytes));
    if (--until_trade == 0) {
      until_trade = kTradeEvery;
      slots = g_mailbox.exchange(slots, std::memory_order_acq_rel);
      if (slots == nullptr) slots = new_slots(random);  // the mailbox was empty
    }
  }
  state.SetItemsProcessed(state.iterations());
  report_memory(state);
  release_slots(slots);  // outside the timing
}

// Run once before and after each run (all threads), outside the timing.
void set_up(const benchmark::State& state) {
  g_live.reset();
  g_rings.reset(new Ring[static_cast<std::size_t>(state.threads() / 2 + 1)]);
}
void tear_down(const benchmark::State&) {
  g_rings.reset();
  if (void** left = g_mailbox.exchange(nullptr, std::memory_order_acq_rel)) release_slots(left);
}

void register_all() {
  const int cpus = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::vector<int> thread_counts = {1, 2, 2 * cpus};
  std::sort(thread_counts.begin(), thread_counts.end());
  thread_counts.erase(std::unique(thread_counts.begin(), thread_counts.end()), thread_counts.end());
  for (int threads : thread_counts) {
    for (auto* b : {benchmark::RegisterBenchmark("pairs", pairs),
                    benchmark::RegisterBenchmark("producer_consumer", producer_consumer),
                    benchmark::RegisterBenchmark("larson", larson)}) {
      b->Threads(threads)->UseRealTime()->Setup(set_up)->Teardown(tear_down);
    }
  }
}

}  // namespace
}  // namespace polymalloc::benchmarks

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  polymalloc::benchmarks::register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
