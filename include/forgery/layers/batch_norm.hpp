// BatchNorm (Ioffe & Szegedy 2015): per-channel normalisation over the batch (and the
// spatial positions of an image), with running statistics for evaluation.
#pragma once

#include <cmath>
#include <string>

#include "forgery/backend/op_set.hpp"
#include "forgery/core/batch_view.hpp"
#include "forgery/core/config.hpp"
#include "forgery/core/error.hpp"
#include "forgery/core/philox.hpp"
#include "forgery/core/shape.hpp"
#include "forgery/layers/context.hpp"
#include "forgery/layers/init.hpp"

namespace forgery {

namespace kernels {

// Element (channel c, position k, sample n) of a batch with `channels` x `spatial` values
// per sample sits at n * channels * spatial + c * spatial + k.

// Batch statistics, one sum per channel through B::sum_each (element (c, n, k) of a batch
// whose samples hold `channels` x `spatial` values is x[n * channels * spatial + c * spatial
// + k]): the mean, then the biased variance about it (two passes), and the running
// estimates updated with the unbiased variance.

/// x(c, n, k) as sum_each's term.
template <class S>
struct BatchNormValue {
  const S* x;
  index_t channels, spatial;
  FORGERY_HOST_DEVICE S operator()(index_t c, index_t n, index_t k) const {
    return x[(n * channels + c) * spatial + k];
  }
};

/// (x(c, n, k) - mean_c)^2 as sum_each's term.
template <class S>
struct BatchNormSquaredDeviation {
  const S* x;
  const S* mean;
  index_t channels, spatial;
  FORGERY_HOST_DEVICE S operator()(index_t c, index_t n, index_t k) const {
    const S d = x[(n * channels + c) * spatial + k] - mean[c];
    return d * d;
  }
};

/// mean_c = sum / count.
template <class S>
struct BatchNormMean {
  S count;
  S* mean;
  FORGERY_HOST_DEVICE void operator()(index_t c, S sum) const { mean[c] = sum / count; }
};

/// 1/std_c from the sum of squared deviations, and the running estimates.
template <class S>
struct BatchNormVariance {
  S count, momentum, eps;
  const S* mean;
  S* inv_std;
  S* running_mean;
  S* running_var;
  FORGERY_HOST_DEVICE void operator()(index_t c, S sq) const {
    inv_std[c] = S(1) / std::sqrt(sq / count + eps);
    running_mean[c] = (S(1) - momentum) * running_mean[c] + momentum * mean[c];
    running_var[c] = (S(1) - momentum) * running_var[c] + momentum * (sq / (count - S(1)));
  }
};

/// One index per channel: the running statistics as the normalisation's mean and 1/std.
template <class S>
struct BatchNormRunningStatistics {
  const S* running_mean;
  const S* running_var;
  S eps;
  S* mean;
  S* inv_std;
  FORGERY_HOST_DEVICE void operator()(index_t c) const {
    mean[c] = running_mean[c];
    inv_std[c] = S(1) / std::sqrt(running_var[c] + eps);
  }
};

/// The elementwise BatchNorm kernels' index space. block > 0: one index per `block`
/// consecutive channels of one sample, so the inner loops run over contiguous memory with
/// the channel's constants in registers (block 1 with spatial > 1: an image plane per
/// index; spatial 1: a run of features). block 0: one index per element (device backends:
/// a thread each). Every element is computed by the same expression whatever the block.
struct BatchNormSegments {
  index_t channels, spatial, block;
  [[nodiscard]] FORGERY_HOST_DEVICE index_t per_sample() const {
    return block > 0 ? (channels + block - 1) / block : channels * spatial;
  }
  [[nodiscard]] FORGERY_HOST_DEVICE index_t count(index_t batch) const { return batch * per_sample(); }
  /// Index i's sample n, channels [c0, c1) and the offset of the sample's first value; with
  /// block 0, the one element i is channel c0's value at base + c0 * spatial + (i % spatial).
  FORGERY_HOST_DEVICE void locate(index_t i, index_t& n, index_t& c0, index_t& c1, index_t& base) const {
    const index_t per = per_sample();
    n = i / per;
    base = n * channels * spatial;
    if (block == 0) {
      c0 = (i % per) / spatial;
      c1 = c0 + 1;
      return;
    }
    c0 = (i % per) * block;
    c1 = c0 + block < channels ? c0 + block : channels;
  }
};

/// y = gamma_c (x - mean_c) inv_std_c + beta_c.
template <class S>
struct BatchNormApply {
  const S* x;
  const S* gamma;
  const S* beta;
  const S* mean;
  const S* inv_std;
  BatchNormSegments seg;
  S* y;
  // The one expression every path below evaluates.
  FORGERY_HOST_DEVICE static S value(S xi, S g, S m, S r, S b) { return g * ((xi - m) * r) + b; }
  FORGERY_HOST_DEVICE void operator()(index_t i) const {
    index_t n, c0, c1, base;
    seg.locate(i, n, c0, c1, base);
    if (seg.block == 0) {
      y[i] = value(x[i], gamma[c0], mean[c0], inv_std[c0], beta[c0]);
    } else if (seg.spatial == 1) {
      for (index_t c = c0; c < c1; ++c) y[base + c] = value(x[base + c], gamma[c], mean[c], inv_std[c], beta[c]);
    } else {
      for (index_t c = c0; c < c1; ++c) {
        const S g = gamma[c], m = mean[c], r = inv_std[c], b = beta[c];
        const index_t off = base + c * seg.spatial;
        for (index_t k = 0; k < seg.spatial; ++k) y[off + k] = value(x[off + k], g, m, r, b);
      }
    }
  }
};

/// (dy, dy * x_hat) at (c, n, k), x_hat = (x - mean_c) inv_std_c, as sum_each's term.
template <class S>
struct BatchNormGradientTerms {
  const S* x;
  const S* dy;
  const S* mean;
  const S* inv_std;
  index_t channels, spatial;
  FORGERY_HOST_DEVICE SumPair<S> operator()(index_t c, index_t n, index_t k) const {
    const index_t i = (n * channels + c) * spatial + k;
    return {dy[i], dy[i] * ((x[i] - mean[c]) * inv_std[c])};
  }
};

/// Keeps sum dy and sum dy * x_hat for the input gradient, and adds them into dgamma and
/// dbeta when g is not null.
template <class S>
struct BatchNormGradientSums {
  index_t channels;
  S* sum_dy;
  S* sum_dy_xhat;
  S* g; // dgamma (channels), then dbeta; may be null
  FORGERY_HOST_DEVICE void operator()(index_t c, SumPair<S> sums) const {
    sum_dy[c] = sums.first;
    sum_dy_xhat[c] = sums.second;
    if (g != nullptr) {
      g[c] += sums.second;
      g[channels + c] += sums.first;
    }
  }
};

/// The input gradient, one index per element. With batch statistics (the mean and the
/// variance depend on every x of the channel) dx = gamma r (dy - mean(dy) - x_hat
/// mean(dy x_hat)); with running statistics dx = gamma r dy.
template <class S>
struct BatchNormInputGradient {
  const S* x;
  const S* dy;
  const S* gamma;
  const S* mean;
  const S* inv_std;
  const S* sum_dy;
  const S* sum_dy_xhat;
  BatchNormSegments seg;
  S inv_count; // 1 / (batch * spatial), or 0 for running statistics
  S* dx;
  // The one expression every path below evaluates (gr = gamma_c r).
  FORGERY_HOST_DEVICE S value(S dyi, S xi, S m, S r, S gr, S sd, S sx) const {
    const S xhat = (xi - m) * r;
    return gr * (dyi - inv_count * (sd + xhat * sx));
  }
  FORGERY_HOST_DEVICE void operator()(index_t i) const {
    index_t n, c0, c1, base;
    seg.locate(i, n, c0, c1, base);
    if (seg.block == 0) {
      const S r = inv_std[c0];
      dx[i] = value(dy[i], x[i], mean[c0], r, gamma[c0] * r, sum_dy[c0], sum_dy_xhat[c0]);
    } else if (seg.spatial == 1) {
      for (index_t c = c0; c < c1; ++c) {
        const S r = inv_std[c];
        dx[base + c] = value(dy[base + c], x[base + c], mean[c], r, gamma[c] * r, sum_dy[c], sum_dy_xhat[c]);
      }
    } else {
      for (index_t c = c0; c < c1; ++c) {
        const S r = inv_std[c], m = mean[c], gr = gamma[c] * r, sd = sum_dy[c], sx = sum_dy_xhat[c];
        const index_t off = base + c * seg.spatial;
        for (index_t k = 0; k < seg.spatial; ++k) dx[off + k] = value(dy[off + k], x[off + k], m, r, gr, sd, sx);
      }
    }
  }
};

} // namespace kernels

namespace detail {

/// The BatchNorm kernels' index space on backend B: host backends take a plane per index, or
/// runs of 256 features when spatial is 1 (inner loops over contiguous memory); device
/// backends one element per index (a thread each).
template <class B>
constexpr kernels::BatchNormSegments batch_norm_segments(index_t channels, index_t spatial) {
  if constexpr (!B::host_memory) return {channels, spatial, 0};
  return {channels, spatial, spatial == 1 ? index_t{256} : index_t{1}};
}

/// What every batch-normalising layer (BatchNorm, ConditionalBatchNorm) shares: the mode and
/// statistics groups of the last forward pass, per group and channel the mean and 1/std it
/// normalised with (the group's own in train mode, the running estimates in eval mode) and
/// `Extra` more per-channel values for the layer's backward, and the running estimates
/// (PyTorch's update, unbiased variance), which are the layer's state.
template <index_t Channels, index_t Spatial, double Momentum, double Eps, index_t Extra, class B>
class BatchStatistics {
public:
  using S = typename B::scalar;
  /// Values per group: mean, 1/std, then the Extra per-channel values, Channels each.
  static constexpr index_t per_group = (2 + Extra) * Channels;
  /// Running mean (channels), then running variance (channels).
  static constexpr index_t state_count = 2 * Channels;

