// The buffers input-gradient penalties reuse (penalty::Workspace), and the tangent pass
// they share (design.md, 'Gradients, including gradients of gradients'): from the
// critic's input gradient g at the penalised points, u = dP/dg per sample, then one dual
// forward and one dual backward add dP/dtheta = d/dtheta sum_i u_i . g_i exactly.
#pragma once

#include <cmath>
#include <sstream>
#include <string>
#include <tuple>

#include "forgery/core/batch_view.hpp"
#include "forgery/core/concepts.hpp"
#include "forgery/core/config.hpp"
#include "forgery/core/error.hpp"
#include "forgery/core/philox.hpp"
#include "forgery/nn/sequential.hpp"

namespace forgery::penalty {

/// Buffers a penalty call needs beyond the critic's own: the penalised inputs, the tangent
/// u (features x batch), per-sample scalars, and a ones and a zeros row for the critic's
/// 1 x batch output. They grow on demand and never shrink, so a steady-state call
/// allocates nothing. One workspace may serve several penalties and critics in turn.
/// \tparam B the backend policy of the critic.
template <class B>
class Workspace {
public:
  using backend = B;
  using scalar = typename B::scalar;
  using S = scalar;
  template <class T>
  using buffer = typename B::template buffer<T>;

  /// Makes room for one call on a features x batch input; keeps the larger capacity.
  void reserve(index_t features, index_t batch) {
    batch_ = batch;
    features_ = features;
    if (features * batch > element_capacity_) {
      element_capacity_ = features * batch;
      input_.resize(element_capacity_);
      tangent_.resize(element_capacity_);
    }
    if (batch > batch_capacity_) {
      batch_capacity_ = batch;
      coefficients_.resize(batch);
      norms_.resize(batch);
      terms_.resize(batch);
      ones_.resize(batch);
      zeros_.resize(batch);
      B::fill(batch, ones_.data(), S(1));
      B::fill(batch, zeros_.data(), S(0));
    }
  }

  /// The penalised points x_hat (features x batch of the current call).
  [[nodiscard]] BatchView<S> input() noexcept { return {input_.data(), features_, batch_}; }
  /// The tangent u = dP/dg (features x batch); also scratch before u is formed.
  [[nodiscard]] BatchView<S> tangent() noexcept { return {tangent_.data(), features_, batch_}; }
  /// Per-sample random coefficients (the interpolation eps of GP, the alpha of DRAGAN).
  [[nodiscard]] S* coefficients() noexcept { return coefficients_.data(); }
  /// Per-sample penalty terms phi(||g_i||) before the mean and the weight.
  [[nodiscard]] S* terms() noexcept { return terms_.data(); }
  [[nodiscard]] S* norms() noexcept { return norms_.data(); }
  /// ||grad_x D(x_hat_i)|| of the last call, 1 x batch: the quantity worth logging.
  [[nodiscard]] ConstBatchView<S> gradient_norms() const noexcept { return {norms_.data(), 1, batch_}; }
  /// A 1 x batch row of ones (the critic's output seed) and one of zeros.
  [[nodiscard]] ConstBatchView<S> ones() const noexcept { return {ones_.data(), 1, batch_}; }
  [[nodiscard]] ConstBatchView<S> zeros() const noexcept { return {zeros_.data(), 1, batch_}; }

