// Sequential<Input<...>, Layers...>: compile-time composition with shape inference, and
// Network<Spec, Backend>, the object that runs it with one parameter buffer, one gradient
// buffer and activation buffers that only grow.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "forgery/core/batch_view.hpp"
#include "forgery/core/concepts.hpp"
#include "forgery/core/config.hpp"
#include "forgery/core/error.hpp"
#include "forgery/core/philox.hpp"
#include "forgery/core/shape.hpp"
#include "forgery/layers/context.hpp"
#include "forgery/layers/init.hpp"

namespace forgery {

/// The first element of a Sequential: the per-sample shape of the input (N or C, H, W).
template <index_t... Dims>
struct Input {
  using shape = Shape<Dims...>;
};

namespace detail {

template <class T>
struct is_input : std::false_type {};
template <index_t... D>
struct is_input<Input<D...>> : std::true_type {};

template <class... T>
struct type_list {};

// Binds the layer spec at position Pos to its input shape. A non-layer is reported here,
// with Pos and the offending type in the instantiation trace.
template <std::size_t Pos, class L, class In>
struct checked_bind {
  static_assert(LayerSpec<L>, "fg::Sequential: an element after Input<...> is not a layer spec. A layer spec has a "
                              "nested `template <class In> struct bind` with `output_shape` and "
                              "`template <class Backend> using layer`; see example::Double in "
                              "forgery/core/concepts.hpp.");
  // After the assertion, bind a harmless stand-in so the compiler reports nothing else.
  using type = typename std::conditional_t<LayerSpec<L>, L, example::Double>::template bind<In>;
};

template <std::size_t Pos, class In, class... Ls>
struct chain {
  using output_shape = In;
  using binds = type_list<>;
};
template <std::size_t Pos, class In, class L, class... Rest>
struct chain<Pos, In, L, Rest...> {
  using bound = typename checked_bind<Pos, L, In>::type;
  using next = chain<Pos + 1, typename bound::output_shape, Rest...>;
  using output_shape = typename next::output_shape;
  template <class... T>
  static type_list<bound, T...> prepend(type_list<T...>);
  using binds = decltype(prepend(typename next::binds{}));
};

template <class Binds, class B>
struct layers_of;
template <class... Bs, class B>
struct layers_of<type_list<Bs...>, B> {
  using type = std::tuple<typename Bs::template layer<B>...>;
};

} // namespace detail

/// A network spec: an Input<...> followed by layer specs, each bound to the shape the
/// previous one produces. A spec is a type only; Network<Spec, Backend> runs it.
template <class InputT, class... Layers>
struct Sequential {
  static_assert(detail::is_input<InputT>::value,
                "fg::Sequential: the first element must be fg::Input<Dims...>, the per-sample input shape "
                "(e.g. fg::Input<784> or fg::Input<1, 28, 28>).");
  static_assert(sizeof...(Layers) >= 1, "fg::Sequential needs at least one layer after Input<...>.");
  using input_shape = typename InputT::shape;
  using output_shape = typename detail::chain<1, input_shape, Layers...>::output_shape;
  template <class B>
  using layers = typename detail::layers_of<typename detail::chain<1, input_shape, Layers...>::binds, B>::type;
};

namespace detail {
template <class T>
struct is_sequential : std::false_type {};
template <class I, class... L>
struct is_sequential<Sequential<I, L...>> : std::true_type {};
} // namespace detail

/// A network spec (fg::Sequential<...>).
template <class T>
concept NetworkSpec = detail::is_sequential<T>::value;

/// Which gradients a backward pass computes: parameter gradients (added into the gradient
/// buffer), the gradient with respect to the network's input, or both.
enum class Grad : unsigned { params = 1, input = 2, both = 3 };
[[nodiscard]] constexpr bool wants(Grad set, Grad g) noexcept {
  return (static_cast<unsigned>(set) & static_cast<unsigned>(g)) != 0;
}

/// A network spec run on a backend: owns one contiguous parameter buffer, one gradient
/// buffer, and the activations of the last batch. Forward keeps a pointer to the input:
/// the input must stay alive until the matching backward.
/// \tparam Spec an fg::Sequential<...>.
/// \tparam B the backend policy, e.g. fg::backend::Cpu<float>.
template <NetworkSpec Spec, Backend B>
class Network {
public:
  using spec = Spec;
  using backend = B;
  using scalar = typename B::scalar;
  using S = scalar;
  using layers_type = typename Spec::template layers<B>;
  using input_shape = typename Spec::input_shape;
  using output_shape = typename Spec::output_shape;
  template <class T>
  using buffer = typename B::template buffer<T>;

