// Per-size-class free blocks on lock-free stacks (layer 0's ABA-safe stacks), the shared
// pool of an allocator with no lock on any path. Each class has two stacks: single blocks,
// and batches (a chain of blocks pushed and popped with one operation, so a thread cache
// moves many blocks per contended cache-line transfer).
//
// A free block's header carries the stack's link in its first word (Block::prev_size; the
// stack node is the header, 16-byte aligned) and keeps its size word, so a double free of a
// pooled block is still recognisable. A batch is chained through Block::next_in_list and
// its first block records the batch's length in Block::prev_in_list; both live in the
// (poisoned, under ASan) payload, hence the unchecked functions.
#pragma once

#include <cstddef>
#include <cstdint>

#include "allocator/block.h"
#include "allocator/sanitizer.h"
#include "atomics/atomics.h"

namespace polymalloc::allocator {

template <atomics::AbaSafeStack Stack, unsigned kClasses>
class ClassStacks {
 public:
  static constexpr bool kIsLockFree = Stack::kIsLockFree;

  constexpr ClassStacks() = default;
  ClassStacks(const ClassStacks&) = delete;
  ClassStacks& operator=(const ClassStacks&) = delete;

  void push_one(unsigned i, Block* b) {
    atomics::fetch_add_relaxed(&pools_[i].free_blocks, std::size_t{1});
    pools_[i].singles.push(b);
  }

  // A block of class i, or nullptr if the class has none. Takes from a batch when there is
  // no single block (and puts the rest of the batch back).
  POLYMALLOC_UNCHECKED_BY_ASAN Block* pop_one(unsigned i) {
    Pool& pool = pools_[i];
    auto* b = static_cast<Block*>(pool.singles.pop());
    if (b == nullptr) {
      BlockChain batch = pop_batch_only(pool);
      if (batch.head == nullptr) return nullptr;
      b = batch.head;
      if (batch.count > 1) push_chain(pool, BlockChain{next_of(b), batch.count - 1});
    }
    atomics::fetch_sub_relaxed(&pool.free_blocks, std::size_t{1});
    return b;
  }

  // Pools a chain of blocks of class i as one batch.
  void push_batch(unsigned i, BlockChain chain) {
    atomics::fetch_add_relaxed(&pools_[i].free_blocks, std::size_t{chain.count});
    push_chain(pools_[i], chain);
  }

  // A batch of class i; failing that, up to `want` single blocks chained; else empty.
  BlockChain pop_batch(unsigned i, std::uint32_t want) {
    Pool& pool = pools_[i];
    BlockChain chain = pop_batch_only(pool);
    if (chain.head == nullptr) chain = pop_singles(pool, want);
    atomics::fetch_sub_relaxed(&pool.free_blocks, std::size_t{chain.count});
    return chain;
  }

  // Blocks of class i pooled now (a moment's snapshot while other threads run).
  std::size_t free_blocks(unsigned i) const {
    return atomics::load_relaxed(&pools_[i].free_blocks);
  }

  // Every pooled block of class i, as one chain (for checks and trimming, which give them
  // back). Other threads meanwhile find the class empty, which costs them only a refill.
  POLYMALLOC_UNCHECKED_BY_ASAN BlockChain take_all(unsigned i) {
    Pool& pool = pools_[i];
    BlockChain all = pop_singles(pool, UINT32_MAX);
    for (BlockChain batch = pop_batch_only(pool); batch.head != nullptr;
         batch = pop_batch_only(pool)) {
      Block* last = batch.head;
      while (next_of(last) != nullptr) last = next_of(last);
      set_next(last, all.head);
      all = BlockChain{batch.head, all.count + batch.count};
    }
    atomics::fetch_sub_relaxed(&pool.free_blocks, std::size_t{all.count});
    return all;
  }

  POLYMALLOC_UNCHECKED_BY_ASAN static Block* next_of(const Block* b) {
    return b->next_unchecked();  // lock-free readers may read a reused block's link
  }
  POLYMALLOC_UNCHECKED_BY_ASAN static void set_next(Block* b, Block* next) { b->set_next(next); }

 private:
  struct alignas(atomics::kCacheLineSize) Pool {
    Stack singles;
    Stack batches;
    std::size_t free_blocks = 0;
  };

  POLYMALLOC_UNCHECKED_BY_ASAN static void push_chain(Pool& pool, BlockChain chain) {
    chain.head->set_aux_word(chain.count);
    pool.batches.push(chain.head);
  }

  // Up to `want` single blocks, chained.
  POLYMALLOC_UNCHECKED_BY_ASAN static BlockChain pop_singles(Pool& pool, std::uint32_t want) {
    BlockChain chain;
    while (chain.count < want) {
      auto* b = static_cast<Block*>(pool.singles.pop());
      if (b == nullptr) break;
      set_next(b, chain.head);
      chain = BlockChain{b, chain.count + 1};
    }
    return chain;
  }

  POLYMALLOC_UNCHECKED_BY_ASAN static BlockChain pop_batch_only(Pool& pool) {
    auto* head = static_cast<Block*>(pool.batches.pop());
    if (head == nullptr) return {};
    return BlockChain{head, static_cast<std::uint32_t>(head->aux_word())};
  }

  Pool pools_[kClasses] = {};
};

}  // namespace polymalloc::allocator
