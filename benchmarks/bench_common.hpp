// bench_common: what the benchmarks/*.cpp programs share.
//
//   - the command line (--quick, --json FILE, --help);
//   - per-call timing: warm-up, then several repetitions of many calls, each call timed on
//     its own, summarised by the median (and min, quantiles, spread between repetitions);
//   - the in-process FMA peak: an FMA throughput loop on every OpenMP thread, with the widest
//     ISA the CPU has (AVX-512F, AVX2 + FMA, or scalar), in single-precision GFLOP/s;
//   - the machine description (CPU model, threads, ISA compiled for and supported, the GEMM
//     kernel in use);
//   - a small JSON writer;
//   - GEMM shape bookkeeping: a backend that records every gemm call, the check of an
//     analytic GEMM list against it, and FLOPs as 2 m n k per product.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <forgery/forgery.hpp>

#if defined(_OPENMP)
#include <omp.h>
#endif

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#define FORGERY_BENCH_X86 1
#else
#define FORGERY_BENCH_X86 0
#endif

namespace bench {

using fg::index_t;

// ---------------------------------------------------------------------------------------
// Command line.
// ---------------------------------------------------------------------------------------

struct Options {
  bool quick = false; // a short smoke run: small batches, one repetition, timings meaningless
  std::string json;   // write the results as JSON to this file ("-": stdout, no table)
  int exit_code = -1; // >= 0: main returns it right away (--help, bad arguments)
};

/// Parses --quick, --json FILE (or --json=FILE) and --help; `usage` is printed for --help
/// and for anything else (then with exit code 2).
inline Options parse_options(int argc, char** argv, const char* usage) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--quick") {
      o.quick = true;
    } else if (a == "--json" && i + 1 < argc) {
      o.json = argv[++i];
    } else if (a.rfind("--json=", 0) == 0 && a.size() > 7) {
      o.json = std::string(a.substr(7));
    } else {
      const bool help = a == "--help" || a == "-h";
      if (!help) std::fprintf(stderr, "%s: unknown or incomplete argument '%s'\n", argv[0], argv[i]);
      std::fprintf(help ? stdout : stderr, "%s", usage);
      o.exit_code = help ? 0 : 2;
      return o;
    }
  }
  return o;
}

// ---------------------------------------------------------------------------------------
// Timing.
// ---------------------------------------------------------------------------------------

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

/// The q-quantile (0 <= q <= 1) of v, linearly interpolated between order statistics.
inline double quantile(std::vector<double> v, double q) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  const double pos = std::clamp(q, 0.0, 1.0) * double(v.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const std::size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - double(lo)) * (v[hi] - v[lo]);
}

inline double median(std::vector<double> v) { return quantile(std::move(v), 0.5); }

struct Settings {
  int reps = 7;              // timed repetitions
  double rep_seconds = 0.5;  // each repetition runs for at least this long ...
  long long min_calls = 5;   // ... and at least this many calls
  double warm_seconds = 0.5; // warm-up before the first repetition, at least ...
  long long warm_calls = 2;  // ... this many calls
};

/// One repetition of one call, no warm-up (a smoke run: timings meaningless).
inline Settings quick_settings() { return Settings{1, 0.0, 1, 0.0, 0}; }

/// Seconds of every timed call, by repetition.
using Samples = std::vector<std::vector<double>>;

