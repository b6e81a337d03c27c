// LayerNorm (Ba et al. 2016): each sample normalised over all its values, then a
// per-channel scale and shift. No batch statistics, so it has a tangent pass and may sit
// in a critic with an input-gradient penalty (where BatchNorm cannot).
#pragma once

#include <cmath>

#include "forgery/backend/op_set.hpp"
#include "forgery/core/batch_view.hpp"
#include "forgery/core/config.hpp"
#include "forgery/core/philox.hpp"
#include "forgery/core/shape.hpp"
#include "forgery/layers/context.hpp"
#include "forgery/layers/init.hpp"

namespace forgery {

namespace kernels {

// Per sample, with D values x, x_hat = (x - mean) r, r = 1 / sqrt(var + eps) (biased
// variance). The Jacobian of x_hat is r P with the symmetric projection
// P t = t - mean(t) - x_hat mean(x_hat t). Value f of a sample belongs to channel f / spatial.

/// Mean and 1/std of the D values at x (two passes, fixed order).
template <class S>
FORGERY_HOST_DEVICE void layer_norm_moments(const S* x, index_t d, S eps, S& mu, S& r) {
  S acc = S(0);
  for (index_t f = 0; f < d; ++f) acc += x[f];
  mu = acc / static_cast<S>(d);
  S sq = S(0);
  for (index_t f = 0; f < d; ++f) {
    const S dev = x[f] - mu;
    sq += dev * dev;
  }
  r = S(1) / std::sqrt(sq / static_cast<S>(d) + eps);
}

/// One index per sample: y = gamma x_hat + beta and, when tx is not null, ty = gamma r P tx.
template <class S>
struct LayerNormForward {
  const S* x;
  const S* tx;
  const S* gamma;
  const S* beta;
  index_t features, spatial;
  S eps;
  S* y;
  S* ty;
  FORGERY_HOST_DEVICE void operator()(index_t j) const {
    const S* xj = x + j * features;
    S* yj = y + j * features;
    S mu, r;
    layer_norm_moments(xj, features, eps, mu, r);
    for (index_t f = 0; f < features; ++f) {
      const index_t c = f / spatial;
      yj[f] = gamma[c] * ((xj[f] - mu) * r) + beta[c];
    }
    if (tx == nullptr) return;
    const S* tj = tx + j * features;
    S* tyj = ty + j * features;
    S st = S(0), sxt = S(0);
    for (index_t f = 0; f < features; ++f) {
      st += tj[f];
      sxt += (xj[f] - mu) * r * tj[f];
    }
    const S inv_d = S(1) / static_cast<S>(features);
    const S mt = st * inv_d, mxt = sxt * inv_d;
    for (index_t f = 0; f < features; ++f) {
      const S xhat = (xj[f] - mu) * r;
      tyj[f] = gamma[f / spatial] * r * (tj[f] - mt - xhat * mxt);
    }
  }
};

/// One index per sample: its (mean, 1/std) into stats[2j..], and dx = r P (gamma dy) when
/// dx is not null.
template <class S>
struct LayerNormBackward {
  const S* x;
  const S* dy;
  const S* gamma;
  index_t features, spatial;
  S eps;
  S* stats;
  S* dx;
  FORGERY_HOST_DEVICE void operator()(index_t j) const {
    const S* xj = x + j * features;
    S mu, r;
    layer_norm_moments(xj, features, eps, mu, r);
    stats[2 * j] = mu;
    stats[2 * j + 1] = r;
    if (dx == nullptr) return;
    const S* dyj = dy + j * features;
    S sg = S(0), sgx = S(0);
    for (index_t f = 0; f < features; ++f) {
      const S gh = gamma[f / spatial] * dyj[f];
      sg += gh;
      sgx += gh * ((xj[f] - mu) * r);
    }
    const S inv_d = S(1) / static_cast<S>(features);
    const S mg = sg * inv_d, mgx = sgx * inv_d;
    S* dxj = dx + j * features;
    for (index_t f = 0; f < features; ++f) {
      const S xhat = (xj[f] - mu) * r;
      dxj[f] = r * (gamma[f / spatial] * dyj[f] - mg - xhat * mgx);
    }
  }
};

/// One index per channel: dgamma_c += sum dy x_hat, dbeta_c += sum dy over the channel's
/// values in every sample (samples in order), with per-sample (mean, 1/std) from stats.
template <class S>
struct LayerNormParamGradient {
  const S* x;
  const S* dy;
  const S* stats;
  index_t channels, spatial, batch;
  S* g;
  FORGERY_HOST_DEVICE void operator()(index_t c) const {
    const index_t features = channels * spatial;
    S sg = S(0), sb = S(0);
    for (index_t j = 0; j < batch; ++j) {
      const S mu = stats[2 * j], r = stats[2 * j + 1];
      const index_t base = j * features + c * spatial;
      for (index_t k = 0; k < spatial; ++k) {
        sg += dy[base + k] * ((x[base + k] - mu) * r);
        sb += dy[base + k];
      }
    }
    g[c] += sg;
    g[channels + c] += sb;
  }
};

// Tangent pass backward. With w = gamma gty and gh = gamma gy, for one sample:
//   y = gamma x_hat + beta, ty = gamma r P t  (t = tx)
//   gtx = r P w
//   gx  = r P gh + d/dx (r w . P t)
//       = r P gh - (r^2 / D) [(w . P t) x_hat + (x_hat . t) P w + (x_hat . w) P t],
// from dr = -(r^2 / D) x_hat . dx and dx_hat = r P dx (P symmetric).

/// One index per sample: (mean, 1/std, mean(t), mean(x_hat t)) into stats[4j..], and gx,
/// gtx where not null.
template <class S>
struct LayerNormBackwardDual {
  const S* x;
  const S* tx;
  const S* gy;
  const S* gty;
  const S* gamma;
  index_t features, spatial;
  S eps;
  S* stats;
  S* gx;
  S* gtx;
  FORGERY_HOST_DEVICE void operator()(index_t j) const {
    const index_t off = j * features;
    const S* xj = x + off;
    const S* tj = tx + off;
    S mu, r;
    layer_norm_moments(xj, features, eps, mu, r);
    S st = S(0), sxt = S(0);
    for (index_t f = 0; f < features; ++f) {
      st += tj[f];
      sxt += (xj[f] - mu) * r * tj[f];
    }
    const S inv_d = S(1) / static_cast<S>(features);
    const S mt = st * inv_d, mxt = sxt * inv_d;
    stats[4 * j] = mu;
    stats[4 * j + 1] = r;
    stats[4 * j + 2] = mt;
    stats[4 * j + 3] = mxt;
    if (gx == nullptr && gtx == nullptr) return;
    const S* gyj = gy + off;
    const S* gtyj = gty + off;
    S sw = S(0), sxw = S(0), swt = S(0), sg = S(0), sgx = S(0);
    for (index_t f = 0; f < features; ++f) {
      const S gm = gamma[f / spatial];
      const S xhat = (xj[f] - mu) * r;
      const S w = gm * gtyj[f], gh = gm * gyj[f];
      sw += w;
      sxw += xhat * w;
      swt += w * tj[f];
      sg += gh;
      sgx += gh * xhat;
    }
    const S mw = sw * inv_d, mxw = sxw * inv_d, mg = sg * inv_d, mgx = sgx * inv_d;
    // w . P t = w . t - D mean(w) mean(t) - D mean(x_hat w) mean(x_hat t).
    const S wpt = swt - static_cast<S>(features) * (mw * mt + mxw * mxt);
    const S k = r * r * inv_d;
    for (index_t f = 0; f < features; ++f) {
      const S gm = gamma[f / spatial];
      const S xhat = (xj[f] - mu) * r;
      const S pw = gm * gtyj[f] - mw - xhat * mxw;
      if (gtx != nullptr) gtx[off + f] = r * pw;
      if (gx != nullptr) {
        const S pt = tj[f] - mt - xhat * mxt;
        const S pg = gm * gyj[f] - mg - xhat * mgx;
        gx[off + f] = r * pg - k * (wpt * xhat + sxt * pw + sxw * pt);
      }
    }
  }
};

/// One index per channel: dgamma_c += sum (gy x_hat + gty tx_hat), dbeta_c += sum gy, with
/// tx_hat = r P t rebuilt from stats[4j..].
template <class S>
struct LayerNormParamGradientDual {
  const S* x;
  const S* tx;
  const S* gy;
  const S* gty;
  const S* stats;
  index_t channels, spatial, batch;
  S* g;
  FORGERY_HOST_DEVICE void operator()(index_t c) const {
    const index_t features = channels * spatial;
    S sg = S(0), sb = S(0);
    for (index_t j = 0; j < batch; ++j) {
      const S mu = stats[4 * j], r = stats[4 * j + 1], mt = stats[4 * j + 2], mxt = stats[4 * j + 3];
      const index_t base = j * features + c * spatial;
      for (index_t k = 0; k < spatial; ++k) {
        const S xhat = (x[base + k] - mu) * r;
        const S txhat = r * (tx[base + k] - mt - xhat * mxt);
        sg += gy[base + k] * xhat + gty[base + k] * txhat;
        sb += gy[base + k];
      }
    }
    g[c] += sg;
    g[channels + c] += sb;
  }
};

} // namespace kernels

namespace detail {

template <class In, double Eps, class B>
class LayerNormLayer {
public:
  using backend = B;
  using scalar = typename B::scalar;
  using S = scalar;
  using input_shape = In;
  using output_shape = In;
  static constexpr index_t features = In::size;
  /// gamma and beta are per channel (C of C x H x W, shared by the H x W positions) or per
  /// feature (flat input).
  static constexpr index_t channels = In::dims[0];
  static constexpr index_t spatial = features / channels;
  /// gamma (channels), then beta (channels).
  static constexpr index_t param_count = 2 * channels;
  static constexpr const char* name = "LayerNorm";

