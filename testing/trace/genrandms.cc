// genrandms: writes a random allocation trace (trace_format.h), reproducibly: the same
// arguments and seed give the same file on every machine (its own generator and arithmetic,
// no <random> distributions). Each operation picks a thread and a slot; an occupied slot is
// freed or reallocated, an empty one gets a malloc, calloc or aligned allocation. Every
// block still live at the end is freed, then `e`.
//   genrandms [--seed N] [--ops N] [--slots N] [--min-size S] [--max-size S]
//             [--distribution uniform|power-law] [--realloc-share P] [--calloc-share P]
//             [--memalign-share P] [--threads N] [--output FILE]
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <string>
#include <vector>

#include "testing/trace/trace_format.h"

namespace polymalloc::testing {
namespace {

struct Options {
  std::uint64_t seed = 1;
  std::uint64_t ops = 100000;
  std::uint64_t slots = 1000;
  std::uint64_t min_size = 1;
  std::uint64_t max_size = 4096;
  bool power_law = false;
  double realloc_share = 0.1;
  double calloc_share = 0.05;
  double memalign_share = 0.02;
  std::uint64_t threads = 1;
  std::string output;
};

constexpr const char* kUsage =
    "usage: genrandms [--seed N] [--ops N] [--slots N] [--min-size S] [--max-size S]\n"
    "                 [--distribution uniform|power-law] [--realloc-share P]\n"
    "                 [--calloc-share P] [--memalign-share P] [--threads N]\n"
    "                 [--output FILE]\n"
    "  sizes take a k, m or g suffix (powers of 1024); shares are fractions 0..1\n";

// --help: the usage on stdout, and success.
[[noreturn]] void help() {
  std::fputs("genrandms: writes a seeded random allocation trace for memsim\n", stdout);
  std::fputs(kUsage, stdout);
  std::exit(0);
}

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "genrandms: %s\n%s", message.c_str(), kUsage);
  std::exit(2);
}

// A non-negative integer with an optional k/m/g suffix (when `suffixes`).
std::uint64_t parse_count(const std::string& flag, const char* text, bool suffixes) {
  const std::string what = suffixes ? "a size (digits, optionally k, m or g)" : "a whole number";
  if (text[0] < '0' || text[0] > '9') usage_error(flag + ": '" + text + "' is not " + what);
  errno = 0;
  char* end = nullptr;
  std::uint64_t v = std::strtoull(text, &end, 10);
  unsigned shift = 0;
  if (suffixes && *end != '\0' && end[1] == '\0') {
    const char unit = static_cast<char>(*end | 0x20);
    shift = unit == 'k' ? 10 : unit == 'm' ? 20 : unit == 'g' ? 30 : 0;
    if (shift != 0) ++end;
  }
  if (errno != 0 || *end != '\0' || (shift != 0 && v > (~std::uint64_t{0} >> shift))) {
    usage_error(flag + ": '" + text + "' is not " + what);
  }
  return v << shift;
}

double parse_share(const std::string& flag, const char* text) {
  char* end = nullptr;
  const double v = std::strtod(text, &end);
  if (end == text || *end != '\0' || !(v >= 0 && v <= 1)) {
    usage_error(flag + ": '" + text + "' is not a fraction between 0 and 1");
  }
  return v;
}

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") help();
    static constexpr const char* kFlags[] = {
        "--seed",           "--ops",     "--slots",         "--min-size",
        "--max-size",       "--threads", "--realloc-share", "--calloc-share",
        "--memalign-share", "--output",  "--distribution"};
    if (std::find(std::begin(kFlags), std::end(kFlags), flag) == std::end(kFlags)) {
      usage_error("unknown argument '" + flag + "'");
    }
    if (i + 1 >= argc) usage_error(flag + " needs a value");
    const char* value = argv[++i];
    if (flag == "--seed")
      o.seed = parse_count(flag, value, false);
    else if (flag == "--ops")
      o.ops = parse_count(flag, value, true);
    else if (flag == "--slots")
      o.slots = parse_count(flag, value, true);
    else if (flag == "--min-size")
      o.min_size = parse_count(flag, value, true);
    else if (flag == "--max-size")
      o.max_size = parse_count(flag, value, true);
    else if (flag == "--threads")
      o.threads = parse_count(flag, value, false);
    else if (flag == "--realloc-share")
      o.realloc_share = parse_share(flag, value);
    else if (flag == "--calloc-share")
      o.calloc_share = parse_share(flag, value);
    else if (flag == "--memalign-share")
      o.memalign_share = parse_share(flag, value);
    else if (flag == "--output")
      o.output = value;
    else if (flag == "--distribution") {
      const std::string d = value;
      if (d != "uniform" && d != "power-law") {
        usage_error("--distribution: '" + d + "' is not uniform or power-law");
      }
      o.power_law = d == "power-law";
    } else {
      usage_error("unknown argument '" + flag + "'");
    }
  }
  if (o.ops == 0) usage_error("--ops must be at least 1");
  if (o.slots == 0 || o.slots - 1 > kMaxTraceSlot) usage_error("--slots must be 1 to 2^32");
  if (o.min_size == 0) usage_error("--min-size must be at least 1");
  if (o.min_size > o.max_size) usage_error("--min-size is larger than --max-size");
  if (o.threads == 0 || o.threads - 1 > kMaxTraceThread) usage_error("--threads must be 1 to 1024");
  if (o.calloc_share + o.memalign_share > 1) {
    usage_error("--calloc-share and --memalign-share add up to more than 1");
  }
  return o;
}

