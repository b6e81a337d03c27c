// Upsample (nearest neighbour) and AvgPool2d on (C, H, W) samples: linear maps without
// parameters between an image and one Factor times larger in each direction, each the other's
// adjoint up to the factor 1 / Factor^2. Two kernels cover all four passes: spreading a
// small image's values over F x F blocks of the large one, and summing those blocks back.
#pragma once

#include <type_traits>

#include "forgery/backend/op_set.hpp"
#include "forgery/core/batch_view.hpp"
#include "forgery/core/config.hpp"
#include "forgery/core/shape.hpp"
#include "forgery/layers/context.hpp"
#include "forgery/layers/conv_geometry.hpp"

namespace forgery {

namespace kernels {

// The small image has rows of `width` values; small row i (sample, channel and row together)
// corresponds to big rows i F .. i F + F - 1 of F width values each. One index per small row,
// so each kernel writes only what its index owns; the inner loops run along a row and, with F
// a constant, vectorise.

/// Each small value fills its F x F block of the big image, divided by F^2 when Mean
/// (Upsample's forward; AvgPool2d's backward).
template <class S, index_t F, bool Mean>
struct SpreadBlocks {
  const S* small;
  S* big;
  index_t width;
  FORGERY_HOST_DEVICE void operator()(index_t i) const {
    const S* src = small + i * width;
    for (index_t fy = 0; fy < F; ++fy) {
      S* dst = big + (i * F + fy) * F * width;
      for (index_t x = 0; x < width; ++x) {
        const S v = Mean ? src[x] / S(F * F) : src[x];
        for (index_t fx = 0; fx < F; ++fx) dst[x * F + fx] = v;
      }
    }
  }
};

/// Each small value is the sum of its F x F block of the big image, added row by row, then
/// divided by F^2 when Mean (AvgPool2d's forward; Upsample's backward).
template <class S, index_t F, bool Mean>
struct SumBlocks {
  const S* big;
  S* small;
  index_t width;
  FORGERY_HOST_DEVICE void operator()(index_t i) const {
    const S* src = big + i * F * F * width;
    S* dst = small + i * width;
    for (index_t x = 0; x < width; ++x) {
      S acc = S(0);
      for (index_t fy = 0; fy < F; ++fy)
        for (index_t fx = 0; fx < F; ++fx) acc += src[fy * F * width + x * F + fx];
      dst[x] = Mean ? acc / S(F * F) : acc;
    }
  }
};

} // namespace kernels

namespace detail {

/// Upsample (Up) or AvgPool2d (!Up) by F on a (C, H, W) input. Linear, so the tangent passes
/// apply the same map to the tangent, and backward_dual its adjoint to both gradients.
template <index_t C, index_t H, index_t W, index_t F, bool Up, class B>
class ResampleLayer {
public:
  using backend = B;
  using scalar = typename B::scalar;
  using S = scalar;
  using input_shape = Shape<C, H, W>;
  using output_shape =
      std::conditional_t<Up, Shape<C, F * H, F * W>, Shape<C, positive_or_one(H / F), positive_or_one(W / F)>>;
  static constexpr index_t factor = F;
  static constexpr index_t param_count = 0;
  static constexpr const char* name = Up ? "Upsample" : "AvgPool2d";

  void forward(const S*, ConstBatchView<S> x, BatchView<S> y, const Context&) const { apply(x, y); }
  void backward(const S*, S*, ConstBatchView<S>, ConstBatchView<S>, ConstBatchView<S> dy, BatchView<S> dx) const {
    if (!dx.empty()) adjoint(dy, dx);
  }