  /// gamma = 1, beta = 0 whatever the scheme.
  void init_params(S* p, RandomStream&, Init) const {
    B::fill(channels, p, S(1));
    B::fill(channels, p + channels, S(0));
  }

  void forward(const S* p, ConstBatchView<S> x, BatchView<S> y, const Context&) const {
    B::for_each(
        x.batch(),
        kernels::LayerNormForward<S>{x.data(), nullptr, p, p + channels, features, spatial, eps(), y.data(), nullptr},
        features);
  }

  void backward(const S* p, S* g, ConstBatchView<S> x, ConstBatchView<S>, ConstBatchView<S> dy, BatchView<S> dx) {
    if (g == nullptr && dx.empty()) return;
    const index_t n = x.batch();
    reserve(2 * n);
    B::for_each(
        n, kernels::LayerNormBackward<S>{x.data(), dy.data(), p, features, spatial, eps(), stats_.data(), dx.data()},
        2 * features);
    if (g != nullptr)
      B::for_each(channels,
                  kernels::LayerNormParamGradient<S>{x.data(), dy.data(), stats_.data(), channels, spatial, n, g},
                  2 * n * spatial);
  }

  void forward_dual(const S* p, ConstBatchView<S> x, ConstBatchView<S> tx, BatchView<S> y, BatchView<S> ty,
                    const Context&) const {
    B::for_each(x.batch(),
                kernels::LayerNormForward<S>{x.data(), tx.data(), p, p + channels, features, spatial, eps(), y.data(),
                                             ty.data()},
                features);
  }

