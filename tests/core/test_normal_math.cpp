// Tests of core/normal_math.hpp: the accuracy of log_unit and sincos_2pi against double
// std:: functions on strided sweeps of their domains and at the special points, and that
// the vectorised normal fill gives normal_from_block's value in every lane.
#include <doctest/doctest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "forgery/backend/cpu.hpp"
#include "forgery/backend/reference.hpp"
#include "forgery/core/normal_math.hpp"
#include "forgery/core/philox.hpp"

namespace {

using forgery::index_t;

// The largest errors over every float of the domain (measured exhaustively, with and without
// FMA contraction): log_unit 0.862 / 0.904 ulp, sincos_2pi 1.000 / 1.130 ulp (the 1.000 is
// at a subnormal u; 0.874 for normal u).
constexpr double log_bound = 0.91;
constexpr double sincos_bound = 1.13;

// |got - ref| in units of the last place of ref as a float (subnormal spacing below FLT_MIN).
double ulp_error(float got, double ref) {
  if (ref == 0) return got == 0 ? 0 : std::numeric_limits<double>::infinity();
  int e = 0;
  static_cast<void>(std::frexp(ref, &e));
  return std::abs(static_cast<double>(got) - ref) / std::ldexp(1.0, std::max(e - 24, -149));
}

// sin and cos of 2 pi u in double, with the reduction u - k/4 done exactly (as the function
// under test does), so that the zeros at u = 1/2 are zeros and not 2 pi's rounding.
void sincos_2pi_ref(float u, double& s, double& c) {
  const double k = std::nearbyint(4.0 * u);
  const double x = 6.283185307179586476925286766559 * (static_cast<double>(u) - k / 4);
  const double sf = std::sin(x), cf = std::cos(x);
  const double rotated[4][2] = {{sf, cf}, {cf, -sf}, {-sf, -cf}, {-cf, sf}}; // quadrant k
  s = rotated[static_cast<int>(k) % 4][0];
  c = rotated[static_cast<int>(k) % 4][1];
}

float from_bits(std::uint32_t b) { return std::bit_cast<float>(b); }

// The largest error seen and where; a NaN error is the worst and sticks.
struct Worst {
  double err = 0;
  float at = 0;
  void update(double e, float u) {
    if (!std::isnan(err) && !(e <= err)) err = e, at = u;
  }
};

// A value's bit pattern: bitwise equality, which tells -0 from 0.
template <class S>
auto bits(S x) {
  return std::bit_cast<std::conditional_t<sizeof(S) == 4, std::uint32_t, std::uint64_t>>(x);
}

} // namespace

TEST_CASE("log_unit is within 0.91 ulp of log on a strided sweep of (0, 1] and exact at 1") {
  Worst worst;
  auto check = [&](float u) {
    worst.update(ulp_error(forgery::math::log_unit(u), std::log(static_cast<double>(u))), u);
  };
  // Every 4093rd bit pattern of (0, 1] (subnormals included), and every float of [1 - 2^-12, 1].
  for (std::uint32_t b = 1; b <= 0x3f800000u; b += 4093) check(from_bits(b));
  for (std::uint32_t b = 0x3f7ff000u; b <= 0x3f800000u; ++b) check(from_bits(b));
  // The values Philox's uniforms can take at both ends, the subnormal and normal extremes, and
  // both sides of sqrt(1/2), where the exponent of the reduction steps.
  for (const float u :
       {forgery::uniform_open_f(0u), forgery::uniform_open_f(0xffffffffu), std::numeric_limits<float>::denorm_min(),
        std::numeric_limits<float>::min(), from_bits(0x3f3504f2u), from_bits(0x3f3504f3u), 0.5f, 0.25f})
    check(u);
  CAPTURE(worst.at);
  CHECK(worst.err <= log_bound);
  CHECK(forgery::math::log_unit(1.0f) == 0.0f);
  CHECK(forgery::math::log_unit(0.5f) == static_cast<float>(-std::log(2.0)));
}

TEST_CASE("sincos_2pi is within 1.13 ulp of sin and cos on a strided sweep of [0, 1), exact at quadrants") {
  Worst worst_s, worst_c;
  auto check = [&](float u) {
    float s = 0, c = 0;
    forgery::math::sincos_2pi(u, s, c);
    double rs = 0, rc = 0;
    sincos_2pi_ref(u, rs, rc);
    worst_s.update(ulp_error(s, rs), u);
    worst_c.update(ulp_error(c, rc), u);
  };
  // Every 4093rd bit pattern of [0, 1) (dense near 0) and 2^18 evenly spaced values (dense in
  // every quadrant), and the largest uniform Philox gives.
  for (std::uint32_t b = 0; b < 0x3f800000u; b += 4093) check(from_bits(b));
  for (int i = 0; i < (1 << 18); ++i) check(static_cast<float>(i) * 0x1p-18f);
  check(forgery::uniform_open_f(0xffffffffu));
  CAPTURE(worst_s.at);
  CAPTURE(worst_c.at);
  CHECK(worst_s.err <= sincos_bound);
  CHECK(worst_c.err <= sincos_bound);

  // The quadrant points are exact (zeros may carry either sign).
  struct Point {
    float u, s, c;
  };
  for (const Point& p :
       {Point{0.0f, 0.0f, 1.0f}, Point{0.25f, 1.0f, 0.0f}, Point{0.5f, 0.0f, -1.0f}, Point{0.75f, -1.0f, 0.0f}}) {
    CAPTURE(p.u);
    float s = 2, c = 2;
    forgery::math::sincos_2pi(p.u, s, c);
    CHECK(s == p.s);
    CHECK(c == p.c);
  }
}

TEST_CASE_TEMPLATE("the bulk normal fill gives normal_from_block's value in every lane, ragged n included", S, float,
                   double) {
  constexpr index_t per = forgery::values_per_block<S>;
  const forgery::RandomStream start{0x5EED, 9, 0xfffffffaull}; // the counter's low word wraps inside the fill
  const S mean = S(0.25), stddev = S(1.5);
  // Below, at and past one group of blocks, a ragged group, and enough for Cpu to fork.
  for (const index_t n :
       {index_t{1}, index_t{3}, index_t{31}, index_t{32}, index_t{33}, index_t{1021}, index_t{40007}}) {
    CAPTURE(n);
    forgery::RandomStream cpu_rng = start, ref_rng = start;
    std::vector<S> cpu(static_cast<std::size_t>(n)), ref(static_cast<std::size_t>(n));
    forgery::backend::Cpu<S>::fill_normal(n, cpu.data(), cpu_rng, mean, stddev);
    forgery::backend::Reference<S>::fill_normal(n, ref.data(), ref_rng, mean, stddev);
    index_t mismatches = 0, first_mismatch = -1;
    for (index_t i = 0; i < n; ++i) {
      const forgery::PhiloxBlock b =
          forgery::philox_block(start.seed, start.stream, start.counter + static_cast<std::uint64_t>(i / per));
      const S expected =
          forgery::kernels::add_mul_unfused(mean, stddev, forgery::normal_from_block<S>(b, static_cast<int>(i % per)));
      const auto at = static_cast<std::size_t>(i);
      if (bits(cpu[at]) != bits(expected) || bits(ref[at]) != bits(expected)) {
        if (mismatches++ == 0) first_mismatch = i;
      }
    }
    CAPTURE(first_mismatch);
    CHECK(mismatches == 0);
    CHECK(cpu_rng == ref_rng);
  }
}
