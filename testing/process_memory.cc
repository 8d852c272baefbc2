#include "testing/process_memory.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

namespace polymalloc::testing {

std::uint64_t resident_bytes() {
  long pages = 0, resident = 0;
  if (std::FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return static_cast<std::uint64_t>(resident) * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
}

namespace {

// A "Name:   N kB" field of /proc/self/status, in kB; 0 if it is not there.
unsigned long status_kib(const char* format) {
  unsigned long kib = 0;
  if (std::FILE* f = std::fopen("/proc/self/status", "r")) {
    char line[256];
    while (std::fgets(line, sizeof(line), f) != nullptr) {
      if (std::sscanf(line, format, &kib) == 1) break;
    }
    std::fclose(f);
  }
  return kib;
}

}  // namespace

std::uint64_t peak_resident_bytes() {
  unsigned long kib = status_kib("VmHWM: %lu kB");
  if (kib == 0) {
    struct rusage usage = {};
    getrusage(RUSAGE_SELF, &usage);
    kib = static_cast<unsigned long>(usage.ru_maxrss);
  }
  return static_cast<std::uint64_t>(kib) * 1024;
}

std::uint64_t virtual_memory_bytes() {
  return static_cast<std::uint64_t>(status_kib("VmSize: %lu kB")) * 1024;
}

bool reset_peak_resident() {
  const int fd = open("/proc/self/clear_refs", O_WRONLY);
  if (fd < 0) return false;
  const bool ok = write(fd, "5", 1) == 1;
  close(fd);
  return ok;
}

std::string vm_flags_at(const void* address, std::uintptr_t* start, std::uintptr_t* end) {
  std::ifstream smaps("/proc/self/smaps");
  const auto where = reinterpret_cast<std::uintptr_t>(address);
  bool inside = false;
  for (std::string line; std::getline(smaps, line);) {
    std::uintptr_t from = 0, to = 0;
    char dash = 0;
    std::istringstream range(line);
    if (range >> std::hex >> from >> dash >> to && dash == '-' && line.find(' ') != line.npos &&
        line.find(':') > line.find(' ')) {
      inside = from <= where && where < to;
      if (inside) *start = from, *end = to;
    } else if (inside && line.rfind("VmFlags:", 0) == 0) {
      return line;
    }
  }
  return "";
}

}  // namespace polymalloc::testing
