// The operating system calls polymalloc makes, in one place: raw system calls (no libc
// bookkeeping, no allocation, async-signal-safe; under TSan the mapping calls go through
// libc so that its interceptors see them), each counted by the fault-injection seam.
// Every function returns nullptr/false on failure and sets errno (ENOMEM when injected).
#pragma once

#include <cstddef>
#include <cstdint>

#include "atomics/atomics.h"

namespace polymalloc::platform {

namespace detail {
inline constinit std::size_t g_page_size = 0;  // 0 until read (a benign race: one value)
std::size_t read_page_size();
}  // namespace detail

// Size of a page, read once from the auxiliary vector (no allocation, no locks). Inline: the
// large-block checks ask for it on every call.
inline std::size_t page_size() {
  const std::size_t page = atomics::load_relaxed(&detail::g_page_size);
  return page != 0 ? page : detail::read_page_size();
}

inline std::size_t round_up_to_page(std::size_t n) {
  const std::size_t page = page_size();
  return (n + page - 1) & ~(page - 1);
}

// Fresh zeroed read-write memory, or nullptr.
void* os_map(std::size_t bytes);
// The huge page size that os_map_huge aligns to (2 MiB on x86-64 and arm64 with 4 KiB pages).
inline constexpr std::size_t kHugePageBytes = std::size_t{2} << 20;
// An address rounded down and up to a huge page's boundary.
constexpr std::uintptr_t round_down_to_huge_page(std::uintptr_t address) {
  return address & ~(kHugePageBytes - 1);
}
constexpr std::uintptr_t round_up_to_huge_page(std::uintptr_t address) {
  return round_down_to_huge_page(address + kHugePageBytes - 1);
}
// Fresh zeroed read-write memory of `bytes`, aligned to kHugePageBytes and advised for
// transparent huge pages (MADV_HUGEPAGE) over its whole huge pages, or nullptr. A huge page
// is faulted in (and zeroed) whole on first touch: one fault in place of 512.
void* os_map_huge(std::size_t bytes);
// Advises the whole huge pages inside [address, address + bytes) for transparent huge pages
// (MADV_HUGEPAGE); the partial ones at either end keep small pages. Advice only: nothing
// changes where the kernel has no THP, and errno is kept.
void os_advise_huge(void* address, std::size_t bytes);
// The same, for the allocator's own bookkeeping (the page map, the caches' slot arrays),
// which it keeps for the life of the process: counted in os_metadata_bytes().
void* os_map_metadata(std::size_t bytes);
bool os_unmap_metadata(void* address, std::size_t bytes);
std::size_t os_metadata_bytes();
// Address space only (PROT_NONE, not committed, not counted against overcommit), or nullptr.
void* os_reserve(std::size_t bytes);
// The same at exactly `address`, or nullptr (EEXIST) if anything is mapped in the way: the
// way a reservation grows in place. Never replaces a mapping.
void* os_reserve_at(void* address, std::size_t bytes);
bool os_unmap(void* address, std::size_t bytes);
// Grows or shrinks a mapping made by os_map where it lies; false if it cannot grow there
// (the mapping is then untouched).
bool os_resize_in_place(void* address, std::size_t old_bytes, std::size_t new_bytes);
// Moves a mapping made by os_map onto `destination` (a mapping of new_bytes that the caller
// made, and which this replaces), resizing it on the way: the pages move, nothing is copied.
// false on failure, both mappings untouched.
bool os_move(void* address, std::size_t old_bytes, std::size_t new_bytes, void* destination);
// Moves the pages of [address, address + bytes) onto `destination` (memory the caller holds,
// whose first `bytes` this replaces) and leaves the source mapped and empty (it reads zero):
// mremap with MREMAP_DONTUNMAP (Linux 5.7), for memory that must stay mapped (an arena's).
// false, nothing changed, where it cannot (a kernel before 5.7, or a source the kernel will
// not move as one, such as one over several kernel mappings on older kernels).
bool os_move_leaving_source(void* address, std::size_t bytes, void* destination);
// Makes reserved pages usable (commit) or unusable and returns their memory (decommit).
bool os_commit(void* address, std::size_t bytes);
bool os_decommit(void* address, std::size_t bytes);
// Tells the kernel the pages' contents are no longer needed (they read back as zero).
bool os_release_pages(void* address, std::size_t bytes);
// The program break: current value, and an attempt to set it (returns the new break).
std::uintptr_t os_break_current();
bool os_break_set(std::uintptr_t new_break);

// write(2) that is not a cancellation point (a raw system call, unlike libc's write), so
// that output the allocator writes for a thread with a pending cancellation request runs to
// its end and leaves the request for the caller's next cancellation point, as glibc's own
// malloc_stats does. Retries a short write; false if the descriptor refused the rest.
bool os_write_all(int fd, const void* bytes, std::size_t length);

// Milliseconds of CLOCK_MONOTONIC_COARSE: the vDSO's copy of the time at the last scheduler
// tick (1 to 10 ms behind), so a read is a few loads, with no system call and no clock
// source read. Async-signal-safe.
std::uint64_t os_coarse_ms();

// A per-process random word from the kernel's AT_RANDOM bytes (a fixed constant if the
// auxiliary vector has none); never 0. No system call, no lock: any thread may ask.
std::uintptr_t os_random_word();

// Whether every page of [address, address + bytes) can be read now, asked of the kernel
// (process_vm_readv of a byte per page), so that a wrong guess costs EFAULT instead of a
// fault: for walking memory the allocator does not own (a stack by its frame pointers). At
// most 64 pages. Async-signal-safe.
bool os_readable(const void* address, std::size_t bytes);

// The value of environment variable `name`, or nullptr: a plain scan of `environ`, without
// getenv's locale or locking concerns, so callable from a signal handler.
const char* os_environment(const char* name);
// Whether environment variable `name` is set to something other than "" or "0".
bool os_environment_enables(const char* name);
// The environment's i-th entry ("NAME=value"), or nullptr past the last; no allocation.
const char* os_environment_at(std::size_t i);

}  // namespace polymalloc::platform
