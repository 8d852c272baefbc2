// Raw system calls for memory, with the fault-injection seam in front of each.
#include "platform/os.h"

#include <errno.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "atomics/atomics.h"
#include "platform/fault_injection.h"
#include "platform/sanitizer_notes.h"

namespace polymalloc::platform {
namespace {

using atomics::AtomicWord;

AtomicWord<std::uint64_t> g_requests;
AtomicWord<std::uint64_t> g_fail_at;  // request number that fails; 0 = none
AtomicWord<std::uint64_t> g_fail_all;

constexpr std::uint64_t kNone = 0;

// A refused request sets errno like the kernel would.
bool refused() {
  if (FaultInjection::should_fail()) {
    errno = ENOMEM;
    return true;
  }
  return false;
}

// libc's syscall() returns -1 and sets errno on failure.
void* map_result(long raw) { return raw == -1 ? nullptr : reinterpret_cast<void*>(raw); }

long raw_mmap(void* address, std::size_t bytes, int protection, int flags) {
  if constexpr (kMapThroughLibc) {
    return reinterpret_cast<long>(mmap(address, bytes, protection, flags, -1, 0));
  }
  return syscall(SYS_mmap, address, bytes, protection, flags, -1, 0);
}

long raw_munmap(void* address, std::size_t bytes) {
  if constexpr (kMapThroughLibc) return munmap(address, bytes);
  return syscall(SYS_munmap, address, bytes);
}

// mremap with `flags`; `destination` is used with MREMAP_FIXED only.
long raw_mremap(void* address, std::size_t old_bytes, std::size_t new_bytes, int flags,
                void* destination) {
  if constexpr (kMapThroughLibc) {
    return reinterpret_cast<long>(mremap(address, old_bytes, new_bytes, flags, destination));
  }
  return syscall(SYS_mremap, address, old_bytes, new_bytes, flags, destination);
}

}  // namespace

void FaultInjection::fail_nth_request(std::uint64_t n) {
  g_fail_at.store_release(g_requests.load_acquire() + n);
}
void FaultInjection::fail_all_requests() { g_fail_all.store_release(1); }
void FaultInjection::disarm() {
  g_fail_at.store_release(kNone);
  g_fail_all.store_release(0);
}
std::uint64_t FaultInjection::requests_made() { return g_requests.load_acquire(); }

bool FaultInjection::should_fail() {
  const std::uint64_t number = g_requests.fetch_add_relaxed(1) + 1;
  if (g_fail_all.load_relaxed() != 0) return true;
  const std::uint64_t fail_at = g_fail_at.load_relaxed();
  return fail_at != kNone && number == fail_at;
}

std::size_t detail::read_page_size() {
  std::size_t page = getauxval(AT_PAGESZ);
  if (page == 0) page = 4096;
  atomics::store_relaxed(&g_page_size, page);
  return page;
}

void* os_map(std::size_t bytes) {
  if (refused()) return nullptr;
  return map_result(raw_mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS));
}

void* os_map_huge(std::size_t bytes) {
  if (refused()) return nullptr;
  if (bytes > SIZE_MAX - kHugePageBytes) {
    errno = ENOMEM;
    return nullptr;
  }
  // Over-mapped by a huge page less a page, then trimmed to the aligned part.
  const std::size_t over = bytes + kHugePageBytes - page_size();
  auto* mapped = static_cast<unsigned char*>(
      map_result(raw_mmap(nullptr, over, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)));
  if (mapped == nullptr) return nullptr;
  const auto address = reinterpret_cast<std::uintptr_t>(mapped);
  const std::size_t lead = round_up_to_huge_page(address) - address;
  if (lead != 0) raw_munmap(mapped, lead);
  if (over - lead != bytes) raw_munmap(mapped + lead + bytes, over - lead - bytes);
  os_advise_huge(mapped + lead, bytes);
  return mapped + lead;
}

void os_advise_huge(void* address, std::size_t bytes) {
  const auto start = reinterpret_cast<std::uintptr_t>(address);
  const std::uintptr_t first = round_up_to_huge_page(start);
  const std::uintptr_t last = round_down_to_huge_page(start + bytes);
  if (last <= first) return;
  // Advice only: a kernel without THP refuses it (EINVAL) and the pages stay small, which
  // work the same; errno is the caller's.
  const int saved = errno;
  syscall(SYS_madvise, first, last - first, MADV_HUGEPAGE);
  errno = saved;
}

namespace {
constinit std::size_t g_metadata_bytes = 0;
}  // namespace

void* os_map_metadata(std::size_t bytes) {
  void* mapped = os_map(bytes);
  if (mapped != nullptr) atomics::fetch_add_relaxed(&g_metadata_bytes, round_up_to_page(bytes));
  return mapped;
}

bool os_unmap_metadata(void* address, std::size_t bytes) {
  if (!os_unmap(address, bytes)) return false;
  atomics::fetch_add_relaxed(&g_metadata_bytes, -round_up_to_page(bytes));
  return true;
}

std::size_t os_metadata_bytes() { return atomics::load_relaxed(&g_metadata_bytes); }

void* os_reserve(std::size_t bytes) {
  if (refused()) return nullptr;
  return map_result(
      raw_mmap(nullptr, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE));
}

