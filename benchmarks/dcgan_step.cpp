// dcgan_step: one training step of a 28x28 DCGAN at batch 64 on backend::Cpu<float>: ms per
// step, its FLOPs (2 m n k summed over the step's matrix products, convolutions as their
// im2col products), GFLOP/s and % of the FMA peak measured in the same run, and the share of
// the step spent inside those matrix products.
//
// The share is measured within the same steps: the backend is Cpu<float> with gemm wrapped
// by a clock, so every GEMM the layers issue (dense, convolution and transposed
// convolution, forward and backward) is timed where it runs. The rest (im2col/col2im,
// BatchNorm, activations, loss, Adam, data) is the step minus that. The wrapper also
// records the shapes of the first step's calls, which must match the analytic GEMM list
// (derived from the rules of layers/dense.hpp, conv2d.hpp, conv_transpose2d.hpp,
// nn/sequential.hpp and train/trainer.hpp) from which the FLOPs are counted.
#include <cstdio>
#include <exception>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "bench_common.hpp"
#include "blas_compare.hpp"

#include "../examples/fashion_common/dcgan_specs.hpp"

namespace {

using S = float;
using Cpu = fg::backend::Cpu<S>;
using bench::GemmShape;
using bench::Trans;
using fg::index_t;

/// The benchmarked network: the usual full-width DCGAN for 28x28 images.
namespace full {
inline constexpr index_t latent = 100;
/// z (100) -> 128x7x7 -> 64x14x14 -> 1x28x28: Dense + BatchNorm + ReLU, then 4x4 transposed
/// convolutions with stride 2 (BatchNorm + ReLU between, Tanh at the end).
using G = fg::Sequential<fg::Input<latent>, fg::Dense<128 * 7 * 7, false>, fg::Reshape<128, 7, 7>, fg::BatchNorm<>,
                         fg::ReLU, fg::ConvTranspose2d<64, 4, 2, 1, false>, fg::BatchNorm<>, fg::ReLU,
                         fg::ConvTranspose2d<1, 4, 2, 1>, fg::Tanh>;
/// 1x28x28 -> 64x14x14 -> 128x7x7 -> 1 logit: 4x4 convolutions with stride 2, LeakyReLU(0.2),
/// BatchNorm on the second (so the trainer runs real and fake as separate batches).
using D =
    fg::Sequential<fg::Input<1, 28, 28>, fg::Conv2d<64, 4, 2, 1>, fg::LeakyReLU<0.2>, fg::Conv2d<128, 4, 2, 1, false>,
                   fg::BatchNorm<>, fg::LeakyReLU<0.2>, fg::Flatten, fg::Dense<1>>;
} // namespace full

/// Cpu<float> whose gemm accumulates its wall time and call count (and records its shapes
/// while bench::RecordingBackend<Cpu>'s log is set).
struct TimedCpu : bench::RecordingBackend<Cpu> {
  static inline double seconds = 0;
  static inline long long calls = 0;
  static void gemm(Trans ta, Trans tb, index_t m, index_t n, index_t k, S alpha, const S* a, index_t lda, const S* b,
                   index_t ldb, S beta, S* c, index_t ldc) {
    const auto t0 = bench::Clock::now();
    bench::RecordingBackend<Cpu>::gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    seconds += bench::seconds_since(t0);
    ++calls;
  }
  static void reset() {
    seconds = 0;
    calls = 0;
  }
};

/// Real-valued images without a data pipeline: N(0, 1) from Philox, clipped by nothing
/// (the step's cost does not depend on the values).
struct NormalImages {
  void sample(fg::RandomStream& rng, fg::BatchView<S> out) const {
    Cpu::fill_normal(out.size(), out.data(), rng, 0, 1);
  }
};

// ---------------------------------------------------------------------------------------
// The GEMMs of a step, as the layers issue them.
// ---------------------------------------------------------------------------------------

/// A layer that issues GEMMs, by the weight matrix it multiplies with: `rows` x `cols`
/// (weight_rows x weight_cols of the layer) and `pixels` GEMM rows per sample.
struct GemmLayer {
  enum class Kind { dense, conv, conv_transpose } kind;
  index_t rows, cols, pixels;

