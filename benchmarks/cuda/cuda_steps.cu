// cuda_steps: whole GAN training steps on backend::Cuda<float> (the networks of gan_step and
// dcgan_step: MLP GAN at batch 64 and 256, WGAN-GP 5+1, the full-width DCGAN), each beside
// the matrix products that step performs, replayed alone through the same cuBLAS calls on
// operands of the same shapes, and the GPU's fp32 peak: SMs x 128 lanes x 2 x the clock the
// device reports, with cuBLAS SGEMM on a large product measured in the same run.
//
// A step's time is taken on the host around a run of steps that ends with a device
// synchronisation: the steps read losses and gradient norms back to the host anyway, so
// this is the time a training loop sees. Repetitions: after a warm-up, `reps` runs of at least
// `rep_seconds`; the shortest and the median per-step time are printed.
//
// Built by the cuda preset only (nvcc); runs where a GPU exists.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include <forgery/backend/cuda.hpp>
#include <forgery/forgery.hpp>

namespace fg = forgery;

namespace {

using S = float;
using Cuda = fg::backend::Cuda<S>;
using fg::index_t;
using fg::backend::Trans;

struct Shape {
  Trans ta, tb;
  index_t m, n, k;
  bool accumulate;
  [[nodiscard]] double flop() const {
    return 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  }
};

/// Cuda<float> whose gemm records its shapes while `log` is set.
struct RecordingCuda : Cuda {
  static inline std::vector<Shape>* log = nullptr;
  static void gemm(Trans ta, Trans tb, index_t m, index_t n, index_t k, S alpha, const S* a, index_t lda, const S* b,
                   index_t ldb, S beta, S* c, index_t ldc) {
    if (log != nullptr) log->push_back({ta, tb, m, n, k, beta == S(1)});
    Cuda::gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
};

// The networks of benchmarks/gan_step.cpp and benchmarks/dcgan_step.cpp.
using MlpG = fg::Sequential<fg::Input<100>, fg::Dense<256>, fg::LeakyReLU<0.2>, fg::Dense<512>, fg::LeakyReLU<0.2>,
                            fg::Dense<784>, fg::Tanh>;
using MlpD = fg::Sequential<fg::Input<784>, fg::Dense<512>, fg::LeakyReLU<0.2>, fg::Dense<256>, fg::LeakyReLU<0.2>,
                            fg::Dense<1>>;
using DcG = fg::Sequential<fg::Input<100>, fg::Dense<128 * 7 * 7, false>, fg::Reshape<128, 7, 7>, fg::BatchNorm<>,
                           fg::ReLU, fg::ConvTranspose2d<64, 4, 2, 1, false>, fg::BatchNorm<>, fg::ReLU,
                           fg::ConvTranspose2d<1, 4, 2, 1>, fg::Tanh>;
using DcD =
    fg::Sequential<fg::Input<1, 28, 28>, fg::Conv2d<64, 4, 2, 1>, fg::LeakyReLU<0.2>, fg::Conv2d<128, 4, 2, 1, false>,
                   fg::BatchNorm<>, fg::LeakyReLU<0.2>, fg::Flatten, fg::Dense<1>>;

/// Real batches: N(0, 1) values straight from Philox, so that the step measures the trainer
/// and not a data pipeline. A data source fills host memory, which the Trainer uploads (as
/// it uploads a real dataset's batches), so the step time includes that copy.
struct NormalSource {
  void sample(fg::RandomStream& rng, fg::BatchView<S> out) const {
    fg::backend::Cpu<S>::fill_normal(out.size(), out.data(), rng, S(0), S(1));
  }
};

struct Settings {
  int reps = 7;
  double rep_seconds = 0.5;
  double warm_seconds = 0.5;
};

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct Timing {
  double best = 0, median = 0;
};

/// Per-call seconds of `call` (which ends with the device idle or is followed by a sync):
/// warm-up, then `reps` runs of at least rep_seconds each.
template <class F>
Timing time_calls(const Settings& s, F&& call) {
  auto run_for = [&](double at_least) {
    const auto t0 = Clock::now();
    long long calls = 0;
    do {
      call();
      ++calls;
      Cuda::synchronize();
    } while (seconds_since(t0) < at_least);
    return calls;
  };
  const long long warm = run_for(s.warm_seconds);
  static_cast<void>(warm);
  std::vector<double> per_call;
  for (int r = 0; r < s.reps; ++r) {
    const auto t0 = Clock::now();
    const long long calls = run_for(s.rep_seconds);
    per_call.push_back(seconds_since(t0) / static_cast<double>(calls));
  }
  std::sort(per_call.begin(), per_call.end());
  return {per_call.front(), per_call[per_call.size() / 2]};
}

/// Device operands for a GEMM list, each product with its own A, B and C (packed: ld = rows).
class GemmReplay {
public:
  explicit GemmReplay(const std::vector<Shape>& shapes) : shapes_(shapes) {
    fg::RandomStream rng{12345, 0, 0};
    for (const Shape& s : shapes_) {
      operands_.emplace_back();
      Operands& o = operands_.back();
      o.a.resize(s.m * s.k);
      o.b.resize(s.k * s.n);
      o.c.resize(s.m * s.n);
      for (auto* buf : {&o.a, &o.b, &o.c}) Cuda::fill_normal(buf->size(), buf->data(), rng, S(0), S(0.05));
    }
  }
  void operator()() {
    for (std::size_t i = 0; i < shapes_.size(); ++i) {
      const Shape& s = shapes_[i];
      Operands& o = operands_[i];
      const index_t lda = s.ta == Trans::no ? s.m : s.k, ldb = s.tb == Trans::no ? s.k : s.n;
      Cuda::gemm(s.ta, s.tb, s.m, s.n, s.k, S(1), o.a.data(), lda, o.b.data(), ldb, s.accumulate ? S(1) : S(0),
                 o.c.data(), s.m);
    }
  }

private:
  struct Operands {
    fg::DeviceBuffer<S> a, b, c;
  };
  std::vector<Shape> shapes_;
  std::vector<Operands> operands_;
};

struct Row {
  std::string name;
  index_t batch;
  std::size_t gemm_count;
  double flop;
  Timing step, gemms;
};

template <class Trainer>
Row measure(const std::string& name, typename Trainer::Config cfg, const Settings& s) {
  Trainer trainer(cfg);
  NormalSource data;
  std::vector<Shape> shapes;
  RecordingCuda::log = &shapes;
  trainer.step(data);
  Cuda::synchronize();
  RecordingCuda::log = nullptr;
  Row row{name, cfg.batch, shapes.size(), 0, {}, {}};
  for (const Shape& sh : shapes) row.flop += sh.flop();
  row.step = time_calls(s, [&] { trainer.step(data); });
  GemmReplay replay(shapes);
  row.gemms = time_calls(s, replay);
  return row;
}

struct Device {
  std::string name;
  int sms = 0, clock_khz = 0, driver = 0, runtime = 0, major = 0, minor = 0;
  double peak = 0; // fp32 FLOP/s: SMs x 128 FP32 lanes x 2 (FMA) x clock
};

Device device_info() {
  Device d;
  int dev = 0;
  FORGERY_CUDA_CHECK(cudaGetDevice(&dev));
  cudaDeviceProp p{};
  FORGERY_CUDA_CHECK(cudaGetDeviceProperties(&p, dev));
  d.name = p.name;
  d.sms = p.multiProcessorCount;
  d.major = p.major;
  d.minor = p.minor;
  FORGERY_CUDA_CHECK(cudaDeviceGetAttribute(&d.clock_khz, cudaDevAttrClockRate, dev));
  FORGERY_CUDA_CHECK(cudaDriverGetVersion(&d.driver));
  FORGERY_CUDA_CHECK(cudaRuntimeGetVersion(&d.runtime));
  // 128 FP32 lanes per SM on compute capability 8.6, 8.9, 9.x and 10.x/12.x; 64 on 8.0.
  const int lanes = d.major == 8 && d.minor == 0 ? 64 : 128;
  d.peak = static_cast<double>(d.sms) * lanes * 2.0 * d.clock_khz * 1e3;
  return d;
}

/// FLOP/s of cuBLAS SGEMM (the backend's handle: pedantic math, no TF32) on n x n x n.
double large_sgemm_rate(index_t n, const Settings& s) {
  GemmReplay one({{Trans::no, Trans::no, n, n, n, false}});
  const Timing t = time_calls(s, one);
  return 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n) / t.best;
}

std::string version_text(int v) { return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10); }

} // namespace

