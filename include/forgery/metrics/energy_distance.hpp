// Energy distance (Szekely & Rizzo, 2004/2013) between two sample sets:
// 2 E|X - Y| - E|X - X'| - E|Y - Y'|, zero exactly when the distributions are equal.
#pragma once

#include <cmath>

#include <Eigen/Core>

#include "forgery/core/batch_view.hpp"
#include "forgery/core/config.hpp"
#include "forgery/metrics/mmd.hpp" // Estimator and the shared pairwise sums

namespace forgery::metrics {

/// The energy distance between the distributions of the columns of `x` (d x m) and `y`
/// (d x n), host memory, with Euclidean |.|:
///   unbiased: 2 sum_{i, j} |x_i - y_j| / (m n) - sum_{i != j} |x_i - x_j| / (m (m - 1))
///             - sum_{i != j} |y_i - y_j| / (n (n - 1))
///   biased:   the within-set divisors are m^2 and n^2 (the V-statistic of Szekely & Rizzo,
///             which is never negative).
/// It equals 2 |a - b| for point masses at a and b, and is symmetric in x and y. Computed in
/// double, single-threaded, in a fixed order: O((m + n)^2 d).
/// Throws shape_error when the feature counts differ, config_error for fewer samples than the
/// estimator needs (2 per set unbiased, 1 biased).
template <class T, class U>
[[nodiscard]] double energy_distance(BatchView<T> x, BatchView<U> y, Estimator est = Estimator::unbiased) {
  detail::check_two_sample("energy_distance", x, y, est);
  const Eigen::MatrixXd xd = detail::to_double(x);
  const Eigen::MatrixXd yd = detail::to_double(y);
  const detail::PairSums s = detail::pair_sums(xd, yd, [](double d2) { return std::sqrt(d2); });
  const double m = static_cast<double>(x.batch());
  const double n = static_cast<double>(y.batch());
  const double mx = est == Estimator::unbiased ? m * (m - 1.0) : m * m;
  const double my = est == Estimator::unbiased ? n * (n - 1.0) : n * n;
  return 2.0 * s.xy / (m * n) - 2.0 * s.xx / mx - 2.0 * s.yy / my;
}

} // namespace forgery::metrics
