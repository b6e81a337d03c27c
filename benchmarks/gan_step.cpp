// gan_step: the time of one GAN training step on backend::Cpu<float>, beside the time of
// the matrix products that step performs run alone, so that the ratio says how much of a
// step is spent outside GEMM (elementwise layers, loss, penalty kernels, Adam, data).
//
// The GEMM list is derived from the rules of layers/dense.hpp, nn/sequential.hpp,
// penalty/workspace.hpp and train/trainer.hpp (which passes run, with which fg::Grad), and
// checked at start-up against the calls a recording backend sees in one real step.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <deque>
#include <exception>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include <forgery/forgery.hpp>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace {

using S = float;
using Cpu = fg::backend::Cpu<S>;
using Trans = fg::backend::Trans;
using fg::index_t;

using Gen = fg::Sequential<fg::Input<100>, fg::Dense<256>, fg::LeakyReLU<0.2>, fg::Dense<512>, fg::LeakyReLU<0.2>,
                           fg::Dense<784>, fg::Tanh>;
using Disc = fg::Sequential<fg::Input<784>, fg::Dense<512>, fg::LeakyReLU<0.2>, fg::Dense<256>, fg::LeakyReLU<0.2>,
                            fg::Dense<1>>;

// ---------------------------------------------------------------------------------------
// The data: N(0, 1) values straight from Philox, so that the step measures the trainer and
// not a data pipeline (one fill_normal of 784 x batch values per critic update).
// ---------------------------------------------------------------------------------------

template <class B>
struct NormalSource {
  void sample(fg::RandomStream& rng, fg::BatchView<typename B::scalar> out) const {
    using T = typename B::scalar;
    B::fill_normal(out.size(), out.data(), rng, T(0), T(1));
  }
};

// ---------------------------------------------------------------------------------------
// The GEMMs of a step, as the layers issue them.
// ---------------------------------------------------------------------------------------

struct GemmShape {
  Trans ta, tb;
  index_t m, n, k;
  bool accumulate; // beta == 1 (parameter gradients) rather than beta == 0
  friend bool operator==(const GemmShape&, const GemmShape&) = default;
};

std::string to_string(const GemmShape& g) {
  return std::string(g.ta == Trans::yes ? "T" : "N") + (g.tb == Trans::yes ? "T" : "N") + " m=" + std::to_string(g.m) +
         " n=" + std::to_string(g.n) + " k=" + std::to_string(g.k) + (g.accumulate ? " beta=1" : " beta=0");
}

struct GemmCall {
  GemmShape shape;
  const S* a;
  index_t lda;
  const S* b;
  index_t ldb;
  S* c;
  index_t ldc;
  void operator()() const {
    Cpu::gemm(shape.ta, shape.tb, shape.m, shape.n, shape.k, S(1), a, lda, b, ldb, shape.accumulate ? S(1) : S(0), c,
              ldc);
  }
  [[nodiscard]] double flop() const { return 2.0 * double(shape.m) * double(shape.n) * double(shape.k); }
};

// Owns every operand of the GEMM-only run; values N(0, 0.05^2), finite and not denormal.
class Operands {
public:
  S* make(index_t size) {
    buffers_.emplace_back(size);
    Cpu::fill_normal(size, buffers_.back().data(), rng_, S(0), S(0.05));
    return buffers_.back().data();
  }

private:
  std::deque<fg::HostBuffer<S>> buffers_;
  fg::RandomStream rng_{12345, 0, 0};
};

struct DenseDims {
  index_t in, out;
};

// (in, out) of every Dense layer of a network spec, in order: the only layers with GEMMs.
template <class Spec>
std::vector<DenseDims> dense_layers() {
  using Layers = typename fg::Network<Spec, Cpu>::layers_type;
  std::vector<DenseDims> dims;
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    (
        [&] {
          using L = std::tuple_element_t<I, Layers>;
          if (std::string_view(L::name) == "Dense") dims.push_back({L::input_shape::size, L::output_shape::size});
        }(),
        ...);
  }
  (std::make_index_sequence<std::tuple_size_v<Layers>>{});
  return dims;
}

// The Dense layers of one Network with the buffers it keeps between calls (weights, their
// gradients, activations and the tangent-pass buffers, each reused by every call as the
// Network reuses its own), appending the GEMMs each pass issues.
class GemmModel {
public:
  GemmModel(std::vector<DenseDims> dims, index_t capacity, Operands& ops) {
    for (const auto& d : dims) {
      Layer l{d.in, d.out};
      l.w = ops.make(d.out * d.in);
      l.gw = ops.make(d.out * d.in);
      for (S** p : {&l.x, &l.dx, &l.tx, &l.gx, &l.gtx}) *p = ops.make(d.in * capacity);
      for (S** p : {&l.y, &l.dy, &l.ty, &l.gy, &l.gty}) *p = ops.make(d.out * capacity);
      layers_.push_back(l);
    }
  }

