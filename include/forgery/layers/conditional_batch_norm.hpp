// Class-conditional BatchNorm (de Vries et al. 2017; the conditional generators of SN-GAN
// and BigGAN): BatchNorm's normalisation, then a gain and a bias per class and channel,
// chosen by each sample's label. Labels come from the Context (Network::set_labels).
#pragma once

#include <cstdint>

#include "forgery/backend/op_set.hpp"
#include "forgery/core/batch_view.hpp"
#include "forgery/core/config.hpp"
#include "forgery/core/philox.hpp"
#include "forgery/core/shape.hpp"
#include "forgery/layers/batch_norm.hpp"
#include "forgery/layers/context.hpp"
#include "forgery/layers/init.hpp"
#include "forgery/layers/label_conditioning.hpp"

namespace forgery {

namespace kernels {

// Element (channel c, position k, sample n) sits at (n * channels + c) * spatial + k, as in
// BatchNorm; sample n of the kernel's samples has class labels[n], whose gain and bias are
// row labels[n] of the Classes x channels tables (gain(l, c) = gain[l * channels + c]).

/// y = gain(l_n, c) (x - mean_c) inv_std_c + bias(l_n, c): BatchNormApply with the sample's
/// rows, through the same expression (so one class everywhere gives BatchNorm's bits).
template <class S>
struct ConditionalBatchNormApply {
  const S* x;
  const S* gain;
  const S* bias;
  const std::int32_t* labels;
  const S* mean;
  const S* inv_std;
  BatchNormSegments seg;
  S* y;
  FORGERY_HOST_DEVICE void operator()(index_t i) const {
    index_t n, c0, c1, base;
    seg.locate(i, n, c0, c1, base);
    const index_t row = static_cast<index_t>(labels[n]) * seg.channels;
    const S* const gamma = gain + row;
    const S* const beta = bias + row;
    if (seg.block == 0) {
      y[i] = BatchNormApply<S>::value(x[i], gamma[c0], mean[c0], inv_std[c0], beta[c0]);
    } else if (seg.spatial == 1) {
      for (index_t c = c0; c < c1; ++c)
        y[base + c] = BatchNormApply<S>::value(x[base + c], gamma[c], mean[c], inv_std[c], beta[c]);
    } else {
      for (index_t c = c0; c < c1; ++c) {
        const S g = gamma[c], m = mean[c], r = inv_std[c], b = beta[c];
        const index_t off = base + c * seg.spatial;
        for (index_t k = 0; k < seg.spatial; ++k) y[off + k] = BatchNormApply<S>::value(x[off + k], g, m, r, b);
      }
    }
  }
};

/// One index per (sample n, channel c), i = n * channels + c: the sums over the channel's
/// positions of dy (into t[i]) and of dy x_hat (into u[i]), x_hat = (x - mean_c) inv_std_c.
template <class S>
struct ConditionalBatchNormSampleSums {
  const S* x;
  const S* dy;
  const S* mean;
  const S* inv_std;
  index_t channels, spatial;
  S* t;
  S* u;
  FORGERY_HOST_DEVICE void sums(index_t i, S& sd, S& sx) const {
    const index_t c = i % channels, off = i * spatial;
    const S m = mean[c], r = inv_std[c];
    sd = S(0);
    sx = S(0);
    for (index_t k = 0; k < spatial; ++k) {
      sd += dy[off + k];
      sx += dy[off + k] * ((x[off + k] - m) * r);
    }
  }
  FORGERY_HOST_DEVICE void operator()(index_t i) const { sums(i, t[i], u[i]); }
};

/// One index per channel c, samples in order: the sums of dL/dx_hat = gain(l_n, c) dy over
/// the group, sum_dy_c = sum_n gain(l_n, c) t(n, c) and sum_dy_xhat_c = sum_n gain(l_n, c)
/// u(n, c) (for the input gradient); when g is not null, dgain(l_n, c) += u(n, c) and
/// dbias(l_n, c) += t(n, c) (g: dgain, Classes x channels, then dbias). Only the rows of the
/// classes present receive anything; each channel's entries belong to one task. With t null,
/// each (t, u) is summed here (`sample`, the order of ConditionalBatchNormSampleSums) instead
/// of read: the host's one pass over dy.
template <class S>
struct ConditionalBatchNormChannelSums {
  ConditionalBatchNormSampleSums<S> sample;
  const S* gain;
  const std::int32_t* labels;
  const S* t;
  const S* u;
  index_t classes, batch;
  S* sum_dy;
  S* sum_dy_xhat;
  S* g;
  FORGERY_HOST_DEVICE void operator()(index_t c) const {
    const index_t channels = sample.channels;
    S sd = S(0), sx = S(0);
    for (index_t n = 0; n < batch; ++n) {
      const index_t at = static_cast<index_t>(labels[n]) * channels + c;
      const index_t i = n * channels + c;
      S ti, ui;
      if (t != nullptr) {
        ti = t[i];
        ui = u[i];
      } else {
        sample.sums(i, ti, ui);
      }
      sd += gain[at] * ti;
      sx += gain[at] * ui;
      if (g != nullptr) {
        g[at] += ui;
        g[classes * channels + at] += ti;
      }
    }
    sum_dy[c] = sd;
    sum_dy_xhat[c] = sx;
  }
};

/// The input gradient, one index per element as ConditionalBatchNormApply. With batch
/// statistics dx = r (gain(l_n, c) dy - mean(gain dy) - x_hat mean(gain dy x_hat)), the means
/// over the group's values of the channel; with running statistics (inv_count 0)
/// dx = gain(l_n, c) r dy.
template <class S>
struct ConditionalBatchNormInputGradient {
  const S* x;
  const S* dy;
  const S* gain;
  const std::int32_t* labels;
  const S* mean;
  const S* inv_std;
  const S* sum_dy;
  const S* sum_dy_xhat;
  BatchNormSegments seg;
  S inv_count; // 1 / (batch * spatial), or 0 for running statistics
  S* dx;
  // The one expression every path below evaluates.
  FORGERY_HOST_DEVICE S value(S dyi, S xi, S m, S r, S gn, S sd, S sx) const {
    const S xhat = (xi - m) * r;
    return r * (gn * dyi - inv_count * (sd + xhat * sx));
  }
  FORGERY_HOST_DEVICE void operator()(index_t i) const {
    index_t n, c0, c1, base;
    seg.locate(i, n, c0, c1, base);
    const S* const gamma = gain + static_cast<index_t>(labels[n]) * seg.channels;
    if (seg.block == 0) {
      dx[i] = value(dy[i], x[i], mean[c0], inv_std[c0], gamma[c0], sum_dy[c0], sum_dy_xhat[c0]);
    } else if (seg.spatial == 1) {
      for (index_t c = c0; c < c1; ++c)
        dx[base + c] = value(dy[base + c], x[base + c], mean[c], inv_std[c], gamma[c], sum_dy[c], sum_dy_xhat[c]);
    } else {
      for (index_t c = c0; c < c1; ++c) {
        const S m = mean[c], r = inv_std[c], gn = gamma[c], sd = sum_dy[c], sx = sum_dy_xhat[c];
        const index_t off = base + c * seg.spatial;
        for (index_t k = 0; k < seg.spatial; ++k) dx[off + k] = value(dy[off + k], x[off + k], m, r, gn, sd, sx);
      }
    }
  }
};

} // namespace kernels

namespace detail {

template <class In, index_t Classes, double Momentum, double Eps, class B>
class ConditionalBatchNormLayer {
public:
  using backend = B;
  using scalar = typename B::scalar;
  using S = scalar;
  using input_shape = In;
  using output_shape = In;
  /// Channels (rank 3: C of C x H x W; rank 1: the features) and positions per channel.
  static constexpr index_t channels = In::dims[0];
  static constexpr index_t spatial = In::size / channels;
  static constexpr index_t label_classes = Classes;
  /// gain (Classes x channels, row l = class l's gains), then bias (Classes x channels).
  static constexpr index_t param_count = 2 * Classes * channels;
  /// Running mean (channels), then running variance (channels): saved with the parameters.
  static constexpr index_t state_count = 2 * channels;
  static constexpr const char* name = "ConditionalBatchNorm";
  /// Train-mode outputs depend on the whole batch (the Trainer then splits real and fake).
  static constexpr bool batch_statistics = true;