// splitmix64: tiny, fast, and the same everywhere.
class Random {
 public:
  explicit Random(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
  }
  std::uint64_t below(std::uint64_t n) { return next() % n; }
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)

 private:
  std::uint64_t state_;
};

// Uniform in [min, max], or power-law with density ∝ size^-1.5 (most requests small, a long
// tail of large ones), by inverting its distribution function.
std::uint64_t random_size(Random& r, const Options& o) {
  if (!o.power_law || o.min_size == o.max_size) {
    return o.min_size + r.below(o.max_size - o.min_size + 1);
  }
  const double a = std::pow(static_cast<double>(o.min_size), -0.5);
  const double b = std::pow(static_cast<double>(o.max_size), -0.5);
  const double size = std::pow(a + (b - a) * r.unit(), -2.0);
  const auto rounded = static_cast<std::uint64_t>(size);
  return rounded < o.min_size ? o.min_size : rounded > o.max_size ? o.max_size : rounded;
}

int run(const Options& o) {
  std::FILE* out = o.output.empty() ? stdout : std::fopen(o.output.c_str(), "w");
  if (out == nullptr) {
    std::fprintf(stderr, "genrandms: cannot write %s: %s\n", o.output.c_str(),
                 std::strerror(errno));
    return 1;
  }
  std::fprintf(out,
               "# genrandms --seed %llu --ops %llu --slots %llu --min-size %llu --max-size %llu"
               " --distribution %s --threads %llu\n",
               static_cast<unsigned long long>(o.seed), static_cast<unsigned long long>(o.ops),
               static_cast<unsigned long long>(o.slots),
               static_cast<unsigned long long>(o.min_size),
               static_cast<unsigned long long>(o.max_size), o.power_law ? "power-law" : "uniform",
               static_cast<unsigned long long>(o.threads));
  Random r(o.seed);
  std::vector<bool> occupied(o.slots, false);
  char line[kMaxTraceLine];
  const auto emit = [&](const TraceOp& op) {
    std::fwrite(line, 1, format_trace_op(op, line), out);
  };
  for (std::uint64_t i = 0; i < o.ops; ++i) {
    TraceOp op;
    op.thread = static_cast<std::uint32_t>(r.below(o.threads));
    op.slot = r.below(o.slots);
    if (occupied[op.slot]) {
      const bool resize = r.unit() < o.realloc_share;
      op.kind = resize ? TraceOp::Kind::kRealloc : TraceOp::Kind::kFree;
      if (resize) op.size = random_size(r, o);
      occupied[op.slot] = resize;
    } else {
      const double u = r.unit();
      op.size = random_size(r, o);
      if (u < o.calloc_share) {
        op.kind = TraceOp::Kind::kCalloc;
        op.extra = 1;
      } else if (u < o.calloc_share + o.memalign_share) {
        op.kind = TraceOp::Kind::kAligned;
        op.extra = std::uint64_t{32} << r.below(8);  // 32 B .. 4 KiB
      } else {
        op.kind = TraceOp::Kind::kMalloc;
      }
      occupied[op.slot] = true;
    }
    emit(op);
  }
  for (std::uint64_t s = 0; s < o.slots; ++s) {
    if (occupied[s]) emit(TraceOp{TraceOp::Kind::kFree, 0, s, 0, 0});
  }
  emit(TraceOp{TraceOp::Kind::kEnd, 0, 0, 0, 0});
  const bool ok = std::fflush(out) == 0 && !std::ferror(out);
  if (out != stdout) std::fclose(out);
  if (!ok) {
    std::fprintf(stderr, "genrandms: writing the trace failed: %s\n", std::strerror(errno));
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
