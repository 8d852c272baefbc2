// memsim: replays an allocation trace (trace_format.h) against one allocator and reports
// time, peak RSS, peak live bytes and their ratio. Its own tables (the parsed operations,
// the slots) come straight from mmap, so the allocator under test serves only the trace.
// A multi-threaded trace replays on that many threads; an operation on a slot waits until
// every earlier operation on that slot (in trace order, on whatever thread) is done, so
// cross-thread frees happen as recorded.
//   memsim [--allocator VARIANT|system] [--json FILE]
//          [--verify] [--idle-ms N] [--breakdown] TRACE
// `system` is the process's own malloc: run memsim under LD_PRELOAD to measure any peer.
// Each new block gets one byte written per page (so resident memory means something);
// --verify also marks each block's first and last byte and checks them before it is freed
// or resized. --breakdown reports where a variant's memory goes at the replay's peak live
// bytes (its statistics' breakdown, taken as live bytes near the peak reach new highs: a walk
// of the heaps each time, which the reported time includes). --idle-ms N adds the idle phase: every block the trace left live is freed, the
// process sleeps N ms, makes one more malloc and free of 1 MiB (a slow path in every
// allocator: in a polymalloc variant, its tick gives back what sat unused past
// POLYMALLOC_RELEASE_DELAY_MS; fast paths read no clock), and reports the RSS.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "benchmarks/system_malloc.h"
#include "testing/process_memory.h"
#include "testing/trace/trace_format.h"
#include "variants/all_variants.h"

namespace polymalloc::testing {
namespace {

// "a|b|c|system": every variant's name, and the system malloc's.
std::string allocator_names(const char* separator) {
  std::string names;
  for (const variants::VariantEntry& v : variants::kAllVariants) {
    names += v.api->name;
    names += separator;
  }
  return names + "system";
}

void print_usage(std::FILE* out) {
  std::fprintf(out,
               "usage: memsim [--allocator %s]\n"
               "              [--json FILE] [--verify] [--idle-ms N] [--breakdown] TRACE\n",
               allocator_names("|").c_str());
}

// --help: the usage on stdout, and success.
[[noreturn]] void help() {
  std::fputs("memsim: replays an allocation trace on an allocator and measures it\n", stdout);
  print_usage(stdout);
  std::exit(0);
}

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "memsim: %s\n", message.c_str());
  print_usage(stderr);
  std::exit(2);
}

// `text` as a JSON string, quotes and escapes included.
std::string json_string(const std::string& text) {
  std::string out = "\"";
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof(escaped), "\\u%04x", u);
      out += escaped;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// The variant named `name` (with the environment it runs with: signal_safe's mmap, say, as
// traces hold more than its static arena; a setting the user made wins), or nullptr.
const allocator::ApiTable* variant_named(const std::string& name) {
  for (const variants::VariantEntry& v : variants::kAllVariants) {
    if (name != v.api->name) continue;
    for (const variants::Setting& s : v.environment) {
      if (s.name != nullptr) setenv(s.name, s.value, 0);
    }
    return v.api;
  }
  return nullptr;
}

struct Options {
  const allocator::ApiTable* api = &benchmarks::kSystemMalloc;
  std::string allocator = "system";
  std::string json;
  std::string trace;
  bool verify = false;
  bool breakdown = false;
  long idle_ms = -1;  // no idle phase
};

