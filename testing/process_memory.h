// The process's resident memory as Linux reports it, for the tools that measure allocators
// (memsim, the benchmarks, the tests): resident now, the peak since the last reset, the reset,
// and the virtual size.
#pragma once

#include <cstdint>
#include <string>

namespace polymalloc::testing {

// Resident bytes now (/proc/self/statm), 0 if unknown.
std::uint64_t resident_bytes();

// The peak resident bytes since the last reset_peak_resident() (VmHWM), or over the
// process's life where the kernel has no VmHWM (getrusage's ru_maxrss).
std::uint64_t peak_resident_bytes();

// The process's virtual memory now (VmSize): what RLIMIT_AS counts; 0 if unknown.
std::uint64_t virtual_memory_bytes();

// Starts a new peak window (Linux: "5" written to /proc/self/clear_refs resets VmHWM to the
// resident bytes now); false if the kernel refuses.
bool reset_peak_resident();

// The VmFlags line of the mapping (VMA) that holds `address`, from /proc/self/smaps (" hg":
// advised for transparent huge pages); its range in *start, *end. Empty if none holds it.
std::string vm_flags_at(const void* address, std::uintptr_t* start, std::uintptr_t* end);

}  // namespace polymalloc::testing
