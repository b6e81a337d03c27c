// gan_step: the time of whole GAN training steps on backend::Cpu<float>, their FLOPs (2 m n k
// summed over the step's matrix products), GFLOP/s and % of the FMA peak measured in the same
// run, beside the time of the matrix products that step performs run alone, so that the
// ratio says how much of a step is spent outside GEMM (elementwise layers, loss, penalty
// kernels, Adam, data).
//
// The GEMM list is derived from the rules of layers/dense.hpp, nn/sequential.hpp,
// penalty/workspace.hpp and train/trainer.hpp (which passes run, with which fg::Grad), and
// checked on the first step against the calls the trainer makes (its backend records them).
#include <cstdio>
#include <deque>
#include <exception>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "bench_common.hpp"
#include "blas_compare.hpp"

namespace {

using S = float;
using Cpu = fg::backend::Cpu<S>;
// The trainers run on Cpu<float> whose gemm also records its shapes while a log is set (one
// pointer test per call otherwise): the first step checks the GEMM list.
using RecCpu = bench::RecordingBackend<Cpu>;
using bench::GemmShape;
using bench::Trans;
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
  // Network::forward_tangent after a forward: TY = W TX (Y is the forward's).
  void forward_tangent(index_t n, std::vector<GemmCall>& out) const {
    for (const Layer& l : layers_) out.push_back(affine(l, n, l.tx, l.ty));
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

// A step's GEMMs, by phase: each phase's FLOPs are reported (and compared with hand counts).
struct StepGemms {
  std::vector<GemmCall> calls;
  std::vector<std::pair<std::string, double>> phase_flop;

  // Appends what `add` appends to the calls, counting its FLOPs under `phase`.
  template <class F>
  void phase(const std::string& name, F&& add) {
    const std::size_t first = calls.size();
    add(calls);
    double f = 0;
    for (std::size_t i = first; i < calls.size(); ++i) f += calls[i].shape.flop();
    for (auto& [n, v] : phase_flop)
      if (n == name) {
        v += f;
        return;
      }
    phase_flop.emplace_back(name, f);
  }
  [[nodiscard]] std::vector<GemmShape> shapes() const {
    std::vector<GemmShape> s;
    for (const auto& c : calls) s.push_back(c.shape);
    return s;
  }
};

// critic_update with no penalty: generate_fakes, the critic on real+fake (one batch of 2n:
// the critic has no BatchNorm), its parameter gradients.
void critic_loss_gemms(const GemmModel& g, const GemmModel& d, index_t n, std::vector<GemmCall>& calls) {
  g.forward(n, calls);
  d.forward(2 * n, calls);
  d.backward(2 * n, fg::Grad::params, calls);
}

// The WGAN-GP penalty (penalise_input_gradient): g = grad_x D(x_hat) by an input-only
// backward, then the tangent forward on the cached activations and one params-only dual
// backward.
void gradient_penalty_gemms(const GemmModel& d, index_t n, std::vector<GemmCall>& calls) {
  d.forward(n, calls);
  d.backward(n, fg::Grad::input, calls);
  d.forward_tangent(n, calls);
  d.backward_dual(n, fg::Grad::params, calls);
}

// generator_update with a loss that does not read the real batch (non-saturating,
// Wasserstein): generate_fakes, the critic on the fakes, its input gradient only, then G's
// parameter gradients.
void generator_gemms(const GemmModel& g, const GemmModel& d, index_t n, std::vector<GemmCall>& calls) {
  g.forward(n, calls);
  d.forward(n, calls);
  d.backward(n, fg::Grad::input, calls);
  g.backward(n, fg::Grad::params, calls);
}

// ---------------------------------------------------------------------------------------
// The benchmarks.
// ---------------------------------------------------------------------------------------

struct Row {
  std::string name;
  index_t batch;
  std::size_t gemm_count;
  double flop;
  std::vector<std::pair<std::string, double>> phase_flop;
  bench::Timing step, gemms;
  double data;                   // median seconds of the data source alone, per step
  std::vector<GemmShape> shapes; // the step's GEMM list
};

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
  c.n_critic = 5;
  std::get<0>(c.objective.parts).lambda = 10;
  return c;
}

// The data source's own cost: one sample() of a 784 x batch real batch.
double data_seconds(index_t batch, const bench::Settings& s) {
  constexpr index_t features = Disc::input_shape::size;
  fg::HostBuffer<S> real(features * batch);
  fg::RandomStream rng{7, 0, 0};
  NormalSource<Cpu> source;
  bench::Settings light = s;
  light.reps = std::min(s.reps, 3);
  light.rep_seconds = s.rep_seconds / 5;
  light.warm_seconds = s.warm_seconds / 5;
  const auto samples =
      bench::sample_calls(light, {[&] { source.sample(rng, fg::BatchView<S>(real.data(), features, batch)); }});
  return bench::summarise(samples[0]).median;
}

// Times `step` (whose first call is checked against `gemms`) and the GEMMs alone.
template <class Step>
Row measure(const std::string& name, index_t batch, int critic_updates, const StepGemms& gemms, Step&& step,
            const bench::Settings& s) {
  bench::check_gemm_list("gan_step", name, gemms.shapes(), bench::record_gemms<Cpu>(step));
  const auto samples = bench::sample_calls(s, {step, [&] {
                                                 for (const GemmCall& c : gemms.calls) c();
                                               }});
  double flop = 0;
  for (const auto& p : gemms.phase_flop) flop += p.second;
  return {name,
          batch,
          gemms.calls.size(),
          flop,
          gemms.phase_flop,
          bench::summarise(samples[0]),
          bench::summarise(samples[1]),
          critic_updates * data_seconds(batch, s),
          gemms.shapes()};
}

// One trainer.step() of the MLP GAN, non-saturating loss, Adam, n_critic 1.
Row run_ns_step(index_t batch, const bench::Settings& s) {
  Operands ops;
  const GemmModel g(dense_layers<Gen>(), batch, ops), d(dense_layers<Disc>(), 2 * batch, ops);
  StepGemms gemms;
  gemms.phase("critic_update", [&](auto& c) { critic_loss_gemms(g, d, batch, c); });
  gemms.phase("generator_update", [&](auto& c) { generator_gemms(g, d, batch, c); });
  NsTrainer<RecCpu> trainer(ns_config<RecCpu>(batch));
  NormalSource<RecCpu> source;
  return measure(
      "mlp_gan", batch, 1, gemms, [&] { trainer.step(source); }, s);
}

// One trainer.step() of the WGAN-GP on the MLP GAN: 5 critic updates (loss + penalty,
// lambda 10, Adam) and one generator update.
Row run_gp_step(index_t batch, const bench::Settings& s) {
  Operands ops;
  const GemmModel g(dense_layers<Gen>(), batch, ops), d(dense_layers<Disc>(), 2 * batch, ops);
  StepGemms gemms;
  GpTrainer<RecCpu> trainer(gp_config<RecCpu>(batch));
  const int n_critic = static_cast<int>(trainer.config().n_critic);
  for (int k = 0; k < n_critic; ++k) {
    gemms.phase("critic_loss", [&](auto& c) { critic_loss_gemms(g, d, batch, c); });
    gemms.phase("gradient_penalty", [&](auto& c) { gradient_penalty_gemms(d, batch, c); });
  }
  gemms.phase("generator_update", [&](auto& c) { generator_gemms(g, d, batch, c); });
  NormalSource<RecCpu> source;
  return measure(
      "wgan_gp", batch, n_critic, gemms, [&] { trainer.step(source); }, s);
}

// One train_critic() of the same WGAN-GP trainer (the unit of the 5 above).
Row run_gp_critic(index_t batch, const bench::Settings& s) {
  Operands ops;
  const GemmModel g(dense_layers<Gen>(), batch, ops), d(dense_layers<Disc>(), 2 * batch, ops);
  StepGemms gemms;
  gemms.phase("critic_loss", [&](auto& c) { critic_loss_gemms(g, d, batch, c); });
  gemms.phase("gradient_penalty", [&](auto& c) { gradient_penalty_gemms(d, batch, c); });
  GpTrainer<RecCpu> trainer(gp_config<RecCpu>(batch));
  NormalSource<RecCpu> source;
  return measure(
      "wgan_gp_critic", batch, 1, gemms, [&] { trainer.train_critic(source); }, s);
}

// ---------------------------------------------------------------------------------------
// Report.
// ---------------------------------------------------------------------------------------

void print_header(const bench::Machine& m, const bench::Settings& s, bool quick) {
  std::printf("forgery gan_step benchmark: backend Cpu<float>%s\n",
              quick ? " (--quick: small batches, one repetition; timings meaningless)" : "");
  bench::print_machine(m);
  std::printf("timing   per step: median (and min) of every step timed alone, %d repetitions of >= %.2f s and >= %lld\n"
              "         steps after >= %.2f s of warm-up; GEMM-only runs interleaved; spread = (max - min) / median\n"
              "         of the repetitions' medians\n",
              s.reps, s.rep_seconds, s.min_calls, s.warm_seconds);
  std::printf("steps    mlp_gan: one trainer.step() of G = 100-256-512-784 (LeakyReLU 0.2, Tanh) and\n"
              "         D = 784-512-256-1, non-saturating loss, Adam, n_critic 1 (one D + one G update);\n"
              "         wgan_gp: one trainer.step() of a WganGpTrainer on the same G and D, 5 critic updates\n"
              "         (loss + exact gradient penalty through the tangent pass, lambda 10, Adam) + 1 G update;\n"
              "         wgan_gp_critic: one train_critic() of it\n");
  std::printf("GFLOP    2 m n k over the step's Cpu<float>::gemm calls (the analytic list, checked against the\n"
              "         calls of the first step); GFLOP/s and %% of peak from the median step time\n");
  std::printf("GEMMs    those calls alone, same shapes, transposes and betas, on preallocated buffers\n");
  std::printf("ratio    step / GEMMs of the medians; 'best' of the minima\n");
  std::printf("data     the real batch is Philox N(0,1) by Cpu<float>::fill_normal, inside the step time; its\n"
              "         cost alone (one 784 x batch fill per critic update) is the 'data ms' column\n\n");
  std::printf("%-15s %5s %7s | %8s %8s %6s %7s %6s | %8s %7s %6s | %5s %5s | %7s\n", "benchmark", "batch", "GFLOP",
              "step ms", "min ms", "spread", "GFLOP/s", "%peak", "GEMM ms", "GFLOP/s", "%peak", "ratio", "best",
              "data ms");
}

void print_row(const Row& r, const bench::Machine& m) {
  const double gflop = r.flop * 1e-9, peak = m.peak.gflops;
  std::printf("%-15s %5ld %7.3f | %8.3f %8.3f %5.1f%% %7.1f %5.1f%% | %8.3f %7.1f %5.1f%% | %5.2f %5.2f | %7.3f\n",
              r.name.c_str(), static_cast<long>(r.batch), gflop, 1e3 * r.step.median, 1e3 * r.step.min,
              100 * r.step.spread, gflop / r.step.median, bench::percent(gflop / r.step.median, peak),
              1e3 * r.gemms.median, gflop / r.gemms.median, bench::percent(gflop / r.gemms.median, peak),
              r.step.median / r.gemms.median, r.step.min / r.gemms.min, 1e3 * r.data);
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
  bench::write_timing(j, "gemms_alone", r.gemms);
  j.field("gemm_gflops", gflop / r.gemms.median)
      .field("gemm_pct_peak", bench::percent(gflop / r.gemms.median, peak))
      .field("ratio", r.step.median / r.gemms.median)
      .field("best_ratio", r.step.min / r.gemms.min)
      .field("data_ms", 1e3 * r.data)
      .end_object();
}

constexpr const char* usage =
    "usage: bench_gan_step [--quick] [--json FILE]\n"
    "Times one MLP GAN training step (non-saturating, Adam; batch 64 and 256), one WGAN-GP step (5 critic\n"
    "updates with lambda 10 + 1 generator update) and one WGAN-GP critic update (batch 64) on Cpu<float>,\n"
    "beside the same step's GEMMs run alone; FLOPs, GFLOP/s and % of the FMA peak measured in the same run\n"
    "with the same OpenMP thread count (set it with OMP_NUM_THREADS).\n"
    "  --json FILE  also write the results and the machine description as JSON to FILE ('-': stdout only)\n"
    "  --quick      small batches, one short repetition (smoke test; timings meaningless)\n";

} // namespace

