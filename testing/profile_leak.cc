// The heap profiler's end-to-end program (heap_profile_test.sh), run with a variant preloaded:
//   profile_leak leak         leaks 96 MiB from leak_96_mib() (in two threads), keeps 8 MiB
//                             from keep_8_mib(), frees everything else it allocates, and exits
//                             (the profile is written at exit)
//   profile_leak dump PATH    the same, then writes the profile to PATH on demand
//   profile_leak dlopen LIB   loads LIB, whose constructor allocates under the loader's lock,
//                             calls its function, and unloads it
//   profile_leak off          checks that a dump on demand fails with ENOTSUP
//   profile_leak signals      for 2 s, a thread signals the main thread, whose handler
//                             allocates and frees, while the main thread allocates and frees
//                             (signal_safe: sampling inside a signal handler that interrupted
//                             malloc, and sampling interrupted by one)
// Built with frame pointers (the project's copts), as a program to be profiled must be.
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>

#include <atomic>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <thread>

namespace {

constexpr std::size_t kMiB = std::size_t{1} << 20;

// Where the leaked and kept blocks stay reachable (not in malloc'd memory of their own).
void* g_held[1 << 16];
std::size_t g_count = 0;

void hold(void* p) {
  if (p == nullptr || g_count == sizeof(g_held) / sizeof(g_held[0])) {
    std::fprintf(stderr, "profile_leak: out of memory or room\n");
    std::exit(3);
  }
  g_held[__atomic_fetch_add(&g_count, 1, __ATOMIC_RELAXED)] = p;
}

// The block sizes the two functions allocate: 1 KiB to 64 KiB.
constexpr std::size_t kSizes[] = {1024, 4096, 24576, 65536, 12288};

// Work that leaves nothing behind: small blocks (some freed by sized delete), big ones (sampled where they are served,
// and looked up when freed), and buffers grown by realloc up to 1 MiB (their samples move
// with them). Half the big ones shrink to a small block first, which free() does not look
// up: the sample goes at the shrink. A sample that free() or realloc failed to forget would
// show in the profile: about 600 MiB pass through here.
void churn() {
  for (int i = 0; i < 200000; ++i) {
    void* p = std::malloc(16 + static_cast<std::size_t>(i % 2000));
    asm volatile("" : : "r"(p) : "memory");
    std::free(p);
  }
  for (int i = 0; i < 100000; ++i) {  // sized deletes: a sample's bigger block is no misuse
    const std::size_t n = 16 + static_cast<std::size_t>(i % 500);
    void* p = ::operator new(n);
    asm volatile("" : : "r"(p) : "memory");
    ::operator delete(p, n);
  }
  for (int i = 0; i < 2000; ++i) {
    void* p = std::malloc(40000 + static_cast<std::size_t>(i % 7) * 30000);
    asm volatile("" : : "r"(p) : "memory");
    if (i % 2 == 1) p = std::realloc(p, 64);  // shrunk in place, to a block the caches take
    std::free(p);
  }
  for (int i = 0; i < 200; ++i) {
    void* p = nullptr;
    for (std::size_t n = 16384; n <= kMiB; n *= 2) {
      p = std::realloc(p, n);
      if (p == nullptr) std::exit(3);
      static_cast<char*>(p)[n - 1] = 1;
    }
    std::free(p);
  }
}

std::atomic<long> g_handled{0};

void allocate_in_handler(int) {
  const int saved = errno;
  for (int i = 0; i < 4; ++i) {
    void* p = std::malloc(64 + static_cast<std::size_t>(i) * 4000);
    if (p == nullptr) std::abort();
    std::free(p);
  }
  g_handled.fetch_add(1, std::memory_order_relaxed);
  errno = saved;
}

int signal_storm() {
  struct sigaction action = {};
  action.sa_handler = allocate_in_handler;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  if (sigaction(SIGUSR1, &action, nullptr) != 0) return 9;
  const pthread_t target = pthread_self();
  std::atomic<bool> stop{false};
  std::thread signaller([&] {
    while (!stop.load(std::memory_order_relaxed)) pthread_kill(target, SIGUSR1);
  });
  timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  long pairs = 0;
  do {
    for (int i = 0; i < 1000; ++i, ++pairs) {
      void* p = std::malloc(16 + static_cast<std::size_t>(pairs % 3000));
      asm volatile("" : : "r"(p) : "memory");
      std::free(p);
    }
    clock_gettime(CLOCK_MONOTONIC, &now);
  } while (now.tv_sec - start.tv_sec < 2);
  stop = true;
  signaller.join();
  std::printf("profile_leak: %ld pairs, %ld handlers\n", pairs, g_handled.load());
  return g_handled.load() > 0 ? 0 : 10;
}

}  // namespace

// Each allocates in its own body (not through a shared helper), so that it is the function
// the profile names.
extern "C" [[gnu::noinline]] void leak_96_mib(std::size_t bytes) {
  for (std::size_t held = 0, i = 0; held < bytes; ++i) {
    const std::size_t n = kSizes[i % 5];
    void* p = std::malloc(n);
    hold(p);
    std::memset(p, 0x5a, n);
    held += n;
  }
}

extern "C" [[gnu::noinline]] void keep_8_mib() {
  for (std::size_t held = 0, i = 0; held < 8 * kMiB; ++i) {
    const std::size_t n = kSizes[(i + 2) % 5];
    void* p = std::malloc(n);
    hold(p);
    std::memset(p, 0x33, n);
    held += n;
  }
}

int main(int argc, char** argv) {
  using Dump = int (*)(const char*);
  auto dump = reinterpret_cast<Dump>(dlsym(RTLD_DEFAULT, "polymalloc_dump_heap_profile"));
  const char* mode = argc >= 2 ? argv[1] : "";
  if (std::strcmp(mode, "leak") == 0 || (std::strcmp(mode, "dump") == 0 && argc == 3)) {
    std::thread other(leak_96_mib, 48 * kMiB);  // half of it in a second thread
    leak_96_mib(48 * kMiB);
    other.join();
    keep_8_mib();
    churn();
    if (argc == 3) {
      if (dump == nullptr) return 4;  // polymalloc is not the process malloc
      if (dump(argv[2]) != 0) {
        std::perror("profile_leak: polymalloc_dump_heap_profile");
        return 5;
      }
    }
    return 0;
  }
  if (std::strcmp(mode, "dlopen") == 0 && argc == 3) {
    void* library = dlopen(argv[2], RTLD_NOW | RTLD_LOCAL);
    if (library == nullptr) {
      std::fprintf(stderr, "profile_leak: %s\n", dlerror());
      return 6;
    }
    using Work = int (*)();
    auto work = reinterpret_cast<Work>(dlsym(library, "profile_dlopen_work"));
    const int result = work != nullptr ? work() : -1;
    dlclose(library);
    return result == 0 ? 0 : 7;
  }
  if (std::strcmp(mode, "off") == 0) {
    if (dump == nullptr) return 4;
    errno = 0;
    return dump("/dev/null") == -1 && errno == ENOTSUP ? 0 : 8;
  }
  if (std::strcmp(mode, "signals") == 0) return signal_storm();
  std::fprintf(stderr, "usage: profile_leak leak | dump PATH | dlopen LIBRARY | off | signals\n");
  return 2;
}
