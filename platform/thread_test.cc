// Thread numbers, CPU identity and fork handlers.
#include "platform/thread.h"

#include <gtest/gtest.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <string>
#include <thread>
#include <utility>
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

// A cgroup v2 tree under a temporary directory: `membership` is /proc/self/cgroup's text,
// and each (relative directory, cpu.max text) pair a cgroup's quota.
class CgroupTree {
 public:
  CgroupTree(const char* membership, std::vector<std::pair<std::string, std::string>> quotas) {
    const char* tmp = getenv("TEST_TMPDIR");
    root_ = std::string(tmp != nullptr ? tmp : "/tmp") + "/cgroup." + std::to_string(getpid()) +
            "." + std::to_string(++count_);
    mkdir(root_.c_str(), 0755);
    write(root_ + "/membership", membership);
    for (const auto& [dir, text] : quotas) {
      std::string path = root_;
      for (std::size_t at = 0; at <= dir.size();) {
        const std::size_t slash = std::min(dir.find('/', at), dir.size());
        path += "/" + dir.substr(at, slash - at);
        mkdir(path.c_str(), 0755);
        at = slash + 1;
      }
      write(path + "/cpu.max", text);
    }
  }
  std::uint32_t limit() const {
    return cgroup_cpu_limit((root_ + "/membership").c_str(), root_.c_str());
  }

 private:
  static void write(const std::string& path, const std::string& text) {
    FILE* f = fopen(path.c_str(), "w");
    ASSERT_NE(f, nullptr) << path;
    fputs(text.c_str(), f);
    fclose(f);
  }
  std::string root_;
  static inline int count_ = 0;
};

TEST(ThreadTest, ACgroupQuotaLimitsTheCpusRoundedUpAndTheSmallestAncestorWins) {
  EXPECT_EQ(CgroupTree("0::/a/b\n", {{"a/b", "250000 100000\n"}}).limit(), 3u);
  EXPECT_EQ(
      CgroupTree("1:cpu:/x\n0::/a/b\n", {{"a/b", "250000 100000\n"}, {"a", "100000 100000\n"}})
          .limit(),
      1u)
      << "the parent's quota is smaller";
  EXPECT_EQ(CgroupTree("0::/a/b\n", {{"a/b", "max 100000\n"}, {"a", "50000 100000\n"}}).limit(), 1u)
      << "half a CPU rounds up to one";
  EXPECT_EQ(CgroupTree("0::/a\n", {{"a", "max 100000\n"}}).limit(), 0u) << "no quota";
  EXPECT_EQ(CgroupTree("0::/\n", {}).limit(), 0u) << "the root has none";
  EXPECT_EQ(CgroupTree("4:memory:/m\n", {}).limit(), 0u) << "cgroup v1 only";
  EXPECT_EQ(cgroup_cpu_limit("/nonexistent/cgroup", "/nonexistent"), 0u);
  EXPECT_LE(cpu_count(), std::max<std::uint32_t>(1, std::thread::hardware_concurrency()));
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
