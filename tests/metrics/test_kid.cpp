// Tests of forgery/metrics/kid.hpp: KID against a brute-force unbiased MMD^2 with the cubic
// kernel, its behaviour on equal and shifted distributions, subsets and determinism.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include <Eigen/Core>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "forgery/backend/reference.hpp"
#include "forgery/metrics/kid.hpp"

namespace {

using forgery::BatchView;
using forgery::index_t;
using forgery::RandomStream;
using forgery::metrics::KidConfig;
namespace metrics = forgery::metrics;

// d x n samples of N(mean, stddev^2 I).
Eigen::MatrixXd gaussian(index_t d, index_t n, double mean, RandomStream& rng, double stddev = 1.0) {
  Eigen::MatrixXd m(d, n);
  forgery::backend::Reference<double>::fill_normal(m.size(), m.data(), rng, mean, stddev);
  return m;
}

// The unbiased MMD^2 of Binkowski et al. by the textbook double loops, with
// k(a, b) = (a . b / d + 1)^3: within-set sums over i != j, the cross sum over all pairs.
double brute_force_mmd2(const Eigen::MatrixXd& x, const Eigen::MatrixXd& y) {
  const index_t d = x.rows(), m = x.cols(), n = y.cols();
  const auto k = [d](const double* a, const double* b) {
    double dot = 0;
    for (index_t f = 0; f < d; ++f) dot += a[f] * b[f];
    return std::pow(dot / static_cast<double>(d) + 1.0, 3);
  };
  double xx = 0, yy = 0, xy = 0;
  for (index_t i = 0; i < m; ++i)
    for (index_t j = 0; j < m; ++j)
      if (i != j) xx += k(x.col(i).data(), x.col(j).data());
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < n; ++j)
      if (i != j) yy += k(y.col(i).data(), y.col(j).data());
  for (index_t i = 0; i < m; ++i)
    for (index_t j = 0; j < n; ++j) xy += k(x.col(i).data(), y.col(j).data());
  const double mm = static_cast<double>(m), nn = static_cast<double>(n);
  return xx / (mm * (mm - 1.0)) + yy / (nn * (nn - 1.0)) - 2.0 * xy / (mm * nn);
}

} // namespace

TEST_CASE("one subset of all points is the brute-force unbiased MMD^2 with the cubic kernel") {
  RandomStream data{1, 0, 0};
  for (const index_t d : {1, 5, 16}) {
    const index_t n = 12;
    const Eigen::MatrixXd x = gaussian(d, n, 0.0, data), y = gaussian(d, n, 0.7, data, 1.3);
    const double expected = brute_force_mmd2(x, y);
    REQUIRE(expected > 0.1);
    RandomStream rng{2, 0, 0};
    const auto r = metrics::kid(x, y, rng, {.subsets = 1, .subset_size = n});
    CHECK(r.mean == doctest::Approx(expected).epsilon(1e-12));
    CHECK(r.stddev == 0.0);
    CHECK(r.subsets == 1);
    CHECK(r.subset_size == n);
    // A subset size beyond the sets is clamped to them: the same draws, the same value.
    RandomStream again{2, 0, 0};
    const auto clamped = metrics::kid(x, y, again, {.subsets = 1});
    CHECK(clamped.subset_size == n);
    CHECK(clamped.mean == r.mean);
  }
}

TEST_CASE("the subset mean estimates the full-set statistic, also for sets of different sizes") {
  // A U-statistic on a random subset is unbiased for the U-statistic on the whole set, so the
  // mean over subsets approaches the brute-force value on all points.
  RandomStream data{3, 0, 0};
  const Eigen::MatrixXd x = gaussian(3, 14, 0.0, data), y = gaussian(3, 9, 0.5, data);
  const double full = brute_force_mmd2(x, y);
  RandomStream rng{4, 0, 0};
  const auto r = metrics::kid(x, y, rng, {.subsets = 500, .subset_size = 6});
  CHECK(r.subset_size == 6);
  CHECK(r.subsets == 500);
  CHECK(r.stddev > 0.0);
  CHECK(std::abs(r.mean - full) < 4.0 * r.stddev / std::sqrt(500.0));
}

TEST_CASE("subsets are drawn without replacement, uniformly") {
  RandomStream rng{5, 0, 0};
  std::vector<index_t> perm, idx(7);
  std::vector<double> u;
  std::vector<index_t> hits(10, 0);
  const int draws = 2000;
  int bad_counter = 0, repeated = 0, out_of_range = 0;
  for (int t = 0; t < draws; ++t) {
    const RandomStream before = rng;
    metrics::detail::sample_without_replacement(10, 7, rng, perm, u, idx.data());
    bad_counter += rng.counter != before.counter + 4; // 7 doubles: 4 blocks
    std::vector<index_t> sorted = idx;
    std::sort(sorted.begin(), sorted.end());
    repeated += std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end();
    out_of_range += sorted.front() < 0 || sorted.back() >= 10;
    for (const index_t i : idx)
      if (i >= 0 && i < 10) ++hits[static_cast<std::size_t>(i)];
  }
  CHECK(bad_counter == 0);
  CHECK(repeated == 0);
  CHECK(out_of_range == 0);
  // Each index is in a subset with probability 7 / 10: 1400 of 2000 (sd 20).
  for (const index_t h : hits) CHECK(std::abs(static_cast<double>(h) - 1400.0) < 100.0);
  // All of the points, in a random order.
  idx.resize(10);
  metrics::detail::sample_without_replacement(10, 10, rng, perm, u, idx.data());
  std::vector<index_t> sorted = idx;
  std::sort(sorted.begin(), sorted.end());
  for (index_t i = 0; i < 10; ++i) CHECK(sorted[static_cast<std::size_t>(i)] == i);
}

