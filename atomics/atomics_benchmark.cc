// Push/pop throughput of every ABA-safe stack, libatomic_ops' AO_stack as the peer in the
// same run, and spinlock handoff against a pthread mutex; at 1 and 2 threads.
//   ./bazelw run -c opt //atomics:atomics_benchmark
#include <atomic_ops_stack.h>
#include <benchmark/benchmark.h>
#include <pthread.h>

#include <cstdint>
#include <vector>

#include "atomics/atomics.h"

namespace polymalloc::atomics {
namespace {

constexpr int kNodesPerThread = 64;

struct alignas(kStackNodeAlignment) Node {
  std::uintptr_t link[2];
};

constexpr int kMaxThreads = 64;

// One shared stack per benchmark. Nodes live in static per-thread pools because a thread
// that finishes may have popped another thread's nodes while its own are still on the stack.
template <class Stack>
struct Shared {
  static inline Stack stack;
  static inline Node pool[kMaxThreads][kNodesPerThread];
};

// Each thread pushes its own nodes, then every iteration is one pop and one push (of
// whatever it popped); at the end each thread pops as many nodes as it pushed.
template <class Stack>
void BM_StackPopPush(benchmark::State& state) {
  if (state.threads() > kMaxThreads) {
    state.SkipWithError("too many threads for the node pools");
    return;
  }
  Stack& stack = Shared<Stack>::stack;
  for (Node& node : Shared<Stack>::pool[state.thread_index()]) stack.push(&node);
  for (auto _ : state) {
    void* node = stack.pop();
    benchmark::DoNotOptimize(node);
    if (node != nullptr) stack.push(node);
  }
  state.SetItemsProcessed(state.iterations());
  for (int popped = 0; popped < kNodesPerThread;) {
    if (stack.pop() != nullptr) ++popped;
  }
}

// AO_stack from libatomic_ops, same protocol (a peer only; GPL code is never linked into
// polymalloc itself).
struct AoStack {
  AoStack() { AO_stack_init(&stack); }
  void push(void* node) { AO_stack_push(&stack, static_cast<AO_t*>(node)); }
  void* pop() { return AO_stack_pop(&stack); }
  AO_stack_t stack;
};

BENCHMARK_TEMPLATE(BM_StackPopPush, VersionedStack<NativeDoubleCas>)
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime();
BENCHMARK_TEMPLATE(BM_StackPopPush, LlscStack)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK_TEMPLATE(BM_StackPopPush, VersionedStack<LockTableDoubleCas>)
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime();
BENCHMARK_TEMPLATE(BM_StackPopPush, AoStack)->Threads(1)->Threads(2)->UseRealTime();

// Lock handoff: each iteration takes the lock, touches the shared counter, releases.
struct PthreadMutex {
  void lock() { pthread_mutex_lock(&mutex); }
  void unlock() { pthread_mutex_unlock(&mutex); }
  pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
};

template <class Lock>
void BM_LockHandoff(benchmark::State& state) {
  static Lock lock;
  static std::uint64_t counter = 0;
  for (auto _ : state) {
    lock.lock();
    benchmark::DoNotOptimize(++counter);
    lock.unlock();
  }
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK_TEMPLATE(BM_LockHandoff, Spinlock)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK_TEMPLATE(BM_LockHandoff, PthreadMutex)->Threads(1)->Threads(2)->UseRealTime();

}  // namespace
}  // namespace polymalloc::atomics

BENCHMARK_MAIN();