// --idle-ms's value: a whole number of milliseconds up to an hour.
long parse_idle_ms(const char* text) {
  char* end = nullptr;
  errno = 0;
  const long value = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || errno != 0 || value < 0 || value > 3600000) {
    usage_error(std::string("--idle-ms wants milliseconds from 0 to 3600000, not '") + text + "'");
  }
  return value;
}

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      help();
    } else if (arg == "--verify") {
      o.verify = true;
    } else if (arg == "--breakdown") {
      o.breakdown = true;
    } else if (arg == "--idle-ms") {
      if (i + 1 >= argc) usage_error(arg + " needs a value");
      o.idle_ms = parse_idle_ms(argv[++i]);
    } else if (arg == "--allocator" || arg == "--json") {
      if (i + 1 >= argc) usage_error(arg + " needs a value");
      (arg == "--json" ? o.json : o.allocator) = argv[++i];
    } else if (!arg.empty() && arg[0] == '-') {
      usage_error("unknown option '" + arg + "'");
    } else if (o.trace.empty()) {
      o.trace = arg;
    } else {
      usage_error("one trace at a time ('" + arg + "' is a second)");
    }
  }
  if (o.trace.empty()) usage_error("which trace? (give a file)");
  if (o.allocator == "system") {
    o.api = &benchmarks::kSystemMalloc;
  } else if ((o.api = variant_named(o.allocator)) == nullptr) {
    usage_error("--allocator: '" + o.allocator + "' is not " + allocator_names(", "));
  }
  return o;
}

// Memory for memsim's own tables, straight from the OS (zeroed).
template <class T>
T* os_array(std::size_t n) {
  if (n == 0) n = 1;
  void* p =
      mmap(nullptr, n * sizeof(T), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    std::fprintf(stderr, "memsim: cannot map %zu bytes for its tables\n", n * sizeof(T));
    std::exit(1);
  }
  return static_cast<T*>(p);
}

struct Op {
  TraceOp op;
  std::uint64_t line;
  std::uint64_t slot_turn;  // how many earlier operations touch this op's slot
};

struct Slot {
  void* block;
  std::uint64_t size;
  std::atomic<std::uint64_t> turn;  // operations on this slot done so far
};

struct Trace {
  Op* ops = nullptr;
  std::uint64_t count = 0;
  std::uint64_t slots = 0;
  std::uint32_t threads = 1;
  std::uint64_t peak_live_bytes = 0;  // of requested sizes, in trace order
};

[[noreturn]] void trace_error(const std::string& file, std::uint64_t line,
                              const std::string& what) {
  std::fprintf(stderr, "memsim: %s:%llu: %s\n", file.c_str(), static_cast<unsigned long long>(line),
               what.c_str());
  std::exit(1);
}

// Parses and checks the whole trace (slot occupancy included) before anything runs.
Trace load(const std::string& file) {
  const int fd = open(file.c_str(), O_RDONLY);
  struct stat st = {};
  if (fd < 0 || fstat(fd, &st) != 0) {
    std::fprintf(stderr, "memsim: cannot read %s: %s\n", file.c_str(), std::strerror(errno));
    std::exit(1);
  }
  const auto length = static_cast<std::size_t>(st.st_size);
  const char* text =
      length == 0 ? ""
                  : static_cast<const char*>(mmap(nullptr, length, PROT_READ, MAP_PRIVATE, fd, 0));
  close(fd);
  if (text == MAP_FAILED) usage_error("cannot map " + file);
  std::uint64_t lines = 1;
  for (std::size_t i = 0; i < length; ++i) lines += text[i] == '\n';

  Trace t;
  t.ops = os_array<Op>(lines);
  std::uint64_t max_slot = 0;
  const char* p = text;
  const char* end = text + length;
  for (std::uint64_t line = 1; p < end; ++line) {
    const char* eol = static_cast<const char*>(std::memchr(p, '\n', end - p));
    if (eol == nullptr) eol = end;
    TraceOp op;
    const char* error = nullptr;
    const bool is_op = parse_trace_line(p, eol - p, &op, &error);
    if (error != nullptr) trace_error(file, line, error);
    p = eol + 1;
    if (!is_op) continue;
    if (op.kind == TraceOp::Kind::kEnd) break;
    t.ops[t.count++] = Op{op, line, 0};
    if (op.slot > max_slot) max_slot = op.slot;
    if (op.thread + 1 > t.threads) t.threads = op.thread + 1;
  }
  t.slots = max_slot + 1;

  // Occupancy, slot turns and live bytes, in trace order.
  auto* size = os_array<std::uint64_t>(t.slots);  // 0: empty (sizes are stored + 1)
  auto* turns = os_array<std::uint64_t>(t.slots);
  std::uint64_t live = 0;
  for (std::uint64_t i = 0; i < t.count; ++i) {
    Op& o = t.ops[i];
    if (o.op.kind == TraceOp::Kind::kStats) continue;
    const std::uint64_t s = o.op.slot;
    const bool occupied = size[s] != 0;
    std::uint64_t bytes = o.op.size;
    if (o.op.kind == TraceOp::Kind::kCalloc &&
        __builtin_mul_overflow(o.op.size, o.op.extra, &bytes)) {
      bytes = ~std::uint64_t{0} - 1;
    }
    switch (o.op.kind) {
      case TraceOp::Kind::kFree:
        if (!occupied)
          trace_error(file, o.line, "frees slot " + std::to_string(s) + ", which is empty");
        live -= size[s] - 1;
        size[s] = 0;
        break;
      case TraceOp::Kind::kCalloc:
      case TraceOp::Kind::kAligned:
        if (occupied) {
          trace_error(file, o.line,
                      "allocates into slot " + std::to_string(s) + ", which is occupied");
        }
        [[fallthrough]];
      default:
        if (occupied) live -= size[s] - 1;
        live += bytes;
        size[s] = bytes + 1;
    }
    o.slot_turn = turns[s]++;
    if (live > t.peak_live_bytes) t.peak_live_bytes = live;
  }
  munmap(size, t.slots * sizeof(std::uint64_t));
  munmap(turns, t.slots * sizeof(std::uint64_t));
  if (length != 0) munmap(const_cast<char*>(text), length);
  return t;
}