TEST_CASE("KID is about 0 for samples of one distribution and clearly positive for shifted ones") {
  RandomStream data{6, 0, 0};
  const index_t d = 8;
  const Eigen::MatrixXd x = gaussian(d, 300, 0.0, data), y = gaussian(d, 300, 0.0, data);
  const Eigen::MatrixXd shifted = gaussian(d, 300, 1.0, data);
  RandomStream rng{7, 0, 0};
  const KidConfig cfg{.subsets = 20, .subset_size = 100};
  const auto same = metrics::kid(x, y, rng, cfg);
  CHECK(same.stddev > 0.0);
  CHECK(std::abs(same.mean) < 3.0 * same.stddev);
  const auto apart = metrics::kid(x, shifted, rng, cfg);
  CHECK(apart.mean > 5.0 * apart.stddev); // about 10
  CHECK(apart.mean > 20.0 * std::abs(same.mean));
  // Symmetric in distribution: swapping the sets gives the same kind of value.
  const auto swapped = metrics::kid(shifted, x, rng, cfg);
  CHECK(swapped.mean == doctest::Approx(apart.mean).epsilon(0.2));
}

TEST_CASE("KID is deterministic given the stream, and advances it") {
  RandomStream data{8, 0, 0};
  const Eigen::MatrixXd x = gaussian(16, 240, 0.0, data), y = gaussian(16, 220, 0.2, data);
  const KidConfig cfg{.subsets = 5, .subset_size = 201};
  RandomStream a{9, 3, 0}, b{9, 3, 0};
  const auto ra = metrics::kid(x, y, a, cfg);
  const auto rb = metrics::kid(x, y, b, cfg);
  CHECK(ra.mean == rb.mean);
  CHECK(ra.stddev == rb.stddev);
  CHECK(a == b);
  CHECK(a.counter == 5 * 2 * 101); // per subset, 201 doubles from each set: 101 blocks each
  // The continued stream draws other subsets.
  const auto next = metrics::kid(x, y, a, cfg);
  CHECK(next.mean != ra.mean);
  RandomStream other{10, 3, 0};
  CHECK(metrics::kid(x, y, other, cfg).mean != ra.mean);
#if defined(_OPENMP)
  // Bitwise the same with 1 and 2 threads (201 x 201 x 16 GEMMs: tiled).
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  RandomStream one{9, 3, 0};
  const auto r1 = metrics::kid(x, y, one, cfg);
  omp_set_num_threads(2);
  RandomStream two{9, 3, 0};
  const auto r2 = metrics::kid(x, y, two, cfg);
  omp_set_num_threads(saved);
  CHECK(r1.mean == r2.mean);
  CHECK(r1.stddev == r2.stddev);
#endif
}

TEST_CASE("float features give the double result of their values") {
  RandomStream data{11, 0, 0};
  const Eigen::MatrixXf xf = gaussian(4, 30, 0.0, data).cast<float>(), yf = gaussian(4, 25, 0.4, data).cast<float>();
  const Eigen::MatrixXd xd = xf.cast<double>(), yd = yf.cast<double>();
  RandomStream a{12, 0, 0}, b{12, 0, 0};
  const auto rf = metrics::kid(BatchView<const float>(xf.data(), 4, 30), BatchView<const float>(yf.data(), 4, 25), a,
                               {.subsets = 3, .subset_size = 20});
  const auto rd = metrics::kid(xd, yd, b, {.subsets = 3, .subset_size = 20});
  CHECK(rf.mean == rd.mean);
  CHECK(rf.stddev == rd.stddev);
}

TEST_CASE("KID rejects mismatched shapes and invalid settings") {
  const std::vector<double> v(24, 0.5);
  const BatchView<const double> x2(v.data(), 2, 12), x3(v.data(), 3, 8), one(v.data(), 2, 1), none(nullptr, 2, 0);
  RandomStream rng{13, 0, 0};
  CHECK_THROWS_AS((void)metrics::kid(x2, x3, rng), forgery::shape_error);
  CHECK_THROWS_AS(
      (void)metrics::kid(BatchView<const double>(v.data(), 0, 12), BatchView<const double>(v.data(), 0, 12), rng),
      forgery::shape_error);
  CHECK_THROWS_AS((void)metrics::kid(x2, x2, rng, {.subsets = 0}), forgery::config_error);
  CHECK_THROWS_AS((void)metrics::kid(x2, x2, rng, {.subset_size = 1}), forgery::config_error);
  CHECK_THROWS_AS((void)metrics::kid(x2, one, rng), forgery::config_error);
  CHECK_THROWS_AS((void)metrics::kid(none, x2, rng), forgery::config_error);
  std::vector<double> bad = v;
  bad[7] = NAN;
  CHECK_THROWS_AS((void)metrics::kid(BatchView<const double>(bad.data(), 2, 12), x2, rng), forgery::config_error);
  CHECK_NOTHROW((void)metrics::kid(x2, BatchView<const double>(v.data(), 2, 2), rng, {.subsets = 2}));
}