/// Times the calls of each function in `fs` one by one: each is warmed up, then every
/// repetition runs each function in turn (interleaved, so that a change in the machine's
/// load falls on all of them) for as many calls as fill settings.rep_seconds. If given,
/// `after` sees each timed call (function index, seconds) right after it returns.
inline std::vector<Samples> sample_calls(const Settings& s, const std::vector<std::function<void()>>& fs,
                                         const std::function<void(std::size_t, double)>& after = {}) {
  std::vector<long long> calls;
  for (const auto& f : fs) {
    long long n = 0;
    const auto t0 = Clock::now();
    double elapsed = 0;
    while (n < s.warm_calls || elapsed < s.warm_seconds) {
      f();
      ++n;
      elapsed = seconds_since(t0);
    }
    const double per_call = n > 0 ? elapsed / double(n) : 0;
    const double wanted = per_call > 0 ? std::ceil(s.rep_seconds / per_call) : double(s.min_calls);
    calls.push_back(std::max<long long>(s.min_calls, static_cast<long long>(std::min(wanted, 1e7))));
  }
  std::vector<Samples> out(fs.size(), Samples(static_cast<std::size_t>(s.reps)));
  for (std::size_t r = 0; r < static_cast<std::size_t>(s.reps); ++r) {
    for (std::size_t i = 0; i < fs.size(); ++i) {
      std::vector<double>& v = out[i][r];
      v.reserve(static_cast<std::size_t>(calls[i]));
      for (long long c = 0; c < calls[i]; ++c) {
        const auto t0 = Clock::now();
        fs[i]();
        const double t = seconds_since(t0);
        v.push_back(t);
        if (after) after(i, t);
      }
    }
  }
  return out;
}

/// A summary of per-call times (seconds): the median, min, max, 10 % and 90 % quantiles
/// over all timed calls; spread = (max - min) / median of the repetitions' own medians.
struct Timing {
  double median = 0, min = 0, max = 0, p10 = 0, p90 = 0, spread = 0;
  long long calls = 0;
  int reps = 0;
};

inline Timing summarise(const Samples& samples) {
  std::vector<double> all, rep_medians;
  for (const auto& rep : samples) {
    all.insert(all.end(), rep.begin(), rep.end());
    if (!rep.empty()) rep_medians.push_back(median(rep));
  }
  Timing t;
  if (all.empty()) return t;
  t.median = median(all);
  t.min = *std::min_element(all.begin(), all.end());
  t.max = *std::max_element(all.begin(), all.end());
  t.p10 = quantile(all, 0.1);
  t.p90 = quantile(all, 0.9);
  const auto [lo, hi] = std::minmax_element(rep_medians.begin(), rep_medians.end());
  t.spread = t.median > 0 ? (*hi - *lo) / t.median : 0;
  t.calls = static_cast<long long>(all.size());
  t.reps = static_cast<int>(samples.size());
  return t;
}

// ---------------------------------------------------------------------------------------
// FMA peak.
// ---------------------------------------------------------------------------------------

enum class Isa { scalar, avx2_fma, avx512f };

inline const char* isa_name(Isa isa) {
  switch (isa) {
  case Isa::avx512f:
    return "AVX-512F";
  case Isa::avx2_fma:
    return "AVX2+FMA";
  default:
    return "scalar";
  }
}

/// Single-precision lanes of one vector of `isa`.
constexpr int isa_lanes(Isa isa) { return isa == Isa::avx512f ? 16 : isa == Isa::avx2_fma ? 8 : 1; }

/// The widest FMA ISA this translation unit is compiled for (-march, -mno-avx512f).
constexpr Isa compiled_isa() {
#if defined(__AVX512F__)
  return Isa::avx512f;
#elif defined(__FMA__) && defined(__AVX2__)
  return Isa::avx2_fma;
#else
  return Isa::scalar;
#endif
}

/// What the CPU running the program supports (cpuid), whatever the build targets.
struct CpuIsa {
  bool avx2 = false, fma = false, avx512f = false;
  [[nodiscard]] Isa best() const { return avx512f ? Isa::avx512f : (avx2 && fma) ? Isa::avx2_fma : Isa::scalar; }
};

inline CpuIsa cpu_isa() {
  CpuIsa c;
#if FORGERY_BENCH_X86
  __builtin_cpu_init();
  c.avx2 = __builtin_cpu_supports("avx2");
  c.fma = __builtin_cpu_supports("fma");
  c.avx512f = __builtin_cpu_supports("avx512f");
#endif
  return c;
}

