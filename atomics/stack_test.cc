// Every ABA-safe stack: LIFO behaviour, and push/pop storms over 1..N threads (and with
// signal handlers that pop and push on the interrupted threads) that end in a census proving
// that no element was lost or handed out twice.
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <memory>
#include <thread>
#include <type_traits>
#include <vector>

#include "atomics/atomics.h"

namespace polymalloc::atomics {
namespace {

struct alignas(kStackNodeAlignment) Node {
  std::uintptr_t link;       // owned by the stack while the node is on it
  std::atomic<int> holders;  // how many threads believe they hold this node (must be <= 1)
  int id;
};

template <class S>
class StackTest : public ::testing::Test {
 protected:
  // The lock-table stack makes two system calls per operation; the others get rounds enough
  // that a naive single-word-CAS Treiber stack fails the census (checked: 6 of 6 runs lost
  // or duplicated nodes at 1M rounds of ScarceNodes on 2 cores, none at 20k).
  static constexpr bool kSlow = std::is_same_v<S, VersionedStack<LockTableDoubleCas>>;

  static std::vector<std::unique_ptr<Node>> make_nodes(int n) {
    std::vector<std::unique_ptr<Node>> nodes;
    for (int i = 0; i < n; ++i) {
      nodes.push_back(std::make_unique<Node>());
      nodes.back()->id = i;
    }
    return nodes;
  }

  // Pops everything; every node must come back exactly once.
  static void expect_census(S& stack, int n) {
    std::vector<int> seen(n, 0);
    int popped = 0;
    while (void* p = stack.pop()) {
      Node* node = static_cast<Node*>(p);
      ASSERT_GE(node->id, 0);
      ASSERT_LT(node->id, n);
      ++seen[node->id];
      ++popped;
      ASSERT_LE(popped, n) << "more pops than nodes: an element was duplicated";
    }
    EXPECT_EQ(popped, n);
    EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), n);
    EXPECT_TRUE(stack.empty());
  }

  // Takes a node off the stack and checks nobody else believes they hold it.
  static Node* take(S& stack) {
    Node* node = static_cast<Node*>(stack.pop());
    if (node != nullptr && node->holders.fetch_add(1) != 0) {
      ADD_FAILURE() << "node " << node->id << " handed out twice";
    }
    return node;
  }
  static void give_back(S& stack, Node* node) {
    node->holders.fetch_sub(1);
    stack.push(node);
  }

  // Repeatedly takes up to `batch` nodes and pushes them back, on the calling thread.
  static void churn(S& stack, int rounds, int batch) {
    std::vector<Node*> held;
    for (int r = 0; r < rounds; ++r) {
      for (int i = 0; i < batch; ++i) {
        if (Node* node = take(stack)) held.push_back(node);
      }
      for (Node* node : held) give_back(stack, node);
      held.clear();
    }
  }

  static void storm(S& stack, int threads_n, int rounds, int batch) {
    std::vector<std::thread> threads;
    for (int t = 0; t < threads_n; ++t) {
      threads.emplace_back([&stack, rounds, batch] { churn(stack, rounds, batch); });
    }
    for (auto& t : threads) t.join();
  }
};

using Stacks = ::testing::Types<VersionedStack<NativeDoubleCas>, LlscStack,
                                VersionedStack<LockTableDoubleCas>>;

class StackNames {
 public:
  template <class S>
  static std::string GetName(int) {
    return S::kName;
  }
};
TYPED_TEST_SUITE(StackTest, Stacks, StackNames);

TYPED_TEST(StackTest, EmptyStackPopsNull) {
  TypeParam stack;
  static_assert(AbaSafeStack<TypeParam>);
  EXPECT_TRUE(stack.empty());
  EXPECT_EQ(stack.pop(), nullptr);
}

TYPED_TEST(StackTest, PopsInLifoOrder) {
  TypeParam stack;
  auto nodes = this->make_nodes(5);
  for (auto& node : nodes) stack.push(node.get());
  EXPECT_FALSE(stack.empty());
  for (int i = 4; i >= 0; --i) EXPECT_EQ(stack.pop(), nodes[i].get());
  EXPECT_EQ(stack.pop(), nullptr);
}

TYPED_TEST(StackTest, LinksAreStoredMangledWithTheirOwnAddress) {
  TypeParam stack;
  auto nodes = this->make_nodes(2);
  stack.push(nodes[0].get());
  stack.push(nodes[1].get());
  EXPECT_NE(nodes[1]->link, reinterpret_cast<std::uintptr_t>(nodes[0].get()) & ~std::uintptr_t{15})
      << "the link is stored as the plain address";
  EXPECT_EQ(stack.pop(), nodes[1].get());
  EXPECT_EQ(stack.pop(), nodes[0].get());
}

