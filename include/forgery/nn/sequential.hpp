// Sequential<Input<...>, Layers...>: compile-time composition with shape inference;
// detail::SequentialLayer, the block that runs a chain of layers (also nested inside
// another network); and Network<Spec, Backend>, which owns the one parameter buffer, the
// one gradient buffer and the context, and runs the outermost chain.
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
#include "forgery/nn/layer_hooks.hpp"

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

template <std::size_t Pos, class In, class List>
struct chain_of;
template <std::size_t Pos, class In, class... Ls>
struct chain_of<Pos, In, type_list<Ls...>> : chain<Pos, In, Ls...> {};

template <class Binds, class B>
struct layers_of;
template <class... Bs, class B>
struct layers_of<type_list<Bs...>, B> {
  using type = std::tuple<typename Bs::template layer<B>...>;
};

} // namespace detail

namespace detail {

// The elements of a Sequential: an optional leading Input<...> and the layer specs.
template <class First, class... Rest>
struct sequential_parts {
  static constexpr bool has_input = false;
  using declared_input = void;
  using layers = type_list<First, Rest...>;
};
template <index_t... D, class... Rest>
struct sequential_parts<Input<D...>, Rest...> {
  static constexpr bool has_input = true;
  using declared_input = Shape<D...>;
  using layers = type_list<Rest...>;
};

/// Instantiated where a block's expected input shape and the arriving shape differ, so that
/// both appear in the compiler's trace as the template arguments Declared and Arriving.
template <class Declared, class Arriving>
struct nested_input_must_match {
  static_assert(std::is_same_v<Declared, Arriving>,
                "fg::Sequential nested in a network: its Input<...> (Declared) is not the shape that arrives there "
                "(Arriving); both are the arguments of nested_input_must_match<Declared, Arriving> in this trace. "
                "Drop the nested Input<...> so the block takes the arriving shape, or insert a layer before the "
                "block that produces Declared (fg::Reshape, fg::Flatten, a convolution).");
  static constexpr bool value = std::is_same_v<Declared, Arriving>;
};

template <bool Check, class Declared, class Arriving>
struct nested_input_check : std::true_type {};
template <class Declared, class Arriving>
struct nested_input_check<true, Declared, Arriving>
    : std::bool_constant<nested_input_must_match<Declared, Arriving>::value> {};

template <class B, class In, class Binds>
class SequentialLayer;

// A Sequential that declares its input shape also gives its output shape and layers.
template <bool HasInput, class Parts>
struct sequential_shapes {};
template <class Parts>
struct sequential_shapes<true, Parts> {
  using input_shape = typename Parts::declared_input;
  using output_shape = typename chain_of<1, input_shape, typename Parts::layers>::output_shape;
  template <class B>
  using layers = typename layers_of<typename chain_of<1, input_shape, typename Parts::layers>::binds, B>::type;
};

} // namespace detail

/// A network spec: an Input<...> followed by layer specs, each bound to the shape the
/// previous one produces. A spec is a type only; Network<Spec, Backend> runs it.
///
/// A Sequential is itself a layer spec, so it can appear inside another Sequential or a
/// block such as fg::Residual. Nested, the leading Input<...> may be left out: the block
/// then takes the shape that arrives (`fg::Sequential<fg::Conv2d<64, 3, 1, 1>, fg::ReLU>`);
/// with an Input<...>, that shape must be the arriving one (checked at compile time).
template <class First, class... Rest>
struct Sequential : detail::sequential_shapes<detail::sequential_parts<First, Rest...>::has_input,
                                              detail::sequential_parts<First, Rest...>> {
private:
  using parts = detail::sequential_parts<First, Rest...>;
  static constexpr std::size_t first_position = parts::has_input ? 1 : 0;

public:
  /// Whether the spec declares its input shape (required of a Network's outermost spec).
  static constexpr bool has_input = parts::has_input;
  static_assert(!has_input || sizeof...(Rest) >= 1, "fg::Sequential needs at least one layer after Input<...>.");

  template <class In>
  struct bind {
    static_assert(detail::nested_input_check<has_input, typename parts::declared_input, In>::value);
    using chain = detail::chain_of<first_position, In, typename parts::layers>;
    using output_shape = typename chain::output_shape;
    template <class B>
    using layer = detail::SequentialLayer<B, In, typename chain::binds>;
  };
};

