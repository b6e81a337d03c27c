// SpectralNorm (Miyato et al. 2018): runs a weight layer with its weight divided by an
// estimate of its largest singular value, kept by one power iteration per training step.
#pragma once

#include <cmath>

#include "forgery/backend/op_set.hpp"
#include "forgery/core/batch_view.hpp"
#include "forgery/core/concepts.hpp"
#include "forgery/core/config.hpp"
#include "forgery/core/philox.hpp"
#include "forgery/layers/context.hpp"
#include "forgery/layers/init.hpp"

namespace forgery {

namespace detail {

/// A bound layer SpectralNorm can wrap: it names the shape of the weight matrix that leads
/// its parameters.
template <class L>
concept SpectralNormalizable = requires {
  { L::weight_rows } -> std::convertible_to<index_t>;
  { L::weight_cols } -> std::convertible_to<index_t>;
  { L::param_count } -> std::convertible_to<index_t>;
};

// The weight matrix's rows (0) or columns (1); 1 for a layer without one, so that only the
// static_assert below reports it.
template <class L>
constexpr index_t weight_shape(int which) {
  if constexpr (SpectralNormalizable<L>)
    return which == 0 ? index_t(L::weight_rows) : index_t(L::weight_cols);
  else
    return 1;
}

template <class Inner, int Iterations, class B>
class SpectralNormLayer {
  static_assert(SpectralNormalizable<Inner>,
                "fg::SpectralNorm<Inner>: the wrapped layer must expose `weight_rows` and `weight_cols` and store its "
                "weight matrix (weight_rows x weight_cols, column-major) first in its parameters; wrap fg::Dense, "
                "fg::Conv2d or fg::ConvTranspose2d, or give your layer those members.");

public:
  using backend = B;
  using scalar = typename B::scalar;
  using S = scalar;
  using Trans = ::forgery::backend::Trans;
  using inner_type = Inner;
  using input_shape = typename Inner::input_shape;
  using output_shape = typename Inner::output_shape;
  static constexpr index_t rows = weight_shape<Inner>(0), cols = weight_shape<Inner>(1);
  static constexpr index_t weight_count = rows * cols;
  /// The inner layer's parameters, unchanged: the raw weight, then the rest (the bias).
  static constexpr index_t param_count = Inner::param_count;
  /// The power iteration's vectors u (rows), then v (cols): saved with the parameters.
  static constexpr index_t state_count = rows + cols;
  static constexpr const char* name = "SpectralNorm";
  static_assert(weight_count <= param_count, "fg::SpectralNorm<Inner>: the wrapped layer's weight_rows x weight_cols "
                                             "exceeds its param_count; its weight must lead its parameters.");

  SpectralNormLayer() {
    state_.resize(state_count);
    scratch_.resize(rows);
    normalized_.resize(param_count);
    inner_grad_.resize(param_count);
  }

  void init_params(S* p, RandomStream& rng, Init scheme) {
    if constexpr (requires { inner_.init_params(p, rng, scheme); }) inner_.init_params(p, rng, scheme);
  }

  /// u ~ N(0, 1) normalised, then the power iterations on the fresh weight.
  void init_state(const S* p, RandomStream& rng) {
    B::fill_normal(rows, u(), rng, S(0), S(1));
    normalize(rows, u());
    for (int i = 0; i < Iterations; ++i) power_step(p);
  }

  /// Called once after each optimizer step: `Iterations` power-iteration steps on the new
  /// weight, so u and v track the top singular pair across training.
  void after_step(const S* p) {
    for (int i = 0; i < Iterations; ++i) power_step(p);
  }

  [[nodiscard]] S* state() noexcept { return state_.data(); }
  [[nodiscard]] const S* state() const noexcept { return state_.data(); }
  /// sigma = u^T W v of the last forward pass or power iteration.
  [[nodiscard]] S sigma() const noexcept { return sigma_; }
  [[nodiscard]] Inner& inner() noexcept { return inner_; }

  // A pure function of (p, x): u and v are held fixed, sigma = u^T W v.
  void forward(const S* p, ConstBatchView<S> x, BatchView<S> y, const Context& ctx) {
    normalize_weight(p);
    inner_.forward(normalized_.data(), x, y, ctx);
  }

  void backward(const S*, S* g, ConstBatchView<S> x, ConstBatchView<S> y, ConstBatchView<S> dy, BatchView<S> dx) {
    if (g == nullptr) {
      inner_.backward(normalized_.data(), nullptr, x, y, dy, dx);
      return;
    }
    B::fill(param_count, inner_grad_.data(), S(0));
    inner_.backward(normalized_.data(), inner_grad_.data(), x, y, dy, dx);
    chain_to_raw_weight(g);
  }

