// libtrace_recorder.so: an LD_PRELOAD shim that records every malloc-family call of a program
// into $POLYMALLOC_TRACE_FILE in the trace format (trace_format.h), for memsim to replay
// against any allocator. C++ operator new/delete reach it through libstdc++'s malloc/free.
//
// It forwards to glibc's own allocator (__libc_malloc …) and never allocates through malloc
// itself: the address → slot map, the free slot numbers and the output buffer live in memory
// from mmap, writes are raw write(2) calls of a 64 KiB buffer. One lock orders the records;
// an allocation is recorded before its address can reach another thread, a free before the
// address can be handed out again, and a realloc under the lock, so the trace's order is an
// order the program could have run in. Thread ids are assigned on each thread's first call.
// A fork child writes its own file ($POLYMALLOC_TRACE_FILE.<pid>), which starts with the
// blocks it inherited, record by record (a child often leaves by _exit, which runs no exit
// handler), and so does a program exec'd by a recorded process. At exit the buffer is
// flushed and the trace ends with `e`.
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <cstdint>
#include <cstring>

#include "testing/trace/trace_format.h"

extern "C" {
void* __libc_malloc(size_t);
void __libc_free(void*);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
}

namespace polymalloc::testing {
namespace {

// Memory for the recorder's tables, straight from the OS.
void* os_map(std::size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

class Lock {
 public:
  void lock() {
    while (flag_.exchange(true, std::memory_order_acquire)) {
      while (flag_.load(std::memory_order_relaxed)) sched_yield();
    }
  }
  void unlock() { flag_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> flag_{false};
};

// Live blocks: address → (slot, size), open addressing over an mmap'd table that doubles.
class BlockMap {
 public:
  struct Entry {
    std::uintptr_t address;  // 0: empty, 1: deleted
    std::uint64_t slot;
    std::uint64_t size;
  };

  bool insert(std::uintptr_t address, std::uint64_t slot, std::uint64_t size) {
    if ((used_ + 1) * 2 > capacity_ && !grow()) return false;
    Entry* e = find_slot_for(address);
    if (e->address <= kDeleted) ++used_;
    *e = Entry{address, slot, size};
    return true;
  }

  // The entry of a live address, or nullptr.
  Entry* find(std::uintptr_t address) {
    if (capacity_ == 0) return nullptr;
    for (std::size_t i = hash(address);; i = (i + 1) & (capacity_ - 1)) {
      if (table_[i].address == address) return &table_[i];
      if (table_[i].address == kEmpty) return nullptr;
    }
  }

  void erase(Entry* e) { e->address = kDeleted; }  // stays counted in used_ until a rehash

  template <class F>
  void for_each(F f) const {
    for (std::size_t i = 0; i < capacity_; ++i) {
      if (table_[i].address > kDeleted) f(table_[i]);
    }
  }

 private:
  static constexpr std::uintptr_t kEmpty = 0, kDeleted = 1;

  std::size_t hash(std::uintptr_t a) const {
    return static_cast<std::size_t>((a >> 4) * 0x9e3779b97f4a7c15u >> 20) & (capacity_ - 1);
  }
  Entry* find_slot_for(std::uintptr_t address) {
    Entry* deleted = nullptr;
    for (std::size_t i = hash(address);; i = (i + 1) & (capacity_ - 1)) {
      if (table_[i].address == address) return &table_[i];
      if (table_[i].address == kDeleted && deleted == nullptr) deleted = &table_[i];
      if (table_[i].address == kEmpty) return deleted != nullptr ? deleted : &table_[i];
    }
  }
  bool grow() {
    const std::size_t capacity = capacity_ == 0 ? 1 << 16 : capacity_ * 2;
    auto* table = static_cast<Entry*>(os_map(capacity * sizeof(Entry)));
    if (table == nullptr) return false;
    Entry* old = table_;
    const std::size_t old_capacity = capacity_;
    table_ = table;
    capacity_ = capacity;
    used_ = 0;
    for (std::size_t i = 0; i < old_capacity; ++i) {
      if (old[i].address > kDeleted) {
        *find_slot_for(old[i].address) = old[i];
        ++used_;
      }
    }
    if (old != nullptr) munmap(old, old_capacity * sizeof(Entry));
    return true;
  }

  Entry* table_ = nullptr;
  std::size_t capacity_ = 0;
  std::size_t used_ = 0;
};

// Slot numbers: freed ones are reused (most recent first), so traces keep small slot tables.
class SlotNumbers {
 public:
  std::uint64_t take() {
    if (free_count_ > 0) return free_[--free_count_];
    return next_++;
  }
  bool give_back(std::uint64_t slot) {
    if (free_count_ == free_capacity_) {
      const std::size_t capacity = free_capacity_ == 0 ? 1 << 16 : free_capacity_ * 2;
      auto* bigger = static_cast<std::uint64_t*>(os_map(capacity * sizeof(std::uint64_t)));
      if (bigger == nullptr) return false;
      if (free_ != nullptr) {
        std::memcpy(bigger, free_, free_count_ * sizeof(std::uint64_t));
        munmap(free_, free_capacity_ * sizeof(std::uint64_t));
      }
      free_ = bigger;
      free_capacity_ = capacity;
    }
    free_[free_count_++] = slot;
    return true;
  }
  void reset() { next_ = 0, free_count_ = 0; }

 private:
  std::uint64_t* free_ = nullptr;
  std::size_t free_count_ = 0, free_capacity_ = 0;
  std::uint64_t next_ = 0;
};

class Recorder {
 public:
  // Called under no lock, once, before the first record (from the library's constructor).
  void start() {
    const char* file = getenv("POLYMALLOC_TRACE_FILE");
    if (file == nullptr || file[0] == '\0') {
      static const char kWarning[] =
          "trace_recorder: POLYMALLOC_TRACE_FILE is not set; recording nothing\n";
      (void)!write(STDERR_FILENO, kWarning, sizeof(kWarning) - 1);
      return;
    }
    const std::size_t length = std::strlen(file);
    if (length + 24 > sizeof(path_)) {
      static const char kTooLong[] = "trace_recorder: POLYMALLOC_TRACE_FILE is too long\n";
      (void)!write(STDERR_FILENO, kTooLong, sizeof(kTooLong) - 1);
      return;
    }
    std::memcpy(path_, file, length + 1);
    // A program exec'd by a recorded one (the variable is inherited) gets a file of its own
    // rather than truncating its ancestor's.
    char pid[24];
    append_pid(pid);
    const char* owner = getenv("POLYMALLOC_TRACE_OWNER");
    char own_path[sizeof(path_)];
    std::memcpy(own_path, path_, length + 1);
    if (owner != nullptr && std::strcmp(owner, pid + 1) != 0) append_pid(own_path + length);
    setenv("POLYMALLOC_TRACE_OWNER", pid + 1, 1);  // before recording starts: may allocate
    open_output(own_path);
  }

  bool on() const { return fd_.load(std::memory_order_acquire) >= 0; }

  void record_allocation(void* p, TraceOp::Kind kind, std::uint64_t size, std::uint64_t extra) {
    if (p == nullptr || !on()) return;
    lock_.lock();
    TraceOp op{kind, thread_id(), slots_.take(), size, extra};
    if (blocks_.insert(reinterpret_cast<std::uintptr_t>(p), op.slot, allocated_size(op))) emit(op);
    lock_.unlock();
  }

  void record_free(void* p) {
    if (p == nullptr || !on()) return;
    lock_.lock();
    if (BlockMap::Entry* e = blocks_.find(reinterpret_cast<std::uintptr_t>(p))) {
      emit(TraceOp{TraceOp::Kind::kFree, thread_id(), e->slot, 0, 0});
      slots_.give_back(e->slot);
      blocks_.erase(e);
    }
    lock_.unlock();
  }

  // realloc runs under the lock, so that nobody can be handed p's old address and record
  // it before this record says p moved.
  void* realloc_recorded(void* p, std::size_t n) {
    if (!on()) return __libc_realloc(p, n);
    lock_.lock();
    void* q = __libc_realloc(p, n);
    BlockMap::Entry* e = p != nullptr ? blocks_.find(reinterpret_cast<std::uintptr_t>(p)) : nullptr;
    if (n == 0 && p != nullptr) {  // glibc frees p
      if (e != nullptr) {
        emit(TraceOp{TraceOp::Kind::kFree, thread_id(), e->slot, 0, 0});
        slots_.give_back(e->slot);
        blocks_.erase(e);
      }
    } else if (q != nullptr) {
      const std::uint64_t slot = e != nullptr ? e->slot : slots_.take();
      if (e != nullptr) blocks_.erase(e);
      if (blocks_.insert(reinterpret_cast<std::uintptr_t>(q), slot, n)) {
        emit(TraceOp{TraceOp::Kind::kRealloc, thread_id(), slot, n, 0});
      }
    }
    lock_.unlock();
    return q;
  }

  void prepare_fork() { lock_.lock(); }
  void after_fork_in_parent() { lock_.unlock(); }
  // The child's own trace: a fresh file, the inherited blocks allocated first (thread 0), the
  // parent's unwritten records dropped (the parent writes them).
  void after_fork_in_child() {
    const int old = fd_.exchange(-1);
    if (old >= 0) {
      close(old);
      char child_path[sizeof(path_)];
      std::memcpy(child_path, path_, sizeof(path_));
      append_pid(child_path + std::strlen(child_path));
      buffered_ = 0;
      next_thread_.store(1);
      my_thread_ = 0;
      open_output(child_path);
      blocks_.for_each([this](const BlockMap::Entry& e) {
        emit(TraceOp{TraceOp::Kind::kMalloc, 0, e.slot, e.size, 0});
      });
      flush();
      write_through_ = true;
    }
    lock_.unlock();
  }

  void finish() {
    if (!on()) return;
    lock_.lock();
    emit(TraceOp{TraceOp::Kind::kEnd, 0, 0, 0, 0});
    flush();
    close(fd_.exchange(-1));
    lock_.unlock();
  }

 private:
  static std::uint64_t allocated_size(const TraceOp& op) {
    return op.kind == TraceOp::Kind::kCalloc ? op.size * op.extra : op.size;
  }

  void open_output(const char* path) {
    const int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
      static const char kCannot[] =
          "trace_recorder: cannot open POLYMALLOC_TRACE_FILE; recording nothing\n";
      (void)!write(STDERR_FILENO, kCannot, sizeof(kCannot) - 1);
      return;
    }
    fd_.store(fd, std::memory_order_release);
    static const char kHeader[] = "# recorded by libtrace_recorder.so\n";
    append(kHeader, sizeof(kHeader) - 1);
  }

  static void append_pid(char* out) {
    *out++ = '.';
    char digits[16];
    int n = 0;
    for (unsigned pid = static_cast<unsigned>(getpid()); pid != 0 || n == 0; pid /= 10) {
      digits[n++] = static_cast<char>('0' + pid % 10);
    }
    while (n > 0) *out++ = digits[--n];
    *out = '\0';
  }

  std::uint32_t thread_id() {
    if (my_thread_ < 0) my_thread_ = static_cast<int>(next_thread_.fetch_add(1));
    const int id = my_thread_;
    return static_cast<std::uint32_t>(id > static_cast<int>(kMaxTraceThread) ? kMaxTraceThread
                                                                             : id);
  }

  void emit(const TraceOp& op) {
    char line[kMaxTraceLine];
    append(line, format_trace_op(op, line));
    if (write_through_) flush();
  }
  void append(const char* text, std::size_t n) {
    if (buffered_ + n > sizeof(buffer_)) flush();
    std::memcpy(buffer_ + buffered_, text, n);
    buffered_ += n;
  }
  void flush() {
    const int fd = fd_.load(std::memory_order_relaxed);
    for (std::size_t done = 0; done < buffered_ && fd >= 0;) {
      const ssize_t n = write(fd, buffer_ + done, buffered_ - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;  // a full disk: the trace is cut short, the program goes on
      done += static_cast<std::size_t>(n);
    }
    buffered_ = 0;
  }

  Lock lock_;
  std::atomic<int> fd_{-1};
  BlockMap blocks_;
  SlotNumbers slots_;
  std::atomic<std::uint32_t> next_thread_{0};  // the first thread to call is thread 0
  bool write_through_ = false;                 // in a fork child: it may leave by _exit
  static inline thread_local int my_thread_ [[gnu::tls_model("initial-exec")]] = -1;
  char path_[4096] = {};
  char buffer_[64 << 10] = {};
  std::size_t buffered_ = 0;
};

constinit Recorder recorder;

__attribute__((constructor)) void start_recording() {
  pthread_atfork([] { recorder.prepare_fork(); }, [] { recorder.after_fork_in_parent(); },
                 [] { recorder.after_fork_in_child(); });
  recorder.start();
}
__attribute__((destructor)) void finish_recording() { recorder.finish(); }

using Kind = TraceOp::Kind;

}  // namespace
}  // namespace polymalloc::testing

using polymalloc::testing::Kind;
using polymalloc::testing::recorder;

extern "C" {

void* malloc(size_t n) {
  void* p = __libc_malloc(n);
  recorder.record_allocation(p, Kind::kMalloc, n, 0);
  return p;
}

void free(void* p) {
  recorder.record_free(p);
  __libc_free(p);
}

void* calloc(size_t count, size_t size) {
  void* p = __libc_calloc(count, size);
  recorder.record_allocation(p, Kind::kCalloc, size, count);
  return p;
}

void* realloc(void* p, size_t n) { return recorder.realloc_recorded(p, n); }

void* reallocarray(void* p, size_t count, size_t size) {
  size_t bytes;
  if (__builtin_mul_overflow(count, size, &bytes)) {
    errno = ENOMEM;
    return nullptr;
  }
  return realloc(p, bytes);
}

void* memalign(size_t alignment, size_t n) {
  void* p = __libc_memalign(alignment, n);
  // glibc rounds an alignment that is not a power of two up to one; so does the record.
  recorder.record_allocation(p, Kind::kAligned, n, alignment < 16 ? 16 : std::bit_ceil(alignment));
  return p;
}

int posix_memalign(void** out, size_t alignment, size_t n) {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0 || alignment % sizeof(void*) != 0) {
    return EINVAL;
  }
  void* p = memalign(alignment, n);
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}

void* aligned_alloc(size_t alignment, size_t n) {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
    errno = EINVAL;
    return nullptr;
  }
  return memalign(alignment, n);
}

void* valloc(size_t n) { return memalign(static_cast<size_t>(sysconf(_SC_PAGESIZE)), n); }

void* pvalloc(size_t n) {
  const auto page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return memalign(page, (n + page - 1) & ~(page - 1));
}

}  // extern "C"
