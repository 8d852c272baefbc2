// Thread numbers, CPU identity and fork handlers.
#include "platform/thread.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <thread>
#include <vector>

namespace polymalloc::platform {
namespace {

TEST(ThreadTest, NumbersAreStablePerThreadAndUniqueAcrossThreads) {
  const std::uint32_t mine = thread_number();
  EXPECT_NE(mine, 0u);
  EXPECT_EQ(thread_number(), mine);
  std::vector<std::uint32_t> numbers(8);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&numbers, i] { numbers[i] = thread_number(); });
  }
  for (auto& t : threads) t.join();
  std::set<std::uint32_t> distinct(numbers.begin(), numbers.end());
  distinct.insert(mine);
  EXPECT_EQ(distinct.size(), 9u);
}

TEST(ThreadTest, CpuIdentityIsWithinTheMachine) {
  EXPECT_GE(cpu_count(), 1u);
  EXPECT_LT(current_cpu(),
            std::max<std::uint32_t>(cpu_count(), std::thread::hardware_concurrency()));
}

int g_events[3];
int g_order = 0;

TEST(ThreadTest, ForkHandlersRunAroundFork) {
  ASSERT_TRUE(register_fork_handlers([] { g_events[0] = ++g_order; },
                                     [] { g_events[1] = ++g_order; },
                                     [] { g_events[2] = ++g_order; }));
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) _exit(g_events[0] == 1 && g_events[2] == 2 && g_events[1] == 0 ? 0 : 1);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child saw prepare, then child";
  EXPECT_EQ(g_events[0], 1);
  EXPECT_EQ(g_events[1], 2);
  EXPECT_EQ(g_events[2], 0);
}

}  // namespace
}  // namespace polymalloc::platform
