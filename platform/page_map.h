// A lock-free map from each 4 KiB slot of the address space to a 16-bit tag (0: nothing
// known), so that an allocator can ask "is this address ours, and what is there?" before it
// reads any memory at an address a caller handed it (a wild pointer may be unmapped).
//
// Two levels: a root of leaf pointers (constant-initialised, in .bss: untouched pages cost
// nothing) and leaves of tags mapped on first use, installed with one CAS and never unmapped,
// so a reader needs no lock and no memory barrier beyond an acquire load. Async-signal-safe.
//
// In front of them, optionally, a window: one stretch of kWindowBytes whose tags are a flat
// array of their own (set_window(), once), so that a lookup there is a subtraction, a
// comparison and one load. An allocator whose memory lies mostly in one area it chose puts
// the window over that area, and its free() asks about a pointer in a few instructions.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>

#include "atomics/atomics.h"
#include "platform/os.h"

namespace polymalloc::platform {

class PageMap {
 public:
  static constexpr unsigned kSlotShift = 12;  // 4 KiB slots, whatever the page size
  static constexpr std::size_t kSlotBytes = std::size_t{1} << kSlotShift;
  static constexpr unsigned kAddressBits = 48;  // user space on x86-64 and AArch64
  static constexpr unsigned kLeafBits = 20;     // a leaf: 4 GiB of address space, 2 MiB of tags
  static constexpr unsigned kRootBits = kAddressBits - kSlotShift - kLeafBits;

  constexpr PageMap() = default;
  PageMap(const PageMap&) = delete;
  PageMap& operator=(const PageMap&) = delete;

  static constexpr std::size_t kWindowBytes = std::size_t{64} << 30;

  // Puts the window at `base` (slot-aligned), before any slot there is set, unless the map
  // has one already (the first caller wins; a racing one returns at once); false if it did
  // not (base out of range, or its tags could not be mapped), and then the leaves keep
  // serving those addresses. Keeps errno: a window is an optimisation its callers need not
  // hear about.
  bool set_window(const void* base) {
    const auto start = reinterpret_cast<std::uintptr_t>(base);
    if (start % kSlotBytes != 0 || start > UINTPTR_MAX - kWindowBytes) return false;
    if ((start + kWindowBytes - 1) >> (kSlotShift + kRootBits + kLeafBits) != 0) return false;
    std::uint32_t unclaimed = 0;
    if (!atomics::cas_acq_rel(&window_claimed_, unclaimed, std::uint32_t{1})) return false;
    const std::size_t guard = page_size();  // an unused page on each side, as for a leaf
    const int saved_errno = errno;
    auto* mapped = static_cast<unsigned char*>(os_map_metadata(kWindowTagBytes + 2 * guard));
    errno = saved_errno;
    if (mapped == nullptr) return false;
    window_tags_ = reinterpret_cast<std::uint16_t*>(mapped + guard);
    atomics::store_relaxed(&window_base_, start);
    atomics::store_release(&window_bytes_, kWindowBytes);
    return true;
  }

  // The tag of p's slot: 0 if never set (or p lies beyond the mapped address bits).
  // (window_tag() spelled out: its null test costs free() three instructions.)
  [[gnu::always_inline]] std::uint16_t get(const void* p) const {
    const std::uintptr_t offset =
        reinterpret_cast<std::uintptr_t>(p) - atomics::load_relaxed(&window_base_);
    if (offset < atomics::load_acquire(&window_bytes_)) [[likely]]
      return atomics::load_relaxed(&window_tags_[offset >> kSlotShift]);
    return get_from_leaves(p);
  }

 private:
  // Inline: a call here, even off the fast path, makes free() save registers on every call
  // (GCC stopped inlining it once more callers used get(), and free() grew a stack frame).
  [[gnu::always_inline]] std::uint16_t get_from_leaves(const void* p) const {
    const std::uintptr_t slot = slot_of(p);
    if (slot >> (kRootBits + kLeafBits) != 0) return 0;
    const std::uint16_t* leaf = atomics::load_acquire(&root_[slot >> kLeafBits]);
    if (leaf == nullptr) return 0;
    return atomics::load_relaxed(&leaf[slot & kLeafMask]);
  }

