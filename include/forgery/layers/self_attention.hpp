// SelfAttention (Zhang et al. 2019, SAGAN): attention over the H x W positions of a C x H x W
// sample, added to the input through a learned gate gamma that starts at 0 (so the layer
// starts as the identity), as in BigGAN and PyTorch-StudioGAN without their max-pooling.
//
// Per sample, with X the P x C matrix of its P = H W positions (row p: the C values at p),
// Ck = C / KeyDiv and Cv = C / ValueDiv:
//   Q = X Wq^T, K = X Wk^T (P x Ck), V = X Wv^T (P x Cv)     1x1 projections, no bias
//   a_{j,i} = softmax_i(q_j . k_i)                              output position j over positions i
//   O = A V,  Y = X + gamma O Wo^T                              Wo: Cv -> C, no bias
//
// Each projection is stored as W^T, an in x out column-major matrix (the same memory as an
// out x in row-major matrix, PyTorch's (out, in, 1, 1) convolution weight). The batch is
// moved to rows, a column-major (P N) x C matrix (row j P + p), as a 1x1 convolution's
// im2col would; then
//   [Q | K | V] = Xrows [Wq^T | Wk^T | Wv^T]   one GEMM for all positions of all samples,
//   St = K Q^T (per sample, P x P)             column j holds output position j's scores, so
//                                              the softmax runs down contiguous columns,
//   O = At^T V (per sample), Orows = O Wo^T    the last again one GEMM for the batch.
// Backward and the tangent pass follow the same products; the softmax, its tangent and
// their adjoints are per-column functors (one index per output position; sums in fixed
// lanes, and on the host a branch-free float exp, so the column loops vectorise). The
// attention matrices of the whole batch are kept for backward (N P^2 values; the tangent
// pass keeps its score tangents as well), and every buffer only grows.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "forgery/backend/op_set.hpp"
#include "forgery/core/batch_view.hpp"
#include "forgery/core/config.hpp"
#include "forgery/core/math.hpp"
#include "forgery/core/philox.hpp"
#include "forgery/core/shape.hpp"
#include "forgery/layers/context.hpp"
#include "forgery/layers/conv_geometry.hpp"
#include "forgery/layers/init.hpp"

