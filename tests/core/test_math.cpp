// Tests of core/math.hpp: math::tanh's accuracy against double-precision std::tanh on a
// dense sweep of floats, its special values, symmetry and monotonicity, and that a value is
// the same bits from a vectorised loop as from a scalar call (the CPU kernels' thread-count
// determinism depends on it).
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "forgery/core/math.hpp"
#include "forgery/layers/activation.hpp"

namespace {

// Distance from the exact value in units of the last place of the float nearest to it.
double ulp_error(float got, double exact) {
  const float nearest = static_cast<float>(exact);
  float ulp = std::nextafter(std::fabs(nearest), std::numeric_limits<float>::infinity()) - std::fabs(nearest);
  if (nearest == 0.0f) ulp = std::numeric_limits<float>::denorm_min();
  return std::fabs(static_cast<double>(got) - exact) / ulp;
}

// A loop the release build vectorises.
void tanh_loop(const std::vector<float>& x, std::vector<float>& y) {
  for (std::size_t i = 0; i < x.size(); ++i) y[i] = forgery::math::tanh(x[i]);
}

// One value at a time, through a pointer the compiler cannot see through.
float (*volatile scalar_tanh)(float) = [](float x) { return forgery::math::tanh(x); };

// Every 61st float from 0 up to 10 (about 18 million values), where tanh has not yet
// saturated; the bound was measured over every float of the range.
std::vector<float> sweep() {
  std::vector<float> x;
  const std::uint32_t end = std::bit_cast<std::uint32_t>(10.0f);
  for (std::uint32_t b = 0; b < end; b += 61) x.push_back(std::bit_cast<float>(b));
  return x;
}

} // namespace

TEST_CASE("math::tanh is within 1.35 ulp of the exact value, monotone and odd") {
  const std::vector<float> x = sweep();
  std::vector<float> y(x.size());
  tanh_loop(x, y);
  double worst = 0;
  float worst_at = 0;
  std::size_t decreasing = 0, not_odd = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double e = ulp_error(y[i], std::tanh(static_cast<double>(x[i])));
    if (e > worst) {
      worst = e;
      worst_at = x[i];
    }
    if (i > 0 && y[i] < y[i - 1]) ++decreasing;
    if (i % 97 == 0 && forgery::math::tanh(-x[i]) != -y[i]) ++not_odd;
  }
  INFO("worst at x = " << worst_at);
  CHECK(worst <= 1.35);
  CHECK(decreasing == 0);
  CHECK(not_odd == 0);
}

TEST_CASE("math::tanh: signed zeros, saturation, infinities and NaN") {
  using forgery::math::tanh;
  CHECK(tanh(0.0f) == 0.0f);
  CHECK_FALSE(std::signbit(tanh(0.0f)));
  CHECK(tanh(-0.0f) == 0.0f);
  CHECK(std::signbit(tanh(-0.0f)));
  const float tiny = std::numeric_limits<float>::denorm_min();
  CHECK(tanh(tiny) == tiny);
  CHECK(tanh(-1e-20f) == -1e-20f);
  for (float big : {9.5f, 10.0f, 20.0f, 88.0f, 1e30f, std::numeric_limits<float>::max()}) {
    CHECK(tanh(big) == 1.0f);
    CHECK(tanh(-big) == -1.0f);
  }
  CHECK(tanh(std::numeric_limits<float>::infinity()) == 1.0f);
  CHECK(tanh(-std::numeric_limits<float>::infinity()) == -1.0f);
  CHECK(std::isnan(tanh(std::numeric_limits<float>::quiet_NaN())));
  CHECK(std::isnan(tanh(-std::numeric_limits<float>::quiet_NaN())));
  // Both sides of the switch between the polynomial and the exponential form.
  const float edge = 0.625f;
  for (float v : {std::nextafter(edge, 0.0f), edge, std::nextafter(edge, 1.0f)})
    CHECK(ulp_error(tanh(v), std::tanh(static_cast<double>(v))) <= 1.35);
}

TEST_CASE("math::tanh gives the same bits in a vectorised loop as one value at a time") {
  // Ragged length, both signs, across the polynomial/exponential switch and saturation.
  std::vector<float> x;
  for (int i = 0; i < 4099; ++i) x.push_back(std::sin(0.37f * static_cast<float>(i)) * 6.0f);
  std::vector<float> y(x.size());
  tanh_loop(x, y);
  std::size_t differ = 0;
  for (std::size_t i = 0; i < x.size(); ++i)
    if (std::bit_cast<std::uint32_t>(scalar_tanh(x[i])) != std::bit_cast<std::uint32_t>(y[i])) ++differ;
  CHECK(differ == 0);
}

TEST_CASE("the Tanh activation uses math::tanh for float and std::tanh for double") {
  const forgery::activation::Tanh f;
  for (float v : {-3.0f, -0.7f, -0.1f, 0.0f, 0.3f, 0.625f, 2.5f}) {
    CHECK(std::bit_cast<std::uint32_t>(f.value(v)) == std::bit_cast<std::uint32_t>(forgery::math::tanh(v)));
    CHECK(f.value(static_cast<double>(v)) == std::tanh(static_cast<double>(v)));
  }
}