  void forward_dual(const S*, ConstBatchView<S> x, ConstBatchView<S> tx, BatchView<S> y, BatchView<S> ty,
                    const Context&) const {
    apply(x, y);
    apply(tx, ty);
  }
  void forward_tangent(const S*, ConstBatchView<S>, ConstBatchView<S> tx, ConstBatchView<S>, BatchView<S> ty,
                       const Context&) const {
    apply(tx, ty);
  }
  // No parameters and no curvature: gx = A^T gy, gtx = A^T gty.
  void backward_dual(const S*, S*, ConstBatchView<S>, ConstBatchView<S>, ConstBatchView<S>, ConstBatchView<S>,
                     ConstBatchView<S> gy, ConstBatchView<S> gty, BatchView<S> gx, BatchView<S> gtx) const {
    if (!gx.empty()) adjoint(gy, gx);
    if (!gtx.empty()) adjoint(gty, gtx);
  }

private:
  // Rows and row length per sample of the smaller image: Upsample's input, AvgPool2d's output.
  static constexpr index_t small_rows = C * (Up ? H : H / F), small_width = Up ? W : W / F;
  static constexpr index_t work = F * F * small_width; // values one index touches

  static void spread(const S* small, S* big, index_t n) {
    B::for_each(n * small_rows, kernels::SpreadBlocks<S, F, !Up>{small, big, small_width}, work);
  }
  static void sum(const S* big, S* small, index_t n) {
    B::for_each(n * small_rows, kernels::SumBlocks<S, F, !Up>{big, small, small_width}, work);
  }
  static void apply(ConstBatchView<S> x, BatchView<S> y) {
    if constexpr (Up)
      spread(x.data(), y.data(), x.batch());
    else
      sum(x.data(), y.data(), x.batch());
  }
  static void adjoint(ConstBatchView<S> dy, BatchView<S> dx) {
    if constexpr (Up)
      sum(dy.data(), dx.data(), dy.batch());
    else
      spread(dy.data(), dx.data(), dy.batch());
  }
};

} // namespace detail

/// Nearest-neighbour upsampling of (C, H, W) samples to (C, Factor H, Factor W), as PyTorch's
/// nn.Upsample(scale_factor=Factor, mode='nearest'): each value fills a Factor x Factor block.
/// \tparam Factor the scale factor, in both directions.
template <index_t Factor = 2>
struct Upsample {
  static_assert(Factor >= 1, "fg::Upsample<Factor>: Factor must be at least 1.");
  template <class In>
  struct bind {
    static_assert(In::rank == 3, "fg::Upsample needs a (C, H, W) input: insert fg::Reshape<C, H, W> before it.");
    static constexpr index_t C = detail::chw_dim<In, 0>(1), H = detail::chw_dim<In, 1>(1),
                             W = detail::chw_dim<In, 2>(1);
    using output_shape = Shape<C, Factor * H, Factor * W>;
    template <class B>
    using layer = detail::ResampleLayer<C, H, W, Factor, true, B>;
  };
};

/// Average pooling of (C, H, W) samples over Size x Size windows with stride Size and no
/// padding, to (C, H / Size, W / Size), as PyTorch's nn.AvgPool2d(Size). H and W must be
/// multiples of Size: no pixel is dropped.
/// \tparam Size the window's height and width, and its stride.
template <index_t Size = 2>
struct AvgPool2d {
  static_assert(Size >= 1, "fg::AvgPool2d<Size>: Size must be at least 1.");
  template <class In>
  struct bind {
    static_assert(In::rank == 3, "fg::AvgPool2d needs a (C, H, W) input: insert fg::Reshape<C, H, W> before it.");
    static constexpr index_t C = detail::chw_dim<In, 0>(1), H = detail::chw_dim<In, 1>(Size),
                             W = detail::chw_dim<In, 2>(Size);
    static_assert(H % Size == 0 && W % Size == 0,
                  "fg::AvgPool2d<Size>: H and W must be multiples of Size (the windows neither overlap nor leave "
                  "pixels out): pad the input with the layer before it (e.g. fg::Conv2d<Out, K, 1, Pad> with a larger "
                  "Pad) or use fg::Conv2d<Out, K, Stride, Pad> with stride Size to downsample instead.");
    using output_shape = Shape<C, detail::positive_or_one(H / Size), detail::positive_or_one(W / Size)>;
    template <class B>
    using layer = detail::ResampleLayer<C, H, W, Size, false, B>;
  };
};

} // namespace forgery