  // Y = W X for each layer.
  void forward(index_t n, std::vector<GemmCall>& out) const {
    for (const Layer& l : layers_) out.push_back(affine(l, n, l.x, l.y));
  }
  // Network::backward: dW += dY X^T for every layer (Grad::params); dX = W^T dY for every
  // layer but the first, which needs one only for Grad::input.
  void backward(index_t n, fg::Grad want, std::vector<GemmCall>& out) const {
    for (std::size_t i = layers_.size(); i-- > 0;) {
      const Layer& l = layers_[i];
      if (fg::wants(want, fg::Grad::params)) out.push_back(weight_gradient(l, n, l.dy, l.x));
      if (i > 0 || fg::wants(want, fg::Grad::input)) out.push_back(input_gradient(l, n, l.dy, l.dx));
    }
  }
  // Network::forward_dual: Y = W X, TY = W TX.
  void forward_dual(index_t n, std::vector<GemmCall>& out) const {
    for (const Layer& l : layers_) {
      out.push_back(affine(l, n, l.x, l.y));
      out.push_back(affine(l, n, l.tx, l.ty));
    }
  }
  // Network::backward_dual: dW += GY X^T + GTY TX^T (Grad::params); GX = W^T GY and
  // GTX = W^T GTY for every layer but the first, which needs them only for Grad::input.
  void backward_dual(index_t n, fg::Grad want, std::vector<GemmCall>& out) const {
    for (std::size_t i = layers_.size(); i-- > 0;) {
      const Layer& l = layers_[i];
      if (fg::wants(want, fg::Grad::params)) {
        out.push_back(weight_gradient(l, n, l.gy, l.x));
        out.push_back(weight_gradient(l, n, l.gty, l.tx));
      }
      if (i > 0 || fg::wants(want, fg::Grad::input)) {
        out.push_back(input_gradient(l, n, l.gy, l.gx));
        out.push_back(input_gradient(l, n, l.gty, l.gtx));
      }
    }
  }

private:
  struct Layer {
    index_t in, out;
    S *w = nullptr, *gw = nullptr;
    S *x = nullptr, *y = nullptr, *dy = nullptr, *dx = nullptr;
    S *tx = nullptr, *ty = nullptr, *gy = nullptr, *gty = nullptr, *gx = nullptr, *gtx = nullptr;
  };
  static GemmCall affine(const Layer& l, index_t n, const S* x, S* y) {
    return {{Trans::no, Trans::no, l.out, n, l.in, false}, l.w, l.out, x, l.in, y, l.out};
  }
  static GemmCall weight_gradient(const Layer& l, index_t n, const S* dy, const S* x) {
    return {{Trans::no, Trans::yes, l.out, l.in, n, true}, dy, l.out, x, l.in, l.gw, l.out};
  }
  static GemmCall input_gradient(const Layer& l, index_t n, const S* dy, S* dx) {
    return {{Trans::yes, Trans::no, l.in, n, l.out, false}, l.w, l.out, dy, l.out, dx, l.in};
  }
  std::vector<Layer> layers_;
};

// The GEMMs of one trainer.step() with a loss that does not read the real batch in the
// generator update (non-saturating) and no penalty, n_critic 1.
std::vector<GemmCall> ns_step_gemms(const GemmModel& g, const GemmModel& d, index_t n) {
  std::vector<GemmCall> calls;
  // critic_update: generate_fakes, the critic on real+fake (2n), its parameter gradients.
  g.forward(n, calls);
  d.forward(2 * n, calls);
  d.backward(2 * n, fg::Grad::params, calls);
  // generator_update: generate_fakes, the critic on the fakes, its input gradient only,
  // then G's parameter gradients.
  g.forward(n, calls);
  d.forward(n, calls);
  d.backward(n, fg::Grad::input, calls);
  g.backward(n, fg::Grad::params, calls);
  return calls;
}

