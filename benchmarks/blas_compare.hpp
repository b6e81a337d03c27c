// A step's GEMMs through forgery's NativeGemm and through a CBLAS library, in one run: the
// measurement behind choosing the CPU backend's GEMM provider. Built into the benchmarks
// when CMake finds OpenBLAS (FORGERY_BENCH_CBLAS); forgery itself never calls BLAS.
//
// Each call of the step's GEMM list (shapes, transposes and betas as the layers issue them)
// runs alone on its own preallocated operands, natural leading dimensions, N(0, 0.05^2)
// values; the two providers take turns within every repetition. A second check runs the
// whole list on one thread and on all of them and compares every output bit for bit: the
// determinism forgery promises (same bits whatever the thread count) is a property a
// provider has or lacks.
#pragma once

#if FORGERY_BENCH_CBLAS

#include <cblas.h>

#include <cstdio>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

#include "bench_common.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace bench::blas {

/// The library, as it describes itself: OpenBLAS names its build and the core it chose
/// (OPENBLAS_CORETYPE overrides its CPU detection).
inline std::string library() {
#if defined(OPENBLAS_VERSION)
  return std::string(openblas_get_config()) + "; core " + openblas_get_corename();
#else
  return "a CBLAS library (not OpenBLAS)";
#endif
}

/// One product of the list with its own operands.
class Product {
public:
  Product(const GemmShape& shape, fg::RandomStream& rng) : shape_(shape) {
    const index_t rows_a = shape.ta == Trans::no ? shape.m : shape.k,
                  cols_a = shape.ta == Trans::no ? shape.k : shape.m;
    const index_t rows_b = shape.tb == Trans::no ? shape.k : shape.n,
                  cols_b = shape.tb == Trans::no ? shape.n : shape.k;
    lda_ = rows_a;
    ldb_ = rows_b;
    a_.resize(rows_a * cols_a);
    b_.resize(rows_b * cols_b);
    c_.resize(shape.m * shape.n);
    initial_.resize(shape.m * shape.n);
    fg::backend::Cpu<float>::fill_normal(a_.size(), a_.data(), rng, 0.0f, 0.05f);
    fg::backend::Cpu<float>::fill_normal(b_.size(), b_.data(), rng, 0.0f, 0.05f);
    fg::backend::Cpu<float>::fill_normal(initial_.size(), initial_.data(), rng, 0.0f, 0.05f);
    reset();
  }
  void reset() { std::memcpy(c_.data(), initial_.data(), sizeof(float) * static_cast<std::size_t>(c_.size())); }
  void native() {
    fg::backend::NativeGemm::gemm<float>(shape_.ta, shape_.tb, shape_.m, shape_.n, shape_.k, 1.0f, a_.data(), lda_,
                                         b_.data(), ldb_, beta(), c_.data(), shape_.m);
  }
  void cblas() {
    const auto t = [](Trans x) { return x == Trans::yes ? CblasTrans : CblasNoTrans; };
    cblas_sgemm(CblasColMajor, t(shape_.ta), t(shape_.tb), static_cast<int>(shape_.m), static_cast<int>(shape_.n),
                static_cast<int>(shape_.k), 1.0f, a_.data(), static_cast<int>(lda_), b_.data(), static_cast<int>(ldb_),
                beta(), c_.data(), static_cast<int>(shape_.m));
  }
  [[nodiscard]] std::vector<float> result() const { return {c_.data(), c_.data() + c_.size()}; }

private:
  float beta() const { return shape_.accumulate ? 1.0f : 0.0f; }
  GemmShape shape_;
  index_t lda_ = 0, ldb_ = 0;
  fg::HostBuffer<float> a_, b_, c_, initial_;
};

struct Result {
  std::string name;
  double flop = 0;
  Timing native, cblas;
  bool native_same_bits = false, cblas_same_bits = false; // 1 thread vs all
};

/// Outputs of every product of the list run once from its initial C, on `threads` threads.
template <class Run>
std::vector<std::vector<float>> outputs(std::deque<Product>& products, int threads, Run run) {
#if defined(_OPENMP)
  const int saved = omp_get_max_threads();
  omp_set_num_threads(threads);
#else
  (void)threads;
#endif
  std::vector<std::vector<float>> out;
  for (Product& p : products) {
    p.reset();
    run(p);
    out.push_back(p.result());
  }
#if defined(_OPENMP)
  omp_set_num_threads(saved);
#endif
  return out;
}

inline Result compare(const std::string& name, const std::vector<GemmShape>& shapes, const Settings& s, int threads) {
  fg::RandomStream rng{2024, 0, 0};
  std::deque<Product> products;
  for (const GemmShape& g : shapes) products.emplace_back(g, rng);
  Result r;
  r.name = name;
  r.flop = total_flop(shapes);
  const auto native = [](Product& p) { p.native(); };
  const auto cblas = [](Product& p) { p.cblas(); };
  r.native_same_bits = outputs(products, 1, native) == outputs(products, threads, native);
  r.cblas_same_bits = outputs(products, 1, cblas) == outputs(products, threads, cblas);
  const auto samples = sample_calls(s, {[&] {
                                          for (Product& p : products) p.native();
                                        },
                                        [&] {
                                          for (Product& p : products) p.cblas();
                                        }});
  r.native = summarise(samples[0]);
  r.cblas = summarise(samples[1]);
  return r;
}

inline void print_header(const Machine& m) {
  std::printf("\nGEMMs alone, NativeGemm against cblas_sgemm in the same run (same calls and operands, taking\n"
              "turns): %s\n",
              library().c_str());
  if (m.threads > 1)
    std::printf("same bits: each product's output on 1 thread and on %d, bit for bit\n", m.threads);
  else
    std::printf("same bits: '-' on one thread (run with OMP_NUM_THREADS > 1 to compare)\n");
  std::printf("%-18s %7s | %9s %6s | %9s %6s | %6s | %-10s %-10s\n", "benchmark", "GFLOP", "native ms", "%peak",
              "cblas ms", "%peak", "cblas/", "same bits", "same bits");
  std::printf("%-18s %7s | %9s %6s | %9s %6s | %6s | %-10s %-10s\n", "", "", "", "", "", "", "native", "native",
              "cblas");
}

inline void print(const Result& r, const Machine& m) {
  const auto pct = [&](double seconds) { return percent(r.flop / seconds * 1e-9, m.peak.gflops); };
  std::printf("%-18s %7.3f | %9.3f %5.1f%% | %9.3f %5.1f%% | %6.2f | %-10s %s\n", r.name.c_str(), r.flop * 1e-9,
              1e3 * r.native.median, pct(r.native.median), 1e3 * r.cblas.median, pct(r.cblas.median),
              r.cblas.median / r.native.median,
              m.threads < 2        ? "-"
              : r.native_same_bits ? "yes"
                                   : "NO",
              m.threads < 2       ? "-"
              : r.cblas_same_bits ? "yes"
                                  : "no");
}

} // namespace bench::blas

#endif // FORGERY_BENCH_CBLAS
