// Minibatch standard deviation (ProGAN, Karras et al. 2018): each group of consecutive
// samples gets the average over its values of their standard deviation across the group,
// appended as one constant channel, so the critic can see a batch's variety. Samples of a
// group interact, so it declares batch statistics; it has the full tangent pass, for critics
// with an input-gradient penalty (ProGAN's WGAN-GP).
#pragma once

#include <cmath>
#include <string>

#include "forgery/backend/op_set.hpp"
#include "forgery/core/batch_view.hpp"
#include "forgery/core/config.hpp"
#include "forgery/core/error.hpp"
#include "forgery/core/shape.hpp"
#include "forgery/layers/context.hpp"
#include "forgery/layers/label_conditioning.hpp"

namespace forgery {

namespace kernels {

// A group holds `size` consecutive samples of `values` (D) values each; group g's sample j
// starts at x + (g size + j) D. With e_jd = x_jd - mean_d and sigma_d = sqrt(mean_j e_jd^2 +
// eps), the group's scalar is s = mean_d sigma_d, and
//   ds/dx_jd = e_jd / (G D sigma_d) = a_jd            (G = size; the mean's term vanishes)
//   ts = sum_jd a_jd t_jd = sum_d c_d / (G D sigma_d),  c_d = sum_j e_jd t_jd
//   d ts/dx_kd = ((t_kd - tbar_d) - c_d e_kd / (G sigma_d^2)) / (G D sigma_d).

/// One index per (group g, value d), i = g D + d: the value's mean and sqrt(biased variance
/// + eps) over the group's samples (two passes, samples in order).
template <class S>
struct MinibatchStdDevColumn {
  const S* x;
  index_t values, size;
  S eps;
  S* mean;
  S* sigma;
  FORGERY_HOST_DEVICE void operator()(index_t i) const {
    const index_t g = i / values, d = i - g * values;
    const S* const xg = x + g * size * values + d;
    S acc = S(0);
    for (index_t j = 0; j < size; ++j) acc += xg[j * values];
    const S mu = acc / static_cast<S>(size);
    S sq = S(0);
    for (index_t j = 0; j < size; ++j) {
      const S e = xg[j * values] - mu;
      sq += e * e;
    }
    mean[i] = mu;
    sigma[i] = std::sqrt(sq / static_cast<S>(size) + eps);
  }
};

/// sigma(g, d) as sum_each's term (outputs: the groups; batch 1; inner: the D values).
template <class S>
struct MinibatchStdDevSigma {
  const S* sigma;
  index_t values;
  FORGERY_HOST_DEVICE S operator()(index_t g, index_t, index_t d) const { return sigma[g * values + d]; }
};

/// c_d / sigma_d (the tangent's term) as sum_each's term, like MinibatchStdDevSigma.
template <class S>
struct MinibatchStdDevTangentTerm {
  const S* x;
  const S* t;
  const S* mean;
  const S* sigma;
  index_t values, size;
  FORGERY_HOST_DEVICE S operator()(index_t g, index_t, index_t d) const {
    const index_t i = g * values + d;
    const index_t first = g * size * values + d;
    const S mu = mean[i];
    S c = S(0);
    for (index_t j = 0; j < size; ++j) c += (x[first + j * values] - mu) * t[first + j * values];
    return c / sigma[i];
  }
};

/// sum_each's finish: acc / count into the `extra` appended values of each of group g's
/// samples (samples of out_size values in y, appended values from in_size on).
template <class S>
struct MinibatchStdDevBroadcast {
  S count;
  S* y;
  index_t in_size, out_size, size, extra;
  FORGERY_HOST_DEVICE void operator()(index_t g, S acc) const {
    const S v = acc / count;
    for (index_t j = 0; j < size; ++j) {
      S* const yj = y + (g * size + j) * out_size + in_size;
      for (index_t p = 0; p < extra; ++p) yj[p] = v;
    }
  }
};

/// y_j's first in_size values = x_j: one index per sample (per_sample) or per input value.
template <class S>
struct MinibatchStdDevCopy {
  const S* x;
  S* y;
  index_t in_size, out_size;
  bool per_sample;
  FORGERY_HOST_DEVICE void operator()(index_t i) const {
    if (per_sample) {
      const S* const xj = x + i * in_size;
      S* const yj = y + i * out_size;
      for (index_t f = 0; f < in_size; ++f) yj[f] = xj[f];
    } else {
      const index_t j = i / in_size;
      y[j * out_size + (i - j * in_size)] = x[i];
    }
  }
};

/// (gy, gty) on the appended values of group g's samples as sum_each's term (batch: the
/// group's samples; inner: the appended values); gty may be null.
template <class S>
struct MinibatchStdDevAppendedTerm {
  const S* gy;
  const S* gty;
  index_t in_size, out_size, size;
  FORGERY_HOST_DEVICE SumPair<S> operator()(index_t g, index_t j, index_t p) const {
    const index_t i = (g * size + j) * out_size + in_size + p;
    return {gy[i], gty != nullptr ? gty[i] : S(0)};
  }
};

/// sum_each's finish: the two sums into gs[g] and gts[g].
template <class S>
struct MinibatchStdDevStoreSums {
  S* gs;
  S* gts;
  FORGERY_HOST_DEVICE void operator()(index_t g, SumPair<S> acc) const {
    gs[g] = acc.first;
    gts[g] = acc.second;
  }
};

/// One index per (group g, value d), writing value d of each of the group's samples k:
/// gx = gy + gs a_kd (+ gts d ts/dx_kd when t is not null), gtx = gty + gts a_kd; gx or gtx
/// may be null.
template <class S>
struct MinibatchStdDevColumnBackward {
  const S* x;
  const S* t; // null: first order (gx only)
  const S* gy;
  const S* gty;
  const S* mean;
  const S* sigma;
  const S* gs;
  const S* gts;
  index_t values, out_size, size;
  S* gx;
  S* gtx;
  FORGERY_HOST_DEVICE void operator()(index_t i) const {
    const index_t g = i / values, d = i - g * values;
    const S mu = mean[i], sd = sigma[i];
    const S inv = S(1) / (static_cast<S>(size * values) * sd); // 1 / (G D sigma_d)
    const S a_scale = gs[g] * inv;
    if (t == nullptr) {
      for (index_t k = 0; k < size; ++k) {
        const index_t xi = (g * size + k) * values + d;
        gx[xi] = gy[(g * size + k) * out_size + d] + a_scale * (x[xi] - mu);
      }
      return;
    }
    S tsum = S(0), c = S(0);
    for (index_t k = 0; k < size; ++k) {
      const index_t xi = (g * size + k) * values + d;
      tsum += t[xi];
      c += (x[xi] - mu) * t[xi];
    }
    const S tbar = tsum / static_cast<S>(size);
    const S ct = c / (static_cast<S>(size) * sd * sd);
    const S gt = gts[g] * inv;
    for (index_t k = 0; k < size; ++k) {
      const index_t xi = (g * size + k) * values + d;
      const index_t yi = (g * size + k) * out_size + d;
      const S e = x[xi] - mu;
      if (gtx != nullptr) gtx[xi] = gty[yi] + gt * e;
      if (gx != nullptr) gx[xi] = gy[yi] + a_scale * e + gt * ((t[xi] - tbar) - ct * e);
    }
  }
};

} // namespace kernels

namespace detail {

template <class In, index_t GroupSize, class B>
class MinibatchStdDevLayer {
public:
  using backend = B;
  using scalar = typename B::scalar;
  using S = scalar;
  using input_shape = In;
  using output_shape = with_extra_channels<In, 1>;
  /// Values per sample (D) and positions of the appended channel (H x W; 1 for flat).
  static constexpr index_t values = In::size;
  static constexpr index_t extra = planes<In>::area;
  static constexpr index_t out_size = output_shape::size;
  static constexpr index_t param_count = 0;
  static constexpr const char* name = "MinibatchStdDev";
  /// A sample's output depends on the others of its group: the Trainer then passes real and
  /// fake through the critic as two statistics groups, grouped separately.
  static constexpr bool batch_statistics = true;
  /// Added to the variance before the square root (ProGAN's 1e-8).
  static constexpr double epsilon = 1e-8;