// The GEMMs of one train_critic() of a WGAN-GP trainer: the loss pass, then the gradient
// penalty (penalise_input_gradient): g = grad_x D(x_hat) by an input-only backward, then
// one dual forward and one params-only dual backward.
std::vector<GemmCall> gp_critic_gemms(const GemmModel& g, const GemmModel& d, index_t n) {
  std::vector<GemmCall> calls;
  g.forward(n, calls);
  d.forward(2 * n, calls);
  d.backward(2 * n, fg::Grad::params, calls);
  d.forward(n, calls);
  d.backward(n, fg::Grad::input, calls);
  d.forward_dual(n, calls);
  d.backward_dual(n, fg::Grad::params, calls);
  return calls;
}

// ---------------------------------------------------------------------------------------
// The check of that list: a backend that records what the layers call.
// ---------------------------------------------------------------------------------------

struct RecordingCpu : Cpu {
  static inline std::vector<GemmShape>* log = nullptr;
  static void gemm(Trans ta, Trans tb, index_t m, index_t n, index_t k, S alpha, const S* a, index_t lda, const S* b,
                   index_t ldb, S beta, S* c, index_t ldc) {
    if (log != nullptr) log->push_back({ta, tb, m, n, k, beta == S(1)});
    Cpu::gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
};

// Throws unless `run` (one step of a trainer on RecordingCpu) issues exactly `expected`.
template <class F>
void check_gemm_list(const char* what, const std::vector<GemmCall>& expected, F&& run) {
  std::vector<GemmShape> seen;
  RecordingCpu::log = &seen;
  run();
  RecordingCpu::log = nullptr;
  for (std::size_t i = 0; i < std::max(seen.size(), expected.size()); ++i) {
    const std::string want = i < expected.size() ? to_string(expected[i].shape) : "nothing";
    const std::string got = i < seen.size() ? to_string(seen[i]) : "nothing";
    if (want != got)
      throw std::runtime_error(std::string("gan_step: the GEMM list of '") + what + "' is stale: call " +
                               std::to_string(i) + " is " + got + ", the benchmark expects " + want +
                               " (update ns_step_gemms / gp_critic_gemms to the library's passes)");
  }
}

// ---------------------------------------------------------------------------------------
// Timing.
// ---------------------------------------------------------------------------------------

using Clock = std::chrono::steady_clock;

template <class F>
double time_loop(F& f, long long iters) {
  const auto t0 = Clock::now();
  for (long long i = 0; i < iters; ++i) f();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Runs f for at least `seconds` (and 3 calls); returns the seconds per call.
template <class F>
double warm_up(F& f, double seconds) {
  long long calls = 0;
  const auto t0 = Clock::now();
  double elapsed = 0;
  while (calls < 3 || elapsed < seconds) {
    f();
    ++calls;
    elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  }
  return elapsed / double(calls);
}

struct Settings {
  int reps = 7;              // timed loops per measurement; the median is reported
  double loop_seconds = 0.3; // each timed loop runs at least this long
  double warm_seconds = 0.3;
};

// Seconds per call over the timed loops: the median, the fastest, and (max - min) / median.
struct Measured {
  double median = 0, best = 0, spread = 0;
};

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t h = v.size() / 2;
  return v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]);
}

// Times `step` and `gemms` alike, their timed loops interleaved so that a change in the
// machine's load falls on both.
template <class F1, class F2>
std::pair<Measured, Measured> measure_pair(F1& step, F2& gemms, const Settings& s) {
  const double per_step = warm_up(step, s.warm_seconds);
  const double per_gemms = warm_up(gemms, s.warm_seconds / 2);
  const auto iters_for = [&](double per) {
    return std::max<long long>(1, std::llround(std::ceil(s.loop_seconds / per)));
  };
  const long long n_step = iters_for(per_step), n_gemms = iters_for(per_gemms);
  std::vector<double> a, b;
  for (int r = 0; r < s.reps; ++r) {
    a.push_back(time_loop(step, n_step) / double(n_step));
    b.push_back(time_loop(gemms, n_gemms) / double(n_gemms));
  }
  const auto summarise = [](const std::vector<double>& v) {
    const double med = median_of(v);
    const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
    return Measured{med, *lo, (*hi - *lo) / med};
  };
  return {summarise(a), summarise(b)};
}

// Times f alone: warm-up, then the median of the timed loops.
template <class F>
double measure_median(F& f, const Settings& s) {
  const double per = warm_up(f, s.warm_seconds / 3);
  const long long n = std::max<long long>(1, std::llround(std::ceil(s.loop_seconds / 3 / per)));
  std::vector<double> v;
  for (int r = 0; r < s.reps; ++r) v.push_back(time_loop(f, n) / double(n));
  return median_of(v);
}