  void forward_dual(const S* p, ConstBatchView<S> x, ConstBatchView<S> tx, BatchView<S> y, BatchView<S> ty,
                    const Context& ctx) requires DualLayer<Inner> {
    normalize_weight(p);
    inner_.forward_dual(normalized_.data(), x, tx, y, ty, ctx);
  }

  void backward_dual(const S*, S* g, ConstBatchView<S> x, ConstBatchView<S> tx, ConstBatchView<S> y,
                     ConstBatchView<S> ty, ConstBatchView<S> gy, ConstBatchView<S> gty, BatchView<S> gx,
                     BatchView<S> gtx) requires DualLayer<Inner> {
    if (g == nullptr) {
      inner_.backward_dual(normalized_.data(), nullptr, x, tx, y, ty, gy, gty, gx, gtx);
      return;
    }
    B::fill(param_count, inner_grad_.data(), S(0));
    inner_.backward_dual(normalized_.data(), inner_grad_.data(), x, tx, y, ty, gy, gty, gx, gtx);
    chain_to_raw_weight(g);
  }

private:
  S* u() noexcept { return state_.data(); }
  S* v() noexcept { return state_.data() + rows; }

  // x / max(||x||, 1e-12), as torch.nn.functional.normalize.
  static void normalize(index_t n, S* x) {
    const S norm = std::sqrt(B::dot(n, x, x));
    B::scale(n, S(1) / (norm > S(1e-12) ? norm : S(1e-12)), x);
  }

  // v = normalize(W^T u), u = normalize(W v); sigma = u^T W v = ||W v||.
  void power_step(const S* w) {
    B::gemm(Trans::yes, Trans::no, cols, 1, rows, S(1), w, rows, u(), rows, S(0), v(), cols);
    normalize(cols, v());
    B::gemm(Trans::no, Trans::no, rows, 1, cols, S(1), w, rows, v(), cols, S(0), u(), rows);
    normalize(rows, u());
    update_sigma(w);
  }

  void update_sigma(const S* w) {
    B::gemm(Trans::no, Trans::no, rows, 1, cols, S(1), w, rows, v(), cols, S(0), scratch_.data(), rows);
    sigma_ = B::dot(rows, u(), scratch_.data());
  }

  // W_sn = W / sigma into the layer's buffer; the other parameters are copied unchanged.
  void normalize_weight(const S* p) {
    update_sigma(p);
    B::copy(param_count, p, normalized_.data());
    B::scale(weight_count, S(1) / sigma_, normalized_.data());
  }

  // With G the gradient for W_sn = W / (u^T W v): dL/dW += (G_W - <G_W, W_sn> u v^T) / sigma;
  // the other parameters' gradients pass through.
  void chain_to_raw_weight(S* g) {
    const S* gw = inner_grad_.data();
    const S inv_sigma = S(1) / sigma_;
    const S c = B::dot(weight_count, gw, normalized_.data());
    B::axpy(weight_count, inv_sigma, gw, g);
    B::gemm(Trans::no, Trans::yes, rows, cols, 1, -c * inv_sigma, u(), rows, v(), cols, S(1), g, rows);
    if constexpr (param_count > weight_count)
      B::axpy(param_count - weight_count, S(1), gw + weight_count, g + weight_count);
  }

  Inner inner_{};
  typename B::template buffer<S> state_;      // u, then v
  typename B::template buffer<S> scratch_;    // W v
  typename B::template buffer<S> normalized_; // W_sn, then the inner layer's other parameters
  typename B::template buffer<S> inner_grad_; // the inner layer's gradient for normalized_
  S sigma_ = S(0);
};

} // namespace detail

/// Spectral normalisation of a weight layer: the wrapped layer runs with W / sigma(W), sigma
/// the largest singular value estimated by power iteration. The vectors u, v are layer state
/// (saved with the parameters), advanced only by Network::after_step(), which the Trainer
/// calls after each optimizer step; between steps the layer is a pure function of its
/// parameters and input, and gradients treat u and v as constants (as the reference
/// implementations do).
/// \tparam Inner the wrapped layer spec (fg::Dense<...>, a convolution): its bound layer must
///   expose weight_rows and weight_cols and store that matrix first in its parameters.
/// \tparam PowerIterations power-iteration steps per after_step() (and at initialisation).
template <class Inner, int PowerIterations = 1>
struct SpectralNorm {
  static_assert(PowerIterations >= 1, "fg::SpectralNorm<Inner, PowerIterations>: PowerIterations must be at least 1.");
  template <class In>
  struct bind {
    static_assert(LayerSpec<Inner>, "fg::SpectralNorm<Inner>: Inner must be a layer spec such as fg::Dense<64>.");
    using inner_bind = typename Inner::template bind<In>;
    using output_shape = typename inner_bind::output_shape;
    template <class B>
    using layer = detail::SpectralNormLayer<typename inner_bind::template layer<B>, PowerIterations, B>;
  };
};

} // namespace forgery