namespace forgery {

namespace kernels {

/// One index per (sample, channel): y_j(c, p) = x_j(c, p) + s rows(j P + p, c) with
/// s = *scale, or 1 when scale is null (the residual of a rows-layout result).
template <class S>
struct AttentionResidual {
  index_t channels, pixels;
  const S* rows;
  index_t ld;
  const S* x;
  const S* scale;
  S* y;
  FORGERY_HOST_DEVICE void operator()(index_t i) const {
    const index_t c = i % channels, j = i / channels;
    const S* src = rows + c * ld + j * pixels;
    const S* xi = x + i * pixels;
    S* yi = y + i * pixels;
    const S s = scale != nullptr ? *scale : S(1);
    for (index_t p = 0; p < pixels; ++p) yi[p] = xi[p] + s * src[p];
  }
};

/// One index per run of `length` values: y *= *scale (a scale that lives in the backend's
/// memory, such as a parameter).
template <class S>
struct ScaleByValueAt {
  const S* scale;
  S* y;
  index_t length;
  FORGERY_HOST_DEVICE void operator()(index_t i) const {
    const S s = *scale;
    S* yi = y + i * length;
    for (index_t k = 0; k < length; ++k) yi[k] = s * yi[k];
  }
};

/// *target += value (one index).
template <class S>
struct AddValueAt {
  S* target;
  S value;
  FORGERY_HOST_DEVICE void operator()(index_t) const { *target += value; }
};

namespace attention_detail {

/// e^t for float t <= 0 on the host, branch-free so that the softmax's exp loop vectorises
/// (glibc's expf is a scalar call; this ran about 3 times faster on an AVX2 machine, and made
/// the softmax, not the GEMMs, stop dominating the forward pass): math::detail::exp_0_19's
/// reduction and polynomial on [-87, 0] (at most 1.26 ulp from e^t, measured over every
/// float there). t below -87 (-inf included) gives e^-87 (1.6e-38), nothing beside the
/// column's maximum, whose term is 1; NaN gives NaN. The clamp and the NaN select work on bit
/// patterns, which keeps the loop free of branches.
inline float exp_nonpositive_float(float t) noexcept {
  using math::detail::from_bits;
  using math::detail::to_bits;
  constexpr float log2e = 1.44269504f, ln2_hi = 0.693145751953125f, ln2_lo = 1.42860677e-6f;
  constexpr float shifter = 12582912.0f; // 1.5 * 2^23
  const float u = -from_bits(std::min(to_bits(-t), to_bits(87.0f)));
  const float shifted = u * log2e + shifter;
  const std::int32_t k = to_bits(shifted) - to_bits(shifter);
  const float kf = shifted - shifter;
  const float r = (u - kf * ln2_hi) - kf * ln2_lo;
  const float q = 4.999999404e-01f +
                  r * (1.666651964e-01f + r * (4.166839272e-02f + r * (8.368780836e-03f + r * 1.381446375e-03f)));
  const float e = (1.0f + r + r * r * q) * from_bits((k + 127) << 23);
  const std::int32_t keep = -static_cast<std::int32_t>(t == t);
  return from_bits((to_bits(e) & keep) | (to_bits(t) & ~keep));
}

/// e^t, t <= 0: exp_nonpositive_float for float on the host, std::exp otherwise (double, device).
template <class S>
FORGERY_HOST_DEVICE S exp_nonpositive(S t) {
#if defined(__CUDA_ARCH__)
  return std::exp(t);
#else
  if constexpr (std::is_same_v<S, float>)
    return exp_nonpositive_float(static_cast<float>(t));
  else
    return std::exp(t);
#endif
}

// Reductions over a column in 8 interleaved lanes (value i into lane i % 8), combined in a
// fixed tree: the loops vectorise (a single running sum would keep them scalar), and the
// order depends on the length only.
inline constexpr index_t lanes = 8;

template <class S>
FORGERY_HOST_DEVICE S combine(const S* acc) {
  return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

/// sum_i a_i b_i.
template <class S>
FORGERY_HOST_DEVICE S dot(const S* a, const S* b, index_t n) {
  S acc[lanes] = {};
  index_t i = 0;
  for (; i + lanes <= n; i += lanes)
    for (index_t l = 0; l < lanes; ++l) acc[l] += a[i + l] * b[i + l];
  for (index_t l = 0; i + l < n; ++l) acc[l] += a[i + l] * b[i + l];
  return combine(acc);
}

/// sum_i a_i.
template <class S>
FORGERY_HOST_DEVICE S sum(const S* a, index_t n) {
  S acc[lanes] = {};
  index_t i = 0;
  for (; i + lanes <= n; i += lanes)
    for (index_t l = 0; l < lanes; ++l) acc[l] += a[i + l];
  for (index_t l = 0; i + l < n; ++l) acc[l] += a[i + l];
  return combine(acc);
}

/// max_i a_i (NaN entries are passed over; n >= 1).
template <class S>
FORGERY_HOST_DEVICE S max(const S* a, index_t n) {
  S acc[lanes];
  for (index_t l = 0; l < lanes; ++l) acc[l] = a[0];
  index_t i = 0;
  for (; i + lanes <= n; i += lanes)
    for (index_t l = 0; l < lanes; ++l) acc[l] = a[i + l] > acc[l] ? a[i + l] : acc[l];
  for (index_t l = 0; i + l < n; ++l) acc[l] = a[i + l] > acc[l] ? a[i + l] : acc[l];
  S m = acc[0];
  for (index_t l = 1; l < lanes; ++l) m = acc[l] > m ? acc[l] : m;
  return m;
}

} // namespace attention_detail

/// One index per column of `rows` values: the column replaced by its softmax, the column's
/// maximum subtracted before exp.
template <class S>
struct ColumnSoftmax {
  S* a;
  index_t rows;
  FORGERY_HOST_DEVICE void operator()(index_t j) const {
    S* col = a + j * rows;
    const S top = attention_detail::max(col, rows);
    for (index_t i = 0; i < rows; ++i) col[i] = attention_detail::exp_nonpositive(col[i] - top);
    const S inv = S(1) / attention_detail::sum(col, rows);
    for (index_t i = 0; i < rows; ++i) col[i] *= inv;
  }
};

/// One index per column: the softmax's tangent ta = a (t - a . t), a a softmax column and t
/// the scores' tangent.
template <class S>
struct ColumnSoftmaxTangent {
  const S* a;
  const S* t;
  S* ta;
  index_t rows;
  FORGERY_HOST_DEVICE void operator()(index_t j) const {
    const index_t off = j * rows;
    const S* aj = a + off;
    const S* tj = t + off;
    S* out = ta + off;
    const S m = attention_detail::dot(aj, tj, rows);
    for (index_t i = 0; i < rows; ++i) out[i] = aj[i] * (tj[i] - m);
  }
};

/// One index per column: the softmax's adjoint in place, g <- a (g - a . g).
template <class S>
struct ColumnSoftmaxBackward {
  const S* a;
  S* g;
  index_t rows;
  FORGERY_HOST_DEVICE void operator()(index_t j) const {
    const index_t off = j * rows;
    const S* aj = a + off;
    S* gj = g + off;
    const S c = attention_detail::dot(aj, gj, rows);
    for (index_t i = 0; i < rows; ++i) gj[i] = aj[i] * (gj[i] - c);
  }
};

/// One index per column: the adjoint of (a, ta) = (softmax(s), a (t - a . t)) in place. In:
/// g = dQ/da, gt = dQ/dta; out: g = dQ/ds, gt = dQ/dt. With c = a . gt and m = a . t,
///   dQ/dt = a (gt - c),
///   dQ/da (total) = g + gt (t - m) - t c =: h,  then dQ/ds = a (h - a . h).
/// h replaces g first (a . h needs all of it), then dQ/ds replaces h.
template <class S>
struct ColumnSoftmaxBackwardDual {
  const S* a;
  const S* t;
  S* g;
  S* gt;
  index_t rows;
  FORGERY_HOST_DEVICE void operator()(index_t j) const {
    const index_t off = j * rows;
    const S* aj = a + off;
    const S* tj = t + off;
    S* gj = g + off;
    S* gtj = gt + off;
    const S c = attention_detail::dot(aj, gtj, rows);
    const S m = attention_detail::dot(aj, tj, rows);
    // g <- h and gt <- a (gt - c), both from the old gt.
    for (index_t i = 0; i < rows; ++i) {
      const S old = gtj[i];
      gj[i] = gj[i] + old * (tj[i] - m) - tj[i] * c;
      gtj[i] = aj[i] * (old - c);
    }
    const S d = attention_detail::dot(aj, gj, rows);
    for (index_t i = 0; i < rows; ++i) gj[i] = aj[i] * (gj[i] - d);
  }
};

} // namespace kernels

namespace detail {

template <index_t C, index_t H, index_t W, index_t KeyDiv, index_t ValueDiv, bool Spectral, class B>
class SelfAttentionLayer {
public:
  using backend = B;
  using scalar = typename B::scalar;
  using S = scalar;
  using Trans = ::forgery::backend::Trans;
  using input_shape = Shape<C, H, W>;
  using output_shape = Shape<C, H, W>;
  static constexpr index_t channels = C;
  static constexpr index_t pixels = H * W;
  /// Ck and Cv (at least 1 here; the spec refuses a C that makes either 0).
  static constexpr index_t key_channels = positive_or_one(C / KeyDiv);
  static constexpr index_t value_channels = positive_or_one(C / ValueDiv);
  /// Columns of [Q | K | V].
  static constexpr index_t qkv_width = 2 * key_channels + value_channels;

