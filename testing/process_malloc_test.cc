// The variant as the process's malloc (linked by name, as //:malloc is): libc's own
// allocations, operator new/delete in every form, the __libc_* aliases and the new-handler
// protocol all reach polymalloc.
#include <errno.h>
#include <gtest/gtest.h>
#include <malloc.h>
#include <polymalloc/polymalloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cstdint>
#include <new>
#include <string>
#include <vector>

extern "C" void* __libc_malloc(size_t) noexcept;
extern "C" void __libc_free(void*) noexcept;
extern "C" void* __libc_memalign(size_t, size_t) noexcept;
extern "C" void* __libc_calloc(size_t, size_t) noexcept;
extern "C" void* __libc_realloc(void*, size_t) noexcept;

namespace {

class ProcessMallocTest : public ::testing::Test {
 protected:
  void TearDown() override {
    const void* where = nullptr;
    const char* problem = polymalloc_check_heap(&where);
    EXPECT_EQ(problem, nullptr) << problem << " at " << where;
  }
};

std::size_t in_use() { return mallinfo2().uordblks + mallinfo2().hblkhd; }

TEST_F(ProcessMallocTest, TheProcessRunsOnThisVariant) {
  const char* expected = getenv("POLYMALLOC_EXPECTED_VARIANT");
  ASSERT_NE(expected, nullptr);
  EXPECT_STREQ(polymalloc_variant(), expected);
}

TEST_F(ProcessMallocTest, TheLibraryIsTheVersionItsHeaderNames) {
  EXPECT_STREQ(polymalloc_version(), POLYMALLOC_VERSION_STRING);
  const std::string from_macros = std::to_string(POLYMALLOC_VERSION_MAJOR) + "." +
                                  std::to_string(POLYMALLOC_VERSION_MINOR) + "." +
                                  std::to_string(POLYMALLOC_VERSION_PATCH);
  EXPECT_EQ(from_macros, POLYMALLOC_VERSION_STRING);
}

TEST_F(ProcessMallocTest, OperatorNewAndDeleteReachPolymalloc) {
  std::vector<char*> arrays;
  arrays.reserve(100);  // before the baseline: the vector's own block stays live
  const std::size_t before = in_use();
  for (int i = 0; i < 100; ++i) arrays.push_back(new char[1000]);
  auto* big = new std::uint64_t[1 << 18];  // 2 MiB: the large-object path
  EXPECT_GE(in_use(), before + 100 * 1000 + (std::size_t{2} << 20))
      << "polymalloc's statistics must see what operator new allocated";
  for (char* a : arrays) delete[] a;
  delete[] big;
  EXPECT_EQ(in_use(), before);
}

TEST_F(ProcessMallocTest, AlignedAndSizedForms) {
  struct alignas(256) Aligned {
    char bytes[300];
  };
  auto* one = new Aligned;
  auto* many = new Aligned[7];
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(one) % 256, 0u);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(many) % 256, 0u);
  memset(one, 1, sizeof(*one));
  delete one;  // sized and aligned delete
  delete[] many;
  void* raw = ::operator new (4096, std::align_val_t{4096});
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(raw) % 4096, 0u);
  ::operator delete (raw, 4096, std::align_val_t{4096});
  void* sized = ::operator new(48);
  ::operator delete(sized, 48);
}

TEST_F(ProcessMallocTest, ImpossibleNewThrowsAndNothrowReturnsNull) {
  const std::size_t huge = SIZE_MAX / 2;
  EXPECT_THROW(static_cast<void>(::operator new(huge)), std::bad_alloc);
  EXPECT_THROW(static_cast<void>(::operator new (huge, std::align_val_t{64})), std::bad_alloc);
  EXPECT_EQ(::operator new(huge, std::nothrow), nullptr);
  EXPECT_EQ(::operator new[](huge, std::align_val_t{64}, std::nothrow), nullptr);
}

int handler_calls = 0;
void give_up_handler() {
  ++handler_calls;
  std::set_new_handler(nullptr);  // the next failure throws
}

TEST_F(ProcessMallocTest, NewHandlerIsCalledBeforeBadAlloc) {
  handler_calls = 0;
  std::set_new_handler(give_up_handler);
  EXPECT_THROW(static_cast<void>(::operator new(SIZE_MAX / 2)), std::bad_alloc);
  EXPECT_EQ(handler_calls, 1);
  std::set_new_handler(give_up_handler);
  EXPECT_EQ(::operator new(SIZE_MAX / 2, std::nothrow), nullptr);
  EXPECT_EQ(handler_calls, 2);
}

TEST_F(ProcessMallocTest, LibcAliasesAreTheSameAllocator) {
  void* p = __libc_malloc(100);
  ASSERT_NE(p, nullptr);
  EXPECT_GE(malloc_usable_size(p), 100u);
  p = __libc_realloc(p, 5000);
  ASSERT_NE(p, nullptr);
  free(p);  // allocated through the alias, freed through the public name
  void* a = __libc_memalign(128, 10);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(a) % 128, 0u);
  __libc_free(a);
  auto* z = static_cast<unsigned char*>(__libc_calloc(10, 10));
  for (int i = 0; i < 100; ++i) EXPECT_EQ(z[i], 0);
  free(z);
}

TEST_F(ProcessMallocTest, LibcInternalAllocationsComeBackThroughFree) {
  char* copy = strdup("polymalloc");  // glibc calls malloc internally
  EXPECT_STREQ(copy, "polymalloc");
  free(copy);
  FILE* f = tmpfile();
  ASSERT_NE(f, nullptr);
  fputs("line one\nline two\n", f);
  rewind(f);
  char* line = nullptr;
  size_t capacity = 0;
  int lines = 0;
  while (getline(&line, &capacity, f) > 0) ++lines;
  EXPECT_EQ(lines, 2);
  free(line);
  fclose(f);
  std::string s;
  for (int i = 0; i < 10000; ++i) s += std::to_string(i);
  EXPECT_GT(s.size(), 30000u);
}

}  // namespace