  static constexpr std::size_t depth = std::tuple_size_v<layers_type>;
  static constexpr index_t input_size = input_shape::size;
  static constexpr index_t output_size = output_shape::size;

private:
  template <class L>
  static constexpr index_t params_of() {
    if constexpr (requires { L::param_count; })
      return L::param_count;
    else
      return 0;
  }
  template <std::size_t... I>
  static constexpr std::array<index_t, depth + 1> make_offsets(std::index_sequence<I...>) {
    std::array<index_t, depth + 1> o{};
    const index_t counts[] = {params_of<std::tuple_element_t<I, layers_type>>()...};
    for (std::size_t i = 0; i < depth; ++i) o[i + 1] = o[i] + counts[i];
    return o;
  }
  template <std::size_t... I>
  static constexpr std::array<index_t, depth + 1> make_widths(std::index_sequence<I...>) {
    return {input_size, std::tuple_element_t<I, layers_type>::output_shape::size...};
  }
  template <class L>
  static constexpr index_t classes_of() {
    if constexpr (requires { L::label_classes; })
      return L::label_classes;
    else
      return 0;
  }
  template <std::size_t... I>
  static constexpr index_t max_classes(std::index_sequence<I...>) {
    index_t m = 0;
    ((m = classes_of<std::tuple_element_t<I, layers_type>>() > m ? classes_of<std::tuple_element_t<I, layers_type>>()
                                                                 : m),
     ...);
    return m;
  }
  template <std::size_t... I>
  static constexpr bool any_batch_statistics(std::index_sequence<I...>) {
    return ([] {
      using L = std::tuple_element_t<I, layers_type>;
      if constexpr (requires { L::batch_statistics; })
        return bool(L::batch_statistics);
      else
        return false;
    }() || ...);
  }
  template <std::size_t... I>
  static constexpr bool all_dual(std::index_sequence<I...>) {
    return (DualLayer<std::tuple_element_t<I, layers_type>> && ...);
  }

public:
  /// Offsets of each layer's slice in the parameter buffer (and gradient buffer).
  static constexpr std::array<index_t, depth + 1> param_offsets = make_offsets(std::make_index_sequence<depth>{});
  /// Features per sample at each layer boundary (0: input, depth: output).
  static constexpr std::array<index_t, depth + 1> widths = make_widths(std::make_index_sequence<depth>{});
  static constexpr index_t param_count = param_offsets[depth];
  /// Number of classes the network conditions on (0: unconditional); its passes then need
  /// labels (set_labels).
  static constexpr index_t label_classes = max_classes(std::make_index_sequence<depth>{});
  /// Whether a layer normalises with statistics of the whole batch in train mode
  /// (BatchNorm), so that a sample's output depends on the others in its batch.
  static constexpr bool uses_batch_statistics = any_batch_statistics(std::make_index_sequence<depth>{});
  /// Whether every layer supports the tangent pass (needed by input-gradient penalties).
  static constexpr bool supports_dual = all_dual(std::make_index_sequence<depth>{});

  Network() {
    params_.resize(param_count);
    grads_.resize(param_count);
  }

  /// Draws every layer's weights from Philox stream (seed, stream) and zeroes biases and
  /// gradients. The same (seed, stream, scheme) always gives the same weights.
  void initialize(std::uint64_t seed, Init scheme = Init::glorot_uniform, std::uint64_t stream = 0) {
    const RandomStream base{seed, stream, 0};
    for_each_layer([&]<std::size_t I>(auto& layer) {
      if constexpr (requires { layer.init_params(params_.data(), std::declval<RandomStream&>(), scheme); }) {
        RandomStream rng = base.substream(I);
        layer.init_params(params_.data() + param_offsets[I], rng, scheme);
      }
      // Layers with state (BatchNorm's running statistics, SpectralNorm's vectors) reset it
      // from the fresh parameters and a stream of their own.
      if constexpr (requires { layer.init_state(params_.data(), std::declval<RandomStream&>()); }) {
        RandomStream rng = base.substream(depth + I);
        layer.init_state(params_.data() + param_offsets[I], rng);
      }
    });
    zero_grad();
  }