  // Dense (In = cols, Out = rows): Y = W X; dW += dY X^T; dX = W^T dY.
  // Conv2d (Out = rows, C K K = cols, P = Ho Wo): Yt = cols(x) W^T; dW += dYt^T cols(x);
  //   dcols = dYt W.
  // ConvTranspose2d (C = rows, Out K K = cols, P = H W): cols = Xt W; dW += Xt^T im2col(dy);
  //   dXt = im2col(dy) W^T.
  [[nodiscard]] GemmShape forward(index_t n) const {
    switch (kind) {
    case Kind::dense:
      return {Trans::no, Trans::no, rows, n, cols, false};
    case Kind::conv:
      return {Trans::no, Trans::yes, pixels * n, rows, cols, false};
    default:
      return {Trans::no, Trans::no, pixels * n, cols, rows, false};
    }
  }
  [[nodiscard]] GemmShape weight_gradient(index_t n) const {
    switch (kind) {
    case Kind::dense:
      return {Trans::no, Trans::yes, rows, cols, n, true};
    default: // both convolutions: (rows x cols) += (P N x rows)^T (P N x cols)
      return {Trans::yes, Trans::no, rows, cols, pixels * n, true};
    }
  }
  [[nodiscard]] GemmShape input_gradient(index_t n) const {
    switch (kind) {
    case Kind::dense:
      return {Trans::yes, Trans::no, cols, n, rows, false};
    case Kind::conv:
      return {Trans::no, Trans::no, pixels * n, cols, rows, false};
    default:
      return {Trans::no, Trans::yes, pixels * n, rows, cols, false};
    }
  }
};

/// The GEMM-issuing layers of a network spec, in order.
template <class Spec>
std::vector<GemmLayer> gemm_layers() {
  using Layers = typename fg::Network<Spec, Cpu>::layers_type;
  std::vector<GemmLayer> out;
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    (
        [&] {
          using L = std::tuple_element_t<I, Layers>;
          constexpr std::string_view name = L::name;
          if constexpr (name == "Dense") out.push_back({GemmLayer::Kind::dense, L::weight_rows, L::weight_cols, 1});
          if constexpr (name == "Conv2d")
            out.push_back({GemmLayer::Kind::conv, L::weight_rows, L::weight_cols, L::pixels});
          if constexpr (name == "ConvTranspose2d")
            out.push_back({GemmLayer::Kind::conv_transpose, L::weight_rows, L::weight_cols, L::pixels});
        }(),
        ...);
  }
  (std::make_index_sequence<std::tuple_size_v<Layers>>{});
  return out;
}

/// A network's passes (nn/sequential.hpp): forward in order; backward in reverse with each
/// layer's weight gradient (Grad::params) then its input gradient (every layer but the first,
/// which needs one only for Grad::input).
struct GemmNet {
  std::vector<GemmLayer> layers;
  void forward(index_t n, std::vector<GemmShape>& out) const {
    for (const auto& l : layers) out.push_back(l.forward(n));
  }
  void backward(index_t n, fg::Grad want, std::vector<GemmShape>& out) const {
    for (std::size_t i = layers.size(); i-- > 0;) {
      if (fg::wants(want, fg::Grad::params)) out.push_back(layers[i].weight_gradient(n));
      if (i > 0 || fg::wants(want, fg::Grad::input)) out.push_back(layers[i].input_gradient(n));
    }
  }
};

struct StepGemms {
  std::vector<GemmShape> shapes;
  std::vector<std::pair<std::string, double>> phase_flop;
  template <class F>
  void phase(const char* name, F&& add) {
    const std::size_t first = shapes.size();
    add(shapes);
    double f = 0;
    for (std::size_t i = first; i < shapes.size(); ++i) f += shapes[i].flop();
    for (auto& [n, v] : phase_flop)
      if (n == name) {
        v += f;
        return;
      }
    phase_flop.emplace_back(name, f);
  }
};

/// The GEMMs of one trainer.step() of a Trainer type T (n_critic 1, a loss that does not
/// read the real batch in the generator update, no penalty), by phase.
template <class T, class G, class D>
StepGemms step_gemms(index_t n) {
  const GemmNet g{gemm_layers<G>()}, d{gemm_layers<D>()};
  StepGemms s;
  // critic_update: generate_fakes, D on [real | fake] as one batch of 2n (with BatchNorm in
  // D, two statistics groups of n), its parameter gradients.
  s.phase("critic_update", [&](auto& c) {
    g.forward(n, c);
    d.forward(2 * n, c);
    d.backward(2 * n, fg::Grad::params, c);
  });
  // generator_update: generate_fakes, D on the fakes, its input gradient only, then G's
  // parameter gradients.
  s.phase("generator_update", [&](auto& c) {
    g.forward(n, c);
    d.forward(n, c);
    d.backward(n, fg::Grad::input, c);
    g.backward(n, fg::Grad::params, c);
  });
  return s;
}

