// Residual<Main, Shortcut>: y = Main(x) + Shortcut(x), the block of ResNet generators and
// critics. Each branch is any layer spec, a Sequential included; the shortcut defaults to
// the identity, which costs one addition and no buffer.
#pragma once

#include <cstddef>
#include <tuple>
#include <type_traits>

#include "forgery/core/batch_view.hpp"
#include "forgery/core/config.hpp"
#include "forgery/core/philox.hpp"
#include "forgery/layers/activation.hpp"
#include "forgery/layers/context.hpp"
#include "forgery/layers/init.hpp"
#include "forgery/nn/layer_hooks.hpp"
#include "forgery/nn/sequential.hpp"

namespace forgery {

namespace kernels {

// out = a + b, elementwise.
template <class S>
struct Sum2 {
  const S* a;
  const S* b;
  S* out;
  FORGERY_HOST_DEVICE void operator()(index_t i) const { out[i] = a[i] + b[i]; }
};

} // namespace kernels

namespace detail {

/// Instantiated where the branches of a Residual end in different shapes, so that both
/// appear in the compiler's trace as the template arguments MainOut and ShortcutOut.
template <class MainOut, class ShortcutOut>
struct residual_shapes_must_match {
  static_assert(std::is_same_v<MainOut, ShortcutOut>,
                "fg::Residual: the main branch's output shape (MainOut) differs from the shortcut's (ShortcutOut); "
                "both are the arguments of residual_shapes_must_match<MainOut, ShortcutOut> in this trace. Make "
                "them agree: give the shortcut what the main branch does to the shape, e.g. a 1x1 "
                "fg::Conv2d<C, 1, 1, 0> for the channels and fg::Upsample<2> or fg::AvgPool2d<2> for the "
                "resolution: fg::Residual<Main, fg::Sequential<fg::Upsample<2>, fg::Conv2d<C, 1, 1, 0>>>.");
  static constexpr bool value = std::is_same_v<MainOut, ShortcutOut>;
};

/// The bound residual block. Parameters: the main branch's, then the shortcut's. The
/// main branch keeps its own output (its last layer's backward may need it, e.g. Tanh);
/// the sum goes to the caller's output. Buffers only grow.
template <class B, class In, class MainBound, class ShortcutBound, bool IdentityShortcut>
class ResidualLayer {
public:
  using backend = B;
  using scalar = typename B::scalar;
  using S = scalar;
  using main_type = typename MainBound::template layer<B>;
  using shortcut_type = typename ShortcutBound::template layer<B>;
  using children_type =
      std::conditional_t<IdentityShortcut, std::tuple<main_type>, std::tuple<main_type, shortcut_type>>;
  using input_shape = In;
  using output_shape = typename MainBound::output_shape;
  template <class T>
  using buffer = typename B::template buffer<T>;
  static constexpr const char* name = "Residual";
  static constexpr bool identity_shortcut = IdentityShortcut;

private:
  using traits = hooks::tuple_traits<children_type>;
  static constexpr std::size_t children = traits::size;
  static constexpr index_t in_size = In::size;
  static constexpr index_t out_size = output_shape::size;

public:
  static constexpr auto param_offsets = traits::param_offsets;
  static constexpr index_t param_count = param_offsets[children];
  static constexpr index_t label_classes = traits::max_classes;
  static constexpr bool batch_statistics = traits::any_batch_statistics;
  static constexpr std::size_t leaf_count = traits::leaf_offsets[children];
  static constexpr bool dual = traits::all_dual;

  // Branch I draws its parameters from rng.substream(I) and its state from
  // rng.substream(2 + I), as a Sequential's children do.
  void init_params(S* p, RandomStream& rng, Init scheme) {
    hooks::for_each_child(children_, [&]<std::size_t I>(auto& layer) {
      RandomStream child = rng.substream(I);
      hooks::init_params(layer, p + param_offsets[I], child, scheme);
    });
  }
  void init_state(S* p, RandomStream& rng) {
    hooks::for_each_child(children_, [&]<std::size_t I>(auto& layer) {
      RandomStream child = rng.substream(2 + I);
      hooks::init_state(layer, p + param_offsets[I], child);
    });
  }
  void after_step(S* p) {
    hooks::for_each_child(children_,
                          [&]<std::size_t I>(auto& layer) { hooks::after_step(layer, p + param_offsets[I]); });
  }
  template <class F>
  void for_each_state(std::size_t first, F& f) {
    hooks::for_each_child(children_, [&]<std::size_t I>(auto& layer) {
      hooks::for_each_state(layer, first + traits::leaf_offsets[I], f);
    });
  }

