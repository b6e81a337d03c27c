// Tests of forgery/metrics/mmd.hpp and forgery/metrics/energy_distance.hpp.
#include <doctest/doctest.h>

#include <cmath>
#include <numbers>
#include <vector>

#include "forgery/backend/reference.hpp"
#include "forgery/core/buffer.hpp"
#include "forgery/metrics/energy_distance.hpp"
#include "forgery/metrics/mmd.hpp"

namespace {

using forgery::BatchView;
using forgery::HostBuffer;
using forgery::index_t;
using forgery::RandomStream;
using forgery::metrics::Estimator;
namespace metrics = forgery::metrics;

// d x n samples of N(mean, I) (the same mean in every coordinate), drawn from `rng`.
template <class S = double>
HostBuffer<S> gaussian(index_t d, index_t n, double mean, RandomStream& rng, double stddev = 1.0) {
  HostBuffer<S> b(d * n);
  forgery::backend::Reference<S>::fill_normal(d * n, b.data(), rng, static_cast<S>(mean), static_cast<S>(stddev));
  return b;
}

template <class S>
BatchView<const S> view(const HostBuffer<S>& b, index_t d) {
  return {b.data(), d, b.size() / d};
}

// Shifts the first coordinate of every sample by `by`.
HostBuffer<double> shifted(const HostBuffer<double>& b, index_t d, double by) {
  HostBuffer<double> c = b;
  for (index_t i = 0; i < b.size(); i += d) c[i] += by;
  return c;
}

// The three expectations of a two-sample statistic by the textbook double loops over a
// kernel of the distance: within x, within y (pairs i != j when unbiased), across.
struct Expectations {
  double xx = 0, yy = 0, xy = 0;
};
template <class K>
Expectations brute_force(const HostBuffer<double>& x, const HostBuffer<double>& y, index_t d, K k, bool unbiased) {
  const index_t m = x.size() / d, n = y.size() / d;
  const auto dist = [d](const double* a, const double* b) {
    double s = 0;
    for (index_t f = 0; f < d; ++f) s += (a[f] - b[f]) * (a[f] - b[f]);
    return std::sqrt(s);
  };
  Expectations e;
  for (index_t i = 0; i < m; ++i)
    for (index_t j = 0; j < m; ++j)
      if (i != j || !unbiased) e.xx += k(dist(&x[i * d], &x[j * d]));
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < n; ++j)
      if (i != j || !unbiased) e.yy += k(dist(&y[i * d], &y[j * d]));
  for (index_t i = 0; i < m; ++i)
    for (index_t j = 0; j < n; ++j) e.xy += k(dist(&x[i * d], &y[j * d]));
  const double md = static_cast<double>(m), nd = static_cast<double>(n);
  e.xx /= unbiased ? md * (md - 1) : md * md;
  e.yy /= unbiased ? nd * (nd - 1) : nd * nd;
  e.xy /= md * nd;
  return e;
}

// E k(X, Y) for X ~ N(0, s^2 I_d), Y ~ N(delta, s^2 I_d) and the RBF kernel of bandwidth h.
double rbf_expectation(double h, double s, double delta2, int d) {
  const double v = h * h + 2 * s * s;
  return std::pow(h * h / v, 0.5 * d) * std::exp(-delta2 / (2 * v));
}

// E|X - Y| for X ~ N(0, 1), Y ~ N(delta, 1) in 1-D: the mean of a folded normal N(delta, 2).
double folded_normal_mean(double delta) {
  const double s = std::sqrt(2.0);
  return s * std::sqrt(2.0 / std::numbers::pi) * std::exp(-delta * delta / (2 * s * s)) +
         delta * (1.0 - std::erfc(delta / (s * std::sqrt(2.0))));
}

} // namespace

TEST_CASE("mmd2 and energy_distance match the textbook double loops") {
  RandomStream rng{1, 0, 0};
  const index_t d = 3;
  const auto x = gaussian(d, 7, 0.0, rng);
  const auto y = gaussian(d, 5, 0.4, rng);
  for (const bool unbiased : {true, false}) {
    const Estimator est = unbiased ? Estimator::unbiased : Estimator::biased;
    const double h = 1.3;
    const auto k = brute_force(
        x, y, d, [h](double r) { return std::exp(-r * r / (2 * h * h)); }, unbiased);
    CHECK(metrics::mmd2(view(x, d), view(y, d), h, est) == doctest::Approx(k.xx + k.yy - 2 * k.xy).epsilon(1e-12));
    const auto e = brute_force(
        x, y, d, [](double r) { return r; }, unbiased);
    CHECK(metrics::energy_distance(view(x, d), view(y, d), est) ==
          doctest::Approx(2 * e.xy - e.xx - e.yy).epsilon(1e-12));
  }
}