namespace detail {
template <class T>
struct is_sequential : std::false_type {};
template <class F, class... L>
struct is_sequential<Sequential<F, L...>> : std::true_type {};
} // namespace detail

/// A network spec (fg::Sequential<...>).
template <class T>
concept NetworkSpec = detail::is_sequential<T>::value;

namespace detail {

/// A chain of bound layers run one after the other: the block behind every Sequential,
/// the outermost one of a Network included. It owns the activation, gradient and tangent
/// buffers of its inner boundaries (1 .. depth - 1; the caller owns its input and output),
/// which grow to the largest batch seen and never shrink. Children read their parameters
/// at `param_offsets` inside the block's slice; a block has the tangent pass exactly when
/// every child has one.
template <class B, class In, class... Bound>
class SequentialLayer<B, In, type_list<Bound...>> {
public:
  using backend = B;
  using scalar = typename B::scalar;
  using S = scalar;
  using children_type = std::tuple<typename Bound::template layer<B>...>;
  using input_shape = In;
  using output_shape = typename std::tuple_element_t<sizeof...(Bound) - 1, children_type>::output_shape;
  template <class T>
  using buffer = typename B::template buffer<T>;
  static constexpr const char* name = "Sequential";
  static constexpr std::size_t depth = sizeof...(Bound);

private:
  using traits = hooks::tuple_traits<children_type>;

public:
  static constexpr std::array<index_t, depth + 1> param_offsets = traits::param_offsets;
  static constexpr std::array<index_t, depth + 1> widths = {In::size, Bound::output_shape::size...};
  static constexpr index_t param_count = param_offsets[depth];
  static constexpr index_t label_classes = traits::max_classes;
  static constexpr bool batch_statistics = traits::any_batch_statistics;
  static constexpr std::size_t leaf_count = traits::leaf_offsets[depth];
  static constexpr bool dual = traits::all_dual;

  // Child I draws its parameters from rng.substream(I) and its state from
  // rng.substream(depth + I): for a Network's outermost chain these are the streams a flat
  // network has always used, so flat networks keep their initial weights.
  void init_params(S* p, RandomStream& rng, Init scheme) {
    hooks::for_each_child(layers_, [&]<std::size_t I>(auto& layer) {
      RandomStream child = rng.substream(I);
      hooks::init_params(layer, p + param_offsets[I], child, scheme);
    });
  }
  void init_state(S* p, RandomStream& rng) {
    hooks::for_each_child(layers_, [&]<std::size_t I>(auto& layer) {
      RandomStream child = rng.substream(depth + I);
      hooks::init_state(layer, p + param_offsets[I], child);
    });
  }
  void after_step(S* p) {
    hooks::for_each_child(layers_, [&]<std::size_t I>(auto& layer) { hooks::after_step(layer, p + param_offsets[I]); });
  }
  template <class F>
  void for_each_state(std::size_t first, F& f) {
    hooks::for_each_child(
        layers_, [&]<std::size_t I>(auto& layer) { hooks::for_each_state(layer, first + traits::leaf_offsets[I], f); });
  }

  void forward(const S* p, ConstBatchView<S> x, BatchView<S> y, const Context& ctx) {
    const index_t n = x.batch();
    ensure(n);
    hooks::for_each_child(layers_, [&]<std::size_t I>(auto& layer) {
      layer.forward(p + param_offsets[I], in<I>(x), out<I + 1>(y), ctx);
    });
  }

