// Shape arithmetic shared by Conv2d and ConvTranspose2d: output extents, and reading
// (C, H, W) from an input shape without piling further errors onto a rank error.
#pragma once

#include <cstddef>

#include "forgery/backend/kernels.hpp"
#include "forgery/core/config.hpp"
#include "forgery/core/shape.hpp"

namespace forgery {

/// Output extent of a convolution along one axis, floor((in + 2 pad - kernel) / stride) + 1
/// as in PyTorch; 0 when the kernel does not fit the padded input.
[[nodiscard]] constexpr index_t conv_output_extent(index_t in, index_t kernel, index_t stride, index_t pad) {
  return in + 2 * pad < kernel || stride < 1 ? 0 : (in + 2 * pad - kernel) / stride + 1;
}

/// Output extent of a transposed convolution along one axis, (in - 1) stride - 2 pad + kernel:
/// the input extent of the convolution it is the adjoint of.
[[nodiscard]] constexpr index_t conv_transpose_output_extent(index_t in, index_t kernel, index_t stride, index_t pad) {
  return (in - 1) * stride - 2 * pad + kernel;
}

namespace detail {

/// Dimension I of a (C, H, W) shape, or `fallback` for a shape of another rank: a rank error
/// is then reported alone, not followed by out-of-range indexing or non-positive shapes.
template <class In, std::size_t I>
constexpr index_t chw_dim(index_t fallback) {
  if constexpr (In::rank == 3)
    return In::dims[I];
  else
    return fallback;
}

/// An extent for a Shape<...> that stays positive once a static_assert has already fired.
constexpr index_t positive_or_one(index_t extent) { return extent > 0 ? extent : 1; }

} // namespace detail

} // namespace forgery
