// Tests of forgery/data/toy.hpp: the ring, grid and swiss-roll samplers.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <utility>
#include <vector>

#include "forgery/core/buffer.hpp"
#include "forgery/data/toy.hpp"

namespace {

using forgery::BatchView;
using forgery::HostBuffer;
using forgery::index_t;
using forgery::RandomStream;
namespace data = forgery::data;

template <class S, class Dist>
HostBuffer<S> draw(const Dist& d, index_t n, RandomStream& rng) {
  HostBuffer<S> b(2 * n);
  d.sample(rng, BatchView<S>(b.data(), 2, n));
  return b;
}

template <class S, class Dist>
HostBuffer<S> draw(const Dist& d, index_t n, std::uint64_t seed) {
  RandomStream rng{seed, 0, 0};
  return draw<S>(d, n, rng);
}

// Index of the mode nearest to (x, y), and the distance to it.
std::pair<std::size_t, double> nearest(const std::vector<data::Point2>& modes, double x, double y) {
  std::size_t best = 0;
  double best_d = INFINITY;
  for (std::size_t m = 0; m < modes.size(); ++m) {
    const double d = std::hypot(x - modes[m][0], y - modes[m][1]);
    if (d < best_d) {
      best_d = d;
      best = m;
    }
  }
  return {best, best_d};
}

// Pearson's chi-square statistic of per-mode counts against a uniform choice of mode.
template <class S>
double chi_square_over_modes(const std::vector<data::Point2>& modes, const HostBuffer<S>& b) {
  const index_t n = b.size() / 2;
  std::vector<double> counts(modes.size(), 0.0);
  for (index_t i = 0; i < n; ++i) counts[nearest(modes, b[2 * i], b[2 * i + 1]).first] += 1.0;
  const double expected = static_cast<double>(n) / static_cast<double>(modes.size());
  double chi2 = 0;
  for (const double c : counts) chi2 += (c - expected) * (c - expected) / expected;
  return chi2;
}

} // namespace

TEST_CASE("Ring and Grid have the literature's modes and sigma by default") {
  const data::Ring ring;
  REQUIRE(ring.modes().size() == 8);
  CHECK(ring.sigma() == 0.02);
  CHECK(ring.radius() == 2.0);
  for (std::size_t i = 0; i < 8; ++i) {
    const double a = 2.0 * std::numbers::pi * static_cast<double>(i) / 8.0;
    CHECK(ring.modes()[i][0] == doctest::Approx(2.0 * std::cos(a)).epsilon(1e-15));
    CHECK(ring.modes()[i][1] == doctest::Approx(2.0 * std::sin(a)).epsilon(1e-15));
  }

  const data::Grid grid;
  REQUIRE(grid.modes().size() == 25);
  CHECK(grid.sigma() == 0.05);
  const double coords[] = {-4, -2, 0, 2, 4};
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 5; ++j) {
      CHECK(grid.modes()[static_cast<std::size_t>(i * 5 + j)][0] == coords[i]);
      CHECK(grid.modes()[static_cast<std::size_t>(i * 5 + j)][1] == coords[j]);
    }

  const data::Ring custom(3, 1.5, 0.1);
  CHECK(custom.modes().size() == 3);
  CHECK(custom.sigma() == 0.1);
  CHECK(std::hypot(custom.modes()[2][0], custom.modes()[2][1]) == doctest::Approx(1.5));
}