  /// The parameters, weights first: Wq^T (C x Ck), Wk^T (C x Ck), Wv^T (C x Cv), Wo^T
  /// (Cv x C), each in x out column-major (entry (o, i) of W at o * in + i), then gamma. The
  /// first three together are [Wq^T | Wk^T | Wv^T], one C x (2 Ck + Cv) matrix.
  static constexpr index_t query_offset = 0;
  static constexpr index_t key_offset = C * key_channels;
  static constexpr index_t value_offset = 2 * C * key_channels;
  static constexpr index_t output_offset = C * qkv_width;
  static constexpr index_t gamma_offset = output_offset + value_channels * C;
  static constexpr index_t param_count = gamma_offset + 1;
  static constexpr const char* name = "SelfAttention";

  /// One projection's place in the parameters: W^T is in x out at `offset`.
  struct Projection {
    index_t offset, in, out;
  };
  static constexpr Projection projections[4] = {{query_offset, C, key_channels},
                                                {key_offset, C, key_channels},
                                                {value_offset, C, value_channels},
                                                {output_offset, value_channels, C}};
  /// With Spectral: each projection's power-iteration vectors u (out), then v (in), for
  /// Wq, Wk, Wv, Wo in turn; saved with the parameters.
  static constexpr index_t state_count = Spectral ? 4 * C + 2 * key_channels + 2 * value_channels : 0;

  SelfAttentionLayer() {
    if constexpr (Spectral) {
      state_.resize(state_count);
      scratch_.resize(C);
      normalized_.resize(param_count);
      inner_grad_.resize(param_count);
    }
  }

  /// The projections from `scheme` (fan-in and fan-out of each 1x1 projection), gamma = 0.
  void init_params(S* p, RandomStream& rng, Init scheme) const {
    for (const Projection& w : projections) init_weights<B>(p + w.offset, w.in * w.out, w.in, w.out, scheme, rng);
    B::fill(1, p + gamma_offset, S(0));
  }

