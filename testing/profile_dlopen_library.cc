// A library that allocates while the dynamic loader holds its lock (its constructor runs
// inside dlopen) and in the work it is loaded for: profile_leak's dlopen mode.
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

std::vector<std::string>* g_words = nullptr;

[[gnu::constructor]] void allocate_under_the_loader_lock() {
  g_words = new std::vector<std::string>;
  for (int i = 0; i < 1000; ++i) g_words->push_back(std::string(100 + i % 300, 'w'));
}

[[gnu::destructor]] void free_under_the_loader_lock() { delete g_words; }

}  // namespace

extern "C" int profile_dlopen_work() {
  std::size_t total = 0;
  for (int i = 0; i < 1000; ++i) {
    void* p = std::malloc(1 + static_cast<std::size_t>(i) * 64);
    if (p == nullptr) return 1;
    std::memset(p, 1, 1);
    total += 1;
    std::free(p);
  }
  return g_words != nullptr && g_words->size() == 1000 && total == 1000 ? 0 : 1;
}