// ---------------------------------------------------------------------------------------
// The benchmark.
// ---------------------------------------------------------------------------------------

struct Row {
  std::string name;
  index_t batch;
  std::size_t gemm_count;
  double flop;
  std::vector<std::pair<std::string, double>> phase_flop;
  bench::Timing step, gemm;      // gemm: seconds inside gemm per step
  double share;                  // median over steps of (seconds in gemm) / (step seconds)
  std::vector<GemmShape> shapes; // the step's GEMM list
};

template <class G, class D>
Row run(const std::string& name, index_t batch, const bench::Settings& s) {
  using T = fg::Trainer<G, D, fg::objectives::Dcgan, fg::optim::Adam, TimedCpu>;
  auto cfg = fg::dcgan_config<T>();
  cfg.batch = batch;
  cfg.seed = 1;
  T trainer(cfg);
  NormalImages data;
  const StepGemms expected = step_gemms<T, G, D>(batch);
  auto step = [&] {
    TimedCpu::reset();
    trainer.step(data);
  };
  bench::check_gemm_list("dcgan_step", name, expected.shapes, bench::record_gemms<Cpu>(step));
  if (TimedCpu::calls != static_cast<long long>(expected.shapes.size()))
    throw std::runtime_error("dcgan_step: the timed backend missed gemm calls");
  std::vector<double> in_gemm;
  const auto samples =
      bench::sample_calls(s, {step}, [&](std::size_t, double) { in_gemm.push_back(TimedCpu::seconds); });
  // The GEMM seconds in the same repetition structure as the step times.
  bench::Samples gemm_samples;
  std::vector<double> shares;
  std::size_t k = 0;
  for (const auto& rep : samples[0]) {
    gemm_samples.emplace_back();
    for (const double t : rep) {
      gemm_samples.back().push_back(in_gemm[k]);
      shares.push_back(in_gemm[k] / t);
      ++k;
    }
  }
  double flop = 0;
  for (const auto& p : expected.phase_flop) flop += p.second;
  return {name,
          batch,
          expected.shapes.size(),
          flop,
          expected.phase_flop,
          bench::summarise(samples[0]),
          bench::summarise(gemm_samples),
          bench::median(shares),
          expected.shapes};
}

void print_header(const bench::Machine& m, const bench::Settings& s, bool quick, index_t batch) {
  std::printf("forgery dcgan_step benchmark: backend Cpu<float>%s\n",
              quick ? " (--quick: small batch, one step; timings meaningless)" : "");
  bench::print_machine(m);
  std::printf("timing   per step: median (and min) of every step timed alone, %d repetitions of >= %.2f s and >= %lld\n"
              "         steps after >= %.2f s of warm-up; spread = (max - min) / median of the repetitions' medians\n",
              s.reps, s.rep_seconds, s.min_calls, s.warm_seconds);
  std::printf("steps    dcgan: one trainer.step() at batch %ld of G = Dense 100->128x7x7 + BN + ReLU, ConvT 128->64\n"
              "         4/2/1 + BN + ReLU, ConvT 64->1 4/2/1 + Tanh and D = Conv 1->64 4/2/1 + LReLU 0.2, Conv\n"
              "         64->128 4/2/1 + BN + LReLU, Dense 6272->1; non-saturating loss, Adam, one critic update\n"
              "         (real and fake as separate batches: D has BatchNorm) and one generator update;\n"
              "         fashion_dcgan: the same step on examples/fashion_dcgan's half-width networks (latent 64)\n",
              static_cast<long>(batch));
  std::printf("GFLOP    2 m n k over the step's gemm calls (convolutions as their im2col products; the analytic\n"
              "         list, checked against the calls of the first step); GFLOP/s and %% of peak from the median\n");
  std::printf("GEMM     seconds inside those gemm calls per step, timed where they run; share = GEMM / step\n\n");
  std::printf("%-14s %5s %7s | %8s %8s %6s %7s %6s | %8s %6s %7s %6s | %5s\n", "benchmark", "batch", "GFLOP", "step ms",
              "min ms", "spread", "GFLOP/s", "%peak", "GEMM ms", "share", "GFLOP/s", "%peak", "calls");
}