  void zero_grad() {
    if constexpr (param_count > 0) B::fill(param_count, grads_.data(), S(0));
  }

  void train() noexcept { ctx_.mode = Mode::train; }
  void eval() noexcept { ctx_.mode = Mode::eval; }
  [[nodiscard]] Mode mode() const noexcept { return ctx_.mode; }
  /// The random stream layers such as Dropout draw from (owned by the caller).
  void set_random_stream(RandomStream* rng) noexcept { ctx_.rng = rng; }
  /// Class labels for conditional layers: sample j of every following pass has class
  /// labels[j] (the array must hold at least as many labels as the batch; owned by the caller).
  void set_labels(const std::int32_t* labels, index_t count) noexcept {
    ctx_.labels = labels;
    ctx_.label_count = count;
  }
  /// Following train-mode passes normalise batch statistics (BatchNorm) over `groups`
  /// consecutive equal parts of the batch separately, as separate passes over each part
  /// would (1: the whole batch). The batch of a pass must divide into them.
  void set_statistics_groups(index_t groups) noexcept { ctx_.statistics_groups = groups; }

  /// Lets layers with state derived from the parameters refresh it after the parameters
  /// changed (an optimizer step): SpectralNorm's power iteration runs here, once per step.
  void after_step() {
    for_each_layer([&]<std::size_t I>(auto& layer) {
      if constexpr (requires { layer.after_step(params_.data()); }) layer.after_step(params_.data() + param_offsets[I]);
    });
  }

  /// Calls f(layer_index, S* state, index_t count) for each layer with persistent
  /// non-parameter state (BatchNorm's running statistics, SpectralNorm's singular vectors):
  /// what a checkpoint saves beside the parameters.
  template <class F>
  void for_each_state(F&& f) {
    for_each_layer([&]<std::size_t I>(auto& layer) {
      if constexpr (requires {
                      layer.state();
                      layer.state_count;
                    })
        f(I, layer.state(), index_t(layer.state_count));
    });
  }

  /// Runs the network on a features x batch input; returns a view of the output, valid
  /// until the next forward.
  ConstBatchView<S> forward(ConstBatchView<S> x) {
    begin(x, "forward");
    S* const p = params_.data();
    for_each_layer([&]<std::size_t I>(auto& layer) {
      layer.forward(p + param_offsets[I], in_view<I>(), act_view<I + 1>(), ctx_);
    });
    return out_view();
  }

  /// Back-propagates dL/dy (output shape x batch of the last forward): adds dL/dtheta into
  /// the gradient buffer (Grad::params) and returns dL/dx (Grad::input; empty otherwise).
  ConstBatchView<S> backward(ConstBatchView<S> dy, Grad want = Grad::both) {
    check_upstream(dy, "backward");
    const bool input_gradient = wants(want, Grad::input);
    S* const p = params_.data();
    S* const g = wants(want, Grad::params) ? grads_.data() : nullptr;
    for_each_layer_reverse([&]<std::size_t I>(auto& layer) {
      const ConstBatchView<S> up = I + 1 == depth ? dy : ConstBatchView<S>(view(dbuf_[I + 1], I + 1));
      const BatchView<S> down = (I == 0 && !input_gradient) ? BatchView<S>{} : view(dbuf_[I], I);
      layer.backward(p + param_offsets[I], g ? g + param_offsets[I] : nullptr, in_view<I>(), act_view<I + 1>(), up,
                     down);
    });
    return input_gradient ? ConstBatchView<S>(view(dbuf_[0], 0)) : ConstBatchView<S>{};
  }

  /// Forward pass carrying a tangent: returns (y, ty) with ty = J(x) tx, the directional
  /// derivative of the network along tx.
  std::pair<ConstBatchView<S>, ConstBatchView<S>> forward_dual(ConstBatchView<S> x, ConstBatchView<S> tx) {
    static_assert(supports_dual, "fg::Network::forward_dual: a layer of this network has no tangent pass "
                                 "(forward_dual/backward_dual); replace it (BatchNorm: use LayerNorm or no norm).");
    begin(x, "forward_dual");
    return tangent_pass<false>(tx, "forward_dual");
  }

