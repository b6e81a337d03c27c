// Kernel Inception Distance (Binkowski et al., "Demystifying MMD GANs", ICLR 2018): the
// unbiased squared MMD under a cubic polynomial kernel, averaged over random subsets.
#pragma once

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "forgery/backend/cpu.hpp"
#include "forgery/backend/reference.hpp"
#include "forgery/core/batch_view.hpp"
#include "forgery/core/config.hpp"
#include "forgery/core/error.hpp"
#include "forgery/core/philox.hpp"

namespace forgery::metrics {

/// How KID is sampled. The defaults are those of the paper's code and of torch-fidelity:
/// 100 subsets of 1000 samples from each set.
struct KidConfig {
  index_t subsets = 100;      ///< subsets drawn; the reported mean and stddev are over them
  index_t subset_size = 1000; ///< samples per subset from each set; clamped to the smaller set
};

/// What kid() found.
struct KidResult {
  double mean = 0;         ///< mean over subsets of the unbiased MMD^2 estimate
  double stddev = 0;       ///< standard deviation over subsets (divisor `subsets`, as the reference code)
  index_t subsets = 0;     ///< subsets drawn
  index_t subset_size = 0; ///< samples per subset from each set, after clamping
};

namespace detail {

/// Draws m distinct indices of [0, n) into idx[0, m) by a partial Fisher-Yates shuffle of
/// the identity: m uniforms from `rng` (m / 2 Philox blocks, rounded up), so a subset depends
/// only on the stream's position. `perm` (size n) and `u` (size m) are scratch.
inline void sample_without_replacement(index_t n, index_t m, RandomStream& rng, std::vector<index_t>& perm,
                                       std::vector<double>& u, index_t* idx) {
  perm.resize(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) perm[static_cast<std::size_t>(i)] = i;
  u.resize(static_cast<std::size_t>(m));
  backend::Reference<double>::fill_uniform(m, u.data(), rng, 0.0, 1.0);
  for (index_t i = 0; i < m; ++i) {
    const auto span = static_cast<double>(n - i);
    const index_t j = i + std::min(n - i - 1, static_cast<index_t>(u[static_cast<std::size_t>(i)] * span));
    std::swap(perm[static_cast<std::size_t>(i)], perm[static_cast<std::size_t>(j)]);
    idx[i] = perm[static_cast<std::size_t>(i)];
  }
}

/// Copies the columns `idx[0, m)` of `x` into the d x m double matrix `out`.
template <class T>
void gather(BatchView<T> x, const index_t* idx, index_t m, Eigen::MatrixXd& out, const char* which) {
  const index_t d = x.features();
  for (index_t j = 0; j < m; ++j)
    for (index_t f = 0; f < d; ++f) {
      const double v = static_cast<double>(x(f, idx[j]));
      if (!std::isfinite(v))
        throw config_error(
            which, "a non-finite value at feature " + std::to_string(f) + " of sample " + std::to_string(idx[j]),
            "finite features");
      out(f, j) = v;
    }
}

/// Sum of k(a_i, b_j) = (a_i . b_j / d + 1)^3 over all i, j (or i != j when `skip_diagonal`,
/// for a = b): the dot products by one GEMM into `k` (m x m), then a fixed-order sum.
inline double kernel_sum(const Eigen::MatrixXd& a, const Eigen::MatrixXd& b, bool skip_diagonal, Eigen::MatrixXd& k) {
  const index_t d = a.rows(), m = a.cols();
  backend::Cpu<double>::gemm(backend::Trans::yes, backend::Trans::no, m, m, d, 1.0 / static_cast<double>(d), a.data(),
                             d, b.data(), d, 0.0, k.data(), m);
  double total = 0;
  for (index_t j = 0; j < m; ++j) {
    double col = 0;
    for (index_t i = 0; i < m; ++i) {
      if (skip_diagonal && i == j) continue;
      const double v = k(i, j) + 1.0;
      col += v * v * v;
    }
    total += col;
  }
  return total;
}

} // namespace detail

/// Kernel Inception Distance between the distributions of the columns of `x` (d x n1) and
/// `y` (d x n2), host memory, any scalar types, computed in double: for each of
/// `cfg.subsets` subsets, m = min(cfg.subset_size, n1, n2) samples are drawn without
/// replacement from each set (independently between subsets, as the reference code does)
/// and the unbiased estimate
///   sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (m (m - 1))
///   - 2 sum_{i, j} k(x_i, y_j) / m^2,      k(a, b) = (a . b / d + 1)^3,
/// is taken; the result is their mean and standard deviation. The estimate is unbiased, so
/// it is negative at times when the distributions are equal. Advances `rng` by the blocks it
/// draws (2 ceil(m / 2) per subset); the same stream position gives the same result, bitwise,
/// for any thread count (the kernel matrices are backend GEMMs, the sums in a fixed order).
/// Cost per subset: three m x m x d GEMMs.
/// Throws shape_error when the feature counts differ or are 0, config_error for
/// subsets < 1, subset_size < 2, a set with fewer than 2 samples, or a non-finite value in a
/// drawn sample.
template <class T, class U>
[[nodiscard]] KidResult kid(BatchView<T> x, BatchView<U> y, RandomStream& rng, const KidConfig& cfg = {}) {
  if (x.features() != y.features())
    throw shape_error("metrics::kid",
                      "both feature sets with the same features (x has " + std::to_string(x.features()) + ")",
                      "y with " + std::to_string(y.features()));
  if (x.features() < 1) throw shape_error("metrics::kid", "features with at least 1 feature", "0 features");
  if (cfg.subsets < 1) throw config_error("KidConfig.subsets", std::to_string(cfg.subsets), "at least 1");
  if (cfg.subset_size < 2)
    throw config_error("KidConfig.subset_size", std::to_string(cfg.subset_size),
                       "at least 2 (the unbiased estimate needs pairs)");
  const index_t n1 = x.data() == nullptr ? 0 : x.batch();
  const index_t n2 = y.data() == nullptr ? 0 : y.batch();
  if (n1 < 2 || n2 < 2)
    throw config_error(n1 < 2 ? "x" : "y", std::to_string(n1 < 2 ? n1 : n2) + " samples",
                       "at least 2 samples in each set for the unbiased estimate of kid");

  const index_t d = x.features();
  const index_t m = std::min({cfg.subset_size, n1, n2});
  std::vector<index_t> ix(static_cast<std::size_t>(m)), iy(static_cast<std::size_t>(m)), perm;
  std::vector<double> u, values(static_cast<std::size_t>(cfg.subsets));
  Eigen::MatrixXd xs(d, m), ys(d, m), k(m, m);
  const double mm = static_cast<double>(m);
  for (index_t s = 0; s < cfg.subsets; ++s) {
    detail::sample_without_replacement(n1, m, rng, perm, u, ix.data());
    detail::sample_without_replacement(n2, m, rng, perm, u, iy.data());
    detail::gather(x, ix.data(), m, xs, "x");
    detail::gather(y, iy.data(), m, ys, "y");
    const double kxx = detail::kernel_sum(xs, xs, true, k);
    const double kyy = detail::kernel_sum(ys, ys, true, k);
    const double kxy = detail::kernel_sum(xs, ys, false, k);
    values[static_cast<std::size_t>(s)] = (kxx + kyy) / (mm * (mm - 1.0)) - 2.0 * kxy / (mm * mm);
  }

  KidResult r;
  r.subsets = cfg.subsets;
  r.subset_size = m;
  for (const double v : values) r.mean += v;
  r.mean /= static_cast<double>(cfg.subsets);
  double sq = 0;
  for (const double v : values) sq += (v - r.mean) * (v - r.mean);
  r.stddev = std::sqrt(sq / static_cast<double>(cfg.subsets));
  return r;
}

/// kid of two feature sets held in Eigen matrices (features x samples), such as
/// extract_features'.
[[nodiscard]] inline KidResult kid(const Eigen::MatrixXd& x, const Eigen::MatrixXd& y, RandomStream& rng,
                                   const KidConfig& cfg = {}) {
  return kid(ConstBatchView<double>(x.data(), x.rows(), x.cols()), ConstBatchView<double>(y.data(), y.rows(), y.cols()),
             rng, cfg);
}

} // namespace forgery::metrics