  [[nodiscard]] index_t element_capacity() const noexcept { return element_capacity_; }
  [[nodiscard]] index_t batch_capacity() const noexcept { return batch_capacity_; }

private:
  buffer<S> input_, tangent_, coefficients_, norms_, terms_, ones_, zeros_;
  index_t features_ = 0, batch_ = 0;
  index_t element_capacity_ = 0, batch_capacity_ = 0;
};

namespace kernels {

/// out[i] = eps_j real[i] + (1 - eps_j) fake[i], j the sample of element i.
template <class S>
struct Interpolate {
  const S* real;
  const S* fake;
  const S* eps;
  S* out;
  index_t features;
  FORGERY_HOST_DEVICE void operator()(index_t i) const {
    const S e = eps[i / features];
    out[i] = e * real[i] + (S(1) - e) * fake[i];
  }
};

/// out[i] = (x[i] - mean)^2.
template <class S>
struct SquaredDeviation {
  const S* x;
  S mean;
  S* out;
  FORGERY_HOST_DEVICE void operator()(index_t i) const {
    const S d = x[i] - mean;
    out[i] = d * d;
  }
};

/// phi(r) = (r - k)^2, or max(0, r - k)^2 when one-sided (GP, one-sided GP, DRAGAN).
template <class S>
struct NormDistance {
  S k;
  bool one_sided;
  FORGERY_HOST_DEVICE S excess(S r) const {
    const S d = r - k;
    return (one_sided && d < S(0)) ? S(0) : d;
  }
  FORGERY_HOST_DEVICE S value(S r, S) const {
    const S d = excess(r);
    return d * d;
  }
  /// phi'(r) / r, for r > 0.
  FORGERY_HOST_DEVICE S slope_over_norm(S r) const { return S(2) * excess(r) / r; }
};

/// phi(r) = r^2 (R1, R2): smooth, so u is simply 2 g.
template <class S>
struct SquaredNorm {
  FORGERY_HOST_DEVICE S value(S, S r2) const { return r2; }
  FORGERY_HOST_DEVICE S slope_over_norm(S) const { return S(2); }
};

/// One index per sample j: r = ||g_j||, term_j = phi(r), u_j = scale phi'(r) / r g_j. At
/// r = 0 (then g_j = 0) the norm's direction is taken as 0, so u_j = 0 and nothing is NaN.
template <class Phi, class S>
struct InputGradientTerm {
  Phi phi;
  const S* g;
  index_t features;
  S scale;
  S* u;
  S* norms;
  S* terms;
  FORGERY_HOST_DEVICE void operator()(index_t j) const {
    const S* gj = g + j * features;
    S* uj = u + j * features;
    S r2 = S(0);
    for (index_t f = 0; f < features; ++f) r2 += gj[f] * gj[f];
    const S r = std::sqrt(r2);
    norms[j] = r;
    terms[j] = phi.value(r, r2);
    const S c = r > S(0) ? scale * phi.slope_over_norm(r) : S(0);
    for (index_t f = 0; f < features; ++f) uj[f] = c * gj[f];
  }
};

} // namespace kernels

namespace detail {

inline std::string format_value(double v) {
  std::ostringstream os;
  os.precision(17);
  os << v;
  return os.str();
}

/// Throws config_error naming `field` unless `value` is finite and >= min (> min if strict).
inline void require_finite_at_least(const char* field, double value, double min, bool strict = false) {
  if (!std::isfinite(value) || value < min || (strict && value == min))
    throw config_error(field, format_value(value),
                       std::string("a finite value ") + (strict ? "> " : ">= ") + format_value(min));
}

/// Instantiated once per critic layer, so that a layer without a tangent pass is named in
/// the compiler's instantiation trace next to this message.
template <class Layer>
struct tangent_pass_check {
  static_assert(DualLayer<Layer>,
                "forgery::penalty: this critic layer (the one named in the instantiation of tangent_pass_check<...>) "
                "has no tangent pass (forward_dual/backward_dual), which an input-gradient penalty needs to "
                "back-propagate into the critic. Use LayerNorm or no normalisation instead of BatchNorm, or give the "
                "layer forward_dual and "
                "backward_dual.");
  static constexpr bool value = DualLayer<Layer>;
};

template <class Layers>
struct critic_tangent_check;
template <class... Ls>
struct critic_tangent_check<std::tuple<Ls...>>;

// A block (nested Sequential, Residual) is checked child by child, so the message names
// the leaf layer without a tangent pass, at any depth.
template <class Layer>
struct layer_tangent_check : tangent_pass_check<Layer> {};
template <::forgery::detail::hooks::Block Layer>
struct layer_tangent_check<Layer> : critic_tangent_check<typename Layer::children_type> {};

template <class... Ls>
struct critic_tangent_check<std::tuple<Ls...>> {
  static constexpr bool value = (layer_tangent_check<Ls>::value && ...);
};

/// True when every layer of the critic has a tangent pass; a static_assert names the
/// first that does not.
template <class Net>
inline constexpr bool critic_has_tangent_pass = critic_tangent_check<typename Net::layers_type>::value;

template <class Net>
void check_batch(const char* where, ConstBatchView<typename Net::scalar> x) {
  if (x.features() != Net::input_size || x.batch() <= 0 || x.data() == nullptr)
    throw shape_error(where, std::to_string(Net::input_size) + " x N (features x batch), N > 0",
                      std::to_string(x.features()) + " x " + std::to_string(x.batch()));
}

/// The shared tangent pass. With x_hat (features x n, alive for the call) already formed,
/// returns P = scale sum_i phi(||grad_x D(x_hat_i)||) and adds dP/dtheta into
/// critic.grads(). Overwrites the critic's cached activations.
template <class Net, class Phi>
typename Net::scalar penalise_input_gradient(Net& critic, ConstBatchView<typename Net::scalar> x_hat, Phi phi,
                                             typename Net::scalar scale, Workspace<typename Net::backend>& ws) {
  using B = typename Net::backend;
  using S = typename Net::scalar;
  static_assert(Net::output_size == 1, "forgery::penalty: the critic must give one value per sample (end it with "
                                       "fg::Dense<1>): a penalty differentiates that value with respect to the input.");
  if constexpr (critic_has_tangent_pass<Net>) {
    const index_t n = x_hat.batch();
    constexpr index_t features = Net::input_size;
    // (1) g = grad_x D(x_hat), input gradient only.
    critic.forward(x_hat);
    const ConstBatchView<S> g = critic.backward(ws.ones(), Grad::input);
    // (2) Per sample: the norm, the term phi(||g||) and u = dP/dg.
    const BatchView<S> u = ws.tangent();
    B::for_each(n,
                kernels::InputGradientTerm<Phi, S>{phi, g.data(), features, scale, u.data(), ws.norms(), ws.terms()});
    const S p = scale * B::sum(n, ws.terms());
    // (3) ty_i = u_i . grad_x D(x_hat_i), on the activations of (1); (4) d/dtheta sum_i ty_i
    // with u held fixed.
    critic.forward_tangent(ConstBatchView<S>(u));
    critic.backward_dual(ws.zeros(), ws.ones(), Grad::params);
    return p;
  } else {
    return S(0);
  }
}

} // namespace detail

} // namespace forgery::penalty
