// Single-thread microbenchmarks of one variant against the system malloc, in one run:
// malloc/free pairs at 16..4096 bytes, batches of allocations freed in order, and realloc
// growth. Run: ./bazelw run -c opt //benchmarks:malloc_benchmark_<variant>
#include <benchmark/benchmark.h>

#include <cstddef>
#include <string>
#include <vector>

#include "benchmarks/system_malloc.h"
#include "variants/under_test.h"

namespace polymalloc::benchmarks {
namespace {

// One malloc and one free of the same size, back to back: the allocator's fastest path.
template <const allocator::ApiTable& kApi>
void pair(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    void* p = kApi.malloc(size);
    benchmark::DoNotOptimize(p);
    kApi.free(p);
  }
  state.SetItemsProcessed(state.iterations());
}

// 1000 allocations, then 1000 frees in allocation order: splitting and coalescing at work.
template <const allocator::ApiTable& kApi>
void batch(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  std::vector<void*> blocks(1000);
  for (auto _ : state) {
    for (void*& p : blocks) p = kApi.malloc(size);
    benchmark::DoNotOptimize(blocks.data());
    for (void* p : blocks) kApi.free(p);
  }
  state.SetItemsProcessed(state.iterations() * blocks.size());
}

// A buffer grown by realloc in 64-byte steps up to 64 KiB (as a string builder would).
template <const allocator::ApiTable& kApi>
void realloc_growth(benchmark::State& state) {
  for (auto _ : state) {
    void* p = nullptr;
    for (std::size_t n = 64; n <= 64 * 1024; n += 64) {
      p = kApi.realloc(p, n);
      static_cast<char*>(p)[n - 1] = 1;
    }
    kApi.free(p);
  }
  state.SetItemsProcessed(state.iterations() * 1024);
}

template <const allocator::ApiTable& kApi>
void register_all() {
  const std::string name = kApi.name;
  benchmark::RegisterBenchmark(("pair/" + name).c_str(), pair<kApi>)
      ->RangeMultiplier(2)
      ->Range(16, 4096);
  benchmark::RegisterBenchmark(("batch/" + name).c_str(), batch<kApi>)
      ->Arg(16)
      ->Arg(64)
      ->Arg(512)
      ->Arg(4096);
  benchmark::RegisterBenchmark(("realloc_growth/" + name).c_str(), realloc_growth<kApi>);
}

}  // namespace
}  // namespace polymalloc::benchmarks

int main(int argc, char** argv) {
  using namespace polymalloc;
  benchmarks::register_all<benchmarks::kSystemMalloc>();
  benchmarks::register_all<testing::kUnderTest>();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
