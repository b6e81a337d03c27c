// Squared maximum mean discrepancy (Gretton et al., JMLR 2012) with a Gaussian (RBF)
// kernel between two sample sets, and the median heuristic for its bandwidth.
#pragma once

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "forgery/core/batch_view.hpp"
#include "forgery/core/config.hpp"
#include "forgery/core/error.hpp"

namespace forgery::metrics {

/// How the within-set expectations of a two-sample statistic are estimated.
enum class Estimator {
  unbiased, ///< U-statistics: pairs i != j only (unbiased; may be slightly negative)
  biased,   ///< V-statistics: all pairs, i == j included (non-negative, biased upwards)
};

namespace detail {

/// Sums of f(squared distance) over the pairs of two sets: within x (i < j), within y
/// (i < j) and across (all i, j).
struct PairSums {
  double xx = 0;
  double yy = 0;
  double xy = 0;
};

/// A copy of a view's samples in double: the statistics are computed in double whatever the
/// input type, since distances of float samples lose digits to cancellation.
template <class T>
[[nodiscard]] Eigen::MatrixXd to_double(BatchView<T> v) {
  return v.matrix().template cast<double>();
}

/// One thread, a fixed loop order (row by row, each row summed before it is added), so the
/// result does not depend on the thread count or on Eigen's GEMM blocking; differences are
/// taken before squaring, which keeps small distances exact where |a|^2 + |b|^2 - 2ab would not.
template <class F>
[[nodiscard]] PairSums pair_sums(const Eigen::MatrixXd& x, const Eigen::MatrixXd& y, F f) {
  PairSums s;
  const auto within = [&](const Eigen::MatrixXd& a) {
    double total = 0;
    for (index_t i = 0; i + 1 < a.cols(); ++i) {
      double row = 0;
      for (index_t j = i + 1; j < a.cols(); ++j) row += f((a.col(i) - a.col(j)).squaredNorm());
      total += row;
    }
    return total;
  };
  s.xx = within(x);
  s.yy = within(y);
  for (index_t i = 0; i < x.cols(); ++i) {
    double row = 0;
    for (index_t j = 0; j < y.cols(); ++j) row += f((x.col(i) - y.col(j)).squaredNorm());
    s.xy += row;
  }
  return s;
}

/// Checks two sample sets for a two-sample statistic: same features, enough samples.
template <class T, class U>
void check_two_sample(const char* who, BatchView<T> x, BatchView<U> y, Estimator est) {
  if (x.features() != y.features())
    throw shape_error(std::string("metrics::") + who,
                      "both sample sets with the same features (x has " + std::to_string(x.features()) + ")",
                      "y with " + std::to_string(y.features()));
  if (x.features() < 1) throw shape_error(std::string("metrics::") + who, "at least 1 feature", "0 features");
  const index_t need = est == Estimator::unbiased ? 2 : 1;
  const auto check = [&](const char* field, index_t n, const void* data) {
    if (n < need || data == nullptr)
      throw config_error(field, std::to_string(data == nullptr ? 0 : n) + " samples",
                         std::string(need == 1 ? "at least 1 sample" : "at least 2 samples") + " for the " +
                             (est == Estimator::unbiased ? "unbiased" : "biased") + " estimator of " + who);
  };
  check("x", x.batch(), x.data());
  check("y", y.batch(), y.data());
}

} // namespace detail

/// The squared MMD between the distributions of the columns of `x` (d x m) and `y` (d x n),
/// host memory, under k(a, b) = exp(-|a - b|^2 / (2 bandwidth^2)):
///   unbiased: sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (n (n - 1))
///             - 2 sum_{i, j} k(x_i, y_j) / (m n)            (Gretton et al. 2012, eq. 3)
///   biased:   the same with all pairs and divisors m^2, n^2 (eq. 5).
/// Computed in double, single-threaded, in a fixed order: O((m + n)^2 d).
/// Throws shape_error when the feature counts differ, config_error for bandwidth <= 0 or
/// fewer samples than the estimator needs (2 per set unbiased, 1 biased).
template <class T, class U>
[[nodiscard]] double mmd2(BatchView<T> x, BatchView<U> y, double bandwidth, Estimator est = Estimator::unbiased) {
  detail::check_two_sample("mmd2", x, y, est);
  if (!(bandwidth > 0.0) || !std::isfinite(bandwidth))
    throw config_error("bandwidth", std::to_string(bandwidth), "a finite value > 0");
  const double gamma = 1.0 / (2.0 * bandwidth * bandwidth);
  const Eigen::MatrixXd xd = detail::to_double(x);
  const Eigen::MatrixXd yd = detail::to_double(y);
  const detail::PairSums s = detail::pair_sums(xd, yd, [gamma](double d2) { return std::exp(-gamma * d2); });
  const double m = static_cast<double>(x.batch());
  const double n = static_cast<double>(y.batch());
  if (est == Estimator::unbiased)
    return 2.0 * s.xx / (m * (m - 1.0)) + 2.0 * s.yy / (n * (n - 1.0)) - 2.0 * s.xy / (m * n);
  // k(a, a) = 1 on the diagonals.
  return (2.0 * s.xx + m) / (m * m) + (2.0 * s.yy + n) / (n * n) - 2.0 * s.xy / (m * n);
}

/// The median heuristic (Gretton et al. 2012, section 8): the median Euclidean distance
/// between distinct samples of the pooled set, to use as mmd2's bandwidth. Uses the first
/// `max_per_set` samples of each set (all when <= 0), since the cost is quadratic; the
/// median of an even count is the mean of the two middle distances.
/// Throws shape_error when the feature counts differ, config_error when fewer than two
/// samples are pooled or all pooled samples coincide (the median is 0).
template <class T, class U>
[[nodiscard]] double median_heuristic(BatchView<T> x, BatchView<U> y, index_t max_per_set = 1000) {
  if (x.features() != y.features())
    throw shape_error("metrics::median_heuristic",
                      "both sample sets with the same features (x has " + std::to_string(x.features()) + ")",
                      "y with " + std::to_string(y.features()));
  const auto take = [max_per_set](index_t n) { return max_per_set > 0 ? std::min(n, max_per_set) : n; };
  const index_t mx = x.data() == nullptr ? 0 : take(x.batch());
  const index_t my = y.data() == nullptr ? 0 : take(y.batch());
  if (mx + my < 2) throw config_error("x, y", std::to_string(mx + my) + " samples", "at least 2 samples pooled");

  Eigen::MatrixXd pooled(x.features(), mx + my);
  if (mx > 0) pooled.leftCols(mx) = x.matrix().leftCols(mx).template cast<double>();
  if (my > 0) pooled.rightCols(my) = y.matrix().leftCols(my).template cast<double>();
  std::vector<double> d;
  d.reserve(static_cast<std::size_t>(pooled.cols() * (pooled.cols() - 1) / 2));
  for (index_t i = 0; i + 1 < pooled.cols(); ++i)
    for (index_t j = i + 1; j < pooled.cols(); ++j) {
      const double dist = (pooled.col(i) - pooled.col(j)).norm();
      // A NaN would break nth_element's ordering; say which input is at fault instead.
      if (!std::isfinite(dist)) throw config_error("x, y", "a non-finite sample", "finite samples");
      d.push_back(dist);
    }

  const std::size_t mid = d.size() / 2;
  std::nth_element(d.begin(), d.begin() + static_cast<std::ptrdiff_t>(mid), d.end());
  double median = d[mid];
  if (d.size() % 2 == 0)
    median = 0.5 * (median + *std::max_element(d.begin(), d.begin() + static_cast<std::ptrdiff_t>(mid)));
  if (!(median > 0.0) || !std::isfinite(median))
    throw config_error("median_heuristic", std::to_string(median),
                       "a positive median distance (samples not all equal)");
  return median;
}

} // namespace forgery::metrics
