// Tests of forgery/metrics/mode_coverage.hpp: the VEEGAN mode-coverage protocol.
#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

#include "forgery/backend/reference.hpp"
#include "forgery/core/buffer.hpp"
#include "forgery/data/toy.hpp"
#include "forgery/metrics/mode_coverage.hpp"

namespace {

using forgery::BatchView;
using forgery::HostBuffer;
using forgery::index_t;
using forgery::RandomStream;
namespace data = forgery::data;
namespace metrics = forgery::metrics;

template <class S, class Dist>
HostBuffer<S> draw(const Dist& d, index_t n, std::uint64_t seed) {
  HostBuffer<S> b(2 * n);
  RandomStream rng{seed, 0, 0};
  d.sample(rng, BatchView<S>(b.data(), 2, n));
  return b;
}

template <class S>
BatchView<const S> view(const HostBuffer<S>& b, index_t features = 2) {
  return {b.data(), features, b.size() / features};
}

// 1 - e^{-k^2 / 2}: the probability that a 2-D isotropic Gaussian sample lies within k sigma.
double rayleigh_within(double k) { return 1.0 - std::exp(-0.5 * k * k); }

} // namespace

TEST_CASE("the defaults are VEEGAN's: 3 sigma, a mode covered by one high-quality sample") {
  const metrics::ModeCoverageConfig cfg;
  CHECK(cfg.sigma_multiple == 3.0);
  CHECK(cfg.min_high_quality == 1);
}

TEST_CASE_TEMPLATE("samples of the target cover every mode, at the Gaussian's high-quality rate", S, float, double) {
  SUBCASE("ring, 2500 samples as in VEEGAN") {
    const data::Ring ring;
    const auto b = draw<S>(ring, 2500, 1);
    const auto r = metrics::mode_coverage(view(b), ring);
    CHECK(r.modes_covered == 8);
    CHECK(r.total_modes == 8);
    CHECK(r.samples == 2500);
    REQUIRE(r.counts.size() == 8);
    index_t sum = 0;
    for (const index_t c : r.counts) {
      CHECK(c > 250); // expected 309
      sum += c;
    }
    CHECK(sum == r.high_quality);
    CHECK(r.high_quality_fraction == doctest::Approx(static_cast<double>(r.high_quality) / 2500.0));
    // In 2-D, a perfect sample lies within 3 sigma with probability 1 - e^-4.5 = 0.98889, so
    // a perfect generator scores about 98.9 % (standard error 0.2 % at 2500 samples).
    CHECK(r.high_quality_fraction == doctest::Approx(rayleigh_within(3.0)).epsilon(0.008));
    CHECK(r.kl_to_uniform < 0.01);
  }
  SUBCASE("ring, many samples: the high-quality rate is the Rayleigh probability") {
    const data::Ring ring;
    const auto b = draw<S>(ring, 40000, 2);
    const auto r3 = metrics::mode_coverage(view(b), ring);
    CHECK(r3.high_quality_fraction == doctest::Approx(rayleigh_within(3.0)).epsilon(0.0015));
    const auto r2 = metrics::mode_coverage(view(b), ring, {.sigma_multiple = 2.0});
    CHECK(r2.high_quality_fraction == doctest::Approx(rayleigh_within(2.0)).epsilon(0.006));
    const auto r5 = metrics::mode_coverage(view(b), ring, {.sigma_multiple = 5.0});
    CHECK(r5.high_quality_fraction > 0.9999);
  }
  SUBCASE("grid") {
    const data::Grid grid;
    const auto b = draw<S>(grid, 2500, 3);
    const auto r = metrics::mode_coverage(view(b), grid);
    CHECK(r.modes_covered == 25);
    CHECK(r.total_modes == 25);
    CHECK(r.high_quality_fraction == doctest::Approx(rayleigh_within(3.0)).epsilon(0.008));
  }
}

TEST_CASE("samples from 3 of the 8 ring modes cover 3 of 8") {
  const data::Ring ring;
  const std::vector<data::Point2> three = {ring.modes()[0], ring.modes()[3], ring.modes()[5]};
  const data::IsotropicMixture collapsed(three, ring.sigma());
  const auto b = draw<double>(collapsed, 2500, 4);
  const auto r = metrics::mode_coverage(view(b), ring);
  CHECK(r.modes_covered == 3);
  CHECK(r.total_modes == 8);
  for (const std::size_t m : {1, 2, 4, 6, 7}) CHECK(r.counts[m] == 0);
  for (const std::size_t m : {0, 3, 5}) CHECK(r.counts[m] > 700); // expected 824
  CHECK(r.high_quality_fraction == doctest::Approx(rayleigh_within(3.0)).epsilon(0.008));
  // Equal mass on 3 of 8 modes: KL to uniform = log(8 / 3).
  CHECK(r.kl_to_uniform == doctest::Approx(std::log(8.0 / 3.0)).epsilon(0.01));

  // Full collapse onto one mode.
  const data::IsotropicMixture one({ring.modes()[2]}, ring.sigma());
  const auto c = metrics::mode_coverage(view(draw<double>(one, 500, 5)), ring);
  CHECK(c.modes_covered == 1);
  CHECK(c.counts[2] == c.high_quality);
  CHECK(c.kl_to_uniform == doctest::Approx(std::log(8.0)));
}