  BatchStatistics() {
    running_.resize(state_count);
    stats_.resize(per_group);
    reset();
  }

  /// Starts a forward pass over `total` samples: train mode normalises each of the
  /// Context's statistics groups (consecutive equal parts of the batch) with its own
  /// statistics, eval mode the whole batch with the running ones. Checks the groups and the
  /// values per channel (shape_error naming `layer`); returns the samples per group.
  index_t begin(const Context& ctx, index_t total, const char* layer) {
    batch_statistics_ = ctx.mode == Mode::train;
    groups_ = batch_statistics_ ? ctx.statistics_groups : 1;
    if (groups_ < 1 || total % groups_ != 0)
      throw shape_error(std::string(layer) + " statistics groups (Context::statistics_groups)",
                        "a positive count that divides the batch of " + std::to_string(total), std::to_string(groups_));
    const index_t n = total / groups_;
    if (batch_statistics_ && n * Spatial < 2)
      throw shape_error(std::string(layer) + " in train mode (values per channel: batch x positions)",
                        "at least 2 (use a batch of 2 or more, or call Network::eval() first)",
                        std::to_string(n * Spatial));
    if (stats_.size() < per_group * groups_) stats_.resize(per_group * groups_);
    return n;
  }

  /// Group q's mean and 1/std from its n samples at xq (train mode: two passes, then the
  /// running estimates updated with this group), or from the running estimates (eval mode).
  /// Groups are computed in order, so the estimates see them as consecutive passes.
  void compute(index_t q, const S* xq, index_t n) {
    S* const m = mean(q);
    S* const r = inv_std(q);
    if (batch_statistics_) {
      const S count = static_cast<S>(n * Spatial);
      B::template sum_each<S>(Channels, n, Spatial, kernels::BatchNormValue<S>{xq, Channels, Spatial},
                              kernels::BatchNormMean<S>{count, m});
      B::template sum_each<S>(Channels, n, Spatial, kernels::BatchNormSquaredDeviation<S>{xq, m, Channels, Spatial},
                              kernels::BatchNormVariance<S>{count, static_cast<S>(Momentum), static_cast<S>(Eps), m, r,
                                                            running_.data(), running_.data() + Channels});
    } else {
      B::for_each(Channels, kernels::BatchNormRunningStatistics<S>{running_.data(), running_.data() + Channels,
                                                                   static_cast<S>(Eps), m, r});
    }
  }

