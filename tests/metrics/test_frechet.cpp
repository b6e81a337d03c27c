// Tests of forgery/metrics/frechet.hpp: Gaussian statistics and the Frechet distance against
// closed forms (diagonal, commuting and 2-D covariances, 1-D by hand) and sampled Gaussians.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include <Eigen/Core>
#include <Eigen/QR>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "forgery/backend/reference.hpp"
#include "forgery/core/buffer.hpp"
#include "forgery/metrics/frechet.hpp"

namespace {

using forgery::BatchView;
using forgery::HostBuffer;
using forgery::index_t;
using forgery::RandomStream;
using forgery::metrics::GaussianStats;
namespace metrics = forgery::metrics;

// A rows x cols matrix of N(0, 1) values from `rng`.
Eigen::MatrixXd normal_matrix(index_t rows, index_t cols, RandomStream& rng) {
  Eigen::MatrixXd m(rows, cols);
  forgery::backend::Reference<double>::fill_normal(m.size(), m.data(), rng, 0.0, 1.0);
  return m;
}

// A random rotation: the Q factor of a Gaussian matrix.
Eigen::MatrixXd rotation(index_t d, RandomStream& rng) {
  const Eigen::HouseholderQR<Eigen::MatrixXd> qr(normal_matrix(d, d, rng));
  return qr.householderQ() * Eigen::MatrixXd::Identity(d, d);
}

// A random covariance of rank `rank`, plus `ridge` on the diagonal.
Eigen::MatrixXd random_spd(index_t d, RandomStream& rng, index_t rank, double ridge) {
  const Eigen::MatrixXd a = normal_matrix(d, rank, rng);
  Eigen::MatrixXd s = a * a.transpose() / static_cast<double>(rank);
  s.diagonal().array() += ridge;
  return (0.5 * (s + s.transpose())).eval();
}

GaussianStats stats(Eigen::VectorXd mean, Eigen::MatrixXd cov) {
  GaussianStats s;
  s.mean = std::move(mean);
  s.cov = std::move(cov);
  return s;
}

Eigen::VectorXd random_vector(index_t d, RandomStream& rng) { return normal_matrix(d, 1, rng); }

} // namespace

TEST_CASE_TEMPLATE("gaussian_stats gives the mean and the unbiased covariance", S, float, double) {
  // Feature 0: 1, 2, 3, 4 (mean 2.5, variance 5 / 3); feature 1: 2, 0, 2, 0 (mean 1,
  // variance 4 / 3); covariance (-1.5 * 1 - 0.5 * -1 + 0.5 * 1 + 1.5 * -1) / 3 = -2 / 3.
  const std::vector<S> x = {1, 2, 2, 0, 3, 2, 4, 0};
  const auto s = metrics::gaussian_stats(BatchView<const S>(x.data(), 2, 4));
  REQUIRE(s.dim() == 2);
  CHECK(s.count == 4);
  CHECK(s.mean(0) == doctest::Approx(2.5).epsilon(1e-15));
  CHECK(s.mean(1) == doctest::Approx(1.0).epsilon(1e-15));
  CHECK(s.cov(0, 0) == doctest::Approx(5.0 / 3.0).epsilon(1e-15));
  CHECK(s.cov(1, 1) == doctest::Approx(4.0 / 3.0).epsilon(1e-15));
  CHECK(s.cov(0, 1) == doctest::Approx(-2.0 / 3.0).epsilon(1e-15));
  CHECK(s.cov(1, 0) == s.cov(0, 1));
}