TEST_CASE("uniform noise on [-3, 3]^2 is almost never high quality") {
  const data::Ring ring;
  const index_t n = 2500;
  HostBuffer<double> b(2 * n);
  RandomStream rng{6, 0, 0};
  forgery::backend::Reference<double>::fill_uniform(2 * n, b.data(), rng, -3.0, 3.0);
  const auto r = metrics::mode_coverage(view(b), ring);
  // The 8 discs of radius 0.06 cover 8 pi 0.06^2 / 36 = 0.25 % of the square.
  CHECK(r.high_quality_fraction < 0.01);
  CHECK(r.high_quality < 25);
  CHECK(r.samples == n);
}

TEST_CASE("thresholds are respected: radius, nearest mode and minimum count") {
  // Two modes on the x axis, sigma 0.1: high quality means closer than 0.3.
  const std::vector<std::array<double, 2>> modes = {{{0.0, 0.0}}, {{1.0, 0.0}}};
  const double sigma = 0.1;
  // clang-format off
  const std::vector<double> pts = {
      0.0,   0.0,   // mode 0, distance 0
      0.29,  0.0,   // mode 0, just inside 3 sigma
      0.0,  -0.299, // mode 0, just inside
      0.0,   0.301, // mode 0's nearest, just outside 3 sigma: not high quality
      0.6,   0.0,   // nearer to mode 1 (0.4 away): outside its radius too
      0.75,  0.0,   // mode 1, 0.25 away: high quality for mode 1, not mode 0
      0.5,   5.0,   // far from both
      NAN,   0.0,   // not a number: never high quality
  };
  // clang-format on
  const BatchView<const double> x(pts.data(), 2, static_cast<index_t>(pts.size() / 2));

  const auto r = metrics::mode_coverage(x, modes, sigma);
  CHECK(r.samples == 8);
  CHECK(r.counts == std::vector<index_t>{3, 1});
  CHECK(r.high_quality == 4);
  CHECK(r.high_quality_fraction == doctest::Approx(0.5));
  CHECK(r.modes_covered == 2);

  // A mode needs min_high_quality samples to count.
  CHECK(metrics::mode_coverage(x, modes, sigma, {.min_high_quality = 2}).modes_covered == 1);
  CHECK(metrics::mode_coverage(x, modes, sigma, {.min_high_quality = 3}).modes_covered == 1);
  CHECK(metrics::mode_coverage(x, modes, sigma, {.min_high_quality = 4}).modes_covered == 0);

  // A wider radius (5 sigma = 0.5) takes in the points at 0.301 and 0.4.
  const auto wide = metrics::mode_coverage(x, modes, sigma, {.sigma_multiple = 5.0});
  CHECK(wide.counts == std::vector<index_t>{4, 2});
  // A narrower one (1 sigma = 0.1) keeps only the exact hit.
  const auto narrow = metrics::mode_coverage(x, modes, sigma, {.sigma_multiple = 1.0});
  CHECK(narrow.counts == std::vector<index_t>{1, 0});
  CHECK(narrow.modes_covered == 1);

  // No high-quality sample at all: the balance is undefined, reported as +infinity.
  const std::vector<double> far = {10.0, 10.0, -10.0, 3.0};
  const auto none = metrics::mode_coverage(BatchView<const double>(far.data(), 2, 2), modes, sigma);
  CHECK(none.modes_covered == 0);
  CHECK(none.high_quality_fraction == 0.0);
  CHECK(std::isinf(none.kl_to_uniform));
}

TEST_CASE("mode coverage works in other dimensions and on mutable float views") {
  const std::vector<std::array<double, 3>> modes = {{{0, 0, 0}}, {{0, 0, 10}}};
  std::vector<float> pts = {0.f, 0.f, 0.05f, 0.f, 0.1f, 9.9f, 5.f, 5.f, 5.f};
  const auto r = metrics::mode_coverage(BatchView<float>(pts.data(), 3, 3), modes, 0.1);
  CHECK(r.counts == std::vector<index_t>{1, 1});
  CHECK(r.modes_covered == 2);
}

TEST_CASE("mode coverage rejects mismatched shapes and invalid parameters") {
  const data::Ring ring;
  const std::vector<double> three(9, 0.0), two(4, 0.0);
  const BatchView<const double> x3(three.data(), 3, 3), x2(two.data(), 2, 2);
  CHECK_THROWS_AS((void)metrics::mode_coverage(x3, ring), forgery::shape_error);
  CHECK_THROWS_AS((void)metrics::mode_coverage(BatchView<const double>(two.data(), 2, 0), ring), forgery::config_error);
  CHECK_THROWS_AS((void)metrics::mode_coverage(x2, ring.modes(), 0.0), forgery::config_error);
  CHECK_THROWS_AS((void)metrics::mode_coverage(x2, ring.modes(), -1.0), forgery::config_error);
  CHECK_THROWS_AS((void)metrics::mode_coverage(x2, std::vector<data::Point2>{}, 1.0), forgery::config_error);
  CHECK_THROWS_AS((void)metrics::mode_coverage(x2, ring, {.sigma_multiple = 0.0}), forgery::config_error);
  CHECK_THROWS_AS((void)metrics::mode_coverage(x2, ring, {.min_high_quality = 0}), forgery::config_error);
  CHECK_NOTHROW((void)metrics::mode_coverage(x2, ring));
}