// A block's first and last bytes, derived from its slot and line: written at allocation,
// checked before it is freed or resized (--verify).
void mark(void* block, std::uint64_t size, std::uint64_t tag) {
  if (size == 0) return;
  auto* bytes = static_cast<unsigned char*>(block);
  bytes[size - 1] = static_cast<unsigned char>(tag >> 8);
  bytes[0] = static_cast<unsigned char>(tag);  // a 1-byte block keeps this one
}
bool marked(const void* block, std::uint64_t size, std::uint64_t tag) {
  if (size == 0) return true;
  const auto* bytes = static_cast<const unsigned char*>(block);
  return bytes[0] == static_cast<unsigned char>(tag) &&
         (size == 1 || bytes[size - 1] == static_cast<unsigned char>(tag >> 8));
}

// Writes one byte in every page of a new block, as a program that uses its memory would, so
// that resident memory reflects what the allocator handed out.
void touch(void* block, std::uint64_t size) {
  auto* bytes = static_cast<volatile unsigned char*>(block);
  for (std::uint64_t i = 0; i < size; i += 4096) bytes[i] = 1;
}

struct Replay {
  const Trace& trace;
  const Options& options;
  Slot* slots;
  std::uint64_t* tags;  // per slot: the tag its block was marked with
  std::atomic<std::uint64_t> done{0};
  std::atomic<std::uint64_t> failures{0};
  std::atomic<std::uint64_t> first_failure_line{~std::uint64_t{0}};
  std::atomic<const char*> first_failure{nullptr};
  // Live bytes as the replay runs (threads run ahead of each other, so this may exceed the
  // trace-order peak), and the allocator's statistics with their breakdown, taken whenever
  // they reach a new high by 1/32 (by one thread at a time; the others run on meanwhile).
  std::atomic<std::int64_t> live_now{0};
  std::atomic<std::int64_t> live_at_snapshot{0};
  std::atomic_flag snapshotting = ATOMIC_FLAG_INIT;
  allocator::Statistics at_peak{};

  void maybe_snapshot(const allocator::ApiTable& api) {
    if (!options.breakdown || api.statistics == nullptr) return;
    const std::int64_t live = live_now.load(std::memory_order_relaxed);
    const std::int64_t last = live_at_snapshot.load(std::memory_order_relaxed);
    // (only from half the trace-order peak on: the walks are not free)
    if (live <= last + last / 32 || 2 * static_cast<std::uint64_t>(live) < trace.peak_live_bytes) {
      return;
    }
    if (snapshotting.test_and_set(std::memory_order_acquire)) return;
    if (live > live_at_snapshot.load(std::memory_order_relaxed) * 33 / 32) {
      api.statistics(&at_peak, 1);
      live_at_snapshot.store(live, std::memory_order_relaxed);
    }
    snapshotting.clear(std::memory_order_release);
  }