  void backward(const S* p, S* g, ConstBatchView<S> x, ConstBatchView<S> y, ConstBatchView<S> dy, BatchView<S> dx) {
    if (g == nullptr && dx.empty()) return;
    const index_t n = x.batch();
    hooks::for_each_child_reverse(layers_, [&]<std::size_t I>(auto& layer) {
      const ConstBatchView<S> up = I + 1 == depth ? dy : ConstBatchView<S>(view(dbuf_, I + 1, n));
      const BatchView<S> down = I == 0 ? dx : view(dbuf_, I, n);
      layer.backward(p + param_offsets[I], g ? g + param_offsets[I] : nullptr, in<I>(x), out<I + 1>(y), up, down);
    });
  }

  void forward_dual(const S* p, ConstBatchView<S> x, ConstBatchView<S> tx, BatchView<S> y, BatchView<S> ty,
                    const Context& ctx) requires dual {
    const index_t n = x.batch();
    ensure(n);
    ensure_dual();
    hooks::for_each_child(layers_, [&]<std::size_t I>(auto& layer) {
      layer.forward_dual(p + param_offsets[I], in<I>(x), tan_in<I>(tx), out<I + 1>(y), tan_out<I + 1>(ty), ctx);
    });
  }

  // The tangent of the last forward(x): children form it from the activations that forward
  // cached (see hooks::forward_tangent).
  void forward_tangent(const S* p, ConstBatchView<S> x, ConstBatchView<S> tx, ConstBatchView<S> y, BatchView<S> ty,
                       const Context& ctx) requires dual {
    ensure_dual();
    hooks::for_each_child(layers_, [&]<std::size_t I>(auto& layer) {
      hooks::forward_tangent(layer, p + param_offsets[I], in<I>(x), tan_in<I>(tx), out<I + 1>(y), tan_out<I + 1>(ty),
                             ctx);
    });
  }

  void backward_dual(const S* p, S* g, ConstBatchView<S> x, ConstBatchView<S> tx, ConstBatchView<S> y,
                     ConstBatchView<S> ty, ConstBatchView<S> gy, ConstBatchView<S> gty, BatchView<S> gx,
                     BatchView<S> gtx) requires dual {
    if (g == nullptr && gx.empty() && gtx.empty()) return;
    const index_t n = x.batch();
    hooks::for_each_child_reverse(layers_, [&]<std::size_t I>(auto& layer) {
      constexpr bool top = I + 1 == depth;
      const ConstBatchView<S> gup = top ? gy : ConstBatchView<S>(view(gbuf_, I + 1, n));
      const ConstBatchView<S> gtup = top ? gty : ConstBatchView<S>(view(gtbuf_, I + 1, n));
      layer.backward_dual(p + param_offsets[I], g ? g + param_offsets[I] : nullptr, in<I>(x), tan_in<I>(tx),
                          out<I + 1>(y), tan_out<I + 1>(ty), gup, gtup, I == 0 ? gx : view(gbuf_, I, n),
                          I == 0 ? gtx : view(gtbuf_, I, n));
    });
  }

  template <std::size_t I>
  [[nodiscard]] auto& layer() noexcept {
    return std::get<I>(layers_);
  }
  template <std::size_t I>
  [[nodiscard]] const auto& layer() const noexcept {
    return std::get<I>(layers_);
  }
  /// The activations at inner boundary b (0 < b < depth) of the last forward of batch n.
  [[nodiscard]] ConstBatchView<S> boundary(std::size_t b, index_t n) noexcept { return view(abuf_, b, n); }

private:
  BatchView<S> view(std::array<buffer<S>, depth + 1>& bufs, std::size_t b, index_t n) noexcept {
    return BatchView<S>(bufs[b].data(), widths[b], n);
  }
  // Boundary I's values: the caller's input at 0, the caller's output at depth, a buffer
  // of the block's own in between (same for tangents).
  template <std::size_t I>
  ConstBatchView<S> in(ConstBatchView<S> x) noexcept {
    if constexpr (I == 0)
      return x;
    else
      return view(abuf_, I, x.batch());
  }
  template <std::size_t I, class V>
  V out(V y) noexcept {
    if constexpr (I == depth)
      return y;
    else
      return view(abuf_, I, y.batch());
  }
  template <std::size_t I>
  ConstBatchView<S> tan_in(ConstBatchView<S> tx) noexcept {
    if constexpr (I == 0)
      return tx;
    else
      return view(tbuf_, I, tx.batch());
  }
  template <std::size_t I, class V>
  V tan_out(V ty) noexcept {
    if constexpr (I == depth)
      return ty;
    else
      return view(tbuf_, I, ty.batch());
  }