void print_row(const Row& r, const bench::Machine& m) {
  const double gflop = r.flop * 1e-9, peak = m.peak.gflops;
  std::printf("%-14s %5ld %7.3f | %8.2f %8.2f %5.1f%% %7.1f %5.1f%% | %8.2f %5.1f%% %7.1f %5.1f%% | %5zu\n",
              r.name.c_str(), static_cast<long>(r.batch), gflop, 1e3 * r.step.median, 1e3 * r.step.min,
              100 * r.step.spread, gflop / r.step.median, bench::percent(gflop / r.step.median, peak),
              1e3 * r.gemm.median, 100 * r.share, gflop / r.gemm.median, bench::percent(gflop / r.gemm.median, peak),
              r.gemm_count);
  std::fflush(stdout);
}

void write_row(bench::Json& j, const Row& r, const bench::Machine& m) {
  const double gflop = r.flop * 1e-9, peak = m.peak.gflops;
  j.begin_object()
      .field("name", r.name)
      .field("batch", static_cast<long long>(r.batch))
      .field("gemm_calls", static_cast<long long>(r.gemm_count))
      .field("gflop", gflop);
  j.begin_object("gflop_by_phase");
  for (const auto& [name, f] : r.phase_flop) j.field(name, f * 1e-9);
  j.end_object();
  bench::write_timing(j, "step", r.step);
  j.field("step_gflops", gflop / r.step.median).field("step_pct_peak", bench::percent(gflop / r.step.median, peak));
  bench::write_timing(j, "gemm_in_step", r.gemm);
  j.field("gemm_share", r.share)
      .field("gemm_gflops", gflop / r.gemm.median)
      .field("gemm_pct_peak", bench::percent(gflop / r.gemm.median, peak))
      .end_object();
}

constexpr const char* usage =
    "usage: bench_dcgan_step [--quick] [--json FILE]\n"
    "Times one training step of a 28x28 DCGAN (full width, and examples/fashion_dcgan's half-width one) at\n"
    "batch 64 on Cpu<float> and its share in GEMM; FLOPs, GFLOP/s and % of the FMA peak measured in the same\n"
    "run with the same OpenMP thread count (set it with OMP_NUM_THREADS).\n"
    "  --json FILE  also write the results and the machine description as JSON to FILE ('-': stdout only)\n"
    "  --quick      batch 4, one step (smoke test; timings meaningless)\n";

} // namespace

int main(int argc, char** argv) try {
  const bench::Options o = bench::parse_options(argc, argv, usage);
  if (o.exit_code >= 0) return o.exit_code;
  const bool table = o.json != "-";
  const bench::Settings s = o.quick ? bench::quick_settings() : bench::Settings{};
  // --quick: batch 4, enough for the GEMM-list check and for a debug + sanitizer build.
  const index_t batch = o.quick ? 4 : 64;
  const bench::Machine m = bench::describe_machine(o.quick);
  if (table) print_header(m, s, o.quick, batch);
  std::vector<Row> rows;
  const auto add = [&](Row r) {
    if (table) print_row(r, m);
    rows.push_back(std::move(r));
  };
  add(run<full::G, full::D>("dcgan", batch, s));
  add(run<fashion::dcgan::G, fashion::dcgan::D>("fashion_dcgan", batch, s));
#if FORGERY_BENCH_CBLAS
  if (table) {
    bench::blas::print_header(m);
    for (const Row& r : rows) bench::blas::print(bench::blas::compare(r.name, r.shapes, s, m.threads), m);
  }
#endif
  if (!o.json.empty()) {
    bench::Json j;
    j.begin_object()
        .field("benchmark", "dcgan_step")
        .field("time_utc", bench::utc_now())
        .field("backend", "Cpu<float>");
    bench::write_machine(j, m);
    bench::write_settings(j, s, o.quick);
    j.begin_array("steps");
    for (const Row& r : rows) write_row(j, r, m);
    j.end_array().end_object();
    bench::write_text(o.json, j.str());
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_dcgan_step: %s\n", e.what());
  return 1;
}