  void forward(const S*, ConstBatchView<S> x, BatchView<S> y, const Context& ctx) {
    begin(ctx, x.batch());
    B::for_each(groups_ * values,
                kernels::MinibatchStdDevColumn<S>{x.data(), values, size_, static_cast<S>(epsilon), mean_.data(),
                                                  sigma_.data()},
                2 * size_);
    B::template sum_each<S>(
        groups_, 1, values, kernels::MinibatchStdDevSigma<S>{sigma_.data(), values},
        kernels::MinibatchStdDevBroadcast<S>{static_cast<S>(values), y.data(), values, out_size, size_, extra});
    copy(x.data(), y.data(), x.batch());
  }

  // Uses the group size, means and deviations of the last forward, on the same x.
  void backward(const S*, S*, ConstBatchView<S> x, ConstBatchView<S>, ConstBatchView<S> dy, BatchView<S> dx) {
    if (dx.empty()) return;
    appended_sums(dy.data(), nullptr);
    B::for_each(groups_ * values,
                kernels::MinibatchStdDevColumnBackward<S>{x.data(), nullptr, dy.data(), nullptr, mean_.data(),
                                                          sigma_.data(), sums_.data(), sums_.data() + groups_, values,
                                                          out_size, size_, dx.data(), nullptr},
                2 * size_);
  }

  void forward_dual(const S* p, ConstBatchView<S> x, ConstBatchView<S> tx, BatchView<S> y, BatchView<S> ty,
                    const Context& ctx) {
    forward(p, x, y, ctx);
    forward_tangent(p, x, tx, y, ty, ctx);
  }