TEST_CASE("gaussian_stats is exactly symmetric and two-pass accurate with a large offset") {
  RandomStream rng{1, 0, 0};
  // More samples than one conversion chunk (1024), and a mean far from 0: a one-pass
  // E[x^2] - E[x]^2 would lose all digits at 1e8.
  Eigen::MatrixXd x = normal_matrix(3, 2500, rng);
  const GaussianStats ref = metrics::gaussian_stats(x);
  x.array() += 1e8;
  const GaussianStats s = metrics::gaussian_stats(x);
  CHECK(s.count == 2500);
  CHECK((s.cov - s.cov.transpose()).cwiseAbs().maxCoeff() == 0.0);
  CHECK((s.cov - ref.cov).cwiseAbs().maxCoeff() < 1e-7);
  CHECK((s.mean.array() - 1e8 - ref.mean.array()).abs().maxCoeff() < 1e-5);
  // Against a direct centred product in Eigen.
  const Eigen::MatrixXd c = x.colwise() - x.rowwise().mean();
  CHECK((s.cov - c * c.transpose() / 2499.0).cwiseAbs().maxCoeff() < 1e-6);
}

TEST_CASE("the Frechet distance of identical statistics is 0") {
  RandomStream rng{2, 0, 0};
  for (const index_t d : {1, 4, 9, 30})
    for (const index_t rank : {index_t(1), (d + 1) / 2, d + 2}) {
      // Singular covariances too: fewer samples than features give those.
      const GaussianStats s = stats(random_vector(d, rng), random_spd(d, rng, rank, 0.0));
      const double fd = metrics::frechet_distance(s, s);
      INFO("d = ", d, ", rank = ", rank);
      // Eigenvalues that are 0 up to rounding are resolved to 0, so this holds to ~1e-14 (an
      // unresolved square root of rounding noise would leave ~1e-8 with singular ones).
      CHECK(std::abs(fd) <= 1e-12 * 2.0 * s.cov.trace());
    }
}

TEST_CASE("1-D by hand: (mu1 - mu2)^2 + (sigma1 - sigma2)^2") {
  // N(0, 4) and N(3, 1): 9 + (2 - 1)^2.
  const GaussianStats a = stats(Eigen::VectorXd::Constant(1, 0.0), Eigen::MatrixXd::Constant(1, 1, 4.0));
  const GaussianStats b = stats(Eigen::VectorXd::Constant(1, 3.0), Eigen::MatrixXd::Constant(1, 1, 1.0));
  CHECK(metrics::frechet_distance(a, b) == doctest::Approx(10.0).epsilon(1e-14));
  // A point mass (zero variance) against N(3, 1): 9 + 1.
  const GaussianStats point = stats(Eigen::VectorXd::Constant(1, 0.0), Eigen::MatrixXd::Zero(1, 1));
  CHECK(metrics::frechet_distance(point, b) == doctest::Approx(10.0).epsilon(1e-14));
  // From samples: {0, 2} has mean 1 and variance 2; {5, 7, 9} mean 7 and variance 4.
  const std::vector<double> x = {0, 2}, y = {5, 7, 9};
  const double expected = 36.0 + (std::sqrt(2.0) - 2.0) * (std::sqrt(2.0) - 2.0);
  CHECK(metrics::frechet_distance(BatchView<const double>(x.data(), 1, 2), BatchView<const double>(y.data(), 1, 3)) ==
        doctest::Approx(expected).epsilon(1e-14));
}

TEST_CASE("diagonal covariances: sum (mu1 - mu2)^2 + sum (sqrt(a_i) - sqrt(b_i))^2") {
  RandomStream rng{3, 0, 0};
  const index_t d = 7;
  Eigen::VectorXd a(d), b(d);
  forgery::backend::Reference<double>::fill_uniform(d, a.data(), rng, 0.1, 5.0);
  forgery::backend::Reference<double>::fill_uniform(d, b.data(), rng, 0.1, 5.0);
  a(2) = 0.0; // a degenerate direction is allowed
  const Eigen::VectorXd m1 = random_vector(d, rng), m2 = random_vector(d, rng);
  const double expected = (m1 - m2).squaredNorm() + (a.cwiseSqrt() - b.cwiseSqrt()).squaredNorm();
  const double fd = metrics::frechet_distance(stats(m1, a.asDiagonal()), stats(m2, b.asDiagonal()));
  CHECK(fd == doctest::Approx(expected).epsilon(1e-12));
}