  /// Spectral: u ~ N(0, 1) normalised for each projection, then one power iteration.
  void init_state(const S* p, RandomStream& rng) requires Spectral {
    for (int b = 0; b < 4; ++b) {
      B::fill_normal(projections[b].out, u(b), rng, S(0), S(1));
      normalize(projections[b].out, u(b));
    }
    after_step(p);
  }
  /// Spectral: one power-iteration step per projection, after each optimizer step.
  void after_step(const S* p) requires Spectral {
    for (int b = 0; b < 4; ++b) power_step(b, p + projections[b].offset);
  }
  [[nodiscard]] S* state() noexcept requires Spectral { return state_.data(); }
  [[nodiscard]] const S* state() const noexcept requires Spectral { return state_.data(); }
  /// Spectral: sigma = u^T W v of projection b (0 Wq, 1 Wk, 2 Wv, 3 Wo) of the last forward
  /// pass or power iteration.
  [[nodiscard]] S sigma(int b) const noexcept requires Spectral { return sigma_[b]; }

  void forward(const S* p, ConstBatchView<S> x, BatchView<S> y, const Context&) const {
    const S* w = fresh_weights(p);
    run_forward(w, x);
    residual(w, orows_, x, y);
  }

  void backward(const S* p, S* g, ConstBatchView<S> x, ConstBatchView<S>, ConstBatchView<S> dy, BatchView<S> dx) const {
    if (g == nullptr && dx.empty()) return;
    const S* w = weights(p);
    ensure_forward(w, x);
    S* gw = begin_grad(g);
    pull_back(w, gw, x, dy, dx);
    end_grad(g);
  }

  // Tangent pass: y as forward, ty = tx + gamma (tO) Wo^T with tO the tangent of A V.
  void forward_dual(const S* p, ConstBatchView<S> x, ConstBatchView<S> tx, BatchView<S> y, BatchView<S> ty,
                    const Context&) const {
    const S* w = fresh_weights(p);
    run_forward(w, x);
    residual(w, orows_, x, y);
    run_tangent(w, tx);
    residual(w, torows_, tx, ty);
  }
  // The tangent alone, from the projections and attention of the forward pass on x.
  void forward_tangent(const S* p, ConstBatchView<S> x, ConstBatchView<S> tx, ConstBatchView<S>, BatchView<S> ty,
                       const Context&) const {
    const S* w = weights(p);
    ensure_forward(w, x);
    run_tangent(w, tx);
    residual(w, torows_, tx, ty);
  }

  // For an objective of (y, ty), g == nullptr meaning 'no parameter gradients' and empty
  // gx, gtx 'not wanted'.
  void backward_dual(const S* p, S* g, ConstBatchView<S> x, ConstBatchView<S> tx, ConstBatchView<S>, ConstBatchView<S>,
                     ConstBatchView<S> gy, ConstBatchView<S> gty, BatchView<S> gx, BatchView<S> gtx) const {
    if (g == nullptr && gx.empty() && gtx.empty()) return;
    const S* w = weights(p);
    ensure_forward(w, x);
    if (t_source_ != tx.data() || t_batch_ != tx.batch()) run_tangent(w, tx);
    S* gw = begin_grad(g);
    pull_back_dual(w, gw, x, tx, gy, gty, gx, gtx);
    end_grad(g);
  }

private:
  using Buffer = typename B::template buffer<S>;
  static constexpr index_t Ck = key_channels, Cv = value_channels, D = qkv_width, P = pixels;

  static void grow(Buffer& b, index_t n) {
    if (b.size() < n) b.resize(n);
  }

  // The weights the passes use: the parameters, or with Spectral each projection divided by
  // its sigma (recomputed from p by forward and forward_dual; the others reuse them).
  const S* fresh_weights(const S* p) const {
    if constexpr (Spectral) {
      normalize_weights(p);
      return normalized_.data();
    } else {
      return p;
    }
  }
  const S* weights(const S* p) const {
    if constexpr (Spectral)
      return normalized_.data();
    else
      return p;
  }
  // With Spectral, gradients go to the normalised weights first, then through W / sigma.
  S* begin_grad(S* g) const {
    if constexpr (Spectral) {
      if (g == nullptr) return nullptr;
      B::fill(param_count, inner_grad_.data(), S(0));
      return inner_grad_.data();
    } else {
      return g;
    }
  }
  void end_grad(S* g) const {
    if constexpr (Spectral)
      if (g != nullptr) chain_to_raw_weights(g);
  }

  void ensure_forward(const S* w, ConstBatchView<S> x) const {
    if (source_ != x.data() || batch_ != x.batch()) run_forward(w, x);
  }