  void forward(const S* p, ConstBatchView<S> x, BatchView<S> y, const Context& ctx) {
    const index_t n = x.batch();
    ensure(n);
    main().forward(p, x, out_view(ym_, n), ctx);
    if constexpr (IdentityShortcut) {
      sum(ym_.data(), x.data(), y);
    } else {
      shortcut().forward(p + param_offsets[1], x, out_view(ys_, n), ctx);
      sum(ym_.data(), ys_.data(), y);
    }
  }

  // dL/dx = Main'(x)^T dy + Shortcut'(x)^T dy, in that order.
  void backward(const S* p, S* g, ConstBatchView<S> x, ConstBatchView<S>, ConstBatchView<S> dy, BatchView<S> dx) {
    if (g == nullptr && dx.empty()) return;
    const index_t n = x.batch();
    main().backward(p, g, x, out_view(ym_, n), dy, dx);
    if constexpr (IdentityShortcut) {
      if (!dx.empty()) B::axpy(dx.size(), S(1), dy.data(), dx.data());
    } else {
      const BatchView<S> dxs = dx.empty() ? BatchView<S>{} : in_view(dxs_, n);
      shortcut().backward(p + param_offsets[1], g ? g + param_offsets[1] : nullptr, x, out_view(ys_, n), dy, dxs);
      if (!dx.empty()) B::axpy(dx.size(), S(1), dxs.data(), dx.data());
    }
  }

  void forward_dual(const S* p, ConstBatchView<S> x, ConstBatchView<S> tx, BatchView<S> y, BatchView<S> ty,
                    const Context& ctx) requires dual {
    const index_t n = x.batch();
    ensure(n);
    ensure_dual();
    main().forward_dual(p, x, tx, out_view(ym_, n), out_view(tym_, n), ctx);
    if constexpr (IdentityShortcut) {
      sum(ym_.data(), x.data(), y);
      sum(tym_.data(), tx.data(), ty);
    } else {
      shortcut().forward_dual(p + param_offsets[1], x, tx, out_view(ys_, n), out_view(tys_, n), ctx);
      sum(ym_.data(), ys_.data(), y);
      sum(tym_.data(), tys_.data(), ty);
    }
  }

  void forward_tangent(const S* p, ConstBatchView<S> x, ConstBatchView<S> tx, ConstBatchView<S>, BatchView<S> ty,
                       const Context& ctx) requires dual {
    const index_t n = x.batch();
    ensure_dual();
    hooks::forward_tangent(main(), p, x, tx, ConstBatchView<S>(out_view(ym_, n)), out_view(tym_, n), ctx);
    if constexpr (IdentityShortcut) {
      sum(tym_.data(), tx.data(), ty);
    } else {
      hooks::forward_tangent(shortcut(), p + param_offsets[1], x, tx, ConstBatchView<S>(out_view(ys_, n)),
                             out_view(tys_, n), ctx);
      sum(tym_.data(), tys_.data(), ty);
    }
  }

