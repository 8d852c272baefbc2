// Small heap-misuse programs, one per case, for comparing what allocators catch
// (misuse_suite.py runs this with each allocator preloaded). Usage:
//   misuse_cases CASE SIZE
// makes the misuse named CASE on a block of SIZE bytes, then carries on as a program would
// (more allocations, frees), and prints "survived" and exits 0 if nothing stopped it.
// Every overwrite flips the bits of the bytes it hits, so that it changes them whatever
// they held (a canary byte set to a chosen value might by chance already hold it).
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

// The misuse is the point: gcc's warnings about it are expected here.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic ignored "-Wuse-after-free"
#pragma GCC diagnostic ignored "-Wfree-nonheap-object"
#endif

namespace {

// Hides a pointer from the optimizer, so that it cannot see the misuse and fold it away
// (or warn it out of the program).
template <typename T>
T* opaque(T* p) {
  asm volatile("" : "+r"(p));
  return p;
}

unsigned char* allocate(std::size_t n) {
  auto* p = static_cast<unsigned char*>(opaque(std::malloc(n)));
  if (p == nullptr) {
    std::fprintf(stderr, "misuse_cases: malloc(%zu) failed\n", n);
    std::exit(3);
  }
  std::memset(p, 0x5a, n);
  return p;
}

void flip(unsigned char* from, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) opaque(from)[i] ^= 0xff;
}

// What a program does next: allocates and frees blocks of the same size (the freed block's
// class), enough calls for an allocator that checks its heap every thousand or so.
void carry_on(std::size_t n) {
  void* held[16];
  for (int round = 0; round < 128; ++round) {
    for (void*& p : held) p = opaque(std::malloc(n));
    for (void* p : held) std::free(p);
  }
}

void overflow(std::size_t n, std::size_t past) {
  unsigned char* p = allocate(n);
  flip(p + n, past);
  std::free(p);
  carry_on(n);
}

void underflow(std::size_t n, std::size_t before) {
  unsigned char* p = allocate(n);
  flip(p - before, before);
  std::free(p);
  carry_on(n);
}

void write_after_free(std::size_t n, std::size_t offset, std::size_t count) {
  unsigned char* p = allocate(n);
  std::free(p);
  flip(p + offset, count);
  carry_on(n);
}

struct Case {
  const char* name;
  void (*make)(std::size_t n);
};

// The cases, in the order the suite reports them.
constexpr Case kCases[] = {
    {"double_free",
     [](std::size_t n) {
       unsigned char* p = allocate(n);
       std::free(p);
       std::free(opaque(p));
     }},
    {"free_interior", [](std::size_t n) { std::free(allocate(n) + n / 2); }},
    {"free_stack",
     [](std::size_t) {
       unsigned char local[64];
       std::free(opaque(local));
     }},
    {"realloc_freed",
     [](std::size_t n) {
       unsigned char* p = allocate(n);
       std::free(p);
       std::free(std::realloc(opaque(p), 2 * n));
     }},
    {"overflow_1", [](std::size_t n) { overflow(n, 1); }},
    {"overflow_8", [](std::size_t n) { overflow(n, 8); }},
    {"overflow_31", [](std::size_t n) { overflow(n, 31); }},
    {"overflow_32", [](std::size_t n) { overflow(n, 32); }},
    {"underflow_8", [](std::size_t n) { underflow(n, 8); }},
    {"underflow_32", [](std::size_t n) { underflow(n, 32); }},
    {"uaf_first_word", [](std::size_t n) { write_after_free(n, 0, 8); }},
    {"uaf_middle", [](std::size_t n) { write_after_free(n, n / 2, 1); }},
    {"malloc0_write",
     [](std::size_t) {
       auto* p = static_cast<unsigned char*>(opaque(std::malloc(0)));
       flip(p, 1);
       std::free(p);
       carry_on(16);
     }},
    {"sized_delete_mismatch",
     [](std::size_t n) {
       void* p = opaque(::operator new(n));
       ::operator delete(p, 2 * n + 4096);
       carry_on(n);
     }},
};

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::strcmp(argv[1], "--list") == 0) {
    for (const Case& c : kCases) std::printf("%s\n", c.name);
    return 0;
  }
  char* end = nullptr;
  const unsigned long long n = argc == 3 ? std::strtoull(argv[2], &end, 10) : 0;
  if (argc != 3 || end == argv[2] || *end != '\0' || n < 8 || n > (1ull << 30)) {
    std::fprintf(stderr,
                 "usage: misuse_cases CASE SIZE (SIZE from 8 to 1073741824 bytes), or "
                 "misuse_cases --list\n");
    return 2;
  }
  for (const Case& c : kCases) {
    if (std::strcmp(c.name, argv[1]) != 0) continue;
    c.make(static_cast<std::size_t>(n));
    std::printf("survived\n");
    return 0;
  }
  std::fprintf(stderr, "misuse_cases: unknown case '%s' (misuse_cases --list names them)\n",
               argv[1]);
  return 2;
}