  [[nodiscard]] S* mean(index_t q) noexcept { return stats_.data() + per_group * q; }
  [[nodiscard]] S* inv_std(index_t q) noexcept { return mean(q) + Channels; }
  /// Group q's extra per-channel values number e (0 <= e < Extra).
  [[nodiscard]] S* extra(index_t q, index_t e) noexcept { return mean(q) + (2 + e) * Channels; }
  /// Whether the last forward normalised with batch statistics (train mode).
  [[nodiscard]] bool batch_statistics() const noexcept { return batch_statistics_; }
  /// The statistics groups of the last forward (1 in eval mode).
  [[nodiscard]] index_t groups() const noexcept { return groups_; }

  [[nodiscard]] S* state() noexcept { return running_.data(); }
  [[nodiscard]] const S* state() const noexcept { return running_.data(); }
  /// Running mean 0, running variance 1 (PyTorch's initial estimates).
  void reset() {
    B::fill(Channels, running_.data(), S(0));
    B::fill(Channels, running_.data() + Channels, S(1));
  }

private:
  typename B::template buffer<S> running_;
  // per_group values per group (group q at per_group q); grows with the groups, never shrinks.
  typename B::template buffer<S> stats_;
  bool batch_statistics_ = true;
  index_t groups_ = 1;
};

template <class In, double Momentum, double Eps, class B>
class BatchNormLayer {
public:
  using backend = B;
  using scalar = typename B::scalar;
  using S = scalar;
  using input_shape = In;
  using output_shape = In;
  /// Channels (rank 3: C of C x H x W; rank 1: the features) and positions per channel.
  static constexpr index_t channels = In::dims[0];
  static constexpr index_t spatial = In::size / channels;
  /// gamma (channels), then beta (channels).
  static constexpr index_t param_count = 2 * channels;
  /// Running mean (channels), then running variance (channels): saved with the parameters.
  static constexpr index_t state_count = 2 * channels;
  static constexpr const char* name = "BatchNorm";
  /// Train-mode outputs depend on the whole batch (the Trainer then splits real and fake).
  static constexpr bool batch_statistics = true;

