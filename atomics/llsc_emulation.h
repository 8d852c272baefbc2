// Load-linked/store-conditional emulation on one word that holds a tagged pointer, for CPUs
// without double-width CAS. It follows the black-list idea of Boehm's almost-non-blocking
// stack: a reader announces the value it linked to in a small reservation table, and a
// writer that is about to store a pointer picks a tag (low address bits) that no reservation
// names. So while a reservation is held, its exact value can not reappear in the word, and
// a store-conditional (a CAS against the reserved value) can only succeed if the word was
// not changed to another instance of the same pointer in between.
//
// Why that suffices (x = an address, t = a tag, R = a reader):
//  1. R reserves x|t, then re-reads the word (seq_cst both) and proceeds only if it still
//     holds x|t. From then on, any writer that stores x again does so after obtaining x,
//     i.e. after the word stopped holding x|t, which is after R's re-read, hence after R's
//     reservation in the single total order of seq_cst operations; the writer's tag scan
//     therefore sees x|t reserved and stores x with another tag.
//  2. So while R holds its reservation, the word equals x|t only if it is the same instance
//     R validated, and R's CAS succeeds only then.
// Progress: writers never wait (kTags > kReservations leaves a free tag); a reader waits
// only when all kReservations slots are taken by reads in progress, so the word is
// lock-free unless that many readers are suspended at once.
#pragma once

#include <cstdint>

#include "atomics/backoff.h"
#include "atomics/cpu.h"
#include "atomics/word.h"

namespace polymalloc::atomics {

class LlscWord {
 public:
  static constexpr unsigned kTagBits = 4;
  static constexpr std::uintptr_t kTagMask = (std::uintptr_t{1} << kTagBits) - 1;
  static constexpr unsigned kTags = 1u << kTagBits;
  // The word and its reservations share one cache line: a pop touches both, so keeping them
  // together halves the lines that bounce between cores.
  static constexpr unsigned kReservations = kCacheLineSize / sizeof(std::uintptr_t) - 1;
  static_assert(kTags > kReservations, "a writer must always find an unreserved tag");

  // A held reservation, from load_linked until store_conditional or cancel.
  struct Link {
    std::uintptr_t value = 0;
    unsigned slot = kNoSlot;
  };

  constexpr LlscWord() = default;
  LlscWord(const LlscWord&) = delete;
  LlscWord& operator=(const LlscWord&) = delete;

  static std::uintptr_t address_of(std::uintptr_t value) { return value & ~kTagMask; }

  std::uintptr_t load_acquire() const { return atomics::load_acquire(&word_); }

  // Reads the word and reserves the value read (0 needs no reservation). Waits, with
  // backoff, while every reservation slot is in use.
  Link load_linked() {
    Backoff backoff;
    for (;;) {
      const std::uintptr_t value = load_seq_cst(&word_);
      if (value == 0) return Link{};
      const unsigned slot = reserve(value);
      if (slot == kNoSlot) {
        backoff.pause();
        continue;
      }
      if (load_seq_cst(&word_) == value) return Link{value, slot};
      release(slot);
    }
  }

  // Stores `desired` if the word still holds the linked value; ends the reservation.
  bool store_conditional(const Link& link, std::uintptr_t desired) {
    std::uintptr_t expected = link.value;
    const bool stored = atomics::cas_seq_cst(&word_, expected, desired);
    cancel(link);
    return stored;
  }

  void cancel(const Link& link) {
    if (link.slot != kNoSlot) release(link.slot);
  }

  // `address` (aligned to kTags bytes) tagged so that no current reservation names it.
  std::uintptr_t tag_unreserved(std::uintptr_t address) const {
    // At most kReservations of the kTags values are reserved at any instant, so a free tag
    // exists; reservations may come and go while scanning, hence the wrap-around.
    for (std::uintptr_t tag = 0;; tag = (tag + 1) & kTagMask) {
      if (!is_reserved(address | tag)) return address | tag;
    }
  }

  // Plain CAS for writers (pushes); `desired` must come from tag_unreserved.
  bool cas_seq_cst(std::uintptr_t& expected, std::uintptr_t desired) {
    return atomics::cas_seq_cst(&word_, expected, desired);
  }

 private:
  static constexpr unsigned kNoSlot = ~0u;

  unsigned reserve(std::uintptr_t value) {
    for (unsigned i = 0; i < kReservations; ++i) {
      std::uintptr_t free_slot = 0;
      if (atomics::cas_seq_cst(&reservations_[i], free_slot, value)) return i;
    }
    return kNoSlot;
  }

  void release(unsigned slot) { store_release(&reservations_[slot], std::uintptr_t{0}); }

  bool is_reserved(std::uintptr_t value) const {
    for (unsigned i = 0; i < kReservations; ++i) {
      if (load_seq_cst(&reservations_[i]) == value) return true;
    }
    return false;
  }

  alignas(kCacheLineSize) std::uintptr_t word_ = 0;
  std::uintptr_t reservations_[kReservations] = {};
};

}  // namespace polymalloc::atomics