  // Q, K, V, the attention matrices and Orows for x (cached for backward and the tangent).
  void run_forward(const S* w, ConstBatchView<S> x) const {
    const index_t n = x.batch(), m = P * n;
    grow(xr_, m * C);
    grow(qkv_, m * D);
    grow(att_, n * P * P);
    grow(o_, m * Cv);
    grow(orows_, m * C);
    B::images_to_rows(n, C, P, x.data(), xr_.data(), m);
    B::gemm(Trans::no, Trans::no, m, D, C, S(1), xr_.data(), m, w, C, S(0), qkv_.data(), m);
    for (index_t j = 0; j < n; ++j) {
      const S* q = qkv_.data() + j * P;
      B::gemm(Trans::no, Trans::yes, P, P, Ck, S(1), q + Ck * m, m, q, m, S(0), att_.data() + j * P * P, P);
    }
    B::for_each(n * P, kernels::ColumnSoftmax<S>{att_.data(), P}, 3 * P);
    for (index_t j = 0; j < n; ++j) {
      const S* v = qkv_.data() + 2 * Ck * m + j * P;
      B::gemm(Trans::yes, Trans::no, P, Cv, P, S(1), att_.data() + j * P * P, P, v, m, S(0), o_.data() + j * P, m);
    }
    B::gemm(Trans::no, Trans::no, m, C, Cv, S(1), o_.data(), m, w + output_offset, Cv, S(0), orows_.data(), m);
    source_ = x.data();
    batch_ = n;
    t_source_ = nullptr;
    t_batch_ = 0;
  }

  // The tangents along tx of Q, K, V, the scores (St) and O, and tOrows.
  void run_tangent(const S* w, ConstBatchView<S> tx) const {
    const index_t n = tx.batch(), m = P * n;
    grow(txr_, m * C);
    grow(tqkv_, m * D);
    grow(tscore_, n * P * P);
    grow(ta_, P * P);
    grow(to_, m * Cv);
    grow(torows_, m * C);
    B::images_to_rows(n, C, P, tx.data(), txr_.data(), m);
    B::gemm(Trans::no, Trans::no, m, D, C, S(1), txr_.data(), m, w, C, S(0), tqkv_.data(), m);
    for (index_t j = 0; j < n; ++j) {
      const S *q = qkv_.data() + j * P, *k = q + Ck * m, *v = k + Ck * m;
      const S *tq = tqkv_.data() + j * P, *tk = tq + Ck * m, *tv = tk + Ck * m;
      const S* a = att_.data() + j * P * P;
      S* ts = tscore_.data() + j * P * P;
      S* to = to_.data() + j * P;
      // tSt = tK Q^T + K tQ^T; tAt = softmax tangent; tO = tAt^T V + At^T tV.
      B::gemm(Trans::no, Trans::yes, P, P, Ck, S(1), tk, m, q, m, S(0), ts, P);
      B::gemm(Trans::no, Trans::yes, P, P, Ck, S(1), k, m, tq, m, S(1), ts, P);
      B::for_each(P, kernels::ColumnSoftmaxTangent<S>{a, ts, ta_.data(), P}, 2 * P);
      B::gemm(Trans::yes, Trans::no, P, Cv, P, S(1), ta_.data(), P, v, m, S(0), to, m);
      B::gemm(Trans::yes, Trans::no, P, Cv, P, S(1), a, P, tv, m, S(1), to, m);
    }
    B::gemm(Trans::no, Trans::no, m, C, Cv, S(1), to_.data(), m, w + output_offset, Cv, S(0), torows_.data(), m);
    t_source_ = tx.data();
    t_batch_ = n;
  }

  // y = x + gamma rows, back to CHW.
  static void residual(const S* w, const Buffer& rows, ConstBatchView<S> x, BatchView<S> y) {
    const index_t n = x.batch();
    B::for_each(n * C, kernels::AttentionResidual<S>{C, P, rows.data(), P * n, x.data(), w + gamma_offset, y.data()},
                P);
  }

  // dy to rows, the gamma gradient <dy, O Wo^T> (gw not null), then dy scaled by gamma in
  // place: the gradient of Orows.
  void output_gradient(const S* w, S* gw, ConstBatchView<S> dy, Buffer& rows, const Buffer& out_rows) const {
    const index_t n = dy.batch(), m = P * n;
    grow(rows, m * C);
    B::images_to_rows(n, C, P, dy.data(), rows.data(), m);
    if (gw != nullptr)
      B::for_each(1, kernels::AddValueAt<S>{gw + gamma_offset, B::dot(m * C, rows.data(), out_rows.data())});
    B::for_each(n * C, kernels::ScaleByValueAt<S>{w + gamma_offset, rows.data(), P}, P);
  }

