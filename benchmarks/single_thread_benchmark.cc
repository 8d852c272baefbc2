// Single-thread microbenchmarks against the process's malloc, whichever it is: glibc's, or a
// peer's or a polymalloc variant's put there by LD_PRELOAD (the shootout runs this binary once
// per allocator and workload). Every block is touched, as a program would.
//
//   pair/N            malloc(N), touch, free: the allocator's fastest path, by size
//   realloc_growth    a buffer grown by realloc in 64-byte steps to 64 KiB (a string builder)
//   realloc_doubling  a buffer doubled by realloc from 4 KiB to 16 MiB (a growing vector)
//   aligned/A         posix_memalign at alignment A, touch, free
//
// Counter: peak_rss_bytes, the process's peak resident memory (the run is its own process).
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <cstddef>

#include "testing/process_memory.h"

namespace polymalloc::benchmarks {
namespace {

void touch(void* p, std::size_t bytes) {
  static_cast<unsigned char*>(p)[0] = 1;
  static_cast<unsigned char*>(p)[bytes - 1] = 2;
}

void report_memory(benchmark::State& state) {
  state.counters["peak_rss_bytes"] = static_cast<double>(testing::peak_resident_bytes());
}

void pair(benchmark::State& state) {
  const auto bytes = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    void* p = malloc(bytes);
    touch(p, bytes);
    benchmark::DoNotOptimize(p);
    free(p);
  }
  state.SetItemsProcessed(state.iterations());
  report_memory(state);
}

// One item is one realloc call.
void grow(benchmark::State& state, std::size_t first, std::size_t last, bool doubling) {
  std::int64_t calls = 0;
  for (auto _ : state) {
    void* p = nullptr;
    for (std::size_t n = first; n <= last; n = doubling ? 2 * n : n + first) {
      p = realloc(p, n);
      touch(p, n);
      ++calls;
    }
    free(p);
  }
  state.SetItemsProcessed(calls);
  report_memory(state);
}

void realloc_growth(benchmark::State& state) { grow(state, 64, 64 * 1024, false); }
void realloc_doubling(benchmark::State& state) { grow(state, 4096, 16 << 20, true); }

void aligned(benchmark::State& state) {
  const auto alignment = static_cast<std::size_t>(state.range(0));
  const std::size_t bytes = alignment < 256 ? 200 : alignment;
  for (auto _ : state) {
    void* p = nullptr;
    if (posix_memalign(&p, alignment, bytes) != 0) {
      state.SkipWithError("posix_memalign failed");
      break;
    }
    touch(p, bytes);
    benchmark::DoNotOptimize(p);
    free(p);
  }
  state.SetItemsProcessed(state.iterations());
  report_memory(state);
}

void register_all() {
  auto* pairs = benchmark::RegisterBenchmark("pair", pair);
  for (std::int64_t bytes : {16, 64, 256, 1024, 4096, 32768, 262144}) pairs->Arg(bytes);
  benchmark::RegisterBenchmark("realloc_growth", realloc_growth);
  benchmark::RegisterBenchmark("realloc_doubling", realloc_doubling);
  benchmark::RegisterBenchmark("aligned", aligned)->Arg(64)->Arg(4096);
}

}  // namespace
}  // namespace polymalloc::benchmarks

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  polymalloc::benchmarks::register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