TEST_CASE("the unbiased mmd2 averages to the closed form for two Gaussians; the biased one does not") {
  // X ~ N(0, I_2), Y ~ N((1, 0), I_2), bandwidth 1: MMD^2 = 2 c (1 - exp(-1 / 6)), c = 1/3,
  // = 0.10235. Averaging R = 1000 estimates of m = n = 20 samples gives a standard error of
  // about 0.0024; the biased estimator sits (1 - c)(1/m + 1/n) = 0.067 higher, and the kernel
  // exp(-r^2 / h^2) (another common convention) would give 0.0725.
  const double h = 1.0, s = 1.0, delta = 1.0;
  const double exact = 2 * rbf_expectation(h, s, 0.0, 2) - 2 * rbf_expectation(h, s, delta * delta, 2);
  CHECK(exact == doctest::Approx(2.0 / 3.0 * (1.0 - std::exp(-1.0 / 6.0))));
  RandomStream rng{2, 0, 0};
  const int reps = 1000;
  double sum_u = 0, sum_b = 0;
  for (int r = 0; r < reps; ++r) {
    const auto x = gaussian(2, 20, 0.0, rng);
    const auto y = shifted(gaussian(2, 20, 0.0, rng), 2, delta);
    sum_u += metrics::mmd2(view(x, 2), view(y, 2), h);
    sum_b += metrics::mmd2(view(x, 2), view(y, 2), h, Estimator::biased);
  }
  CHECK(std::abs(sum_u / reps - exact) < 0.011);
  CHECK(sum_b / reps - exact > 0.04);
}

TEST_CASE("the unbiased energy distance averages to the closed form for two 1-D Gaussians") {
  // X ~ N(0, 1), Y ~ N(1, 1): 2 E|X - Y| - E|X - X'| - E|Y - Y'|, with X - Y ~ N(-1, 2) and
  // X - X' ~ N(0, 2): 2 * 1.3993 - 2 * 1.1284 = 0.5418. R = 1000 estimates of 20 samples give
  // a standard error near 0.011; the biased estimator, whose within-set means divide by m^2,
  // sits 2 * 1.1284 / 20 = 0.113 higher.
  const double exact = 2 * folded_normal_mean(1.0) - 2 * folded_normal_mean(0.0);
  CHECK(exact == doctest::Approx(0.5418).epsilon(1e-3));
  RandomStream rng{3, 0, 0};
  const int reps = 1000;
  double sum_u = 0, sum_b = 0;
  for (int r = 0; r < reps; ++r) {
    const auto x = gaussian(1, 20, 0.0, rng);
    const auto y = gaussian(1, 20, 1.0, rng);
    sum_u += metrics::energy_distance(view(x, 1), view(y, 1));
    sum_b += metrics::energy_distance(view(x, 1), view(y, 1), Estimator::biased);
  }
  CHECK(std::abs(sum_u / reps - exact) < 0.045);
  CHECK(sum_b / reps - exact > 0.06);
}

TEST_CASE("two samples of one distribution: mmd2 near zero, possibly negative") {
  RandomStream rng{4, 0, 0};
  const index_t n = 1000;
  const auto x = gaussian(2, n, 0.0, rng);
  const auto y = gaussian(2, n, 0.0, rng);
  const double u = metrics::mmd2(view(x, 2), view(y, 2), 1.0);
  // Under the null the unbiased estimate has standard deviation near 0.0008 at n = 1000.
  CHECK(std::abs(u) < 0.004);
  const double b = metrics::mmd2(view(x, 2), view(y, 2), 1.0, Estimator::biased);
  CHECK(b > 0.0);
  CHECK(b > u);
  // A set against itself: the biased estimate is exactly zero, the unbiased one slightly
  // negative (it leaves out the i == j terms only within each set).
  CHECK(metrics::mmd2(view(x, 2), view(x, 2), 1.0, Estimator::biased) == doctest::Approx(0.0).epsilon(1e-14));
  CHECK(metrics::mmd2(view(x, 2), view(x, 2), 1.0) < 0.0);
  CHECK(metrics::mmd2(view(x, 2), view(x, 2), 1.0) > -0.01);
  CHECK(metrics::energy_distance(view(x, 2), view(x, 2), Estimator::biased) == doctest::Approx(0.0).epsilon(1e-14));
  CHECK(std::abs(metrics::energy_distance(view(x, 2), view(y, 2))) < 0.01);
}

