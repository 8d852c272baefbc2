// signal_safe against its model, libatomic_ops' AO_malloc, and against glibc and the other
// variants, in one run: malloc/free pairs at 1 and 2 threads, the same in batches of 64,
// and a cross-thread workload (one thread allocates, another frees, through a ring).
// Throughput is items per second of wall time.
//   ./bazelw run //benchmarks:signal_safe_benchmark [-- --benchmark_filter=cross]
#include <benchmark/benchmark.h>
#include <polymalloc/polymalloc.h>
#include <stdlib.h>

#include <atomic>
#include <cstddef>
#include <cstdio>
#include <string>
#include <utility>

#include "benchmarks/ao_malloc_adapter.h"
#include "variants/all_variants.h"

namespace polymalloc::benchmarks {
namespace {

struct Allocator {
  const char* name;
  void* (*malloc)(std::size_t) noexcept;
  void (*free)(void*) noexcept;
};

// Template arguments, so that each benchmark calls its allocator directly.
constexpr Allocator kAoMalloc{"ao_malloc", &ao_malloc, &ao_free};
constexpr Allocator kGlibc{"glibc", &::malloc, &::free};
// Every variant (signal_safe among them), from the one list.
template <std::size_t I>
constexpr Allocator kVariant{polymalloc::variants::kAllVariants[I].api->name,
                             polymalloc::variants::kAllVariants[I].api->malloc,
                             polymalloc::variants::kAllVariants[I].api->free};

// Request sizes cycle through 16 small sizes, 16 to 256 bytes.
std::size_t size_at(std::size_t i) { return 16 + (i % 16) * 16; }

template <const Allocator& A>
void pairs(benchmark::State& state) {
  std::size_t i = state.thread_index() * 5;
  for (auto _ : state) {
    void* p = A.malloc(size_at(i++));
    benchmark::DoNotOptimize(p);
    A.free(p);
  }
  state.SetItemsProcessed(state.iterations());
}

// 64 allocations, then 64 frees: the caches (or the shared stacks) fill and drain.
template <const Allocator& A>
void batches(benchmark::State& state) {
  void* blocks[64];
  std::size_t i = state.thread_index() * 5;
  for (auto _ : state) {
    for (void*& p : blocks) p = A.malloc(size_at(i++));
    benchmark::DoNotOptimize(blocks);
    for (void* p : blocks) A.free(p);
  }
  state.SetItemsProcessed(state.iterations() * 64);
}

// A single-producer single-consumer ring of blocks in flight.
struct Ring {
  static constexpr std::size_t kSlots = 4096;
  std::atomic<void*> slots[kSlots];
  alignas(64) std::atomic<std::size_t> produced{0};
  alignas(64) std::atomic<std::size_t> consumed{0};
};
Ring ring;

// Thread 0 allocates and hands each block over; thread 1 frees them: every free is of a
// block another thread allocated.
template <const Allocator& A>
void cross_thread(benchmark::State& state) {
  if (state.thread_index() == 0) {
    ring.produced.store(0);
    ring.consumed.store(0);
  }
  // (Google Benchmark starts the threads' timed loops together, after this set-up.)
  std::size_t i = 0;
  if (state.thread_index() == 0) {
    for (auto _ : state) {
      const std::size_t n = ring.produced.load(std::memory_order_relaxed);
      while (n - ring.consumed.load(std::memory_order_acquire) >= Ring::kSlots) {
      }
      ring.slots[n % Ring::kSlots].store(A.malloc(size_at(i++)), std::memory_order_relaxed);
      ring.produced.store(n + 1, std::memory_order_release);
    }
  } else {
    for (auto _ : state) {
      const std::size_t n = ring.consumed.load(std::memory_order_relaxed);
      while (ring.produced.load(std::memory_order_acquire) == n) {
      }
      A.free(ring.slots[n % Ring::kSlots].load(std::memory_order_relaxed));
      ring.consumed.store(n + 1, std::memory_order_release);
    }
  }
  state.SetItemsProcessed(state.iterations());
}

template <const Allocator& A>
void register_all() {
  const std::string name = A.name;
  benchmark::RegisterBenchmark(("pairs/" + name).c_str(), pairs<A>)
      ->Threads(1)
      ->Threads(2)
      ->UseRealTime();
  benchmark::RegisterBenchmark(("batches/" + name).c_str(), batches<A>)
      ->Threads(1)
      ->Threads(2)
      ->UseRealTime();
  benchmark::RegisterBenchmark(("cross_thread/" + name).c_str(), cross_thread<A>)
      ->Threads(2)
      ->UseRealTime();
}

}  // namespace
}  // namespace polymalloc::benchmarks

int main(int argc, char** argv) {
  using namespace polymalloc::benchmarks;
  polymalloc_signal_safe_enable_mmap();
  std::printf("signal_safe is %s; AO_malloc is %s in this build of libatomic_ops\n",
              polymalloc_signal_safe_is_lock_free() ? "lock-free" : "1-lock-free",
              kAoMallocIsLockFree ? "lock-free" : "almost lock-free");
  register_all<kAoMalloc>();
  register_all<kGlibc>();
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    (register_all<kVariant<I>>(), ...);
  }(std::make_index_sequence<polymalloc::variants::kVariantCount>());
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