TEST_CASE("commuting covariances (shared eigenvectors): the closed form on the eigenvalues") {
  RandomStream rng{4, 0, 0};
  for (const index_t d : {2, 5, 12}) {
    const Eigen::MatrixXd q = rotation(d, rng);
    REQUIRE((q.transpose() * q - Eigen::MatrixXd::Identity(d, d)).cwiseAbs().maxCoeff() < 1e-12);
    Eigen::VectorXd a(d), b(d);
    forgery::backend::Reference<double>::fill_uniform(d, a.data(), rng, 0.05, 3.0);
    forgery::backend::Reference<double>::fill_uniform(d, b.data(), rng, 0.05, 3.0);
    const Eigen::MatrixXd s1 = q * a.asDiagonal() * q.transpose(), s2 = q * b.asDiagonal() * q.transpose();
    const Eigen::VectorXd m1 = random_vector(d, rng), m2 = random_vector(d, rng);
    const double expected = (m1 - m2).squaredNorm() + (a.cwiseSqrt() - b.cwiseSqrt()).squaredNorm();
    // The closed form needs S1 and S2 exactly symmetric, as computed covariances are.
    const GaussianStats x = stats(m1, (0.5 * (s1 + s1.transpose())).eval());
    const GaussianStats y = stats(m2, (0.5 * (s2 + s2.transpose())).eval());
    CHECK(metrics::frechet_distance(x, y) == doctest::Approx(expected).epsilon(1e-10));
  }
}

TEST_CASE("non-commuting 2-D covariances: tr sqrt(S1^1/2 S2 S1^1/2) = sqrt(tr(S1 S2) + 2 sqrt(det S1 det S2))") {
  // For a 2 x 2 positive semi-definite M, tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)); with
  // M = S1^1/2 S2 S1^1/2, tr M = tr(S1 S2) and det M = det S1 det S2.
  RandomStream rng{5, 0, 0};
  for (int trial = 0; trial < 5; ++trial) {
    const Eigen::MatrixXd s1 = random_spd(2, rng, 3, 0.01), s2 = random_spd(2, rng, 3, 0.01);
    const Eigen::VectorXd m1 = random_vector(2, rng), m2 = random_vector(2, rng);
    const double tr_sqrt = std::sqrt((s1 * s2).trace() + 2.0 * std::sqrt(s1.determinant() * s2.determinant()));
    const double expected = (m1 - m2).squaredNorm() + s1.trace() + s2.trace() - 2.0 * tr_sqrt;
    CHECK(metrics::frechet_distance(stats(m1, s1), stats(m2, s2)) == doctest::Approx(expected).epsilon(1e-11));
  }
}

TEST_CASE("the Frechet distance is symmetric and non-negative on random covariances") {
  RandomStream rng{6, 0, 0};
  for (const index_t d : {1, 3, 8, 20})
    for (const index_t rank : {index_t(1), d, 2 * d}) {
      // rank < d gives singular covariances, as fewer samples than features do.
      const GaussianStats a = stats(random_vector(d, rng), random_spd(d, rng, rank, 0.0));
      const GaussianStats b = stats(random_vector(d, rng), random_spd(d, rng, rank, 0.0));
      const double ab = metrics::frechet_distance(a, b), ba = metrics::frechet_distance(b, a);
      CHECK(ab > 0.0);
      INFO("d = ", d, ", rank = ", rank);
      CHECK(ba == doctest::Approx(ab).epsilon(1e-10));
      // Same means: only the covariance term is left, still non-negative, and 0 against itself.
      const GaussianStats b0 = stats(a.mean, b.cov);
      CHECK(metrics::frechet_distance(a, b0) >= 0.0);
      CHECK(metrics::frechet_distance(a, b0) == doctest::Approx(ab - (a.mean - b.mean).squaredNorm()).epsilon(1e-9));
    }
}