// The data source's own cost per step: one sample() of a sample_size x batch real batch
// per critic update.
double data_seconds(index_t batch, const Settings& s) {
  constexpr index_t features = Disc::input_shape::size;
  fg::HostBuffer<S> real(features * batch);
  fg::RandomStream rng{7, 0, 0};
  NormalSource<Cpu> source;
  auto fill = [&] { source.sample(rng, fg::BatchView<S>(real.data(), features, batch)); };
  return measure_median(fill, s);
}

// ---------------------------------------------------------------------------------------
// Report.
// ---------------------------------------------------------------------------------------

std::string cpu_model() {
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

int thread_count() {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// Eigen's list, which names AVX2 and FMA under "AVX"; the compiler says which it targets.
std::string simd_in_use() {
  std::string s = Eigen::SimdInstructionSetsInUse();
#if defined(__AVX2__)
  s += ", AVX2";
#endif
#if defined(__FMA__)
  s += ", FMA";
#endif
  return s;
}

constexpr bool optimised_build() {
#if defined(__OPTIMIZE__)
  return true;
#else
  return false;
#endif
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) >= 0x20) out += c;
  }
  return out;
}

struct Row {
  std::string name;
  index_t batch;
  std::size_t gemm_count;
  double flop;
  Measured step, gemms;
  double data; // seconds per step in the data source alone
};

void print_header(const std::string& cpu, int threads, const Settings& s) {
  std::printf("forgery gan_step benchmark: backend Cpu<float>\n");
  std::printf("cpu      %s\n", cpu.c_str());
  std::printf("threads  %d (OpenMP)\n", threads);
  std::printf("build    Eigen SIMD: %s%s\n", simd_in_use().c_str(),
              optimised_build() ? "" : "; NOT OPTIMISED (build with -O2 or -O3)");
  std::printf("timing   median of %d loops of >= %.2f s each, after warm-up; GEMM-only loops interleaved\n", s.reps,
              s.loop_seconds);
  std::printf("data     real batch = Philox N(0,1) by Cpu<float>::fill_normal, inside the step time; its\n"
              "         cost alone (one 784 x batch fill per critic update) is the 'data ms' column\n");
  std::printf("steps    ns_step: one trainer.step() of G = 100-256-512-784 (LeakyReLU 0.2, Tanh) and\n"
              "         D = 784-512-256-1, non-saturating loss, Adam, n_critic 1 (one D + one G update);\n"
              "         wgan_gp_critic: one train_critic() of a WganGpTrainer, lambda 10 (loss, exact\n"
              "         gradient penalty through the tangent pass, Adam)\n");
  std::printf("GEMMs    the step's Cpu<float>::gemm calls, same shapes, transposes and betas, on preallocated\n"
              "         buffers (checked against a recording backend); spread = (max - min) / median\n");
  std::printf("ratio    step / GEMMs of the medians; 'best' the same of the fastest loops\n\n");
  std::printf("%-15s %5s %5s %7s | %8s %7s %7s | %8s %7s %7s | %5s %5s | %7s\n", "benchmark", "batch", "gemms", "MFLOP",
              "step ms", "spread", "GFLOP/s", "GEMM ms", "spread", "GFLOP/s", "ratio", "best", "data ms");
}

void print_row(const Row& r, bool json, const std::string& cpu, int threads) {
  const double ratio = r.step.median / r.gemms.median, best_ratio = r.step.best / r.gemms.best;
  const double gflop = r.flop * 1e-9;
  if (json) {
    std::printf("{\"benchmark\":\"%s\",\"batch\":%ld,\"gemm_calls\":%zu,\"flop\":%.0f,\"step_seconds\":%.9g,"
                "\"step_best_seconds\":%.9g,\"step_spread\":%.4f,\"step_gflops\":%.4g,\"gemm_seconds\":%.9g,"
                "\"gemm_best_seconds\":%.9g,\"gemm_spread\":%.4f,\"gemm_gflops\":%.4g,\"ratio\":%.4f,"
                "\"best_ratio\":%.4f,\"data_seconds\":%.9g,\"threads\":%d,\"cpu\":\"%s\",\"simd\":\"%s\"}\n",
                r.name.c_str(), static_cast<long>(r.batch), r.gemm_count, r.flop, r.step.median, r.step.best,
                r.step.spread, gflop / r.step.median, r.gemms.median, r.gemms.best, r.gemms.spread,
                gflop / r.gemms.median, ratio, best_ratio, r.data, threads, json_escape(cpu).c_str(),
                json_escape(simd_in_use()).c_str());
  } else {
    std::printf("%-15s %5ld %5zu %7.1f | %8.3f %6.1f%% %7.1f | %8.3f %6.1f%% %7.1f | %5.2f %5.2f | %7.3f\n",
                r.name.c_str(), static_cast<long>(r.batch), r.gemm_count, r.flop * 1e-6, r.step.median * 1e3,
                100 * r.step.spread, gflop / r.step.median, r.gemms.median * 1e3, 100 * r.gemms.spread,
                gflop / r.gemms.median, ratio, best_ratio, r.data * 1e3);
  }
  std::fflush(stdout);
}