TEST_CASE_TEMPLATE("toy samplers are deterministic functions of the Philox stream", S, float, double) {
  const data::Ring ring;
  const data::Grid grid;
  const data::SwissRoll roll;
  const index_t n = 257;

  const auto check = [&](const auto& dist) {
    RandomStream a{42, 3, 10}, b{42, 3, 10};
    const auto x = draw<S>(dist, n, a);
    const auto y = draw<S>(dist, n, b);
    CHECK(std::equal(x.begin(), x.end(), y.begin()));
    // The stream advances by two blocks a sample, and nothing else changes.
    CHECK(a == RandomStream{42, 3, 10 + 2 * static_cast<std::uint64_t>(n)});

    // Two draws in a row continue the sequence of one draw of their total size.
    RandomStream c{42, 3, 10};
    const auto head = draw<S>(dist, 100, c);
    const auto tail = draw<S>(dist, n - 100, c);
    CHECK(std::equal(head.begin(), head.end(), x.begin()));
    CHECK(std::equal(tail.begin(), tail.end(), x.begin() + 200));
    CHECK(c == a);

    // Another seed or stream gives other samples.
    RandomStream d{43, 3, 10}, e{42, 4, 10};
    const auto z = draw<S>(dist, n, d);
    const auto w = draw<S>(dist, n, e);
    CHECK_FALSE(std::equal(x.begin(), x.end(), z.begin()));
    CHECK_FALSE(std::equal(x.begin(), x.end(), w.begin()));

    // Samples are drawn in double and rounded: float batches hold the double points.
    RandomStream f{42, 3, 10};
    const auto xd = draw<double>(dist, n, f);
    for (index_t i = 0; i < 2 * n; ++i) CHECK(x[i] == static_cast<S>(xd[i]));
  };
  check(ring);
  check(grid);
  check(roll);

  // An empty batch draws nothing.
  RandomStream g{1, 0, 5};
  ring.sample(g, BatchView<S>(nullptr, 2, 0));
  CHECK(g.counter == 5);
}

TEST_CASE("every mode receives about 1/k of the samples") {
  // Chi-square bounds at p = 0.001: 24.32 for 7 degrees of freedom, 51.18 for 24. A biased
  // mode choice (a mode never or doubly drawn) gives statistics in the hundreds.
  const data::Ring ring;
  const auto r = draw<double>(ring, 16000, 7);
  CHECK(chi_square_over_modes(ring.modes(), r) < 24.32);

  const data::Grid grid;
  const auto g = draw<double>(grid, 25000, 8);
  CHECK(chi_square_over_modes(grid.modes(), g) < 51.18);

  const data::Ring odd(5, 1.0, 0.01);
  const auto o = draw<float>(odd, 5000, 9);
  CHECK(chi_square_over_modes(odd.modes(), o) < 18.47); // 4 degrees of freedom
}

TEST_CASE("mixture samples are Gaussian around their mode with the given sigma") {
  const auto check = [](const data::IsotropicMixture& dist, std::uint64_t seed) {
    const index_t n = 20000;
    const auto b = draw<double>(dist, n, seed);
    double sx = 0, sy = 0, sxx = 0, syy = 0, worst = 0;
    index_t within3 = 0;
    for (index_t i = 0; i < n; ++i) {
      const auto [m, d] = nearest(dist.modes(), b[2 * i], b[2 * i + 1]);
      const double dx = b[2 * i] - dist.modes()[m][0];
      const double dy = b[2 * i + 1] - dist.modes()[m][1];
      sx += dx;
      sy += dy;
      sxx += dx * dx;
      syy += dy * dy;
      worst = std::max(worst, d);
      if (d < 3.0 * dist.sigma()) ++within3;
    }
    const double nn = static_cast<double>(n);
    const double s = dist.sigma();
    // Nothing beyond 6 sigma (probability e^-18 a sample in 2-D).
    CHECK(worst < 6.0 * s);
    // Mean offset 0 (standard error s / sqrt(n) = 0.007 s) and per-coordinate deviation s.
    CHECK(std::abs(sx / nn) < 0.03 * s);
    CHECK(std::abs(sy / nn) < 0.03 * s);
    CHECK(std::sqrt(sxx / nn) == doctest::Approx(s).epsilon(0.03));
    CHECK(std::sqrt(syy / nn) == doctest::Approx(s).epsilon(0.03));
    // The radius is Rayleigh: P(r < 3 sigma) = 1 - e^-4.5 = 0.98889 (standard error 0.0007).
    CHECK(static_cast<double>(within3) / nn == doctest::Approx(1.0 - std::exp(-4.5)).epsilon(0.003));
  };
  check(data::Ring(), 11);
  check(data::Grid(), 12);
  check(data::IsotropicMixture({{{1.0, -1.0}}}, 0.7), 13);
}