int main(int argc, char** argv) try {
  Settings s;
  bool quick = false;
  const char* json_path = nullptr;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") {
      quick = true;
    } else if (a == "--json" && i + 1 < argc) {
      json_path = argv[++i];
    } else {
      std::fprintf(stderr, "usage: cuda_steps [--quick] [--json FILE]\n");
      return 2;
    }
  }
  if (quick) s = {1, 0.02, 0.02};
  if (Cuda::device_count() == 0) {
    std::fprintf(stderr, "cuda_steps: no CUDA device found; this benchmark needs a GPU\n");
    return 77;
  }
  const Device dev = device_info();
  std::printf("device   %s (sm_%d%d), %d SMs at %.0f MHz, driver %s, runtime %s\n", dev.name.c_str(), dev.major,
              dev.minor, dev.sms, dev.clock_khz / 1e3, version_text(dev.driver).c_str(),
              version_text(dev.runtime).c_str());
  const double sgemm = large_sgemm_rate(quick ? 1024 : 8192, s);
  std::printf("peak     fp32 %.1f TFLOP/s (SMs x 128 x 2 x clock); cuBLAS SGEMM %s^3 %.1f TFLOP/s = %.1f %%\n",
              dev.peak / 1e12, quick ? "1024" : "8192", sgemm / 1e12, 100.0 * sgemm / dev.peak);

  using MlpNs = fg::DcganTrainer<MlpG, MlpD, RecordingCuda>;
  using MlpGp = fg::WganGpTrainer<MlpG, MlpD, RecordingCuda>;
  using Dc = fg::Trainer<DcG, DcD, fg::objectives::Dcgan, fg::optim::Adam, RecordingCuda>;
  auto ns = [](index_t batch) {
    auto c = fg::dcgan_config<MlpNs>();
    c.batch = batch;
    c.n_critic = 1;
    c.seed = 1;
    return c;
  };
  auto gp = fg::wgan_gp_config<MlpGp>();
  gp.batch = 64;
  gp.seed = 1;
  gp.n_critic = 5;
  std::get<0>(gp.objective.parts).lambda = 10;
  auto dc = fg::dcgan_config<Dc>();
  dc.batch = 64;
  dc.seed = 1;

  std::vector<Row> rows;
  for (const index_t b : {64, 256, 1024}) rows.push_back(measure<MlpNs>("mlp_gan", ns(b), s));
  rows.push_back(measure<MlpGp>("wgan_gp_5+1", gp, s));
  rows.push_back(measure<Dc>("dcgan", dc, s));
  for (const index_t b : {256, 1024}) {
    dc.batch = b;
    rows.push_back(measure<Dc>("dcgan", dc, s));
  }

  std::printf("\n%-12s %6s %6s %9s %11s %11s %11s %10s %10s\n", "step", "batch", "gemms", "GFLOP", "step ms",
              "(median)", "gemms ms", "gemm share", "% of peak");
  for (const Row& r : rows) {
    std::printf("%-12s %6lld %6zu %9.3f %11.3f %11.3f %11.3f %9.1f%% %9.2f%%\n", r.name.c_str(),
                static_cast<long long>(r.batch), r.gemm_count, r.flop / 1e9, r.step.best * 1e3, r.step.median * 1e3,
                r.gemms.best * 1e3, 100.0 * r.gemms.best / r.step.best, 100.0 * r.flop / r.step.best / dev.peak);
  }
  if (json_path != nullptr) {
    std::FILE* f = std::fopen(json_path, "w");
    if (f == nullptr) throw std::runtime_error(std::string("cuda_steps: cannot write ") + json_path);
    std::fprintf(f,
                 "{\"device\": \"%s\", \"sms\": %d, \"clock_mhz\": %.0f, \"driver\": \"%s\", \"runtime\": \"%s\", "
                 "\"fp32_peak_tflops\": %.3f, \"sgemm_tflops\": %.3f, \"steps\": [",
                 dev.name.c_str(), dev.sms, dev.clock_khz / 1e3, version_text(dev.driver).c_str(),
                 version_text(dev.runtime).c_str(), dev.peak / 1e12, sgemm / 1e12);
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const Row& r = rows[i];
      std::fprintf(f,
                   "%s{\"step\": \"%s\", \"batch\": %lld, \"gemms\": %zu, \"gflop\": %.6f, \"step_ms_best\": %.6f, "
                   "\"step_ms_median\": %.6f, \"gemm_ms_best\": %.6f, \"gemm_ms_median\": %.6f}",
                   i ? ", " : "", r.name.c_str(), static_cast<long long>(r.batch), r.gemm_count, r.flop / 1e9,
                   r.step.best * 1e3, r.step.median * 1e3, r.gemms.best * 1e3, r.gemms.median * 1e3);
    }
    std::fprintf(f, "]}\n");
    std::fclose(f);
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "cuda_steps: %s\n", e.what());
  return 1;
}