namespace detail {

// Each loop runs `Acc` independent accumulator chains acc = acc * a + b (a < 1, so the values
// converge to b / (1 - a) and stay normal): enough chains to cover FMA latency (4 cycles)
// times FMA ports (2) with room to spare, and few enough to stay in registers (16 ymm).
constexpr std::size_t fma_chains = 12;

template <std::size_t... I>
float fma_loop_scalar(long long iters, std::index_sequence<I...>) {
  float acc[sizeof...(I)] = {(1.0f + 0.01f * float(I))...};
  const float a = 0.999999f, b = 1e-6f;
  for (long long i = 0; i < iters; ++i) ((acc[I] = acc[I] * a + b), ...);
  return (acc[I] + ...);
}

#if FORGERY_BENCH_X86
template <std::size_t... I>
[[gnu::target("avx2,fma")]] float fma_loop_avx2(long long iters, std::index_sequence<I...>) {
  __m256 acc[sizeof...(I)] = {_mm256_set1_ps(1.0f + 0.01f * float(I))...};
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-6f);
  for (long long i = 0; i < iters; ++i) ((acc[I] = _mm256_fmadd_ps(acc[I], a, b)), ...);
  __m256 sum = _mm256_setzero_ps();
  ((sum = _mm256_add_ps(sum, acc[I])), ...);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, sum);
  float s = 0;
  for (float l : lanes) s += l;
  return s;
}

template <std::size_t... I>
[[gnu::target("avx512f")]] float fma_loop_avx512(long long iters, std::index_sequence<I...>) {
  __m512 acc[sizeof...(I)] = {_mm512_set1_ps(1.0f + 0.01f * float(I))...};
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-6f);
  for (long long i = 0; i < iters; ++i) ((acc[I] = _mm512_fmadd_ps(acc[I], a, b)), ...);
  __m512 sum = _mm512_setzero_ps();
  ((sum = _mm512_add_ps(sum, acc[I])), ...);
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, sum);
  float s = 0;
  for (float l : lanes) s += l;
  return s;
}
#endif

inline float fma_loop(Isa isa, long long iters) {
  constexpr auto chains = std::make_index_sequence<fma_chains>{};
#if FORGERY_BENCH_X86
  if (isa == Isa::avx512f) return fma_loop_avx512(iters, chains);
  if (isa == Isa::avx2_fma) return fma_loop_avx2(iters, chains);
#endif
  (void)isa;
  return fma_loop_scalar(iters, chains);
}

inline volatile float fma_sink = 0; // keeps the loops' results alive

// Seconds for `iters` iterations of the loop on each of `threads` threads at once: from a
// barrier before the loops to a barrier after the slowest one.
inline double time_fma_loops(Isa isa, int threads, long long iters) {
  double seconds = 0;
#if defined(_OPENMP)
#pragma omp parallel num_threads(threads)
  {
    Clock::time_point t0;
#pragma omp barrier
#pragma omp master
    t0 = Clock::now();
    const float r = fma_loop(isa, iters);
#pragma omp barrier
#pragma omp master
    seconds = seconds_since(t0);
#pragma omp critical
    fma_sink = fma_sink + r;
  }
#else
  (void)threads;
  const auto t0 = Clock::now();
  fma_sink = fma_sink + fma_loop(isa, iters);
  seconds = seconds_since(t0);
#endif
  return seconds;
}

} // namespace detail

struct Peak {
  Isa isa = Isa::scalar;
  int threads = 1;
  double gflops = 0;            // best repetition, all threads together
  double gflops_per_thread = 0; // gflops / threads
  std::vector<double> rep_gflops;
};

/// Single-precision FMA throughput of `threads` OpenMP threads each running the FMA loop of
/// `isa` (which the CPU must support): 2 flops per lane per FMA, best of `reps` repetitions
/// of at least `rep_seconds` each, after a calibration run of about rep_seconds / 4.
inline Peak fma_peak(int threads, Isa isa = compiled_isa(), int reps = 5, double rep_seconds = 0.2) {
  threads = std::max(1, threads);
#if !defined(_OPENMP)
  threads = 1;
#endif
  long long iters = 1 << 12;
  double t = detail::time_fma_loops(isa, threads, iters);
  while (t < rep_seconds / 4 && iters < (1LL << 40)) {
    iters *= 2;
    t = detail::time_fma_loops(isa, threads, iters);
  }
  if (t > 0 && t < rep_seconds) iters = static_cast<long long>(std::ceil(double(iters) * rep_seconds / t));
  const double flop_per_iter = 2.0 * double(isa_lanes(isa)) * double(detail::fma_chains) * double(threads);
  Peak p;
  p.isa = isa;
  p.threads = threads;
  for (int r = 0; r < std::max(1, reps); ++r) {
    const double s = detail::time_fma_loops(isa, threads, iters);
    p.rep_gflops.push_back(s > 0 ? flop_per_iter * double(iters) / s * 1e-9 : 0);
  }
  p.gflops = *std::max_element(p.rep_gflops.begin(), p.rep_gflops.end());
  p.gflops_per_thread = p.gflops / threads;
  return p;
}