TEST_CASE("swiss roll samples lie on the scaled spiral (t cos t, t sin t)") {
  const index_t n = 20000;
  SUBCASE("noise-free points are exactly on the curve, with t uniform on [1.5 pi, 4.5 pi]") {
    const data::SwissRoll roll(0.0, 0.5);
    const auto b = draw<double>(roll, n, 21);
    double t_sum = 0;
    index_t first_half = 0;
    for (index_t i = 0; i < n; ++i) {
      const double x = b[2 * i] / 0.5, y = b[2 * i + 1] / 0.5;
      const double t = std::hypot(x, y); // |(t cos t, t sin t)| = t
      REQUIRE(t >= data::SwissRoll::t_min - 1e-12);
      REQUIRE(t <= data::SwissRoll::t_max + 1e-12);
      CHECK(x == doctest::Approx(t * std::cos(t)).epsilon(1e-9));
      CHECK(y == doctest::Approx(t * std::sin(t)).epsilon(1e-9));
      t_sum += t;
      if (t < 3.0 * std::numbers::pi) ++first_half;
    }
    // Mean 3 pi (standard error pi / sqrt(3 n) = 0.013) and half the mass below it.
    CHECK(t_sum / static_cast<double>(n) == doctest::Approx(3.0 * std::numbers::pi).epsilon(0.01));
    CHECK(static_cast<double>(first_half) / static_cast<double>(n) == doctest::Approx(0.5).epsilon(0.03));
  }
  SUBCASE("the default (noise 0.25, scale 1/7.5) stays near the curve and has unit-ish spread") {
    const data::SwissRoll roll;
    CHECK(roll.noise() == 0.25);
    CHECK(roll.scale() == doctest::Approx(1.0 / 7.5));
    const auto b = draw<double>(roll, n, 22);
    double sxx = 0, syy = 0;
    for (index_t i = 0; i < n; ++i) {
      const double x = b[2 * i] * 7.5, y = b[2 * i + 1] * 7.5;
      // Within 6 noise deviations of the noise-free radius range.
      const double r = std::hypot(x, y);
      CHECK(r > data::SwissRoll::t_min - 6 * 0.25);
      CHECK(r < data::SwissRoll::t_max + 6 * 0.25);
      sxx += b[2 * i] * b[2 * i];
      syy += b[2 * i + 1] * b[2 * i + 1];
    }
    // The scale 1/7.5 brings the coordinates' spread near 1 ("stdev plus a little").
    CHECK(std::sqrt(sxx / static_cast<double>(n)) > 0.7);
    CHECK(std::sqrt(sxx / static_cast<double>(n)) < 1.1);
    CHECK(std::sqrt(syy / static_cast<double>(n)) > 0.7);
    CHECK(std::sqrt(syy / static_cast<double>(n)) < 1.1);
  }
}

TEST_CASE("toy samplers reject invalid parameters and batches") {
  CHECK_THROWS_AS(data::Ring(0), forgery::config_error);
  CHECK_THROWS_AS(data::Ring(8, 0.0), forgery::config_error);
  CHECK_THROWS_AS(data::Ring(8, 2.0, 0.0), forgery::config_error);
  CHECK_THROWS_AS(data::Ring(8, 2.0, -0.02), forgery::config_error);
  CHECK_THROWS_AS(data::Ring(8, 2.0, NAN), forgery::config_error);
  CHECK_THROWS_AS(data::Grid(0), forgery::config_error);
  CHECK_THROWS_AS(data::Grid(5, -2.0), forgery::config_error);
  CHECK_THROWS_AS(data::Grid(5, 2.0, 0.0), forgery::config_error);
  // side x side wraps to 0 in 64 bits: the grid once reserved nothing and pushed 2^64 modes.
  CHECK_THROWS_AS(data::Grid(index_t{1} << 32), forgery::size_error);
  CHECK_THROWS_AS(data::IsotropicMixture({}, 1.0), forgery::config_error);
  CHECK_THROWS_AS(data::IsotropicMixture({{{0.0, INFINITY}}}, 1.0), forgery::config_error);
  CHECK_THROWS_AS(data::SwissRoll(-0.1), forgery::config_error);
  CHECK_THROWS_AS(data::SwissRoll(0.25, 0.0), forgery::config_error);
  CHECK_NOTHROW(data::SwissRoll(0.0));

  HostBuffer<float> b(3 * 4);
  RandomStream rng{1, 0, 0};
  CHECK_THROWS_AS(data::Ring().sample(rng, BatchView<float>(b.data(), 3, 4)), forgery::shape_error);
  CHECK_THROWS_AS(data::SwissRoll().sample(rng, BatchView<float>(b.data(), 1, 4)), forgery::shape_error);
  CHECK(rng.counter == 0); // a rejected batch draws nothing
}