  void backward_dual(const S* p, S* g, ConstBatchView<S> x, ConstBatchView<S> tx, ConstBatchView<S>, ConstBatchView<S>,
                     ConstBatchView<S> gy, ConstBatchView<S> gty, BatchView<S> gx, BatchView<S> gtx) {
    if (g == nullptr && gx.empty() && gtx.empty()) return;
    const index_t n = x.batch();
    reserve(4 * n);
    B::for_each(n,
                kernels::LayerNormBackwardDual<S>{x.data(), tx.data(), gy.data(), gty.data(), p, features, spatial,
                                                  eps(), stats_.data(), gx.data(), gtx.data()},
                4 * features);
    if (g != nullptr)
      B::for_each(channels,
                  kernels::LayerNormParamGradientDual<S>{x.data(), tx.data(), gy.data(), gty.data(), stats_.data(),
                                                         channels, spatial, n, g},
                  4 * n * spatial);
  }

private:
  static constexpr S eps() { return static_cast<S>(Eps); }
  void reserve(index_t n) {
    if (stats_.size() < n) stats_.resize(n);
  }

  // Per-sample statistics recomputed by the backward passes (grows, never shrinks).
  typename B::template buffer<S> stats_;
};

} // namespace detail

/// Layer normalisation: each sample is normalised over all its values (C*H*W, or the F
/// features of a flat input), then scaled and shifted per channel (gamma and beta of size C,
/// shared by the H x W positions) or per feature. The same in train and eval mode.
/// \tparam Eps added to the variance before the square root.
template <double Eps = 1e-5>
struct LayerNorm {
  static_assert(Eps > 0.0, "fg::LayerNorm<Eps>: Eps must be positive.");
  template <class In>
  struct bind {
    static_assert(In::rank == 1 || In::rank == 3,
                  "fg::LayerNorm normalises a flat input or a C x H x W input; reshape the input to one of those.");
    using output_shape = In;
    template <class B>
    using layer = detail::LayerNormLayer<In, Eps, B>;
  };
};

} // namespace forgery