  void failed(const Op& o, const char* what) {
    failures.fetch_add(1);
    std::uint64_t line = first_failure_line.load();
    while (o.line < line && !first_failure_line.compare_exchange_weak(line, o.line)) {
    }
    if (o.line <= line) first_failure.store(what);
  }

  void run_thread(std::uint32_t thread) {
    const allocator::ApiTable& api = *options.api;
    for (std::uint64_t i = 0; i < trace.count; ++i) {
      const Op& o = trace.ops[i];
      if (o.op.thread != thread) continue;
      if (o.op.kind == TraceOp::Kind::kStats) {
        api.malloc_stats();
        done.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      Slot& s = slots[o.op.slot];
      while (s.turn.load(std::memory_order_acquire) != o.slot_turn) std::this_thread::yield();
      execute(api, o, s);
      maybe_snapshot(api);
      s.turn.store(o.slot_turn + 1, std::memory_order_release);
      done.fetch_add(1, std::memory_order_relaxed);
    }
  }

  void execute(const allocator::ApiTable& api, const Op& o, Slot& s) {
    const std::uint64_t tag = o.line * 2654435761u;
    std::uint64_t* slot_tag = &tags[o.op.slot];
    if (options.verify && s.block != nullptr && !marked(s.block, s.size, *slot_tag)) {
      failed(o, "the block's contents changed");
    }
    const auto held_before = static_cast<std::int64_t>(s.block != nullptr ? s.size : 0);
    switch (o.op.kind) {
      case TraceOp::Kind::kFree:
        api.free(s.block);
        s.block = nullptr;
        live_now.fetch_sub(held_before, std::memory_order_relaxed);
        return;
      case TraceOp::Kind::kMalloc:
        if (s.block != nullptr) {
          s.block = api.realloc(s.block, o.op.size);
        } else {
          s.block = api.malloc(o.op.size);
        }
        s.size = o.op.size;
        break;
      case TraceOp::Kind::kRealloc:
        s.block = api.realloc(s.block, o.op.size);
        s.size = o.op.size;
        break;
      case TraceOp::Kind::kCalloc:
        s.block = api.calloc(o.op.extra, o.op.size);
        s.size = o.op.extra * o.op.size;
        break;
      case TraceOp::Kind::kAligned: {
        void* p = nullptr;
        s.block = api.posix_memalign(&p, o.op.extra < sizeof(void*) ? sizeof(void*) : o.op.extra,
                                     o.op.size) == 0
                      ? p
                      : nullptr;
        s.size = o.op.size;
        break;
      }
      default:
        return;
    }
    if (s.block == nullptr && s.size != 0) {
      failed(o, "the allocation was refused");
      s.size = 0;
    }
    live_now.fetch_add(static_cast<std::int64_t>(s.block != nullptr ? s.size : 0) - held_before,
                       std::memory_order_relaxed);
    if (s.block == nullptr) return;
    touch(s.block, s.size);
    if (options.verify) {
      mark(s.block, s.size, tag);
      *slot_tag = tag;
    }
  }
};

// The idle phase: the blocks still live go, the process sleeps, one more malloc and free.
// The RSS after it.
std::uint64_t rss_after_idle(const Options& options, Slot* slots, std::uint64_t count) {
  const allocator::ApiTable& api = *options.api;
  for (std::uint64_t i = 0; i < count; ++i) {
    if (slots[i].block != nullptr) api.free(slots[i].block);
    slots[i].block = nullptr;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(options.idle_ms));
  void* volatile p = api.malloc(std::size_t{1} << 20);  // a slow path in every allocator
  api.free(p);
  return resident_bytes();
}

// Where the memory went at the replay's peak live bytes (within 1/32), as the variant accounts
// for it, with its live bytes split into what the trace asked for and the rounding (which
// other threads' operations while the statistics were taken blur a little).
struct PeakBreakdown {
  bool known = false;
  allocator::MemoryBreakdown parts;
  std::uint64_t peak_committed = 0;  // the heaps' most committed at once, up to then
  std::uint64_t requested = 0;
  std::int64_t rounding = 0;
  std::uint64_t final_peak_committed = 0;  // the heaps' most by the end of the replay
};

PeakBreakdown peak_breakdown(const Replay& replay) {
  const allocator::Statistics& s = replay.at_peak;
  if (!s.has_breakdown) return {};
  return PeakBreakdown{true, s.breakdown, s.heap_peak_committed_bytes + s.peak_mapped_bytes,
                       static_cast<std::uint64_t>(replay.live_at_snapshot.load()),
                       static_cast<std::int64_t>(s.breakdown.live_bytes) -
                           replay.live_at_snapshot.load()};
}

// The breakdown's parts, in report order: the text's label and the JSON's key of each.
struct BreakdownPart {
  const char* label;
  const char* key;
  long long value;
};

std::array<BreakdownPart, 10> parts_of(const PeakBreakdown& b) {
  const allocator::MemoryBreakdown& p = b.parts;
  auto bytes = [](std::uint64_t n) { return static_cast<long long>(n); };
  return {{{"requested", "requested_bytes", bytes(b.requested)},
           {"rounding", "rounding_bytes", b.rounding},
           {"headers", "header_bytes", bytes(p.header_bytes)},
           {"live blocks", "live_blocks", bytes(p.live_blocks)},
           {"free reusable", "reusable_bytes", bytes(p.reusable_bytes)},
           {"holes", "hole_bytes", bytes(p.hole_bytes)},
           {"cached", "cached_bytes", bytes(p.cached_bytes)},
           {"heap structure", "structure_bytes", bytes(p.structure_bytes)},
           {"released", "released_bytes", bytes(p.released_bytes)},
           {"kept mappings", "kept_mapping_bytes", bytes(p.kept_mapping_bytes)}}};
}

void print_breakdown(const PeakBreakdown& b) {
  std::printf("  at peak live:");
  const char* separator = " ";
  for (const BreakdownPart& part : parts_of(b)) {
    std::printf("%s%s %lld", separator, part.label, part.value);
    separator = ", ";
  }
  std::printf("; the heaps' peak so far %llu, by the end %llu\n",
              static_cast<unsigned long long>(b.peak_committed),
              static_cast<unsigned long long>(b.final_peak_committed));
}

std::string breakdown_json(const PeakBreakdown& b) {
  if (!b.known) return "null";
  std::string json = "{";
  for (const BreakdownPart& part : parts_of(b)) {
    if (json.size() > 1) json += ", ";
    json += "\"" + std::string(part.key) + "\": " + std::to_string(part.value);
  }
  return json + "}";
}

int run(const Options& options) {
  const Trace trace = load(options.trace);
  Replay replay{trace, options, os_array<Slot>(trace.slots), os_array<std::uint64_t>(trace.slots)};
  const bool progress = isatty(STDERR_FILENO) != 0;
  // memsim's own tables are touched now, so that the replay's peak is the allocator's.
  for (std::uint64_t i = 0; i < trace.slots; ++i) replay.slots[i].size = 0;
  std::memset(replay.tags, 0, trace.slots * sizeof(std::uint64_t));
  if (!reset_peak_resident()) {
    std::fprintf(stderr, "memsim: cannot reset the peak RSS; it includes loading the trace\n");
  }
  const std::uint64_t rss_before = resident_bytes();
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (std::uint32_t t = 0; t < trace.threads; ++t)
    threads.emplace_back([&replay, t] { replay.run_thread(t); });
  while (replay.done.load() < trace.count && progress) {
    std::fprintf(stderr, "\rmemsim: %3llu%% of %llu operations",
                 static_cast<unsigned long long>(replay.done.load() * 100 / trace.count),
                 static_cast<unsigned long long>(trace.count));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  for (auto& t : threads) t.join();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (progress) std::fprintf(stderr, "\r\033[K");
  const std::uint64_t peak_rss = peak_resident_bytes();
  const std::uint64_t growth = peak_rss > rss_before ? peak_rss - rss_before : 0;
  const double fragmentation =
      trace.peak_live_bytes == 0 ? 0 : static_cast<double>(growth) / trace.peak_live_bytes;
  const double ns_per_op = trace.count == 0 ? 0 : seconds * 1e9 / trace.count;
  PeakBreakdown breakdown = peak_breakdown(replay);
  if (breakdown.known) {
    allocator::Statistics end;
    options.api->statistics(&end, 0);
    breakdown.final_peak_committed = end.heap_peak_committed_bytes + end.peak_mapped_bytes;
  }
  const std::uint64_t rss_done = resident_bytes();
  const bool idled = options.idle_ms >= 0;
  const std::uint64_t rss_idle = idled ? rss_after_idle(options, replay.slots, trace.slots) : 0;
  std::printf(
      "memsim: %s on %s: %llu operations on %u thread%s in %.3f s (%.1f ns/op)\n"
      "  peak RSS %llu bytes (grew %llu), peak live %llu bytes, RSS growth / live %.2f\n",
      options.trace.c_str(), options.allocator.c_str(),
      static_cast<unsigned long long>(trace.count), trace.threads, trace.threads == 1 ? "" : "s",
      seconds, ns_per_op, static_cast<unsigned long long>(peak_rss),
      static_cast<unsigned long long>(growth),
      static_cast<unsigned long long>(trace.peak_live_bytes), fragmentation);
  if (breakdown.known) print_breakdown(breakdown);
  if (idled) {
    std::printf("  RSS %llu bytes at the end, %llu after %ld ms idle and one 1 MiB malloc/free\n",
                static_cast<unsigned long long>(rss_done),
                static_cast<unsigned long long>(rss_idle), options.idle_ms);
  }
  if (!options.json.empty()) {
    std::FILE* f = std::fopen(options.json.c_str(), "w");
    if (f == nullptr) {
      std::fprintf(stderr, "memsim: cannot write %s: %s\n", options.json.c_str(),
                   std::strerror(errno));
      return 1;
    }
    std::fprintf(f,
                 "{\"trace\": %s, \"allocator\": %s, \"operations\": %llu, \"threads\": %u, "
                 "\"seconds\": %.6f, \"ns_per_operation\": %.2f, \"peak_rss_bytes\": %llu, "
                 "\"rss_growth_bytes\": %llu, \"peak_live_bytes\": %llu, \"fragmentation\": %.4f, "
                 "\"failures\": %llu, \"rss_at_end_bytes\": %llu, \"rss_after_idle_bytes\": %s, "
                 "\"breakdown_at_peak\": %s}\n",
                 json_string(options.trace).c_str(), json_string(options.allocator).c_str(),
                 static_cast<unsigned long long>(trace.count), trace.threads, seconds, ns_per_op,
                 static_cast<unsigned long long>(peak_rss), static_cast<unsigned long long>(growth),
                 static_cast<unsigned long long>(trace.peak_live_bytes), fragmentation,
                 static_cast<unsigned long long>(replay.failures.load()),
                 static_cast<unsigned long long>(rss_done),
                 idled ? std::to_string(rss_idle).c_str() : "null",
                 breakdown_json(breakdown).c_str());
    std::fclose(f);
  }
  if (replay.failures.load() != 0) {
    std::fprintf(
        stderr, "memsim: %s:%llu: %s (and %llu more operations failed)\n", options.trace.c_str(),
        static_cast<unsigned long long>(replay.first_failure_line.load()),
        replay.first_failure.load(), static_cast<unsigned long long>(replay.failures.load() - 1));
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace polymalloc::testing

int main(int argc, char** argv) {
  using namespace polymalloc::testing;
  return run(parse_options(argc, argv));
}