  /// ty from the means and deviations of the last forward on x (whose output is y).
  void forward_tangent(const S*, ConstBatchView<S> x, ConstBatchView<S> tx, ConstBatchView<S>, BatchView<S> ty,
                       const Context&) const {
    B::template sum_each<S>(
        groups_, 1, values,
        kernels::MinibatchStdDevTangentTerm<S>{x.data(), tx.data(), mean_.data(), sigma_.data(), values, size_},
        kernels::MinibatchStdDevBroadcast<S>{static_cast<S>(size_ * values), ty.data(), values, out_size, size_,
                                             extra});
    copy(tx.data(), ty.data(), tx.batch());
  }

  void backward_dual(const S*, S*, ConstBatchView<S> x, ConstBatchView<S> tx, ConstBatchView<S>, ConstBatchView<S>,
                     ConstBatchView<S> gy, ConstBatchView<S> gty, BatchView<S> gx, BatchView<S> gtx) {
    if (gx.empty() && gtx.empty()) return;
    appended_sums(gy.data(), gty.data());
    B::for_each(groups_ * values,
                kernels::MinibatchStdDevColumnBackward<S>{x.data(), tx.data(), gy.data(), gty.data(), mean_.data(),
                                                          sigma_.data(), sums_.data(), sums_.data() + groups_, values,
                                                          out_size, size_, gx.data(), gtx.data()},
                6 * size_);
  }

private:
  // The group size for a pass over `total` samples: the Context's statistics groups are
  // split separately (as separate passes would), each into groups of min(GroupSize, its
  // batch) consecutive samples, which it must divide into. Since the statistics groups are
  // consecutive and equal, the groups are consecutive runs of that size over the batch.
  void begin(const Context& ctx, index_t total) {
    const index_t parts = ctx.statistics_groups;
    if (parts < 1 || total % parts != 0)
      throw shape_error("fg::MinibatchStdDev statistics groups (Context::statistics_groups)",
                        "a positive count that divides the batch of " + std::to_string(total), std::to_string(parts));
    const index_t n = total / parts;
    size_ = n < GroupSize ? n : GroupSize;
    if (n % size_ != 0)
      throw shape_error("fg::MinibatchStdDev<" + std::to_string(GroupSize) + "> (groups of " +
                            std::to_string(GroupSize) + " consecutive samples" +
                            (parts > 1 ? ", in each of " + std::to_string(parts) + " statistics groups" : "") + ")",
                        "a batch that is a multiple of the group size " + std::to_string(GroupSize) +
                            " (or smaller than it)",
                        "a batch of " + std::to_string(n));
    groups_ = total / size_;
    if (mean_.size() < groups_ * values) {
      mean_.resize(groups_ * values);
      sigma_.resize(groups_ * values);
    }
    if (sums_.size() < 2 * groups_) sums_.resize(2 * groups_);
  }

  // Per group: the sums of gy (and gty, when not null) over its appended values.
  void appended_sums(const S* gy, const S* gty) {
    B::template sum_each<kernels::SumPair<S>>(
        groups_, size_, extra, kernels::MinibatchStdDevAppendedTerm<S>{gy, gty, values, out_size, size_},
        kernels::MinibatchStdDevStoreSums<S>{sums_.data(), sums_.data() + groups_});
  }

  // Host backends copy a sample per index (a contiguous loop); device backends a value per
  // thread.
  static void copy(const S* x, S* y, index_t batch) {
    if constexpr (B::host_memory)
      B::for_each(batch, kernels::MinibatchStdDevCopy<S>{x, y, values, out_size, true}, values);
    else
      B::for_each(batch * values, kernels::MinibatchStdDevCopy<S>{x, y, values, out_size, false});
  }

  // Per (group, value) of the last forward: mean and deviation; per group: the sums of the
  // upstream gradients over the appended values (gs, then gts). Grow, never shrink.
  typename B::template buffer<S> mean_, sigma_, sums_;
  index_t size_ = 1;
  index_t groups_ = 0;
};

} // namespace detail

/// Minibatch standard deviation: the batch is split into groups of GroupSize consecutive
/// samples (min(GroupSize, N) for a smaller batch N, which must otherwise be a multiple of
/// GroupSize; each of the Context's statistics groups is split separately); per group, the
/// standard deviation over its samples of each value (sqrt of the biased variance + 1e-8),
/// averaged over the values to one scalar, is appended to each of the group's samples as an
/// extra constant channel: Shape<C, H, W> -> Shape<C + 1, H, W>, or Shape<F> -> Shape<F + 1>.
/// No parameters; the same in train and eval mode. Has the full tangent pass.
/// \tparam GroupSize samples per group (ProGAN: 4).
template <index_t GroupSize = 4>
struct MinibatchStdDev {
  static_assert(GroupSize >= 2, "fg::MinibatchStdDev<GroupSize>: a group needs at least 2 samples.");
  template <class In>
  struct bind {
    static_assert(In::rank == 1 || In::rank == 3,
                  "fg::MinibatchStdDev needs a flat (F) or image (C, H, W) input; Reshape to one of them first.");
    using output_shape = detail::with_extra_channels<In, 1>;
    template <class B>
    using layer = detail::MinibatchStdDevLayer<In, GroupSize, B>;
  };
};

} // namespace forgery