  /// gamma = 1, beta = 0 whatever the scheme: the layer starts as a plain normalisation.
  void init_params(S* p, RandomStream&, Init) const {
    B::fill(channels, p, S(1));
    B::fill(channels, p + channels, S(0));
  }
  void init_state(const S*, RandomStream&) { stats_.reset(); }
  [[nodiscard]] S* state() noexcept { return stats_.state(); }
  [[nodiscard]] const S* state() const noexcept { return stats_.state(); }

  void forward(const S* p, ConstBatchView<S> x, BatchView<S> y, const Context& ctx) {
    // Statistics groups (Context::statistics_groups): each consecutive part of the batch is
    // normalised as a pass of its own would be, the running estimates updated part by part.
    const index_t n = stats_.begin(ctx, x.batch(), "fg::BatchNorm");
    const kernels::BatchNormSegments seg = batch_norm_segments<B>(channels, spatial);
    for (index_t q = 0; q < stats_.groups(); ++q) {
      const S* const xq = x.data() + q * n * In::size;
      stats_.compute(q, xq, n);
      B::for_each(seg.count(n),
                  kernels::BatchNormApply<S>{xq, p, p + channels, stats_.mean(q), stats_.inv_std(q), seg,
                                             y.data() + q * n * In::size},
                  seg.block * spatial);
    }
  }

  // Uses the statistics of the last forward pass (the batch's in train mode, the running
  // ones in eval mode) and its groups, which must have been on the same x. The parameter
  // gradients add up over the groups in order.
  void backward(const S* p, S* g, ConstBatchView<S> x, ConstBatchView<S>, ConstBatchView<S> dy, BatchView<S> dx) {
    if (g == nullptr && dx.empty()) return;
    const index_t n = x.batch() / stats_.groups();
    const S inv_count = stats_.batch_statistics() ? S(1) / static_cast<S>(n * spatial) : S(0);
    const kernels::BatchNormSegments seg = batch_norm_segments<B>(channels, spatial);
    for (index_t q = 0; q < stats_.groups(); ++q) {
      S* const mean = stats_.mean(q);
      S* const inv_std = stats_.inv_std(q);
      S* const sum_dy = stats_.extra(q, 0);
      S* const sum_dy_xhat = stats_.extra(q, 1);
      const index_t offset = q * n * In::size;
      B::template sum_each<kernels::SumPair<S>>(
          channels, n, spatial,
          kernels::BatchNormGradientTerms<S>{x.data() + offset, dy.data() + offset, mean, inv_std, channels, spatial},
          kernels::BatchNormGradientSums<S>{channels, sum_dy, sum_dy_xhat, g});
      if (dx.empty()) continue;
      B::for_each(seg.count(n),
                  kernels::BatchNormInputGradient<S>{x.data() + offset, dy.data() + offset, p, mean, inv_std, sum_dy,
                                                     sum_dy_xhat, seg, inv_count, dx.data() + offset},
                  seg.block * spatial);
    }
  }

private:
  // Per group and channel: mean and 1/std of the last forward, then the two gradient sums.
  BatchStatistics<channels, spatial, Momentum, Eps, 2, B> stats_;
};

} // namespace detail

/// Batch normalisation: per channel (of C x H x W, over the batch and the H x W positions)
/// or per feature (of a flat input, over the batch), then a learned scale gamma and shift
/// beta. Train mode normalises with the batch's statistics (biased variance) and updates
/// running estimates (unbiased variance, as PyTorch); eval mode normalises with those.
/// It has no tangent pass, so it cannot sit in a critic with an input-gradient penalty
/// (use LayerNorm there).
/// \tparam Momentum weight of the new batch in the running estimates (PyTorch's momentum).
/// \tparam Eps added to the variance before the square root.
template <double Momentum = 0.1, double Eps = 1e-5>
struct BatchNorm {
  static_assert(Momentum >= 0.0 && Momentum <= 1.0, "fg::BatchNorm<Momentum, Eps>: Momentum must lie in [0, 1].");
  static_assert(Eps > 0.0, "fg::BatchNorm<Momentum, Eps>: Eps must be positive.");
  template <class In>
  struct bind {
    static_assert(In::rank == 1 || In::rank == 3,
                  "fg::BatchNorm normalises a flat input (per feature) or a C x H x W input (per channel); "
                  "reshape the input to one of those.");
    using output_shape = In;
    template <class B>
    using layer = detail::BatchNormLayer<In, Momentum, Eps, B>;
  };
};

} // namespace forgery