  // dW += Xrows^T dQKV (gw not null); dx = dy + (dQKV W^T) moved back to CHW (dx not empty).
  // The rows of dx reuse `rows`, the output gradient's buffer, no longer needed.
  void input_gradient(const S* w, S* gw, const Buffer& xrows, const Buffer& dqkv, ConstBatchView<S> dy, Buffer& rows,
                      BatchView<S> dx) const {
    const index_t n = dy.batch(), m = P * n;
    if (gw != nullptr) B::gemm(Trans::yes, Trans::no, C, D, m, S(1), xrows.data(), m, dqkv.data(), m, S(1), gw, C);
    if (dx.empty()) return;
    B::gemm(Trans::no, Trans::yes, m, C, D, S(1), dqkv.data(), m, w, C, S(0), rows.data(), m);
    B::for_each(n * C, kernels::AttentionResidual<S>{C, P, rows.data(), m, dy.data(), nullptr, dx.data()}, P);
  }

  void pull_back(const S* w, S* gw, ConstBatchView<S> x, ConstBatchView<S> dy, BatchView<S> dx) const {
    const index_t n = x.batch(), m = P * n;
    output_gradient(w, gw, dy, gyr_, orows_);
    // dWo^T += O^T dOrows, dO = dOrows Wo.
    if (gw != nullptr)
      B::gemm(Trans::yes, Trans::no, Cv, C, m, S(1), o_.data(), m, gyr_.data(), m, S(1), gw + output_offset, Cv);
    grow(go_, m * Cv);
    B::gemm(Trans::no, Trans::yes, m, Cv, C, S(1), gyr_.data(), m, w + output_offset, Cv, S(0), go_.data(), m);
    grow(gqkv_, m * D);
    grow(ga_, P * P);
    for (index_t j = 0; j < n; ++j) {
      const S *q = qkv_.data() + j * P, *k = q + Ck * m, *v = k + Ck * m;
      S *gq = gqkv_.data() + j * P, *gk = gq + Ck * m, *gv = gk + Ck * m;
      const S* a = att_.data() + j * P * P;
      const S* go = go_.data() + j * P;
      // O = At^T V: dAt = V dO^T, dV = At dO; then the softmax; St = K Q^T: dK = dSt Q,
      // dQ = dSt^T K.
      B::gemm(Trans::no, Trans::yes, P, P, Cv, S(1), v, m, go, m, S(0), ga_.data(), P);
      B::gemm(Trans::no, Trans::no, P, Cv, P, S(1), a, P, go, m, S(0), gv, m);
      B::for_each(P, kernels::ColumnSoftmaxBackward<S>{a, ga_.data(), P}, 2 * P);
      B::gemm(Trans::no, Trans::no, P, Ck, P, S(1), ga_.data(), P, q, m, S(0), gk, m);
      B::gemm(Trans::yes, Trans::no, P, Ck, P, S(1), ga_.data(), P, k, m, S(0), gq, m);
    }
    input_gradient(w, gw, xr_, gqkv_, dy, gyr_, dx);
  }