  /// gain = 1, bias = 0 for every class whatever the scheme: the layer starts as a plain
  /// normalisation (BigGAN's initialisation).
  void init_params(S* p, RandomStream&, Init) const {
    B::fill(Classes * channels, p, S(1));
    B::fill(Classes * channels, p + Classes * channels, S(0));
  }
  void init_state(const S*, RandomStream&) { stats_.reset(); }
  [[nodiscard]] S* state() noexcept { return stats_.state(); }
  [[nodiscard]] const S* state() const noexcept { return stats_.state(); }

  // Statistics and groups exactly as BatchNorm's (the shared detail::BatchStatistics).
  void forward(const S* p, ConstBatchView<S> x, BatchView<S> y, const Context& ctx) {
    const index_t total = x.batch();
    labels_ = labels_for(ctx, total, Classes, name, B::host_memory);
    const index_t n = stats_.begin(ctx, total, "fg::ConditionalBatchNorm");
    const kernels::BatchNormSegments seg = batch_norm_segments<B>(channels, spatial);
    for (index_t q = 0; q < stats_.groups(); ++q) {
      const S* const xq = x.data() + q * n * In::size;
      stats_.compute(q, xq, n);
      B::for_each(seg.count(n),
                  kernels::ConditionalBatchNormApply<S>{xq, gain(p), bias(p), labels_ + q * n, stats_.mean(q),
                                                        stats_.inv_std(q), seg, y.data() + q * n * In::size},
                  seg.block * spatial);
    }
  }