void* os_reserve_at(void* address, std::size_t bytes) {
  if (refused()) return nullptr;
  // Kernels before 4.17 take MAP_FIXED_NOREPLACE for a hint and may map elsewhere.
  void* got =
      map_result(raw_mmap(address, bytes, PROT_NONE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE));
  if (got == nullptr || got == address) return got;
  raw_munmap(got, bytes);
  errno = EEXIST;
  return nullptr;
}

bool os_unmap(void* address, std::size_t bytes) {
  // Never injected: giving memory back must not be made to fail by the seam, and callers
  // cannot do anything useful about a failed munmap.
  return raw_munmap(address, bytes) == 0;
}

bool os_resize_in_place(void* address, std::size_t old_bytes, std::size_t new_bytes) {
  if (refused()) return false;
  return map_result(raw_mremap(address, old_bytes, new_bytes, 0, nullptr)) == address;
}

bool os_move(void* address, std::size_t old_bytes, std::size_t new_bytes, void* destination) {
  if (refused()) return false;
  const long raw =
      raw_mremap(address, old_bytes, new_bytes, MREMAP_MAYMOVE | MREMAP_FIXED, destination);
  return map_result(raw) == destination;
}

bool os_move_leaving_source(void* address, std::size_t bytes, void* destination) {
  if (refused()) return false;
  const long raw = raw_mremap(address, bytes, bytes,
                              MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, destination);
  return map_result(raw) == destination;
}

bool os_commit(void* address, std::size_t bytes) {
  if (refused()) return false;
  return syscall(SYS_mprotect, address, bytes, PROT_READ | PROT_WRITE) == 0;
}

bool os_decommit(void* address, std::size_t bytes) {
  // Replacing the pages with a fresh PROT_NONE mapping returns their memory and keeps the
  // address range reserved, in one call. The range may later be unmapped and mapped again by
  // anyone: the allocator's poison goes with its pages.
  forget_poison(address, bytes);
  const long raw =
      raw_mmap(address, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED);
  return map_result(raw) == address;
}

bool os_release_pages(void* address, std::size_t bytes) {
  return syscall(SYS_madvise, address, bytes, MADV_DONTNEED) == 0;
}

std::uintptr_t os_break_current() { return static_cast<std::uintptr_t>(syscall(SYS_brk, 0)); }

bool os_break_set(std::uintptr_t new_break) {
  if (refused()) return false;
  // The kernel returns the (possibly unchanged) break; it failed if that is not what we asked.
  const auto result = static_cast<std::uintptr_t>(syscall(SYS_brk, new_break));
  if (result != new_break) {
    errno = ENOMEM;
    return false;
  }
  return true;
}

bool os_write_all(int fd, const void* bytes, std::size_t length) {
  const auto* next = static_cast<const unsigned char*>(bytes);
  while (length != 0) {
    const long n = syscall(SYS_write, fd, next, length);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    next += n;
    length -= static_cast<std::size_t>(n);
  }
  return true;
}

std::uint64_t os_coarse_ms() {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
  return static_cast<std::uint64_t>(now.tv_sec) * 1000 +
         static_cast<std::uint64_t>(now.tv_nsec) / 1000000;
}

std::uintptr_t os_random_word() {
  std::uintptr_t word = 0x9e3779b97f4a7c15u;
  if (const auto* random = reinterpret_cast<const void*>(getauxval(AT_RANDOM))) {
    std::uintptr_t bytes;
    __builtin_memcpy(&bytes, random, sizeof(bytes));  // 16 bytes at any alignment
    word ^= bytes;
  }
  return word | 1;
}

bool os_readable(const void* address, std::size_t bytes) {
  constexpr std::size_t kMaxPages = 64;
  const std::size_t page = page_size();
  const auto start = reinterpret_cast<std::uintptr_t>(address) & ~(page - 1);
  const auto end = reinterpret_cast<std::uintptr_t>(address) + (bytes != 0 ? bytes : 1);
  if (end < start) return false;  // wraps around the address space
  const std::size_t pages = (end - start + page - 1) / page;
  if (pages > kMaxPages) return false;
  char sink[kMaxPages];
  iovec local = {sink, pages};
  iovec remote[kMaxPages];
  for (std::size_t i = 0; i < pages; ++i) {
    remote[i] = {reinterpret_cast<void*>(start + i * page), 1};
  }
  const int saved = errno;
  const long got = syscall(SYS_process_vm_readv, static_cast<long>(syscall(SYS_getpid)), &local, 1L,
                           remote, static_cast<long>(pages), 0L);
  errno = saved;
  return got == static_cast<long>(pages);
}

const char* os_environment(const char* name) {
  if (environ == nullptr) return nullptr;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const char* e = *entry;
    const char* n = name;
    while (*n != '\0' && *e == *n) ++e, ++n;
    if (*n == '\0' && *e == '=') return e + 1;
  }
  return nullptr;
}

const char* os_environment_at(std::size_t i) {
  if (environ == nullptr) return nullptr;
  for (std::size_t k = 0; k < i; ++k) {
    if (environ[k] == nullptr) return nullptr;
  }
  return environ[i];
}

bool os_environment_enables(const char* name) {
  const char* value = os_environment(name);
  return value != nullptr && value[0] != '\0' && !(value[0] == '0' && value[1] == '\0');
}

}  // namespace polymalloc::platform