  // The adjoint of the tangent pass: every product of forward and run_tangent in reverse,
  // with the softmax's second-order terms in ColumnSoftmaxBackwardDual.
  void pull_back_dual(const S* w, S* gw, ConstBatchView<S> x, ConstBatchView<S>, ConstBatchView<S> gy,
                      ConstBatchView<S> gty, BatchView<S> gx, BatchView<S> gtx) const {
    const index_t n = x.batch(), m = P * n;
    output_gradient(w, gw, gy, gyr_, orows_);
    output_gradient(w, gw, gty, gtyr_, torows_);
    if (gw != nullptr) {
      B::gemm(Trans::yes, Trans::no, Cv, C, m, S(1), o_.data(), m, gyr_.data(), m, S(1), gw + output_offset, Cv);
      B::gemm(Trans::yes, Trans::no, Cv, C, m, S(1), to_.data(), m, gtyr_.data(), m, S(1), gw + output_offset, Cv);
    }
    grow(go_, m * Cv);
    grow(gto_, m * Cv);
    B::gemm(Trans::no, Trans::yes, m, Cv, C, S(1), gyr_.data(), m, w + output_offset, Cv, S(0), go_.data(), m);
    B::gemm(Trans::no, Trans::yes, m, Cv, C, S(1), gtyr_.data(), m, w + output_offset, Cv, S(0), gto_.data(), m);
    grow(gqkv_, m * D);
    grow(gtqkv_, m * D);
    grow(ga_, P * P);
    grow(gta_, P * P);
    grow(ta_, P * P);
    for (index_t j = 0; j < n; ++j) {
      const S *q = qkv_.data() + j * P, *k = q + Ck * m, *v = k + Ck * m;
      const S *tq = tqkv_.data() + j * P, *tk = tq + Ck * m, *tv = tk + Ck * m;
      S *gq = gqkv_.data() + j * P, *gk = gq + Ck * m, *gv = gk + Ck * m;
      S *gtq = gtqkv_.data() + j * P, *gtk = gtq + Ck * m, *gtv = gtk + Ck * m;
      const S* a = att_.data() + j * P * P;
      const S* ts = tscore_.data() + j * P * P;
      const S *go = go_.data() + j * P, *gto = gto_.data() + j * P;
      S *ga = ga_.data(), *gta = gta_.data(), *ta = ta_.data();
      B::for_each(P, kernels::ColumnSoftmaxTangent<S>{a, ts, ta, P}, 2 * P);
      // O = At^T V and tO = tAt^T V + At^T tV.
      B::gemm(Trans::no, Trans::yes, P, P, Cv, S(1), v, m, go, m, S(0), ga, P);
      B::gemm(Trans::no, Trans::yes, P, P, Cv, S(1), tv, m, gto, m, S(1), ga, P);
      B::gemm(Trans::no, Trans::yes, P, P, Cv, S(1), v, m, gto, m, S(0), gta, P);
      B::gemm(Trans::no, Trans::no, P, Cv, P, S(1), a, P, go, m, S(0), gv, m);
      B::gemm(Trans::no, Trans::no, P, Cv, P, S(1), ta, P, gto, m, S(1), gv, m);
      B::gemm(Trans::no, Trans::no, P, Cv, P, S(1), a, P, gto, m, S(0), gtv, m);
      // The softmax and its tangent: (dAt, dtAt) -> (dSt, dtSt).
      B::for_each(P, kernels::ColumnSoftmaxBackwardDual<S>{a, ts, ga, gta, P}, 4 * P);
      // St = K Q^T and tSt = tK Q^T + K tQ^T.
      B::gemm(Trans::no, Trans::no, P, Ck, P, S(1), ga, P, q, m, S(0), gk, m);
      B::gemm(Trans::no, Trans::no, P, Ck, P, S(1), gta, P, tq, m, S(1), gk, m);
      B::gemm(Trans::yes, Trans::no, P, Ck, P, S(1), ga, P, k, m, S(0), gq, m);
      B::gemm(Trans::yes, Trans::no, P, Ck, P, S(1), gta, P, tk, m, S(1), gq, m);
      B::gemm(Trans::no, Trans::no, P, Ck, P, S(1), gta, P, q, m, S(0), gtk, m);
      B::gemm(Trans::yes, Trans::no, P, Ck, P, S(1), gta, P, k, m, S(0), gtq, m);
    }
    input_gradient(w, gw, xr_, gqkv_, gy, gyr_, gx);
    input_gradient(w, gw, txr_, gtqkv_, gty, gtyr_, gtx);
  }

  // --- Spectral normalisation of the four projections (spectral_norm.hpp's formulas) ----

  S* u(int b) const noexcept { return state_.data() + state_offset(b); }
  S* v(int b) const noexcept { return state_.data() + state_offset(b) + projections[b].out; }
  static constexpr index_t state_offset(int b) {
    index_t o = 0;
    for (int i = 0; i < b; ++i) o += projections[i].in + projections[i].out;
    return o;
  }

  // x / max(||x||, 1e-12), as torch.nn.functional.normalize.
  static void normalize(index_t n, S* x) {
    const S norm = std::sqrt(B::dot(n, x, x));
    B::scale(n, S(1) / (norm > S(1e-12) ? norm : S(1e-12)), x);
  }

  // With M = W^T (in x out) at mat: v = normalize(W^T u) = normalize(M u), u = normalize(W v).
  void power_step(int b, const S* mat) {
    const Projection& pr = projections[b];
    B::gemm(Trans::no, Trans::no, pr.in, 1, pr.out, S(1), mat, pr.in, u(b), pr.out, S(0), v(b), pr.in);
    normalize(pr.in, v(b));
    B::gemm(Trans::yes, Trans::no, pr.out, 1, pr.in, S(1), mat, pr.in, v(b), pr.in, S(0), u(b), pr.out);
    normalize(pr.out, u(b));
    update_sigma(b, mat);
  }

  // sigma = u^T W v = u . (M^T v).
  void update_sigma(int b, const S* mat) const {
    const Projection& pr = projections[b];
    B::gemm(Trans::yes, Trans::no, pr.out, 1, pr.in, S(1), mat, pr.in, v(b), pr.in, S(0), scratch_.data(), pr.out);
    sigma_[b] = B::dot(pr.out, u(b), scratch_.data());
  }

  // W_sn = W / sigma for each projection into normalized_; gamma copied unchanged.
  void normalize_weights(const S* p) const {
    B::copy(param_count, p, normalized_.data());
    for (int b = 0; b < 4; ++b) {
      const Projection& pr = projections[b];
      update_sigma(b, p + pr.offset);
      B::scale(pr.in * pr.out, S(1) / sigma_[b], normalized_.data() + pr.offset);
    }
  }