  /// The tangent pass of the last forward(x): returns (y, ty) with ty = J(x) tx, reusing the
  /// activations that forward cached (a backward in between keeps them) instead of
  /// recomputing them. Layers without forward_tangent (TangentLayer) run forward_dual, which
  /// rewrites the same values. Same results as forward_dual(x, tx).
  std::pair<ConstBatchView<S>, ConstBatchView<S>> forward_tangent(ConstBatchView<S> tx) {
    static_assert(supports_dual, "fg::Network::forward_tangent: a layer of this network has no tangent pass "
                                 "(forward_dual/backward_dual); replace it (BatchNorm: use LayerNorm or no norm).");
    if (batch_ == 0 || x_ == nullptr) throw error("forgery: Network::forward_tangent called before a forward pass");
    return tangent_pass<true>(tx, "forward_tangent");
  }

  /// Back-propagates (dQ/dy, dQ/dty) of an objective Q(y, ty) through the tangent pass:
  /// adds dQ/dtheta into the gradient buffer (Grad::params) and returns (dQ/dx, dQ/dtx)
  /// (Grad::input).
  std::pair<ConstBatchView<S>, ConstBatchView<S>> backward_dual(ConstBatchView<S> gy, ConstBatchView<S> gty,
                                                                Grad want = Grad::both) {
    static_assert(supports_dual, "fg::Network::backward_dual: a layer of this network has no tangent pass.");
    check_upstream(gy, "backward_dual");
    check_upstream(gty, "backward_dual");
    const bool input_gradient = wants(want, Grad::input);
    S* const p = params_.data();
    S* const g = wants(want, Grad::params) ? grads_.data() : nullptr;
    for_each_layer_reverse([&]<std::size_t I>(auto& layer) {
      const bool top = I + 1 == depth;
      const ConstBatchView<S> gup = top ? gy : ConstBatchView<S>(view(gbuf_[I + 1], I + 1));
      const ConstBatchView<S> gtup = top ? gty : ConstBatchView<S>(view(gtbuf_[I + 1], I + 1));
      const bool skip = I == 0 && !input_gradient;
      const ConstBatchView<S> t_in = I == 0 ? ConstBatchView<S>(tx_, input_size, batch_) : view(tbuf_[I], I);
      layer.backward_dual(p + param_offsets[I], g ? g + param_offsets[I] : nullptr, in_view<I>(), t_in,
                          act_view<I + 1>(), view(tbuf_[I + 1], I + 1), gup, gtup,
                          skip ? BatchView<S>{} : view(gbuf_[I], I), skip ? BatchView<S>{} : view(gtbuf_[I], I));
    });
    if (!input_gradient) return {};
    return {ConstBatchView<S>(view(gbuf_[0], 0)), ConstBatchView<S>(view(gtbuf_[0], 0))};
  }

  [[nodiscard]] S* params() noexcept { return params_.data(); }
  [[nodiscard]] const S* params() const noexcept { return params_.data(); }
  [[nodiscard]] S* grads() noexcept { return grads_.data(); }
  [[nodiscard]] const S* grads() const noexcept { return grads_.data(); }
  [[nodiscard]] buffer<S>& param_buffer() noexcept { return params_; }
  [[nodiscard]] const buffer<S>& param_buffer() const noexcept { return params_; }
  [[nodiscard]] buffer<S>& grad_buffer() noexcept { return grads_; }
  /// The activations at layer boundary `b` of the last forward pass (0: the input, depth:
  /// the output), e.g. a classifier's penultimate features for Frechet distance.
  [[nodiscard]] ConstBatchView<S> activation(std::size_t b) {
    if (b > depth)
      throw config_error("Network::activation boundary", std::to_string(b), "at most " + std::to_string(depth));
    if (b == 0) return ConstBatchView<S>(x_, input_size, batch_);
    return view(abuf_[b], b);
  }
  /// Batch size of the last forward pass.
  [[nodiscard]] index_t batch() const noexcept { return batch_; }

  template <std::size_t I>
  [[nodiscard]] auto& layer() noexcept {
    return std::get<I>(layers_);
  }
  /// Layer I's parameters as a pointer into the parameter buffer.
  template <std::size_t I>
  [[nodiscard]] S* layer_params() noexcept {
    return params_.data() + param_offsets[I];
  }

private:
  template <class F, std::size_t... I>
  void for_each_layer_impl(F&& f, std::index_sequence<I...>) {
    (f.template operator()<I>(std::get<I>(layers_)), ...);
  }
  template <class F>
  void for_each_layer(F&& f) {
    for_each_layer_impl(f, std::make_index_sequence<depth>{});
  }
  template <class F, std::size_t... I>
  void for_each_layer_reverse_impl(F&& f, std::index_sequence<I...>) {
    (f.template operator()<depth - 1 - I>(std::get<depth - 1 - I>(layers_)), ...);
  }
  template <class F>
  void for_each_layer_reverse(F&& f) {
    for_each_layer_reverse_impl(f, std::make_index_sequence<depth>{});
  }