TEST_CASE("mmd2 and energy distance grow with the mean shift") {
  RandomStream rng{5, 0, 0};
  const auto x = gaussian(2, 400, 0.0, rng);
  const auto y0 = gaussian(2, 400, 0.0, rng);
  double last_mmd = -1, last_energy = -1;
  for (const double shift : {0.0, 0.25, 0.5, 1.0, 2.0, 4.0}) {
    const auto y = shifted(y0, 2, shift);
    const double m = metrics::mmd2(view(x, 2), view(y, 2), 1.0);
    const double e = metrics::energy_distance(view(x, 2), view(y, 2));
    CHECK(m > last_mmd);
    CHECK(e > last_energy);
    last_mmd = m;
    last_energy = e;
  }
  // Far apart, the cross term vanishes: MMD^2 -> 2 E k(X, X') = 2 / 3 at bandwidth 1.
  const auto far = shifted(y0, 2, 50.0);
  CHECK(metrics::mmd2(view(x, 2), view(far, 2), 1.0) == doctest::Approx(2.0 / 3.0).epsilon(0.05));
}

TEST_CASE("point masses: energy distance is 2 |a - b|, mmd2 is 2 - 2 k(a, b)") {
  const index_t d = 3;
  const double a[] = {1.0, -2.0, 0.5}, b[] = {4.0, 2.0, 0.5}; // |a - b| = 5
  HostBuffer<double> x(d * 6), y(d * 4);
  for (index_t i = 0; i < x.size(); ++i) x[i] = a[i % d];
  for (index_t i = 0; i < y.size(); ++i) y[i] = b[i % d];
  for (const Estimator est : {Estimator::unbiased, Estimator::biased}) {
    CHECK(metrics::energy_distance(view(x, d), view(y, d), est) == doctest::Approx(10.0).epsilon(1e-14));
    CHECK(metrics::energy_distance(view(y, d), view(x, d), est) == doctest::Approx(10.0).epsilon(1e-14));
    CHECK(metrics::mmd2(view(x, d), view(y, d), 4.0, est) ==
          doctest::Approx(2.0 - 2.0 * std::exp(-25.0 / 32.0)).epsilon(1e-14));
  }
  // One sample a set is enough for the biased estimators.
  const BatchView<const double> xa(x.data(), d, 1), yb(y.data(), d, 1);
  CHECK(metrics::energy_distance(xa, yb, Estimator::biased) == doctest::Approx(10.0));
}

TEST_CASE("mmd2 and energy distance are symmetric and repeatable") {
  RandomStream rng{6, 0, 0};
  const auto x = gaussian(4, 60, 0.0, rng);
  const auto y = gaussian(4, 45, 0.3, rng, 1.5);
  const double m = metrics::mmd2(view(x, 4), view(y, 4), 2.0);
  CHECK(metrics::mmd2(view(y, 4), view(x, 4), 2.0) == doctest::Approx(m).epsilon(1e-13));
  CHECK(metrics::mmd2(view(x, 4), view(y, 4), 2.0) == m); // bitwise, a fixed order
  const double e = metrics::energy_distance(view(x, 4), view(y, 4));
  CHECK(metrics::energy_distance(view(y, 4), view(x, 4)) == doctest::Approx(e).epsilon(1e-13));
  CHECK(metrics::energy_distance(view(x, 4), view(y, 4)) == e);
  CHECK(e > 0.0);
}