  void ensure(index_t n) {
    if (n <= capacity_) return;
    capacity_ = n;
    for (std::size_t b = 1; b < depth; ++b) {
      abuf_[b].resize(widths[b] * n);
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
    for (std::size_t b = 1; b < depth; ++b) {
      tbuf_[b].resize(widths[b] * capacity_);
      gbuf_[b].resize(widths[b] * capacity_);
      gtbuf_[b].resize(widths[b] * capacity_);
    }
  }

  children_type layers_{};
  std::array<buffer<S>, depth + 1> abuf_{}, dbuf_{}, tbuf_{}, gbuf_{}, gtbuf_{};
  index_t capacity_ = 0;
  bool dual_ready_ = false;
};

// What a Network of a spec without Input<...> is built from after the assertion that
// reports it, so that nothing else is reported.
using stub_spec = Sequential<Input<1>, example::Double>;

} // namespace detail

/// Which gradients a backward pass computes: parameter gradients (added into the gradient
/// buffer), the gradient with respect to the network's input, or both.
enum class Grad : unsigned { params = 1, input = 2, both = 3 };
[[nodiscard]] constexpr bool wants(Grad set, Grad g) noexcept {
  return (static_cast<unsigned>(set) & static_cast<unsigned>(g)) != 0;
}

/// A network spec run on a backend: owns one contiguous parameter buffer, one gradient
/// buffer, and the activations of the last batch. Forward keeps a pointer to the input:
/// the input must stay alive until the matching backward.
/// \tparam Spec an fg::Sequential<Input<...>, ...>.
/// \tparam B the backend policy, e.g. fg::backend::Cpu<float>.
template <NetworkSpec Spec, Backend B>
class Network {
  static_assert(Spec::has_input,
                "fg::Network: the outermost fg::Sequential must begin with fg::Input<Dims...>, the per-sample input "
                "shape (e.g. fg::Input<784> or fg::Input<1, 28, 28>); a Sequential without Input<...> is a block "
                "that takes its shape from where it is nested.");
  using spec_or_stub = std::conditional_t<Spec::has_input, Spec, detail::stub_spec>;

public:
  using spec = Spec;
  using backend = B;
  using scalar = typename B::scalar;
  using S = scalar;
  /// The outermost chain of layers (a detail::SequentialLayer).
  using root_type = typename spec_or_stub::template bind<typename spec_or_stub::input_shape>::template layer<B>;
  using layers_type = typename root_type::children_type;
  using input_shape = typename spec_or_stub::input_shape;
  using output_shape = typename root_type::output_shape;
  template <class T>
  using buffer = typename B::template buffer<T>;

  static constexpr std::size_t depth = root_type::depth;
  static constexpr index_t input_size = input_shape::size;
  static constexpr index_t output_size = output_shape::size;

  /// Offsets of each (outermost) layer's slice in the parameter buffer (and gradient buffer);
  /// a block's slice holds its children's, in order.
  static constexpr std::array<index_t, depth + 1> param_offsets = root_type::param_offsets;
  /// Features per sample at each layer boundary (0: input, depth: output).
  static constexpr std::array<index_t, depth + 1> widths = root_type::widths;
  static constexpr index_t param_count = root_type::param_count;
  /// Number of classes the network conditions on (0: unconditional); its passes then need
  /// labels (set_labels).
  static constexpr index_t label_classes = root_type::label_classes;
  /// Whether a layer normalises with statistics of the whole batch in train mode
  /// (BatchNorm), so that a sample's output depends on the others in its batch.
  static constexpr bool uses_batch_statistics = root_type::batch_statistics;
  /// Whether every layer supports the tangent pass (needed by input-gradient penalties).
  static constexpr bool supports_dual = root_type::dual;
  /// Leaf layers at any depth of nesting: the numbers for_each_state passes run below it.
  static constexpr std::size_t leaf_count = root_type::leaf_count;