  // Uses the statistics, groups and labels of the last forward pass, which must have been on
  // the same x. Per group: the per-sample sums of dy and dy x_hat, and per channel (samples
  // in order) the parameter gradients and the sums the input gradient needs.
  void backward(const S* p, S* g, ConstBatchView<S> x, ConstBatchView<S>, ConstBatchView<S> dy, BatchView<S> dx) {
    if (g == nullptr && dx.empty()) return;
    const index_t total = x.batch();
    const index_t n = total / stats_.groups();
    if constexpr (!B::host_memory)
      if (sums_.size() < 2 * total * channels) sums_.resize(2 * total * channels);
    const S inv_count = stats_.batch_statistics() ? S(1) / static_cast<S>(n * spatial) : S(0);
    const kernels::BatchNormSegments seg = batch_norm_segments<B>(channels, spatial);
    for (index_t q = 0; q < stats_.groups(); ++q) {
      const S* const mean = stats_.mean(q);
      const S* const inv_std = stats_.inv_std(q);
      S* const sum_dy = stats_.extra(q, 0);
      S* const sum_dy_xhat = stats_.extra(q, 1);
      const index_t offset = q * n * In::size;
      const std::int32_t* const labels = labels_ + q * n;
      const kernels::ConditionalBatchNormSampleSums<S> sample{
          x.data() + offset, dy.data() + offset, mean, inv_std, channels, spatial, nullptr, nullptr};
      if constexpr (B::host_memory) {
        // One pass: each channel's task sums its samples' values itself (as BatchNorm's).
        B::for_each(channels,
                    kernels::ConditionalBatchNormChannelSums<S>{sample, gain(p), labels, nullptr, nullptr, Classes, n,
                                                                sum_dy, sum_dy_xhat, g},
                    2 * n * spatial);
      } else {
        // A thread per (sample, channel) first: a thread per channel alone would sum the
        // whole channel (batch x positions values) by itself.
        S* const t = sums_.data() + q * n * channels;
        S* const u = t + total * channels;
        kernels::ConditionalBatchNormSampleSums<S> to_buffer = sample;
        to_buffer.t = t;
        to_buffer.u = u;
        B::for_each(n * channels, to_buffer, 2 * spatial);
        B::for_each(channels,
                    kernels::ConditionalBatchNormChannelSums<S>{sample, gain(p), labels, t, u, Classes, n, sum_dy,
                                                                sum_dy_xhat, g},
                    2 * n);
      }
      if (dx.empty()) continue;
      B::for_each(seg.count(n),
                  kernels::ConditionalBatchNormInputGradient<S>{x.data() + offset, dy.data() + offset, gain(p), labels,
                                                                mean, inv_std, sum_dy, sum_dy_xhat, seg, inv_count,
                                                                dx.data() + offset},
                  seg.block * spatial);
    }
  }

private:
  static const S* gain(const S* p) noexcept { return p; }
  static const S* bias(const S* p) noexcept { return p + Classes * channels; }

  // Per group and channel: mean and 1/std of the last forward, then the two gradient sums.
  BatchStatistics<channels, spatial, Momentum, Eps, 2, B> stats_;
  // Device backends, per sample and channel: the sums of dy, then of dy x_hat (2 x batch x
  // channels; grows, never shrinks). Host backends form them inside the channel's task.
  typename B::template buffer<S> sums_;
  const std::int32_t* labels_ = nullptr;
};

} // namespace detail

/// Class-conditional batch normalisation: normalises exactly as fg::BatchNorm (per channel of
/// C x H x W over the batch and the H x W positions, or per feature of a flat input; batch
/// statistics in train mode, per Context statistics group, PyTorch's running estimates in
/// eval mode), then y = gain(l, c) x_hat + bias(l, c) with a learned gain and bias per class
/// l and channel c instead of BatchNorm's shared gamma and beta. The label of each sample
/// comes from the network's Context. No tangent pass, like BatchNorm: it belongs in
/// generators.
/// \tparam Classes number of classes; labels must lie in [0, Classes).
/// \tparam Momentum weight of the new batch in the running estimates (PyTorch's momentum).
/// \tparam Eps added to the variance before the square root.
template <index_t Classes, double Momentum = 0.1, double Eps = 1e-5>
struct ConditionalBatchNorm {
  static_assert(Classes >= 2,
                "fg::ConditionalBatchNorm<Classes, Momentum, Eps>: a conditional model needs at least 2 classes.");
  static_assert(Momentum >= 0.0 && Momentum <= 1.0,
                "fg::ConditionalBatchNorm<Classes, Momentum, Eps>: Momentum must lie in [0, 1].");
  static_assert(Eps > 0.0, "fg::ConditionalBatchNorm<Classes, Momentum, Eps>: Eps must be positive.");
  template <class In>
  struct bind {
    static_assert(In::rank == 1 || In::rank == 3,
                  "fg::ConditionalBatchNorm normalises a flat input (per feature) or a C x H x W input (per channel); "
                  "reshape the input to one of those.");
    using output_shape = In;
    template <class B>
    using layer = detail::ConditionalBatchNormLayer<In, Classes, Momentum, Eps, B>;
  };
};

} // namespace forgery