TEST_CASE_TEMPLATE("float samples give the double result up to their rounding", S, float, double) {
  RandomStream rng{7, 0, 0};
  auto xs = gaussian<S>(2, 100, 0.0, rng);
  const auto ys = gaussian<S>(2, 100, 0.5, rng);
  HostBuffer<double> xd(xs.size()), yd(ys.size());
  for (index_t i = 0; i < xs.size(); ++i) xd[i] = xs[i];
  for (index_t i = 0; i < ys.size(); ++i) yd[i] = ys[i];
  // The statistics are computed in double, so the values of the samples decide, not their
  // type; mutable and const views both work.
  const BatchView<S> xm(xs.data(), 2, 100);
  CHECK(metrics::mmd2(xm, view(ys, 2), 1.0) == metrics::mmd2(view(xd, 2), view(yd, 2), 1.0));
  CHECK(metrics::energy_distance(xm, view(ys, 2)) == metrics::energy_distance(view(xd, 2), view(yd, 2)));
}

TEST_CASE("median_heuristic is the median pooled pairwise distance") {
  // 1-D points 0, 1 | 3: distances 1, 3, 2 -> median 2.
  const std::vector<double> a = {0.0, 1.0}, b = {3.0, 7.0};
  CHECK(metrics::median_heuristic(BatchView<const double>(a.data(), 1, 2), BatchView<const double>(b.data(), 1, 1)) ==
        2.0);
  // 0, 1 | 3, 7: distances 1, 3, 7, 2, 6, 4 -> (3 + 4) / 2.
  CHECK(metrics::median_heuristic(BatchView<const double>(a.data(), 1, 2), BatchView<const double>(b.data(), 1, 2)) ==
        3.5);
  // max_per_set keeps the first samples of each set: 0 | 3 -> 3.
  CHECK(metrics::median_heuristic(BatchView<const double>(a.data(), 1, 2), BatchView<const double>(b.data(), 1, 2),
                                  1) == 3.0);
  // For N(0, I_2) the pairwise distance is Rayleigh with scale sqrt(2): median 2 sqrt(ln 2).
  RandomStream rng{8, 0, 0};
  const auto x = gaussian(2, 500, 0.0, rng);
  const auto y = gaussian(2, 500, 0.0, rng);
  CHECK(metrics::median_heuristic(view(x, 2), view(y, 2)) ==
        doctest::Approx(2.0 * std::sqrt(std::log(2.0))).epsilon(0.02));
  const std::vector<double> same = {1.0, 1.0, 1.0};
  CHECK_THROWS_AS((void)metrics::median_heuristic(BatchView<const double>(same.data(), 1, 2),
                                                  BatchView<const double>(same.data(), 1, 1)),
                  forgery::config_error);
  CHECK_THROWS_AS((void)metrics::median_heuristic(BatchView<const double>(same.data(), 1, 1),
                                                  BatchView<const double>(nullptr, 1, 0)),
                  forgery::config_error);
}

TEST_CASE("two-sample metrics reject mismatched shapes and invalid parameters") {
  const std::vector<double> v(12, 0.5);
  const BatchView<const double> x2(v.data(), 2, 6), x3(v.data(), 3, 4), one(v.data(), 2, 1), none(nullptr, 2, 0);
  CHECK_THROWS_AS((void)metrics::mmd2(x2, x3, 1.0), forgery::shape_error);
  CHECK_THROWS_AS((void)metrics::energy_distance(x2, x3), forgery::shape_error);
  CHECK_THROWS_AS((void)metrics::median_heuristic(x2, x3), forgery::shape_error);
  CHECK_THROWS_AS((void)metrics::mmd2(x2, x2, 0.0), forgery::config_error);
  CHECK_THROWS_AS((void)metrics::mmd2(x2, x2, -1.0), forgery::config_error);
  CHECK_THROWS_AS((void)metrics::mmd2(x2, x2, NAN), forgery::config_error);
  CHECK_THROWS_AS((void)metrics::mmd2(x2, none, 1.0), forgery::config_error);
  CHECK_THROWS_AS((void)metrics::mmd2(none, x2, 1.0, Estimator::biased), forgery::config_error);
  CHECK_THROWS_AS((void)metrics::energy_distance(none, x2), forgery::config_error);
  // A single sample has no pairs for the unbiased within-set terms.
  CHECK_THROWS_AS((void)metrics::mmd2(one, x2, 1.0), forgery::config_error);
  CHECK_THROWS_AS((void)metrics::energy_distance(x2, one), forgery::config_error);
  CHECK_NOTHROW((void)metrics::mmd2(one, x2, 1.0, Estimator::biased));
}