 public:
  // Makes sure the slots of [p, p + bytes) can be set without any further system call;
  // false with errno = ENOMEM if a leaf could not be mapped (or p is out of range).
  bool prepare(const void* p, std::size_t bytes) {
    if (bytes == 0) return true;
    const auto start = reinterpret_cast<std::uintptr_t>(p);
    if (bytes - 1 > UINTPTR_MAX - start) return fail();  // wraps around
    const std::uintptr_t first = start >> kSlotShift, last = (start + bytes - 1) >> kSlotShift;
    if (last >> (kRootBits + kLeafBits) != 0) return fail();
    for (std::uintptr_t slot = first; slot <= last;) {
      if (window_tag(slot << kSlotShift) != nullptr) {  // mapped already: on past the window
        slot = (atomics::load_relaxed(&window_base_) + kWindowBytes) >> kSlotShift;
        continue;
      }
      if (leaf_at(slot >> kLeafBits) == nullptr) return false;
      slot = ((slot >> kLeafBits) + 1) << kLeafBits;
    }
    return true;
  }

  // Sets the tag of every slot of [p, p + bytes); the range must be prepare()d.
  void set(const void* p, std::size_t bytes, std::uint16_t tag) {
    if (bytes == 0) return;
    const auto start = reinterpret_cast<std::uintptr_t>(p);
    const std::uintptr_t first = start >> kSlotShift, last = (start + bytes - 1) >> kSlotShift;
    for (std::uintptr_t slot = first; slot <= last; ++slot) {
      atomics::store_relaxed(tag_of_slot(slot), tag);
    }
  }

 private:
  static constexpr std::uintptr_t kLeafMask = (std::uintptr_t{1} << kLeafBits) - 1;
  static constexpr std::size_t kLeafBytes = sizeof(std::uint16_t) << kLeafBits;
  static constexpr std::size_t kWindowTagBytes =
      sizeof(std::uint16_t) * (kWindowBytes >> kSlotShift);

  // Where the tag of `address` lies in the window, or nullptr if the window does not cover it.
  [[gnu::always_inline]] std::uint16_t* window_tag(std::uintptr_t address) const {
    const std::uintptr_t offset = address - atomics::load_relaxed(&window_base_);
    if (offset >= atomics::load_acquire(&window_bytes_)) return nullptr;
    return &window_tags_[offset >> kSlotShift];
  }
  // Where slot's tag is kept (its leaf prepared, if it lies outside the window).
  std::uint16_t* tag_of_slot(std::uintptr_t slot) {
    if (std::uint16_t* tag = window_tag(slot << kSlotShift)) return tag;
    return &atomics::load_acquire(&root_[slot >> kLeafBits])[slot & kLeafMask];
  }

  static std::uintptr_t slot_of(const void* p) {
    return reinterpret_cast<std::uintptr_t>(p) >> kSlotShift;
  }
  static bool fail() {
    errno = ENOMEM;
    return false;
  }

  // Leaf i, mapped and installed if it is missing; nullptr (errno = ENOMEM) if the mapping
  // failed. Two threads that race both map; the loser unmaps its copy. A leaf is mapped
  // with an unused page on each side: the kernel places it right next to the block mapping
  // that needed it, and a program that maps over the page next to a block it got (glibc's
  // tst-free-errno does, knowing glibc keeps nothing there) then hits a page nothing uses,
  // not the block's own tags.
  std::uint16_t* leaf_at(std::uintptr_t i) {
    std::uint16_t* leaf = atomics::load_acquire(&root_[i]);
    if (leaf != nullptr) return leaf;
    const std::size_t guard = page_size();
    auto* mapped = static_cast<unsigned char*>(os_map_metadata(kLeafBytes + 2 * guard));
    if (mapped == nullptr) return nullptr;
    auto* fresh = reinterpret_cast<std::uint16_t*>(mapped + guard);
    if (atomics::cas_acq_rel(&root_[i], leaf, fresh)) return fresh;
    os_unmap_metadata(mapped, kLeafBytes + 2 * guard);
    return leaf;
  }

  std::uint16_t* root_[std::size_t{1} << kRootBits] = {};
  // No address lies in the window until it is set (it is 0 bytes long until then).
  std::uintptr_t window_base_ = 0;
  std::uintptr_t window_bytes_ = 0;
  std::uint16_t* window_tags_ = nullptr;
  std::uint32_t window_claimed_ = 0;
};

}  // namespace polymalloc::platform
