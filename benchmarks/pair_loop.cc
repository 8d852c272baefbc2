// The loop the instruction counts measure: N malloc/free pairs of one size, either recycling
// one block (malloc, free, malloc, free …) or in batches of 32 freed in LIFO order. It calls
// the process's malloc, so it measures whichever allocator is preloaded.
//   pair_loop PAIRS SIZE recycle|batch
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

void* volatile sink;  // keeps every allocation observable

int usage(const char* why) {
  std::fprintf(stderr, "pair_loop: %s\nusage: pair_loop PAIRS SIZE recycle|batch\n", why);
  return 2;
}

bool parse(const char* text, long* value) {
  char* end = nullptr;
  *value = std::strtol(text, &end, 10);
  return end != text && *end == '\0' && *value > 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) return usage("three arguments expected");
  long pairs = 0, size = 0;
  if (!parse(argv[1], &pairs)) return usage("PAIRS must be a positive number");
  if (!parse(argv[2], &size)) return usage("SIZE must be a positive number");
  const bool batch = std::strcmp(argv[3], "batch") == 0;
  if (!batch && std::strcmp(argv[3], "recycle") != 0) return usage("mode must be recycle or batch");
  const auto bytes = static_cast<std::size_t>(size);
  if (!batch) {
    for (long i = 0; i < pairs; ++i) {
      void* p = std::malloc(bytes);
      sink = p;
      std::free(p);
    }
    return 0;
  }
  void* blocks[32];
  for (long i = 0; i < pairs / 32; ++i) {
    for (void*& p : blocks) sink = p = std::malloc(bytes);
    for (int k = 31; k >= 0; --k) std::free(blocks[k]);
  }
  return 0;
}