// ---------------------------------------------------------------------------------------
// The benchmarks.
// ---------------------------------------------------------------------------------------

template <class B>
using NsTrainer = fg::DcganTrainer<Gen, Disc, B>;
template <class B>
using GpTrainer = fg::WganGpTrainer<Gen, Disc, B>;

template <class B>
typename NsTrainer<B>::Config ns_config(index_t batch) {
  auto c = fg::dcgan_config<NsTrainer<B>>();
  c.batch = batch;
  c.n_critic = 1;
  c.seed = 1;
  return c;
}

template <class B>
typename GpTrainer<B>::Config gp_config(index_t batch) {
  auto c = fg::wgan_gp_config<GpTrainer<B>>();
  c.batch = batch;
  c.seed = 1;
  std::get<0>(c.objective.parts).lambda = 10;
  return c;
}

double total_flop(const std::vector<GemmCall>& calls) {
  double f = 0;
  for (const auto& c : calls) f += c.flop();
  return f;
}

Row run_ns_step(index_t batch, const Settings& s) {
  Operands ops;
  const GemmModel g(dense_layers<Gen>(), batch, ops), d(dense_layers<Disc>(), 2 * batch, ops);
  const std::vector<GemmCall> calls = ns_step_gemms(g, d, batch);
  {
    NsTrainer<RecordingCpu> rec(ns_config<RecordingCpu>(batch));
    NormalSource<RecordingCpu> src;
    rec.step(src);
    check_gemm_list("non-saturating step", calls, [&] { rec.step(src); });
  }
  NsTrainer<Cpu> trainer(ns_config<Cpu>(batch));
  NormalSource<Cpu> source;
  auto step = [&] { trainer.step(source); };
  auto gemms = [&] {
    for (const GemmCall& c : calls) c();
  };
  const auto [ts, tg] = measure_pair(step, gemms, s);
  return {"ns_step", batch, calls.size(), total_flop(calls), ts, tg, data_seconds(batch, s)};
}

Row run_gp_critic(index_t batch, const Settings& s) {
  Operands ops;
  const GemmModel g(dense_layers<Gen>(), batch, ops), d(dense_layers<Disc>(), 2 * batch, ops);
  const std::vector<GemmCall> calls = gp_critic_gemms(g, d, batch);
  {
    GpTrainer<RecordingCpu> rec(gp_config<RecordingCpu>(batch));
    NormalSource<RecordingCpu> src;
    rec.train_critic(src);
    check_gemm_list("WGAN-GP critic step", calls, [&] { rec.train_critic(src); });
  }
  GpTrainer<Cpu> trainer(gp_config<Cpu>(batch));
  NormalSource<Cpu> source;
  auto step = [&] { trainer.train_critic(source); };
  auto gemms = [&] {
    for (const GemmCall& c : calls) c();
  };
  const auto [ts, tg] = measure_pair(step, gemms, s);
  return {"wgan_gp_critic", batch, calls.size(), total_flop(calls), ts, tg, data_seconds(batch, s)};
}

} // namespace

int main(int argc, char** argv) try {
  bool json = false, quick = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--json") {
      json = true;
    } else if (a == "--quick") {
      quick = true;
    } else {
      std::fprintf(stderr, "usage: bench_gan_step [--json] [--quick]\n"
                           "Times one MLP GAN training step (non-saturating, Adam; batch 64 and 256) and one WGAN-GP\n"
                           "critic step (batch 64) on Cpu<float>, beside the same step's GEMMs run alone.\n"
                           "  --json   one JSON object per benchmark instead of the table\n"
                           "  --quick  one short timed loop per measurement (smoke test)\n");
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  Settings s;
  if (quick) s = Settings{1, 0.02, 0.02};
  const std::string cpu = cpu_model();
  const int threads = thread_count();
  if (!json) print_header(cpu, threads, s);
  print_row(run_ns_step(64, s), json, cpu, threads);
  print_row(run_ns_step(256, s), json, cpu, threads);
  print_row(run_gp_critic(64, s), json, cpu, threads);
} catch (const std::exception& e) {
  std::fprintf(stderr, "gan_step: %s\n", e.what());
  return 1;
}
