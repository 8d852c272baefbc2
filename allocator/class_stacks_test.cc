// ClassStacks: single blocks and batches per class, counted, and nothing lost when threads
// push and pop at once.
#include "allocator/class_stacks.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <set>
#include <thread>
#include <vector>

namespace polymalloc::allocator {
namespace {

using Stacks = ClassStacks<atomics::DefaultStack, 4>;

// 64-byte blocks in one 16-byte-aligned buffer that outlives every stack using it.
class Blocks {
 public:
  explicit Blocks(std::size_t n)
      : memory_(static_cast<unsigned char*>(std::aligned_alloc(64, n * 64))), n_(n) {}
  ~Blocks() { std::free(memory_); }
  Block* operator[](std::size_t i) const { return Block::at(memory_ + 64 * i); }
  std::size_t size() const { return n_; }

 private:
  unsigned char* memory_;
  std::size_t n_;
};

// Chains blocks[first, first + n) through their next links.
BlockChain chain_of(const Blocks& blocks, std::size_t first, std::uint32_t n) {
  for (std::uint32_t k = 0; k < n; ++k) {
    blocks[first + k]->set_next(k + 1 < n ? blocks[first + k + 1] : nullptr);
  }
  return BlockChain{blocks[first], n};
}

std::uint32_t length_of(BlockChain chain) {
  std::uint32_t n = 0;
  for (Block* b = chain.head; b != nullptr; b = b->next()) ++n;
  return n;
}

TEST(ClassStacksTest, SingleBlocksComeBackLastInFirstOutAndAreCounted) {
  static Stacks stacks;
  Blocks blocks(3);
  for (std::size_t i = 0; i < 3; ++i) stacks.push_one(1, blocks[i]);
  EXPECT_EQ(stacks.free_blocks(1), 3u);
  EXPECT_EQ(stacks.free_blocks(0), 0u);
  EXPECT_EQ(stacks.pop_one(1), blocks[2]);
  EXPECT_EQ(stacks.pop_one(1), blocks[1]);
  EXPECT_EQ(stacks.pop_one(1), blocks[0]);
  EXPECT_EQ(stacks.pop_one(1), nullptr);
  EXPECT_EQ(stacks.free_blocks(1), 0u);
}

TEST(ClassStacksTest, ABatchKeepsItsLengthAndPopOneTakesFromIt) {
  static Stacks stacks;
  Blocks blocks(5);
  stacks.push_batch(2, chain_of(blocks, 0, 5));
  EXPECT_EQ(stacks.free_blocks(2), 5u);
  EXPECT_EQ(stacks.pop_one(2), blocks[0]);
  EXPECT_EQ(stacks.free_blocks(2), 4u);
  const BlockChain rest = stacks.pop_batch(2, 10);
  EXPECT_EQ(rest.head, blocks[1]);
  EXPECT_EQ(rest.count, 4u);
  EXPECT_EQ(length_of(rest), 4u);
  EXPECT_EQ(stacks.free_blocks(2), 0u);
}

TEST(ClassStacksTest, PopBatchGathersSingleBlocksWhenThereIsNoBatch) {
  static Stacks stacks;
  Blocks blocks(5);
  for (std::size_t i = 0; i < 5; ++i) stacks.push_one(0, blocks[i]);
  const BlockChain some = stacks.pop_batch(0, 3);
  EXPECT_EQ(some.count, 3u);
  EXPECT_EQ(length_of(some), 3u);
  EXPECT_EQ(stacks.free_blocks(0), 2u);
  EXPECT_EQ(stacks.pop_batch(0, 3).count, 2u);
  EXPECT_EQ(stacks.pop_batch(0, 3).head, nullptr);
}

TEST(ClassStacksTest, TakeAllReturnsSinglesAndBatchesAsOneChain) {
  static Stacks stacks;
  Blocks blocks(9);
  stacks.push_batch(3, chain_of(blocks, 0, 4));
  stacks.push_batch(3, chain_of(blocks, 4, 3));
  stacks.push_one(3, blocks[7]);
  stacks.push_one(3, blocks[8]);
  const BlockChain all = stacks.take_all(3);
  EXPECT_EQ(all.count, 9u);
  std::set<Block*> seen;
  for (Block* b = all.head; b != nullptr; b = b->next()) seen.insert(b);
  EXPECT_EQ(seen.size(), 9u);
  EXPECT_EQ(stacks.free_blocks(3), 0u);
  EXPECT_EQ(stacks.pop_one(3), nullptr);
}

TEST(ClassStacksTest, ThreadsTradingBatchesAndBlocksLoseNothing) {
  static Stacks stacks;
  constexpr std::size_t kBlocks = 4096;
  Blocks blocks(kBlocks);
  for (std::size_t i = 0; i < kBlocks; i += 8) stacks.push_batch(0, chain_of(blocks, i, 8));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t] {
      for (int round = 0; round < 20000; ++round) {
        if ((round + t) % 2 == 0) {
          BlockChain c = stacks.pop_batch(0, 8);
          if (c.head != nullptr) stacks.push_batch(0, c);
        } else if (Block* b = stacks.pop_one(0)) {
          stacks.push_one(0, b);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(stacks.free_blocks(0), kBlocks);
  const BlockChain all = stacks.take_all(0);
  std::set<Block*> seen;
  for (Block* b = all.head; b != nullptr; b = b->next()) seen.insert(b);
  EXPECT_EQ(seen.size(), kBlocks) << "a block was lost or handed out twice";
}

}  // namespace
}  // namespace polymalloc::allocator