TEST_CASE_TEMPLATE("statistics of many Philox normals converge to the true Gaussian", S, float, double) {
  // x = mu + L z with z ~ N(0, I): mean mu, covariance L L^T.
  const index_t d = 3, n = 20000;
  Eigen::Matrix3d l;
  l << 1.0, 0.0, 0.0, 0.5, 1.5, 0.0, -0.3, 0.2, 0.7;
  const Eigen::Vector3d mu(1.0, -2.0, 0.5);
  RandomStream rng{7, 0, 0};
  HostBuffer<S> x(d * n);
  forgery::backend::Reference<S>::fill_normal(x.size(), x.data(), rng, S(0), S(1));
  for (index_t j = 0; j < n; ++j) {
    const Eigen::Vector3d z(x[j * d], x[j * d + 1], x[j * d + 2]);
    const Eigen::Vector3d v = mu + l * z;
    for (index_t f = 0; f < d; ++f) x[j * d + f] = static_cast<S>(v(f));
  }
  const GaussianStats s = metrics::gaussian_stats(BatchView<const S>(x.data(), d, n));
  const Eigen::Matrix3d cov = l * l.transpose();
  // Standard errors: sqrt(cov_ii / n) <= 0.012 for the mean, about 0.02 for the covariance.
  CHECK((s.mean - mu).cwiseAbs().maxCoeff() < 0.05);
  CHECK((s.cov - cov).cwiseAbs().maxCoeff() < 0.08);
  // The sampling error of the distance is O(d^2 / n) ~ 1e-3: far below any mismatch.
  const double fd = metrics::frechet_distance(s, stats(mu, cov));
  CHECK(std::abs(fd) < 5e-3);
  CHECK(metrics::frechet_distance(s, stats(mu + Eigen::Vector3d(0.5, 0, 0), cov)) ==
        doctest::Approx(0.25 + fd).epsilon(0.05));
}

TEST_CASE("float and double features, views and Eigen matrices agree") {
  RandomStream rng{8, 0, 0};
  const Eigen::MatrixXd x = normal_matrix(4, 50, rng), y = normal_matrix(4, 70, rng).array() + 0.3;
  const Eigen::MatrixXf xf = x.cast<float>(), yf = y.cast<float>();
  const Eigen::MatrixXd xr = xf.cast<double>(), yr = yf.cast<double>();
  const double from_stats = metrics::frechet_distance(metrics::gaussian_stats(xr), metrics::gaussian_stats(yr));
  // The distance depends on the values of the features, not on their type; mutable views work.
  std::vector<float> xm(xf.data(), xf.data() + xf.size());
  CHECK(metrics::frechet_distance(BatchView<float>(xm.data(), 4, 50), BatchView<const float>(yf.data(), 4, 70)) ==
        from_stats);
  CHECK(metrics::frechet_distance(xr, yr) == from_stats);
  CHECK(from_stats > 0.0);
}

TEST_CASE("gaussian_stats and frechet_distance are bitwise the same with 1 and 2 threads") {
  // Sizes at which the backend GEMMs are tiled, the covariance is accumulated over several
  // chunks of 1024 samples, and the eigen-decomposition uses blocked Householder products.
  RandomStream rng{9, 0, 0};
  const Eigen::MatrixXd x = normal_matrix(40, 2100, rng);
  const index_t d = 260;
  const GaussianStats a = stats(random_vector(d, rng), random_spd(d, rng, 200, 0.0));
  const GaussianStats b = stats(random_vector(d, rng), random_spd(d, rng, d, 0.0));
#if defined(_OPENMP)
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
#endif
  const GaussianStats s1 = metrics::gaussian_stats(x);
  const double fd1 = metrics::frechet_distance(a, b);
#if defined(_OPENMP)
  omp_set_num_threads(2);
#endif
  const GaussianStats s2 = metrics::gaussian_stats(x);
  const double fd2 = metrics::frechet_distance(a, b);
#if defined(_OPENMP)
  omp_set_num_threads(saved);
#endif
  CHECK(std::memcmp(s1.cov.data(), s2.cov.data(), sizeof(double) * static_cast<std::size_t>(s1.cov.size())) == 0);
  CHECK(std::memcmp(s1.mean.data(), s2.mean.data(), sizeof(double) * static_cast<std::size_t>(s1.mean.size())) == 0);
  CHECK(fd1 == fd2);
  CHECK(fd1 > 0.0);
}