// ---------------------------------------------------------------------------------------
// The machine.
// ---------------------------------------------------------------------------------------

inline std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) {
        std::string v = line.substr(colon + 1);
        v.erase(0, v.find_first_not_of(" \t"));
        return v;
      }
    }
  }
  return "unknown";
}

inline int thread_count() {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

constexpr bool optimised_build() {
#if defined(__OPTIMIZE__)
  return true;
#else
  return false;
#endif
}

inline std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

struct Machine {
  std::string cpu;
  int threads = 1;            // OpenMP threads of the steps and of the peak
  Isa compiled = Isa::scalar; // the FMA ISA the build targets: the one the peak is measured with
  CpuIsa supported;
  std::string eigen_simd;
  bool optimised = false;
  std::string compiler;
  Peak peak;               // the CPU's widest FMA ISA, `threads` threads: the % of peak reference
  std::string gemm_kernel; // the kernel Cpu<float>::gemm runs (NativeGemm's choice)
};

/// Describes the machine and measures the peak with the thread count the steps will use.
inline Machine describe_machine(bool quick) {
  Machine m;
  m.cpu = cpu_model();
  m.threads = thread_count();
  m.compiled = compiled_isa();
  m.supported = cpu_isa();
  m.eigen_simd = Eigen::SimdInstructionSetsInUse();
  m.optimised = optimised_build();
#if defined(__clang__)
  m.compiler = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  m.compiler = std::string("GCC ") + __VERSION__;
#endif
  const int reps = quick ? 1 : 7;
  const double seconds = quick ? 0.002 : 0.2;
  // The reference is the CPU's widest FMA, whatever the build targets: NativeGemm picks its
  // kernel at run time, so the steps can use it.
  m.peak = fma_peak(m.threads, m.supported.best(), reps, seconds);
  const fg::backend::GemmIsa gemm = fg::backend::NativeGemm::isa();
  m.gemm_kernel = gemm == fg::backend::GemmIsa::avx512 ? "NativeGemm AVX-512 (32 x 12)"
                  : gemm == fg::backend::GemmIsa::avx2 ? "NativeGemm AVX2 + FMA (16 x 6)"
                                                       : "Eigen (no AVX2 + FMA)";
  return m;
}

inline void print_machine(const Machine& m) {
  std::printf("cpu      %s\n", m.cpu.c_str());
  std::printf("threads  %d (OpenMP; the steps and the peak alike)\n", m.threads);
  std::printf("build    %s; Eigen SIMD: %s; FMA ISA compiled for: %s%s\n", m.compiler.c_str(), m.eigen_simd.c_str(),
              isa_name(m.compiled), m.optimised ? "" : "; NOT OPTIMISED (build with -O2 or -O3)");
  std::printf("cpu ISA  avx2 %s, fma %s, avx512f %s\n", m.supported.avx2 ? "yes" : "no", m.supported.fma ? "yes" : "no",
              m.supported.avx512f ? "yes" : "no");
  std::printf("peak     %.1f GFLOP/s fp32 (%.1f per thread): %s FMA loop, %zu chains, on %d thread(s), best of %zu\n",
              m.peak.gflops, m.peak.gflops_per_thread, isa_name(m.peak.isa), detail::fma_chains, m.peak.threads,
              m.peak.rep_gflops.size());
  std::printf("gemm     Cpu<float>::gemm runs %s\n", m.gemm_kernel.c_str());
}

// ---------------------------------------------------------------------------------------
// JSON.
// ---------------------------------------------------------------------------------------

/// A small JSON writer: objects and arrays nested by begin/end calls, two-space indents.
class Json {
public:
  Json& begin_object(std::string_view key = {}) { return open(key, '{'); }
  Json& end_object() { return close('}'); }
  Json& begin_array(std::string_view key = {}) { return open(key, '['); }
  Json& end_array() { return close(']'); }

  Json& field(std::string_view key, std::string_view v) {
    item(key);
    quote(v);
    return *this;
  }
  Json& field(std::string_view key, const char* v) { return field(key, std::string_view(v)); }
  Json& field(std::string_view key, const std::string& v) { return field(key, std::string_view(v)); }
  Json& field(std::string_view key, bool v) {
    item(key);
    out_ += v ? "true" : "false";
    return *this;
  }
  Json& field(std::string_view key, double v) {
    item(key);
    if (std::isfinite(v)) {
      char buf[40];
      std::snprintf(buf, sizeof buf, "%.9g", v);
      out_ += buf;
    } else {
      out_ += "null";
    }
    return *this;
  }
  Json& field(std::string_view key, long long v) {
    item(key);
    out_ += std::to_string(v);
    return *this;
  }
  Json& field(std::string_view key, long v) { return field(key, static_cast<long long>(v)); }
  Json& field(std::string_view key, int v) { return field(key, static_cast<long long>(v)); }
  Json& field(std::string_view key, unsigned long v) { return field(key, static_cast<long long>(v)); }
  Json& value(double v) { return field({}, v); }

  [[nodiscard]] const std::string& str() const { return out_; }

private:
  Json& open(std::string_view key, char bracket) {
    item(key);
    out_ += bracket;
    first_.push_back(true);
    return *this;
  }
  Json& close(char bracket) {
    if (first_.empty()) throw std::logic_error("bench::Json: unbalanced end");
    const bool empty = first_.back();
    first_.pop_back();
    if (!empty) newline();
    out_ += bracket;
    if (first_.empty()) out_ += '\n';
    return *this;
  }
  void newline() {
    out_ += '\n';
    out_.append(2 * first_.size(), ' ');
  }
  void item(std::string_view key) {
    if (!first_.empty()) {
      if (!first_.back()) out_ += ',';
      first_.back() = false;
      newline();
    }
    if (!key.empty()) {
      quote(key);
      out_ += ": ";
    }
  }
  void quote(std::string_view s) {
    out_ += '"';
    for (const char c : s) {
      const auto u = static_cast<unsigned char>(c);
      if (c == '"' || c == '\\') {
        out_ += '\\';
        out_ += c;
      } else if (u < 0x20) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", u);
        out_ += buf;
      } else {
        out_ += c;
      }
    }
    out_ += '"';
  }
  std::string out_;
  std::vector<bool> first_;
};

