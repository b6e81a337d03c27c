// Elementwise activation layers (ReLU, LeakyReLU, Tanh, Sigmoid, Identity), all built from
// one Activation<Fn> template: an activation is a function with its first and second
// derivatives, and the forward, backward and tangent passes follow from those.
#pragma once

#include <cmath>
#include <type_traits>

#include "forgery/core/batch_view.hpp"
#include "forgery/core/config.hpp"
#include "forgery/core/math.hpp"
#include "forgery/core/shape.hpp"
#include "forgery/layers/context.hpp"

namespace forgery {

namespace kernels {

template <class Fn, class S>
struct ActivationForward {
  Fn fn;
  const S* x;
  S* y;
  FORGERY_HOST_DEVICE void operator()(index_t i) const { y[i] = fn.value(x[i]); }
};

template <class Fn, class S>
struct ActivationBackward {
  Fn fn;
  const S* x;
  const S* y;
  const S* dy;
  S* dx;
  FORGERY_HOST_DEVICE void operator()(index_t i) const { dx[i] = fn.d1(x[i], y[i]) * dy[i]; }
};

template <class Fn, class S>
struct ActivationForwardDual {
  Fn fn;
  const S* x;
  const S* tx;
  S* y;
  S* ty;
  FORGERY_HOST_DEVICE void operator()(index_t i) const {
    const S v = fn.value(x[i]);
    y[i] = v;
    ty[i] = fn.d1(x[i], v) * tx[i];
  }
};

// ty = f'(x) tx from a forward pass's cached y = f(x) (the same f'(x, y) as ActivationForwardDual).
template <class Fn, class S>
struct ActivationTangent {
  Fn fn;
  const S* x;
  const S* y;
  const S* tx;
  S* ty;
  FORGERY_HOST_DEVICE void operator()(index_t i) const { ty[i] = fn.d1(x[i], y[i]) * tx[i]; }
};

// y = f(x), ty = f'(x) tx  =>  gx = f'(x) gy + f''(x) tx gty,  gtx = f'(x) gty.
template <class Fn, class S>
struct ActivationBackwardDual {
  Fn fn;
  const S* x;
  const S* tx;
  const S* y;
  const S* gy;
  const S* gty;
  S* gx;
  S* gtx;
  FORGERY_HOST_DEVICE void operator()(index_t i) const {
    const S d1 = fn.d1(x[i], y[i]);
    if (gx != nullptr) gx[i] = d1 * gy[i] + fn.d2(x[i], y[i]) * tx[i] * gty[i];
    if (gtx != nullptr) gtx[i] = d1 * gty[i];
  }
};

} // namespace kernels

/// Activation functions: value, first and second derivative (each given x and y = f(x)).
namespace activation {

struct Identity {
  static constexpr const char* name = "Identity";
  template <class S>
  FORGERY_HOST_DEVICE S value(S x) const {
    return x;
  }
  template <class S>
  FORGERY_HOST_DEVICE S d1(S, S) const {
    return S(1);
  }
  template <class S>
  FORGERY_HOST_DEVICE S d2(S, S) const {
    return S(0);
  }
};

struct ReLU {
  static constexpr const char* name = "ReLU";
  template <class S>
  FORGERY_HOST_DEVICE S value(S x) const {
    return x > S(0) ? x : S(0);
  }
  template <class S>
  FORGERY_HOST_DEVICE S d1(S x, S) const {
    return x > S(0) ? S(1) : S(0);
  }
  template <class S>
  FORGERY_HOST_DEVICE S d2(S, S) const {
    return S(0);
  }
};

template <double Slope>
struct LeakyReLU {
  static_assert(Slope >= 0.0 && Slope <= 1.0, "fg::LeakyReLU<Slope>: the slope must lie in [0, 1].");
  static constexpr const char* name = "LeakyReLU";
  template <class S>
  // max(x, s x) equals the branchy form for 0 <= s <= 1 (signed zeros and NaN included)
  // and compiles to a blend instead of a mispredicted branch.
  FORGERY_HOST_DEVICE S value(S x) const {
    const S sx = static_cast<S>(Slope) * x;
    return x < sx ? sx : x;
  }
  template <class S>
  FORGERY_HOST_DEVICE S d1(S x, S) const {
    return x > S(0) ? S(1) : static_cast<S>(Slope);
  }
  template <class S>
  FORGERY_HOST_DEVICE S d2(S, S) const {
    return S(0);
  }
};

struct Tanh {
  static constexpr const char* name = "Tanh";
  // float: math::tanh, which vectorises (libm's tanhf is a scalar call); 1.35 ulp at most.
  template <class S>
  FORGERY_HOST_DEVICE S value(S x) const {
    if constexpr (std::is_same_v<S, float>)
      return math::tanh(x);
    else
      return std::tanh(x);
  }
  template <class S>
  FORGERY_HOST_DEVICE S d1(S, S y) const {
    return S(1) - y * y;
  }
  template <class S>
  FORGERY_HOST_DEVICE S d2(S, S y) const {
    return S(-2) * y * (S(1) - y * y);
  }
};

struct Sigmoid {
  static constexpr const char* name = "Sigmoid";
  // Written so that exp never overflows: for x < 0, e^x / (1 + e^x).
  template <class S>
  FORGERY_HOST_DEVICE S value(S x) const {
    if (x >= S(0)) return S(1) / (S(1) + std::exp(-x));
    const S e = std::exp(x);
    return e / (S(1) + e);
  }
  template <class S>
  FORGERY_HOST_DEVICE S d1(S, S y) const {
    return y * (S(1) - y);
  }
  template <class S>
  FORGERY_HOST_DEVICE S d2(S, S y) const {
    return y * (S(1) - y) * (S(1) - S(2) * y);
  }
};

} // namespace activation

namespace detail {

template <class Fn, class In, class B>
class ActivationLayer {
public:
  using backend = B;
  using scalar = typename B::scalar;
  using S = scalar;
  using input_shape = In;
  using output_shape = In;
  static constexpr index_t param_count = 0;
  static constexpr const char* name = Fn::name;