TEST_CASE("invalid statistics and features are rejected") {
  const GaussianStats two = stats(Eigen::VectorXd::Zero(2), Eigen::MatrixXd::Identity(2, 2));
  const GaussianStats three = stats(Eigen::VectorXd::Zero(3), Eigen::MatrixXd::Identity(3, 3));
  CHECK_THROWS_AS((void)metrics::frechet_distance(two, three), forgery::shape_error);
  CHECK_THROWS_AS((void)metrics::frechet_distance(three, two), forgery::shape_error);
  CHECK_THROWS_AS((void)metrics::frechet_distance(GaussianStats{}, two), forgery::shape_error);
  CHECK_THROWS_AS(
      (void)metrics::frechet_distance(two, stats(Eigen::VectorXd::Zero(2), Eigen::MatrixXd::Identity(3, 3))),
      forgery::shape_error);
  Eigen::MatrixXd nan = Eigen::MatrixXd::Identity(2, 2);
  nan(0, 1) = nan(1, 0) = NAN;
  CHECK_THROWS_AS((void)metrics::frechet_distance(two, stats(Eigen::VectorXd::Zero(2), nan)), forgery::config_error);
  Eigen::MatrixXd skew = Eigen::MatrixXd::Identity(2, 2);
  skew(0, 1) = 0.5;
  CHECK_THROWS_AS((void)metrics::frechet_distance(stats(Eigen::VectorXd::Zero(2), skew), two), forgery::config_error);
  // Not positive semi-definite, as either argument; rounding-sized negatives are fine.
  const Eigen::MatrixXd indefinite = Eigen::Vector2d(1.0, -0.5).asDiagonal();
  CHECK_THROWS_AS((void)metrics::frechet_distance(stats(Eigen::VectorXd::Zero(2), indefinite), two),
                  forgery::config_error);
  CHECK_THROWS_AS((void)metrics::frechet_distance(two, stats(Eigen::VectorXd::Zero(2), indefinite)),
                  forgery::config_error);
  const Eigen::MatrixXd rounding = Eigen::Vector2d(1.0, -1e-14).asDiagonal();
  CHECK(metrics::frechet_distance(stats(Eigen::VectorXd::Zero(2), rounding), two) ==
        doctest::Approx(1.0).epsilon(1e-12)); // (1 - 1)^2 + (0 - 1)^2

  const std::vector<double> v(12, 1.0);
  CHECK_THROWS_AS(
      (void)metrics::frechet_distance(BatchView<const double>(v.data(), 2, 6), BatchView<const double>(v.data(), 3, 4)),
      forgery::shape_error);
  CHECK_THROWS_AS((void)metrics::gaussian_stats(BatchView<const double>(v.data(), 2, 1)), forgery::config_error);
  CHECK_THROWS_AS((void)metrics::gaussian_stats(BatchView<const double>(nullptr, 2, 0)), forgery::config_error);
  CHECK_THROWS_AS((void)metrics::gaussian_stats(BatchView<const double>(v.data(), 0, 6)), forgery::shape_error);
  std::vector<double> bad = v;
  bad[5] = INFINITY;
  CHECK_THROWS_AS((void)metrics::gaussian_stats(BatchView<const double>(bad.data(), 2, 6)), forgery::config_error);
  try {
    (void)metrics::gaussian_stats(BatchView<const double>(v.data(), 2, 1));
  } catch (const forgery::config_error& e) {
    CHECK(std::string(e.what()).find("1 samples") != std::string::npos);
  }
}
