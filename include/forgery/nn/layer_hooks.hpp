// The optional parts of the layer interface in one place: what a layer declares about
// itself (parameter count, classes it conditions on, batch statistics, tangent pass, how
// many leaf layers it holds) and the dispatch of its optional hooks (initialisation, state,
// the after-step refresh). A Network and every block (Sequential inside Sequential,
// Residual) use these, so a hook reaches a layer at any depth of nesting.
#pragma once

#include <array>
#include <cstddef>
#include <tuple>
#include <type_traits>
#include <utility>

#include "forgery/core/concepts.hpp"
#include "forgery/core/config.hpp"
#include "forgery/core/philox.hpp"
#include "forgery/layers/init.hpp"

namespace forgery::detail::hooks {

/// Parameters the layer reads from the network's buffer (0 when it declares none).
template <class L>
constexpr index_t params_of() {
  if constexpr (requires { L::param_count; })
    return L::param_count;
  else
    return 0;
}

/// Number of classes a conditional layer needs labels for (0: unconditional).
template <class L>
constexpr index_t classes_of() {
  if constexpr (requires { L::label_classes; })
    return L::label_classes;
  else
    return 0;
}

/// Whether the layer normalises with statistics of its whole batch in train mode.
template <class L>
constexpr bool batch_statistics_of() {
  if constexpr (requires { L::batch_statistics; })
    return bool(L::batch_statistics);
  else
    return false;
}

/// A block holds other layers (`children_type`, a std::tuple of them).
template <class L>
concept Block = requires {
  typename L::children_type;
};

/// Leaf layers inside L: 1 for a plain layer, the sum over its children for a block. A
/// leaf's number in depth-first order names its state in checkpoints, so a flat network's
/// numbers are its layer indices.
template <class L>
constexpr std::size_t leaves_of() {
  if constexpr (Block<L>)
    return L::leaf_count;
  else
    return 1;
}

template <class Tuple>
struct tuple_traits;
template <class... Ls>
struct tuple_traits<std::tuple<Ls...>> {
  static constexpr std::size_t size = sizeof...(Ls);
  static constexpr index_t max_classes = [] {
    index_t m = 0;
    ((m = classes_of<Ls>() > m ? classes_of<Ls>() : m), ...);
    return m;
  }();
  static constexpr bool any_batch_statistics = (batch_statistics_of<Ls>() || ...);
  static constexpr bool all_dual = (DualLayer<Ls> && ...);
  static constexpr bool all_tangent = (TangentLayer<Ls> && ...);
  static constexpr std::array<index_t, size + 1> param_offsets = [] {
    std::array<index_t, size + 1> o{};
    const index_t counts[] = {params_of<Ls>()..., 0};
    for (std::size_t i = 0; i < size; ++i) o[i + 1] = o[i] + counts[i];
    return o;
  }();
  static constexpr std::array<std::size_t, size + 1> leaf_offsets = [] {
    std::array<std::size_t, size + 1> o{};
    const std::size_t counts[] = {leaves_of<Ls>()..., 0};
    for (std::size_t i = 0; i < size; ++i) o[i + 1] = o[i] + counts[i];
    return o;
  }();
};

/// Calls f.template operator()<I>(std::get<I>(t)) for I = 0, 1, ... (or in reverse).
template <class Tuple, class F, std::size_t... I>
void for_each_child_impl(Tuple& t, F& f, std::index_sequence<I...>) {
  (f.template operator()<I>(std::get<I>(t)), ...);
}
template <class Tuple, class F>
void for_each_child(Tuple& t, F&& f) {
  for_each_child_impl(t, f, std::make_index_sequence<std::tuple_size_v<Tuple>>{});
}
template <class Tuple, class F, std::size_t... I>
void for_each_child_reverse_impl(Tuple& t, F& f, std::index_sequence<I...>) {
  constexpr std::size_t n = sizeof...(I);
  (f.template operator()<n - 1 - I>(std::get<n - 1 - I>(t)), ...);
}
template <class Tuple, class F>
void for_each_child_reverse(Tuple& t, F&& f) {
  for_each_child_reverse_impl(t, f, std::make_index_sequence<std::tuple_size_v<Tuple>>{});
}

/// Draws the layer's parameters at p from `rng` (the child's own stream), if it has any.
template <class L, class S>
void init_params(L& layer, S* p, RandomStream& rng, Init scheme) {
  if constexpr (requires { layer.init_params(p, rng, scheme); }) layer.init_params(p, rng, scheme);
}

/// Resets the layer's persistent state (running statistics, power-iteration vectors) from
/// its fresh parameters and `rng`, if it has any.
template <class L, class S>
void init_state(L& layer, S* p, RandomStream& rng) {
  if constexpr (requires { layer.init_state(p, rng); }) layer.init_state(p, rng);
}

/// Lets a layer refresh what it derives from its parameters after an optimizer step.
template <class L, class S>
void after_step(L& layer, S* p) {
  if constexpr (requires { layer.after_step(p); }) layer.after_step(p);
}

/// Calls f(leaf, state, count) for the layer's persistent state, or for every stateful
/// leaf inside a block; `leaf` is the depth-first leaf number, starting at `first`.
template <class L, class F>
void for_each_state(L& layer, std::size_t first, F& f) {
  if constexpr (Block<L>)
    layer.for_each_state(first, f);
  else if constexpr (requires {
                       layer.state();
                       layer.state_count;
                     })
    f(first, layer.state(), index_t(layer.state_count));
}

/// The cached-tangent pass of one child: a TangentLayer forms ty from the cached (x, y);
/// any other dual layer reruns forward_dual, which rewrites y with the same values (the
/// buffer is the caller's activation buffer, written by this layer's own forward).
template <class L, class S>
void forward_tangent(L& layer, const S* p, ConstBatchView<S> x, ConstBatchView<S> tx, ConstBatchView<S> y,
                     BatchView<S> ty, const Context& ctx) {
  if constexpr (TangentLayer<L>)
    layer.forward_tangent(p, x, tx, y, ty, ctx);
  else
    layer.forward_dual(p, x, tx, BatchView<S>(const_cast<S*>(y.data()), y.features(), y.batch()), ty, ctx);
}

} // namespace forgery::detail::hooks