  // With G the gradient for W_sn = W / (u^T W v): dL/dW += (G - <G, W_sn> u v^T) / sigma,
  // i.e. dL/dM += (G_M - <G_M, M_sn> v u^T) / sigma for the stored M = W^T; gamma's passes.
  void chain_to_raw_weights(S* g) const {
    for (int b = 0; b < 4; ++b) {
      const Projection& pr = projections[b];
      const index_t count = pr.in * pr.out;
      const S* gw = inner_grad_.data() + pr.offset;
      const S inv_sigma = S(1) / sigma_[b];
      const S c = B::dot(count, gw, normalized_.data() + pr.offset);
      B::axpy(count, inv_sigma, gw, g + pr.offset);
      B::gemm(Trans::no, Trans::yes, pr.in, pr.out, 1, -c * inv_sigma, v(b), pr.in, u(b), pr.out, S(1), g + pr.offset,
              pr.in);
    }
    B::axpy(1, S(1), inner_grad_.data() + gamma_offset, g + gamma_offset);
  }

  // Workspace, not state: a pass is logically const, and the buffers only grow. The forward
  // values (and the tangent's) remember which input (pointer, batch) they belong to: the
  // passes after a forward reuse them, and recompute them for another input.
  mutable Buffer xr_{}, qkv_{}, att_{}, o_{}, orows_{};        // forward: X rows, [Q|K|V], At, O, O Wo^T
  mutable Buffer txr_{}, tqkv_{}, tscore_{}, to_{}, torows_{}; // their tangents (tscore_: tSt)
  mutable Buffer gyr_{}, gtyr_{}, go_{}, gto_{}, gqkv_{}, gtqkv_{};
  mutable Buffer ga_{}, gta_{}, ta_{}; // per sample, P x P
  mutable const S* source_ = nullptr;
  mutable index_t batch_ = 0;
  mutable const S* t_source_ = nullptr;
  mutable index_t t_batch_ = 0;
  // Spectral only: u, v per projection; W v; W_sn and gamma; the gradient for them; sigmas.
  mutable Buffer state_{}, scratch_{}, normalized_{}, inner_grad_{};
  mutable S sigma_[4] = {S(1), S(1), S(1), S(1)};
};

} // namespace detail

/// Self-attention over the positions of a C x H x W input (SAGAN, Zhang et al. 2019): each
/// position attends to every position of its sample through 1x1 query and key projections
/// to C / KeyDiv channels and a value projection to C / ValueDiv channels, projected back to
/// C channels and added to the input scaled by a learned gamma that starts at 0. The output
/// shape is the input shape. Parameters: the four projections, then gamma (see
/// detail::SelfAttentionLayer for the layout). Every pass, including the tangent pass, is
/// exact, so it may sit in a critic with an input-gradient penalty.
/// \tparam KeyDiv C / KeyDiv channels for queries and keys (SAGAN: 8).
/// \tparam ValueDiv C / ValueDiv channels for the values (BigGAN, StudioGAN: 2).
/// \tparam Spectral whether each projection is spectrally normalised (W / sigma(W), sigma by
///   one power iteration per after_step(), as fg::SpectralNorm), as SAGAN does.
template <index_t KeyDiv = 8, index_t ValueDiv = 2, bool Spectral = false>
struct SelfAttention {
  static_assert(KeyDiv > 0 && ValueDiv > 0,
                "fg::SelfAttention<KeyDiv, ValueDiv>: KeyDiv and ValueDiv must be positive (SAGAN uses 8 and 2).");
  template <class In>
  struct bind {
    static_assert(In::rank == 3, "fg::SelfAttention needs a (C, H, W) input: use fg::Input<C, H, W>, a convolution "
                                 "or fg::Reshape<C, H, W> before it.");
    static constexpr index_t C = detail::chw_dim<In, 0>(KeyDiv * ValueDiv), H = detail::chw_dim<In, 1>(1),
                             W = detail::chw_dim<In, 2>(1);
    static_assert(C / KeyDiv > 0, "fg::SelfAttention<KeyDiv, ValueDiv>: the input has fewer than KeyDiv channels, so "
                                  "the queries and keys would have C / KeyDiv = 0 channels; use a smaller KeyDiv or "
                                  "give the layer before it more channels.");
    static_assert(C / ValueDiv > 0, "fg::SelfAttention<KeyDiv, ValueDiv>: the input has fewer than ValueDiv channels, "
                                    "so the values would have C / ValueDiv = 0 channels; use a smaller ValueDiv or "
                                    "give the layer before it more channels.");
    using output_shape = Shape<C, H, W>;
    template <class B>
    using layer = detail::SelfAttentionLayer<C, H, W, KeyDiv, ValueDiv, Spectral, B>;
  };
};

} // namespace forgery