  static std::string shape_string(index_t f, index_t n) {
    return std::to_string(f) + " x " + std::to_string(n) + " (features x batch)";
  }

  // The tangent through every layer on the input set by begin (batch_, x_): with Cached,
  // TangentLayers form ty from the cached activations and the others rerun forward_dual.
  template <bool Cached>
  std::pair<ConstBatchView<S>, ConstBatchView<S>> tangent_pass(ConstBatchView<S> tx, const char* what) {
    if (tx.features() != input_size || tx.batch() != batch_)
      throw shape_error(std::string("Network::") + what + " tangent", shape_string(input_size, batch_),
                        shape_string(tx.features(), tx.batch()));
    ensure_dual();
    tx_ = tx.data();
    S* const p = params_.data();
    for_each_layer([&]<std::size_t I>(auto& layer) {
      const ConstBatchView<S> t_in = I == 0 ? ConstBatchView<S>(tx_, input_size, batch_) : view(tbuf_[I], I);
      if constexpr (Cached && TangentLayer<std::remove_cvref_t<decltype(layer)>>)
        layer.forward_tangent(p + param_offsets[I], in_view<I>(), t_in, ConstBatchView<S>(act_view<I + 1>()),
                              view(tbuf_[I + 1], I + 1), ctx_);
      else
        layer.forward_dual(p + param_offsets[I], in_view<I>(), t_in, act_view<I + 1>(), view(tbuf_[I + 1], I + 1),
                           ctx_);
    });
    return {out_view(), ConstBatchView<S>(view(tbuf_[depth], depth))};
  }

  void begin(ConstBatchView<S> x, const char* what) {
    if (x.features() != input_size || x.batch() <= 0 || x.data() == nullptr)
      throw shape_error(std::string("Network::") + what + " input", shape_string(input_size, x.batch()) + ", batch > 0",
                        shape_string(x.features(), x.batch()));
    ensure(x.batch());
    x_ = x.data();
  }

  void check_upstream(ConstBatchView<S> d, const char* what) const {
    if (batch_ == 0) throw error(std::string("forgery: Network::") + what + " called before a forward pass");
    if (d.features() != output_size || d.batch() != batch_)
      throw shape_error(std::string("Network::") + what + " upstream gradient", shape_string(output_size, batch_),
                        shape_string(d.features(), d.batch()));
  }

  void ensure(index_t n) {
    batch_ = n;
    if (n <= capacity_) return;
    capacity_ = n;
    for (std::size_t b = 0; b <= depth; ++b) {
      if (b > 0) abuf_[b].resize(widths[b] * n);
      dbuf_[b].resize(widths[b] * n);
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
    for (std::size_t b = 0; b <= depth; ++b) {
      if (b > 0) tbuf_[b].resize(widths[b] * capacity_);
      gbuf_[b].resize(widths[b] * capacity_);
      gtbuf_[b].resize(widths[b] * capacity_);
    }
  }

  BatchView<S> view(buffer<S>& b, std::size_t boundary) noexcept {
    return BatchView<S>(b.data(), widths[boundary], batch_);
  }
  template <std::size_t I>
  ConstBatchView<S> in_view() noexcept {
    if constexpr (I == 0)
      return ConstBatchView<S>(x_, input_size, batch_);
    else
      return view(abuf_[I], I);
  }
  template <std::size_t I>
  BatchView<S> act_view() noexcept {
    return view(abuf_[I], I);
  }
  ConstBatchView<S> out_view() noexcept { return view(abuf_[depth], depth); }

  layers_type layers_{};
  buffer<S> params_, grads_;
  std::array<buffer<S>, depth + 1> abuf_{}, dbuf_{}, tbuf_{}, gbuf_{}, gtbuf_{};
  const S* x_ = nullptr;
  const S* tx_ = nullptr;
  index_t batch_ = 0;
  index_t capacity_ = 0;
  bool dual_ready_ = false;
  Context ctx_{};
};

} // namespace forgery