  Network() {
    params_.resize(param_count);
    grads_.resize(param_count);
  }

  /// Draws every layer's weights from Philox stream (seed, stream) and zeroes biases and
  /// gradients. The same (seed, stream, scheme) always gives the same weights.
  void initialize(std::uint64_t seed, Init scheme = Init::glorot_uniform, std::uint64_t stream = 0) {
    RandomStream base{seed, stream, 0};
    root_.init_params(params_.data(), base, scheme);
    // Layers with state (BatchNorm's running statistics, SpectralNorm's vectors) reset it
    // from the fresh parameters and a stream of their own.
    root_.init_state(params_.data(), base);
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
  /// changed (an optimizer step): SpectralNorm's power iteration runs here, once per step,
  /// at every depth of nesting.
  void after_step() { root_.after_step(params_.data()); }

  /// Calls f(leaf, S* state, index_t count) for each layer with persistent non-parameter
  /// state (BatchNorm's running statistics, SpectralNorm's singular vectors), at any depth
  /// of nesting: what a checkpoint saves beside the parameters. `leaf` is the layer's
  /// number in depth-first order over leaf layers (a flat network's layer index).
  template <class F>
  void for_each_state(F&& f) {
    root_.for_each_state(0, f);
  }

  /// Runs the network on a features x batch input; returns a view of the output, valid
  /// until the next forward.
  ConstBatchView<S> forward(ConstBatchView<S> x) {
    begin(x, "forward");
    root_.forward(params_.data(), x, out_view(), ctx_);
    return out_view();
  }

  /// Back-propagates dL/dy (output shape x batch of the last forward): adds dL/dtheta into
  /// the gradient buffer (Grad::params) and returns dL/dx (Grad::input; empty otherwise).
  ConstBatchView<S> backward(ConstBatchView<S> dy, Grad want = Grad::both) {
    check_upstream(dy, "backward");
    const bool input_gradient = wants(want, Grad::input);
    root_.backward(params_.data(), wants(want, Grad::params) ? grads_.data() : nullptr, in_view(), out_view(), dy,
                   input_gradient ? view(dx_, 0) : BatchView<S>{});
    return input_gradient ? ConstBatchView<S>(view(dx_, 0)) : ConstBatchView<S>{};
  }

  /// Forward pass carrying a tangent: returns (y, ty) with ty = J(x) tx, the directional
  /// derivative of the network along tx.
  std::pair<ConstBatchView<S>, ConstBatchView<S>> forward_dual(ConstBatchView<S> x, ConstBatchView<S> tx) {
    static_assert(supports_dual, "fg::Network::forward_dual: a layer of this network has no tangent pass "
                                 "(forward_dual/backward_dual); replace it (BatchNorm: use LayerNorm or no norm).");
    begin(x, "forward_dual");
    check_tangent(tx, "forward_dual");
    root_.forward_dual(params_.data(), x, tx, out_view(), view(ty_, depth), ctx_);
    return {out_view(), ConstBatchView<S>(view(ty_, depth))};
  }

  /// The tangent pass of the last forward(x): returns (y, ty) with ty = J(x) tx, reusing the
  /// activations that forward cached (a backward in between keeps them) instead of
  /// recomputing them. Layers without forward_tangent (TangentLayer) run forward_dual, which
  /// rewrites the same values. Same results as forward_dual(x, tx).
  std::pair<ConstBatchView<S>, ConstBatchView<S>> forward_tangent(ConstBatchView<S> tx) {
    static_assert(supports_dual, "fg::Network::forward_tangent: a layer of this network has no tangent pass "
                                 "(forward_dual/backward_dual); replace it (BatchNorm: use LayerNorm or no norm).");
    if (batch_ == 0 || x_ == nullptr) throw error("forgery: Network::forward_tangent called before a forward pass");
    check_tangent(tx, "forward_tangent");
    root_.forward_tangent(params_.data(), in_view(), tx, out_view(), view(ty_, depth), ctx_);
    return {out_view(), ConstBatchView<S>(view(ty_, depth))};
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
    root_.backward_dual(params_.data(), wants(want, Grad::params) ? grads_.data() : nullptr, in_view(),
                        ConstBatchView<S>(tx_, input_size, batch_), out_view(), view(ty_, depth), gy, gty,
                        input_gradient ? view(gx_, 0) : BatchView<S>{},
                        input_gradient ? view(gtx_, 0) : BatchView<S>{});
    if (!input_gradient) return {};
    return {ConstBatchView<S>(view(gx_, 0)), ConstBatchView<S>(view(gtx_, 0))};
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
    if (b == 0) return in_view();
    if (b == depth) return out_view();
    return root_.boundary(b, batch_);
  }
  /// Batch size of the last forward pass.
  [[nodiscard]] index_t batch() const noexcept { return batch_; }

  /// Outermost layer I (a block such as a nested Sequential or Residual gives access to its
  /// own children through its layer<J>()).
  template <std::size_t I>
  [[nodiscard]] auto& layer() noexcept {
    return root_.template layer<I>();
  }
  template <std::size_t I>
  [[nodiscard]] const auto& layer() const noexcept {
    return root_.template layer<I>();
  }
  /// Layer I's parameters as a pointer into the parameter buffer.
  template <std::size_t I>
  [[nodiscard]] S* layer_params() noexcept {
    return params_.data() + param_offsets[I];
  }

private:
  static std::string shape_string(index_t f, index_t n) {
    return std::to_string(f) + " x " + std::to_string(n) + " (features x batch)";
  }

  void begin(ConstBatchView<S> x, const char* what) {
    if (x.features() != input_size || x.batch() <= 0 || x.data() == nullptr)
      throw shape_error(std::string("Network::") + what + " input", shape_string(input_size, x.batch()) + ", batch > 0",
                        shape_string(x.features(), x.batch()));
    ensure(x.batch());
    x_ = x.data();
  }

  void check_tangent(ConstBatchView<S> tx, const char* what) {
    if (tx.features() != input_size || tx.batch() != batch_)
      throw shape_error(std::string("Network::") + what + " tangent", shape_string(input_size, batch_),
                        shape_string(tx.features(), tx.batch()));
    ensure_dual();
    tx_ = tx.data();
  }

  void check_upstream(ConstBatchView<S> d, const char* what) const {
    if (batch_ == 0) throw error(std::string("forgery: Network::") + what + " called before a forward pass");
    if (d.features() != output_size || d.batch() != batch_)
      throw shape_error(std::string("Network::") + what + " upstream gradient", shape_string(output_size, batch_),
                        shape_string(d.features(), d.batch()));
  }

  // The network's own buffers: the output and the input gradient (the chain holds the
  // inner boundaries), and the same for the tangent pass once it is first used.
  void ensure(index_t n) {
    batch_ = n;
    if (n <= capacity_) return;
    capacity_ = n;
    out_.resize(output_size * n);
    dx_.resize(input_size * n);
    if (dual_ready_) grow_dual();
  }
  void ensure_dual() {
    if (!dual_ready_) {
      dual_ready_ = true;
      grow_dual();
    }
  }
  void grow_dual() {
    ty_.resize(output_size * capacity_);
    gx_.resize(input_size * capacity_);
    gtx_.resize(input_size * capacity_);
  }

  BatchView<S> view(buffer<S>& b, std::size_t boundary) noexcept {
    return BatchView<S>(b.data(), widths[boundary], batch_);
  }
  ConstBatchView<S> in_view() const noexcept { return ConstBatchView<S>(x_, input_size, batch_); }
  BatchView<S> out_view() noexcept { return view(out_, depth); }

  root_type root_{};
  buffer<S> params_, grads_;
  buffer<S> out_, dx_, ty_, gx_, gtx_;
  const S* x_ = nullptr;
  const S* tx_ = nullptr;
  index_t batch_ = 0;
  index_t capacity_ = 0;
  bool dual_ready_ = false;
  Context ctx_{};
};

} // namespace forgery