/// Writes `text` to `path` ("-": stdout); throws if the file cannot be written.
inline void write_text(const std::string& path, const std::string& text) {
  if (path == "-") {
    std::fputs(text.c_str(), stdout);
    std::fflush(stdout);
    return;
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) throw std::runtime_error("cannot write " + path);
}

inline void write_machine(Json& j, const Machine& m) {
  const auto peak = [&](std::string_view key, const Peak& p) {
    j.begin_object(key)
        .field("isa", isa_name(p.isa))
        .field("threads", p.threads)
        .field("gflops", p.gflops)
        .field("gflops_per_thread", p.gflops_per_thread)
        .field("fma_chains", static_cast<long long>(detail::fma_chains));
    j.begin_array("rep_gflops");
    for (double g : p.rep_gflops) j.value(g);
    j.end_array().end_object();
  };
  j.begin_object("machine")
      .field("cpu", m.cpu)
      .field("threads", m.threads)
      .field("isa_compiled", isa_name(m.compiled))
      .field("gemm_kernel", m.gemm_kernel)
      .field("cpu_avx2", m.supported.avx2)
      .field("cpu_fma", m.supported.fma)
      .field("cpu_avx512f", m.supported.avx512f)
      .field("eigen_simd", m.eigen_simd)
      .field("optimised", m.optimised)
      .field("compiler", m.compiler);
  peak("peak", m.peak);
  j.end_object();
}

