// A multi-threaded program for the recorder's test: four threads allocate with malloc,
// calloc, new and posix_memalign, hand half their blocks to the next thread, which frees
// them (cross-thread frees), and realloc some of their own.
#include <stdlib.h>

#include <cstdio>
#include <mutex>
#include <thread>
#include <vector>

int main() {
  constexpr int kThreads = 4;
  std::mutex handover_lock;
  std::vector<void*> handover[kThreads];
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<void*> mine;
      for (int i = 0; i < 2000; ++i) {
        void* p = nullptr;
        switch (i % 4) {
          case 0:
            p = malloc(16 + i % 500);
            break;
          case 1:
            p = calloc(3, 8 + i % 100);
            break;
          case 2:
            p = new char[32 + i % 300];
            break;
          default:
            if (posix_memalign(&p, 64, 100 + i) != 0) p = nullptr;
        }
        if (i % 4 == 2) {
          delete[] static_cast<char*>(p);
          continue;
        }
        if (i % 7 == 0) p = realloc(p, 1000 + i);
        mine.push_back(p);
      }
      {
        std::lock_guard<std::mutex> guard(handover_lock);
        for (std::size_t i = 0; i < mine.size(); i += 2)
          handover[(t + 1) % kThreads].push_back(mine[i]);
      }
      for (std::size_t i = 1; i < mine.size(); i += 2) free(mine[i]);
    });
  }
  for (auto& t : threads) t.join();
  std::size_t freed = 0;
  std::vector<std::thread> freers;
  for (int t = 0; t < kThreads; ++t) {
    freed += handover[t].size();
    freers.emplace_back([&handover, t] {
      for (void* p : handover[t]) free(p);
    });
  }
  for (auto& t : freers) t.join();
  std::printf("recorder demo: %d threads, %zu blocks freed by another thread\n", kThreads, freed);
  return 0;
}
