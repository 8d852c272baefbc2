// A fuzz target for a variant's API (libFuzzer's entry point): the input is a sequence of
// allocation operations on 32 slots, mirrored in a shadow model. After every operation the
// target checks what the model knows: the block is non-null and aligned, its usable size
// covers the request, calloc's bytes are zero, the bytes a block was given (sampled: both
// ends and one per page) are still there when it is resized or freed, and the heap check
// passes. A failed check prints what and where, and aborts (libFuzzer saves the input).
//
// Each operation takes 4 bytes: kind, slot, and a 16-bit size code (a 12-bit mantissa shifted
// by a 4-bit exponent, capped at 8 MiB, so small and large sizes are both common).
#include <errno.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "variants/under_test.h"

namespace polymalloc::testing {
namespace {

const allocator::ApiTable& api = kUnderTest;
constexpr std::size_t kSlots = 32;
constexpr std::size_t kMaxBytes = std::size_t{8} << 20;
constexpr std::size_t kPage = 4096;

struct Slot {
  unsigned char* block = nullptr;
  std::size_t bytes = 0;
  std::uint8_t seed = 0;
};

[[noreturn]] void fail(const char* what, const void* block, std::size_t bytes) {
  std::fprintf(stderr, "api_fuzzer(%s): %s (block %p, %zu bytes)\n", api.name, what, block, bytes);
  std::abort();
}

unsigned char expected(std::uint8_t seed, std::size_t offset) {
  return static_cast<unsigned char>(seed * 31u + offset * 7u + (offset >> 12));
}

// Calls f(offset) for the sampled offsets of a block of `bytes`: 64 at each end, one per page.
template <class F>
void for_each_sample(std::size_t bytes, F f) {
  for (std::size_t i = 0; i < bytes && i < 64; ++i) f(i);
  for (std::size_t i = 64; i < bytes; i += kPage) f(i);
  for (std::size_t i = bytes > 64 ? bytes - 64 : 0; i < bytes; ++i) f(i);
}

void write_samples(const Slot& s) {
  for_each_sample(s.bytes, [&](std::size_t i) { s.block[i] = expected(s.seed, i); });
}

// Checks the samples written for s.bytes that lie below `upto` (what a realloc kept).
void check_samples(const Slot& s, std::size_t upto, const char* when) {
  for_each_sample(s.bytes, [&](std::size_t i) {
    if (i < upto && s.block[i] != expected(s.seed, i)) fail(when, s.block, i);
  });
}

void check_new_block(void* p, std::size_t bytes, std::size_t alignment) {
  if (p == nullptr) fail("a request the allocator should serve was refused", p, bytes);
  if (reinterpret_cast<std::uintptr_t>(p) % alignment != 0) fail("misaligned block", p, alignment);
  if (api.malloc_usable_size(p) < bytes) fail("usable size below the request", p, bytes);
}

void check_heap() {
  const void* where = nullptr;
  if (const char* problem = api.check_heap(&where)) fail(problem, where, 0);
}

void release(Slot& s) {
  if (s.block == nullptr) return;
  check_samples(s, s.bytes, "a block's bytes changed before free");
  api.free(s.block);
  s = Slot{};
}

std::size_t decode_size(std::uint8_t low, std::uint8_t high) {
  const std::size_t mantissa = low | std::size_t{high & 0x0fu} << 8;
  const std::size_t bytes = mantissa << (high >> 4 > 11 ? 11 : high >> 4);
  return bytes < kMaxBytes ? bytes : kMaxBytes;
}

// Block at alignment 16 << (code % 13): 16 B .. 64 KiB.
std::size_t decode_alignment(std::uint8_t code) { return std::size_t{16} << (code % 13); }

void apply(std::uint8_t kind, Slot& s, std::size_t bytes, std::uint8_t seed) {
  switch (kind % 7) {
    case 0:
    case 1: {  // malloc, calloc
      release(s);
      const bool zeroed = kind % 7 == 1;
      void* p = zeroed ? api.calloc(1, bytes) : api.malloc(bytes);
      check_new_block(p, bytes, 16);
      s = Slot{static_cast<unsigned char*>(p), bytes, seed};
      if (zeroed) {
        for_each_sample(bytes, [&](std::size_t i) {
          if (s.block[i] != 0) fail("calloc's block is not zero", s.block, i);
        });
      }
      write_samples(s);
      return;
    }
    case 2: {  // realloc (of an empty slot: malloc)
      if (s.block != nullptr) check_samples(s, s.bytes, "a block's bytes changed before realloc");
      void* p = api.realloc(s.block, bytes);
      check_new_block(p, bytes, 16);
      const std::size_t kept = s.bytes < bytes ? s.bytes : bytes;
      s.block = static_cast<unsigned char*>(p);
      check_samples(s, kept, "realloc lost bytes");  // the old size's samples, as far as kept
      s.bytes = bytes;
      write_samples(s);
      return;
    }
    case 3:
      release(s);
      return;
    case 4:
    case 5: {  // posix_memalign, aligned_alloc
      release(s);
      const std::size_t alignment = decode_alignment(seed);
      void* p = nullptr;
      if (kind % 7 == 4) {
        if (api.posix_memalign(&p, alignment, bytes) != 0) p = nullptr;
      } else {
        p = api.aligned_alloc(alignment, bytes);
      }
      check_new_block(p, bytes, alignment);
      s = Slot{static_cast<unsigned char*>(p), bytes, seed};
      write_samples(s);
      return;
    }
    default:  // malloc_trim: gives memory back; live blocks must not notice
      api.malloc_trim(bytes % 2 == 0 ? 0 : bytes);
      return;
  }
}

}  // namespace
}  // namespace polymalloc::testing

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace polymalloc::testing;
  Slot slots[kSlots];
  for (std::size_t i = 0; i + 4 <= size; i += 4) {
    const std::size_t bytes = decode_size(data[i + 2], data[i + 3]);
    apply(data[i], slots[data[i + 1] % kSlots], bytes == 0 ? 1 : bytes,
          static_cast<std::uint8_t>(data[i + 1] ^ data[i + 2]));
    check_heap();
  }
  for (Slot& s : slots) release(s);
  check_heap();
  return 0;
}