  void backward_dual(const S* p, S* g, ConstBatchView<S> x, ConstBatchView<S> tx, ConstBatchView<S>, ConstBatchView<S>,
                     ConstBatchView<S> gy, ConstBatchView<S> gty, BatchView<S> gx, BatchView<S> gtx) requires dual {
    if (g == nullptr && gx.empty() && gtx.empty()) return;
    const index_t n = x.batch();
    main().backward_dual(p, g, x, tx, out_view(ym_, n), out_view(tym_, n), gy, gty, gx, gtx);
    if constexpr (IdentityShortcut) {
      if (!gx.empty()) B::axpy(gx.size(), S(1), gy.data(), gx.data());
      if (!gtx.empty()) B::axpy(gtx.size(), S(1), gty.data(), gtx.data());
    } else {
      const BatchView<S> gxs = gx.empty() ? BatchView<S>{} : in_view(gxs_, n);
      const BatchView<S> gtxs = gtx.empty() ? BatchView<S>{} : in_view(gtxs_, n);
      shortcut().backward_dual(p + param_offsets[1], g ? g + param_offsets[1] : nullptr, x, tx, out_view(ys_, n),
                               out_view(tys_, n), gy, gty, gxs, gtxs);
      if (!gx.empty()) B::axpy(gx.size(), S(1), gxs.data(), gx.data());
      if (!gtx.empty()) B::axpy(gtx.size(), S(1), gtxs.data(), gtx.data());
    }
  }

  [[nodiscard]] main_type& main() noexcept { return std::get<0>(children_); }
  [[nodiscard]] const main_type& main() const noexcept { return std::get<0>(children_); }
  [[nodiscard]] auto& shortcut() noexcept requires(!IdentityShortcut) { return std::get<1>(children_); }
  [[nodiscard]] const auto& shortcut() const noexcept requires(!IdentityShortcut) { return std::get<1>(children_); }
  /// Child I (0: the main branch, 1: the shortcut unless it is the identity).
  template <std::size_t I>
  [[nodiscard]] auto& layer() noexcept {
    return std::get<I>(children_);
  }
  template <std::size_t I>
  [[nodiscard]] const auto& layer() const noexcept {
    return std::get<I>(children_);
  }

private:
  static void sum(const S* a, const S* b, BatchView<S> out) {
    B::for_each(out.size(), kernels::Sum2<S>{a, b, out.data()});
  }
  static BatchView<S> out_view(buffer<S>& b, index_t n) noexcept { return BatchView<S>(b.data(), out_size, n); }
  static BatchView<S> in_view(buffer<S>& b, index_t n) noexcept { return BatchView<S>(b.data(), in_size, n); }

  void ensure(index_t n) {
    if (n <= capacity_) return;
    capacity_ = n;
    ym_.resize(out_size * n);
    if constexpr (!IdentityShortcut) {
      ys_.resize(out_size * n);
      dxs_.resize(in_size * n);
    }
    if (dual_ready_) grow_dual();
  }
  void ensure_dual() {
    if (!dual_ready_) {
      dual_ready_ = true;
      grow_dual();
    }
  }
  void grow_dual() {
    tym_.resize(out_size * capacity_);
    if constexpr (!IdentityShortcut) {
      tys_.resize(out_size * capacity_);
      gxs_.resize(in_size * capacity_);
      gtxs_.resize(in_size * capacity_);
    }
  }

  children_type children_{};
  buffer<S> ym_, ys_, dxs_, tym_, tys_, gxs_, gtxs_;
  index_t capacity_ = 0;
  bool dual_ready_ = false;
};

} // namespace detail

/// A residual block: y = Main(x) + Shortcut(x). Both branches are layer specs (usually
/// fg::Sequential blocks without Input<...>) bound to the block's input shape, and must end
/// in the same shape (a compile-time check naming both). The default shortcut is the
/// identity (no parameters, no buffer).
/// \tparam Main the residual branch, e.g. fg::Sequential<fg::ReLU, fg::Conv2d<64, 3, 1, 1>>.
/// \tparam Shortcut the skip branch; fg::Identity, or a 1x1 convolution, pooling or
///         upsampling where the main branch changes the shape.
template <class Main, class Shortcut = Identity>
struct Residual {
  template <class In>
  struct bind {
    using main_bound = typename detail::checked_bind<0, Main, In>::type;
    using shortcut_bound = typename detail::checked_bind<1, Shortcut, In>::type;
    static_assert(detail::residual_shapes_must_match<typename main_bound::output_shape,
                                                     typename shortcut_bound::output_shape>::value);
    using output_shape = typename main_bound::output_shape;
    template <class B>
    using layer = detail::ResidualLayer<B, In, main_bound, shortcut_bound, std::is_same_v<Shortcut, Identity>>;
  };
};

} // namespace forgery