  void forward(const S*, ConstBatchView<S> x, BatchView<S> y, const Context&) const {
    B::for_each(x.size(), kernels::ActivationForward<Fn, S>{Fn{}, x.data(), y.data()});
  }
  void backward(const S*, S*, ConstBatchView<S> x, ConstBatchView<S> y, ConstBatchView<S> dy, BatchView<S> dx) const {
    if (dx.empty()) return;
    B::for_each(x.size(), kernels::ActivationBackward<Fn, S>{Fn{}, x.data(), y.data(), dy.data(), dx.data()});
  }
  void forward_dual(const S*, ConstBatchView<S> x, ConstBatchView<S> tx, BatchView<S> y, BatchView<S> ty,
                    const Context&) const {
    B::for_each(x.size(), kernels::ActivationForwardDual<Fn, S>{Fn{}, x.data(), tx.data(), y.data(), ty.data()});
  }
  void forward_tangent(const S*, ConstBatchView<S> x, ConstBatchView<S> tx, ConstBatchView<S> y, BatchView<S> ty,
                       const Context&) const {
    B::for_each(x.size(), kernels::ActivationTangent<Fn, S>{Fn{}, x.data(), y.data(), tx.data(), ty.data()});
  }
  void backward_dual(const S*, S*, ConstBatchView<S> x, ConstBatchView<S> tx, ConstBatchView<S> y, ConstBatchView<S>,
                     ConstBatchView<S> gy, ConstBatchView<S> gty, BatchView<S> gx, BatchView<S> gtx) const {
    if (gx.empty() && gtx.empty()) return;
    B::for_each(x.size(), kernels::ActivationBackwardDual<Fn, S>{Fn{}, x.data(), tx.data(), y.data(), gy.data(),
                                                                 gty.data(), gx.data(), gtx.data()});
  }
};

} // namespace detail

/// An elementwise activation layer from a function policy (see forgery::activation).
/// \tparam Fn provides value(x), d1(x, y) and d2(x, y).
template <class Fn>
struct Activation {
  template <class In>
  struct bind {
    using output_shape = In;
    template <class B>
    using layer = detail::ActivationLayer<Fn, In, B>;
  };
};

using Identity = Activation<activation::Identity>;
using ReLU = Activation<activation::ReLU>;
/// \tparam Slope the slope for negative inputs; 0.2 is the GAN literature's usual value.
template <double Slope = 0.2>
using LeakyReLU = Activation<activation::LeakyReLU<Slope>>;
using Tanh = Activation<activation::Tanh>;
using Sigmoid = Activation<activation::Sigmoid>;

} // namespace forgery