inline void write_settings(Json& j, const Settings& s, bool quick) {
  j.begin_object("settings")
      .field("quick", quick)
      .field("reps", s.reps)
      .field("rep_seconds", s.rep_seconds)
      .field("min_calls", s.min_calls)
      .field("warm_seconds", s.warm_seconds)
      .field("warm_calls", s.warm_calls)
      .end_object();
}

/// The fields of a Timing, in milliseconds, as an object named `key`.
inline void write_timing(Json& j, std::string_view key, const Timing& t) {
  j.begin_object(key)
      .field("median_ms", 1e3 * t.median)
      .field("min_ms", 1e3 * t.min)
      .field("p10_ms", 1e3 * t.p10)
      .field("p90_ms", 1e3 * t.p90)
      .field("max_ms", 1e3 * t.max)
      .field("spread", t.spread)
      .field("calls", t.calls)
      .field("reps", t.reps)
      .end_object();
}

// ---------------------------------------------------------------------------------------
// GEMM bookkeeping.
// ---------------------------------------------------------------------------------------

using Trans = fg::backend::Trans;

/// One gemm call as a layer issues it: C (m x n) = op(A) op(B), k the inner dimension.
struct GemmShape {
  Trans ta, tb;
  index_t m, n, k;
  bool accumulate; // beta == 1 (parameter gradients) rather than beta == 0
  [[nodiscard]] double flop() const { return 2.0 * double(m) * double(n) * double(k); }
  friend bool operator==(const GemmShape&, const GemmShape&) = default;
};

inline std::string to_string(const GemmShape& g) {
  return std::string(g.ta == Trans::yes ? "T" : "N") + (g.tb == Trans::yes ? "T" : "N") + " m=" + std::to_string(g.m) +
         " n=" + std::to_string(g.n) + " k=" + std::to_string(g.k) + (g.accumulate ? " beta=1" : " beta=0");
}

inline double total_flop(const std::vector<GemmShape>& shapes) {
  double f = 0;
  for (const auto& s : shapes) f += s.flop();
  return f;
}

/// Base with gemm recording the shape of each call into `log` while it is set.
template <class Base>
struct RecordingBackend : Base {
  using S = typename Base::scalar;
  static inline std::vector<GemmShape>* log = nullptr;
  static void gemm(Trans ta, Trans tb, index_t m, index_t n, index_t k, S alpha, const S* a, index_t lda, const S* b,
                   index_t ldb, S beta, S* c, index_t ldc) {
    if (log != nullptr) log->push_back({ta, tb, m, n, k, beta == S(1)});
    Base::gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
};

/// The gemm calls `run` makes on RecordingBackend<Base>.
template <class Base, class F>
std::vector<GemmShape> record_gemms(F&& run) {
  std::vector<GemmShape> seen;
  RecordingBackend<Base>::log = &seen;
  try {
    run();
  } catch (...) {
    RecordingBackend<Base>::log = nullptr;
    throw;
  }
  RecordingBackend<Base>::log = nullptr;
  return seen;
}

/// Throws unless `seen` (what a step called) is exactly `expected` (the analytic list), so
/// that the FLOP count of a step cannot silently drift from what the library does.
inline void check_gemm_list(std::string_view program, std::string_view what, const std::vector<GemmShape>& expected,
                            const std::vector<GemmShape>& seen) {
  for (std::size_t i = 0; i < std::max(seen.size(), expected.size()); ++i) {
    const std::string want = i < expected.size() ? to_string(expected[i]) : "nothing";
    const std::string got = i < seen.size() ? to_string(seen[i]) : "nothing";
    if (want != got)
      throw std::runtime_error(std::string(program) + ": the GEMM list of '" + std::string(what) + "' is stale: call " +
                               std::to_string(i) + " is " + got + ", the benchmark expects " + want +
                               " (update the benchmark's pass rules to the library's)");
  }
}

/// 100 x part / whole, NaN-safe for a zero whole.
inline double percent(double part, double whole) { return whole > 0 ? 100.0 * part / whole : 0.0; }

} // namespace bench
