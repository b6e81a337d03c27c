// dcgan_step: one training step of the Fashion-MNIST DCGAN (examples/fashion_dcgan) at
// batch 64 on backend::Cpu<float>, and the share of that step spent inside matrix products.
//
// The share is measured within the same steps: the backend is Cpu<float> with gemm wrapped
// by a clock, so every GEMM the layers issue (dense, convolution and transposed
// convolution, forward and backward) is timed where it runs. The rest (im2col/col2im,
// BatchNorm, activations, loss, Adam, data) is the step minus that.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

#include <forgery/forgery.hpp>

#include "../examples/fashion_common/dcgan_specs.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace {

using S = float;
using Cpu = fg::backend::Cpu<S>;
using Clock = std::chrono::steady_clock;
using fg::index_t;

/// Cpu<float> whose gemm accumulates its wall time and flop count.
struct TimedCpu : Cpu {
  static inline double seconds = 0, flop = 0;
  static inline long long calls = 0;
  static void gemm(fg::backend::Trans ta, fg::backend::Trans tb, index_t m, index_t n, index_t k, S alpha, const S* a,
                   index_t lda, const S* b, index_t ldb, S beta, S* c, index_t ldc) {
    const auto t0 = Clock::now();
    Cpu::gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    seconds += std::chrono::duration<double>(Clock::now() - t0).count();
    flop += 2.0 * double(m) * double(n) * double(k);
    ++calls;
  }
  static void reset() {
    seconds = flop = 0;
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

using T = fg::Trainer<fashion::dcgan::G, fashion::dcgan::D, fg::objectives::Dcgan, fg::optim::Adam, TimedCpu>;

struct Result {
  double step = 0, gemm = 0, gflop = 0;
  long long calls = 0;
};

Result run(index_t batch, int reps, int steps_per_rep) {
  auto cfg = fg::dcgan_config<T>();
  cfg.batch = batch;
  cfg.seed = 1;
  T trainer(cfg);
  NormalImages data;
  for (int i = 0; i < 2; ++i) trainer.step(data); // warm-up: buffers sized, pages touched
  std::vector<double> step, gemm, flop, calls;
  for (int r = 0; r < reps; ++r) {
    TimedCpu::reset();
    const auto t0 = Clock::now();
    for (int i = 0; i < steps_per_rep; ++i) trainer.step(data);
    step.push_back(std::chrono::duration<double>(Clock::now() - t0).count() / steps_per_rep);
    gemm.push_back(TimedCpu::seconds / steps_per_rep);
    flop.push_back(TimedCpu::flop / steps_per_rep);
    calls.push_back(double(TimedCpu::calls) / steps_per_rep);
  }
  // The repetition with the median step time, so the share is from one and the same run.
  std::vector<std::size_t> order(step.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return step[a] < step[b]; });
  const std::size_t m = order[order.size() / 2];
  return {step[m], gemm[m], flop[m] * 1e-9, static_cast<long long>(calls[m])};
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
      std::fprintf(stderr, "usage: bench_dcgan_step [--json] [--quick]\n"
                           "  one DCGAN training step (examples/fashion_dcgan) at batch 64, and its share in GEMM\n"
                           "  --json   one JSON object instead of the table\n"
                           "  --quick  one short repetition (smoke test)\n");
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  int threads = 1;
#if defined(_OPENMP)
  threads = omp_get_max_threads();
#endif
  const index_t batch = 64;
  const Result r = quick ? run(batch, 1, 1) : run(batch, 5, 5);
  const double share = r.gemm / r.step;
  if (json) {
    std::printf("{\"benchmark\":\"dcgan_step\",\"batch\":%ld,\"threads\":%d,\"step_seconds\":%.6g,\"gemm_seconds\":"
                "%.6g,\"gemm_share\":%.4f,\"gemm_calls\":%lld,\"gflop\":%.4g,\"gemm_gflops\":%.4g,"
                "\"step_gflops\":%.4g}\n",
                static_cast<long>(batch), threads, r.step, r.gemm, share, r.calls, r.gflop, r.gflop / r.gemm,
                r.gflop / r.step);
  } else {
    std::printf("forgery dcgan_step benchmark: backend Cpu<float>, %d OpenMP thread(s)%s\n", threads,
                quick ? " (quick: timings meaningless)" : "");
    std::printf("step     one trainer.step() of examples/fashion_dcgan's G and D at batch %ld (one critic update on\n"
                "         [real | fake] = 128 images, one generator update), Adam; median of 5 x 5 steps\n",
                static_cast<long>(batch));
    std::printf("GEMM     the step's gemm calls timed where they run (dense, conv, transposed conv)\n\n");
    std::printf("%-10s %10s %10s %8s %8s %10s %10s\n", "benchmark", "step ms", "GEMM ms", "share", "calls", "GFLOP",
                "GEMM GF/s");
    std::printf("%-10s %10.2f %10.2f %7.1f%% %8lld %10.3f %10.1f\n", "dcgan_step", 1e3 * r.step, 1e3 * r.gemm,
                100 * share, r.calls, r.gflop, r.gflop / r.gemm);
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_dcgan_step: %s\n", e.what());
  return 1;
}
