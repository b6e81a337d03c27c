// Float log and sin/cos for the Box-Muller transform of the normal fills: written with
// bit operations, polynomials and selects only, so that a loop over them vectorises (glibc's
// logf and sincosf are scalar calls). Device code calls CUDA's own functions instead.
#pragma once

#include <cstdint>

#include "forgery/core/config.hpp"

#if !defined(__CUDA_ARCH__)
#include <bit>
#endif

namespace forgery::math {

/// log(u) for u in (0, 1], subnormals included; branch-free, exactly 0 at u = 1 (and a finite
/// -103.97 at u = 0, outside the domain). Largest error over every float of the domain,
/// against double log: 0.862 ulp with FMA contraction (-march with FMA), 0.904 without.
FORGERY_HOST_DEVICE inline float log_unit(float u) noexcept {
#if defined(__CUDA_ARCH__)
  return ::logf(u);
#else
  // Every u is scaled by 2^23 first (exact; subnormals become normal). Scaling subnormals
  // only would take a select, and GCC moves a multiply used on one side of a select into a
  // branch that it then does not if-convert (a float multiply "could trap"): the loop
  // would not vectorise.
  const auto ix = std::bit_cast<std::uint32_t>(u * 0x1p23f);
  // u = 2^e m with m in [sqrt(1/2), sqrt(2)): adding the distance from sqrt(1/2)'s bits to
  // 1's carries into the exponent exactly when the mantissa reaches sqrt(1/2)'s.
  constexpr std::uint32_t one = 0x3f800000u, sqrt_half = 0x3f3504f3u;
  const std::uint32_t shifted = ix + (one - sqrt_half);
  const auto e = static_cast<std::int32_t>(shifted >> 23) - (127 + 23);
  const float m = std::bit_cast<float>((shifted & 0x007fffffu) + sqrt_half);
  const float t = m - 1.0f; // exact (Sterbenz), in [-0.293, 0.415)
  // log(1 + t) = t - t^2 / 2 + t^3 P(t), P a degree-7 minimax fit of the relative error
  // (largest 5.9e-9, well below float's 6e-8 half ulp).
  float p = -0.0763643906f;
  p = p * t + 0.127622172f;
  p = p * t - 0.131596103f;
  p = p * t + 0.1420158f;
  p = p * t - 0.166234091f;
  p = p * t + 0.200012416f;
  p = p * t - 0.250008196f;
  p = p * t + 0.333333313f;
  const float t2 = t * t;
  // ln 2 = ln2_hi + ln2_lo with ln2_hi on 9 bits, so e ln2_hi is exact. Its sum with t is
  // rounded and the rounding error recovered (Fast2Sum: |e ln2_hi| >= |t| or e = 0), so
  // only the last addition rounds at the result's scale.
  const auto ef = static_cast<float>(e);
  const float a = ef * 0.693359375f;
  const float hi = a + t;
  const float hi_err = (a - hi) + t;
  const float lo = ef * -2.12194442e-4f + (t2 * t * p - 0.5f * t2);
  return hi + (lo + hi_err);
#endif
}

/// sin(2 pi u) and cos(2 pi u) for u in [0, 1); branch-free, exact at the quadrant points 0,
/// 1/4, 1/2 and 3/4 (zeros may be signed). Largest error over every float of the domain,
/// against double sin and cos: 0.874 ulp with FMA contraction (1.0 at subnormal u), 1.13
/// without.
FORGERY_HOST_DEVICE inline void sincos_2pi(float u, float& s, float& c) noexcept {
#if defined(__CUDA_ARCH__)
  ::sincospif(2.0f * u, &s, &c);
#else
  // k = 4u rounded to an integer, read from the low mantissa bits after adding 1.5 * 2^23
  // (no float-to-int conversion); f = u - k / 4 in [-1/8, 1/8] is exact (Sterbenz), so
  // the reduction loses nothing, and 2 pi f is in [-pi/4, pi/4].
  constexpr float shifter = 0x1.8p23f;
  const float q = 4.0f * u + shifter;
  const auto k = std::bit_cast<std::uint32_t>(q);
  const float f = u - (q - shifter) * 0.25f;
  const float z = f * f;
  // sin(2 pi f) = f (2 pi + z S(z)), cos(2 pi f) = 1 + z C(z): S of degree 2 and C of
  // degree 3 are minimax fits of the relative error (largest 4e-9 and 4.4e-10).
  float ps = -75.4275208f;
  ps = ps * z + 81.5934296f;
  ps = ps * z - 41.341671f;
  // The leading term f 2 pi is the one whose rounding matters. 2 pi = c_hi + c_lo with c_hi
  // on 12 bits and f = f_hi + f_lo with f_hi its top 12 bits, so f_hi c_hi and f_lo c_hi
  // are exact and only the final addition rounds at the result's scale, with or without
  // FMA contraction.
  constexpr float c_hi = 6.283203125f, c_lo = -1.78178198e-5f;
  const float f_hi = std::bit_cast<float>(std::bit_cast<std::uint32_t>(f) & 0xfffff000u);
  const float f_lo = f - f_hi;
  const float sin_f = f_hi * c_hi + (f_lo * c_hi + f * (ps * z + c_lo));
  float pc = 58.6193733f;
  pc = pc * z - 85.4245071f;
  pc = pc * z + 64.9391479f;
  pc = pc * z - 19.7392082f;
  const float cos_f = pc * z + 1.0f;
  // Quadrant k: (sin, cos) of 2 pi f + k pi / 2 is (sin_f, cos_f) rotated k times, by
  // integer selects and sign flips.
  const auto sb = std::bit_cast<std::uint32_t>(sin_f), cb = std::bit_cast<std::uint32_t>(cos_f);
  const bool odd = (k & 1u) != 0;
  const std::uint32_t sin_sign = (k & 2u) << 30;        // quadrants 2 and 3
  const std::uint32_t cos_sign = ((k + 1u) & 2u) << 30; // quadrants 1 and 2
  s = std::bit_cast<float>((odd ? cb : sb) ^ sin_sign);
  c = std::bit_cast<float>((odd ? sb : cb) ^ cos_sign);
#endif
}

} // namespace forgery::math