int main(int argc, char** argv) try {
  const bench::Options o = bench::parse_options(argc, argv, usage);
  if (o.exit_code >= 0) return o.exit_code;
  const bool table = o.json != "-";
  const bench::Settings s = o.quick ? bench::quick_settings() : bench::Settings{};
  const bench::Machine m = bench::describe_machine(o.quick);
  if (table) print_header(m, s, o.quick);
  // --quick: batch 4 (and 8 for the second size), enough for the GEMM-list checks and for a
  // debug + sanitizer build to finish in seconds.
  const index_t small = o.quick ? 4 : 64, large = o.quick ? 8 : 256;
  std::vector<Row> rows;
  const auto add = [&](Row r) {
    if (table) print_row(r, m);
    rows.push_back(std::move(r));
  };
  add(run_ns_step(small, s));
  add(run_ns_step(large, s));
  add(run_gp_step(small, s));
  add(run_gp_critic(small, s));
#if FORGERY_BENCH_CBLAS
  if (table) {
    bench::blas::print_header(m);
    for (const Row& r : rows)
      bench::blas::print(bench::blas::compare(r.name + " " + std::to_string(r.batch), r.shapes, s, m.threads), m);
  }
#endif
  if (!o.json.empty()) {
    bench::Json j;
    j.begin_object().field("benchmark", "gan_step").field("time_utc", bench::utc_now()).field("backend", "Cpu<float>");
    bench::write_machine(j, m);
    bench::write_settings(j, s, o.quick);
    j.begin_array("steps");
    for (const Row& r : rows) write_row(j, r, m);
    j.end_array().end_object();
    bench::write_text(o.json, j.str());
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "gan_step: %s\n", e.what());
  return 1;
}