// An element's link written over while it sits on the stack (a use after free of its memory)
// is reported by the pop that reads it, not followed. Only the versioned stacks can tell: the
// LL/SC stack keeps tag bits in its links' alignment bits.
template <class S>
class VersionedStackTest : public StackTest<S> {};
using VersionedStacks =
    ::testing::Types<VersionedStack<NativeDoubleCas>, VersionedStack<LockTableDoubleCas>>;
TYPED_TEST_SUITE(VersionedStackTest, VersionedStacks, StackNames);

TYPED_TEST(VersionedStackTest, AnOverwrittenLinkIsReportedByThePopThatReadsIt) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        TypeParam stack;
        auto nodes = this->make_nodes(2);
        stack.push(nodes[0].get());
        stack.push(nodes[1].get());
        // Bytes that demangle to a misaligned link (15 in 16 random writes do).
        nodes[1]->link = mangle_link(nodes[1].get(), 0x4141414141414141u);
        stack.pop();
        stack.pop();
      },
      "^polymalloc: malloc\\(\\): corrupted free list \\(a freed block was written to\\): "
      "link to 0x[0-9a-f]+ in 0x[0-9a-f]+\n$");
}

TYPED_TEST(StackTest, StormOverOneToManyThreadsLosesAndDuplicatesNothing) {
  const int max_threads = std::max(4, 2 * static_cast<int>(std::thread::hardware_concurrency()));
  constexpr int kNodes = 64;
  const int rounds = this->kSlow ? 1500 : 20000;
  for (int threads_n = 1; threads_n <= max_threads; threads_n *= 2) {
    SCOPED_TRACE(threads_n);
    TypeParam stack;
    auto nodes = this->make_nodes(kNodes);
    for (auto& node : nodes) stack.push(node.get());
    this->storm(stack, threads_n, rounds, /*batch=*/3);
    this->expect_census(stack, kNodes);
  }
}

TYPED_TEST(StackTest, ScarceNodesMaximiseAbaOpportunities) {
  // Fewer nodes than threads: the same few addresses cycle through the head constantly,
  // which is exactly when an unprotected CAS would succeed on a stale head.
  TypeParam stack;
  auto nodes = this->make_nodes(2);
  for (auto& node : nodes) stack.push(node.get());
  this->storm(stack, 4, this->kSlow ? 50000 : 1000000, /*batch=*/2);
  this->expect_census(stack, 2);
}

// Signal storm: handlers pop and push on the interrupted thread, possibly in the middle of
// that thread's own pop or push. A deadlock would hang the test (and trip its timeout).
template <class S>
struct SignalStorm {
  static inline S* stack = nullptr;
  static inline std::atomic<long> handled{0};
  static inline std::atomic<int> double_holds{0};

  static void handler(int) {
    const int saved_errno = errno;
    if (Node* node = static_cast<Node*>(stack->pop())) {
      if (node->holders.fetch_add(1) != 0) double_holds.fetch_add(1);
      node->holders.fetch_sub(1);
      stack->push(node);
    }
    handled.fetch_add(1, std::memory_order_relaxed);
    errno = saved_errno;
  }
};

TYPED_TEST(StackTest, SignalHandlersInterruptingPopAndPushLoseNothing) {
  using Storm = SignalStorm<TypeParam>;
  constexpr long kMinSignalsHandled = 5000;
  TypeParam stack;
  auto nodes = this->make_nodes(8);
  for (auto& node : nodes) stack.push(node.get());
  Storm::stack = &stack;
  Storm::handled = 0;
  struct sigaction action = {};
  action.sa_handler = &Storm::handler;
  action.sa_flags = SA_RESTART;
  sigemptyset(&action.sa_mask);
  struct sigaction previous;
  ASSERT_EQ(sigaction(SIGUSR1, &action, &previous), 0);

  // Workers are joined only after the killer stops, so their pthread_t stay valid for it.
  std::atomic<int> started{0}, finished{0};
  std::vector<std::thread> workers;
  std::vector<pthread_t> handles(2);
  for (int t = 0; t < 2; ++t) {
    workers.emplace_back([&, t] {
      handles[t] = pthread_self();
      started.fetch_add(1);
      // Churn until enough signals have landed on these threads, not for a fixed time.
      while (Storm::handled.load() < kMinSignalsHandled) this->churn(stack, 100, 2);
      finished.fetch_add(1);
    });
  }
  while (started.load() < 2) std::this_thread::yield();
  std::thread killer([&] {
    while (finished.load() < 2) {
      for (pthread_t h : handles) pthread_kill(h, SIGUSR1);
      std::this_thread::yield();
    }
  });
  killer.join();
  for (auto& w : workers) w.join();
  sigaction(SIGUSR1, &previous, nullptr);

  EXPECT_GE(Storm::handled.load(), kMinSignalsHandled);
  EXPECT_EQ(Storm::double_holds.load(), 0);
  this->expect_census(stack, 8);
}

}  // namespace
}  // namespace polymalloc::atomics
