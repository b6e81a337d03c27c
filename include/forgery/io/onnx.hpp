// ONNX export of a network for inference elsewhere (onnxruntime, TensorRT, a browser): its
// layers as an ONNX graph of opset 17 with the weights as initializers, built with libonnx's
// protobuf classes and checked with onnx::checker before it is written atomically.
// Needs libonnx and protobuf (Debian: libonnx-dev, libprotobuf-dev): link forgery::onnx.
#pragma once

#if !defined(ONNX_NAMESPACE)
// libonnx's headers need the definitions its build used (ONNX_NAMESPACE, ONNX_ML).
#error "forgery/io/onnx.hpp: link the CMake target forgery::onnx (or ONNX's own target onnx)"
#endif

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <limits>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>

#include "forgery/core/config.hpp"
#include "forgery/core/error.hpp"
#include "forgery/io/atomic_file.hpp"
#include "forgery/layers/activation.hpp"
#include "forgery/layers/batch_norm.hpp"
#include "forgery/layers/conv2d.hpp"
#include "forgery/layers/conv_transpose2d.hpp"
#include "forgery/layers/dense.hpp"
#include "forgery/layers/dropout.hpp"
#include "forgery/layers/layer_norm.hpp"
#include "forgery/layers/resample.hpp"
#include "forgery/layers/reshape.hpp"
#include "forgery/layers/self_attention.hpp"
#include "forgery/layers/spectral_norm.hpp"
#include "forgery/nn/residual.hpp"
#include "forgery/nn/sequential.hpp"

namespace forgery::io {

/// The ai.onnx operator set the exported graphs declare: 17, the first with
/// LayerNormalization (onnxruntime 1.13 and later run it).
inline constexpr std::int64_t onnx_opset = 17;

/// Names in the exported model. The input is `input_name` of shape (batch_dim, the network's
/// input shape), the output `output_name` of shape (batch_dim, its output shape).
struct OnnxOptions {
  std::string input_name = "input";
  std::string output_name = "output";
  /// The symbolic batch dimension: any batch size runs.
  std::string batch_dim = "N";
  std::string graph_name = "forgery";
  /// Free text stored as the model's doc_string (e.g. what was trained, on what).
  std::string doc;
};

/// A node attribute: an integer, a float, a list of integers, or a string.
struct OnnxAttribute {
  std::string name;
  std::variant<std::int64_t, float, std::vector<std::int64_t>, std::string> value;
};

/// The graph under construction, as an onnx_node<Layer>::emit sees it: it adds initializers
/// and nodes named after the layer being written ("l3.Conv2d/..."), so names are unique.
/// Inside a block the names carry the path to the layer: "l3.Sequential/l0.Conv2d/...",
/// "l2.Residual/main/l1.Conv2d/...", "l2.Residual/shortcut.Conv2d/...".
/// \tparam S the network's scalar type (float: tensors of ONNX type FLOAT; double: DOUBLE).
template <class S>
class OnnxGraph {
  static_assert(std::is_same_v<S, float> || std::is_same_v<S, double>,
                "fg::io::OnnxGraph: ONNX export supports networks of float or double.");

public:
  static constexpr std::int32_t element_type =
      std::is_same_v<S, float> ? ONNX_NAMESPACE::TensorProto::FLOAT : ONNX_NAMESPACE::TensorProto::DOUBLE;

  explicit OnnxGraph(ONNX_NAMESPACE::GraphProto& graph) : graph_(&graph) {}

  /// Starts the nodes of layer `index` (its position in the network or the enclosing block,
  /// from 0).
  void begin_layer(std::size_t index, std::string_view layer_name) {
    // Appended piece by piece: GCC 12's -Wrestrict misfires on chains of string + at -O3.
    prefix_ = scope_;
    prefix_.push_back('l');
    prefix_.append(std::to_string(index));
    prefix_.push_back('.');
    prefix_.append(layer_name);
  }

  /// Starts the nodes of a block's branch that is not a position in a chain (a Residual's
  /// "main" or "shortcut", maybe followed by the layer's name).
  void begin_branch(std::string_view branch) {
    prefix_ = scope_;
    prefix_.append(branch);
  }

  /// Enters the current layer as a block: the names of its children's nodes start with its
  /// own prefix. leave_block() returns to the block's prefix, for nodes of its own after them.
  void enter_block() {
    scopes_.emplace_back(scope_, prefix_);
    scope_ = prefix_;
    scope_.push_back('/');
  }
  void leave_block() {
    scope_ = std::move(scopes_.back().first);
    prefix_ = std::move(scopes_.back().second);
    scopes_.pop_back();
  }

  /// A tensor name not used before, from `hint` and the current layer.
  [[nodiscard]] std::string name(std::string_view hint) {
    std::string base = prefix_;
    base.push_back('/');
    base.append(hint);
    std::string n = base;
    for (int k = 2; !used_.insert(n).second; ++k) {
      n = base;
      n.push_back('_');
      n.append(std::to_string(k));
    }
    return n;
  }

  /// Adds an initializer of shape `dims` holding `values` (row-major, as ONNX reads it);
  /// returns its name. A non-finite value is refused, naming the layer and the tensor.
  std::string constant(std::string_view hint, const std::vector<std::int64_t>& dims, const S* values) {
    const std::string n = name(hint);
    ONNX_NAMESPACE::TensorProto& t = *graph_->add_initializer();
    t.set_name(n);
    t.set_data_type(element_type);
    std::int64_t count = 1;
    for (const std::int64_t d : dims) {
      t.add_dims(d);
      count *= d;
    }
    for (std::int64_t i = 0; i < count; ++i)
      if (!std::isfinite(values[i]))
        throw error("forgery: ONNX export: " + n + " holds a non-finite value (at " + std::to_string(i) +
                    "); export a network whose parameters and statistics are finite");
    t.set_raw_data(raw_bytes(values, count));
    return n;
  }
  std::string constant(std::string_view hint, const std::vector<std::int64_t>& dims, const std::vector<S>& values) {
    return constant(hint, dims, values.data());
  }

  /// Adds a 1-D float initializer whatever S is (Resize's scales); returns its name.
  std::string float_constant(std::string_view hint, const std::vector<float>& values) {
    return vector_constant(hint, ONNX_NAMESPACE::TensorProto::FLOAT, values);
  }

  /// Adds a 1-D int64 initializer (a Reshape's shape); returns its name.
  std::string int64_constant(std::string_view hint, const std::vector<std::int64_t>& values) {
    return vector_constant(hint, ONNX_NAMESPACE::TensorProto::INT64, values);
  }

  /// Adds a node of the default (ai.onnx) domain with one output; returns the output's name.
  /// An empty input name leaves out an optional input.
  std::string node(std::string_view op_type, const std::vector<std::string>& inputs,
                   const std::vector<OnnxAttribute>& attributes = {}) {
    ONNX_NAMESPACE::NodeProto& nd = *graph_->add_node();
    const std::string out = name(op_type);
    nd.set_name(out);
    nd.set_op_type(std::string(op_type));
    for (const std::string& in : inputs) nd.add_input(in);
    nd.add_output(out);
    for (const OnnxAttribute& a : attributes) {
      ONNX_NAMESPACE::AttributeProto& attr = *nd.add_attribute();
      attr.set_name(a.name);
      if (const auto* i = std::get_if<std::int64_t>(&a.value)) {
        attr.set_type(ONNX_NAMESPACE::AttributeProto::INT);
        attr.set_i(*i);
      } else if (const auto* f = std::get_if<float>(&a.value)) {
        attr.set_type(ONNX_NAMESPACE::AttributeProto::FLOAT);
        attr.set_f(*f);
      } else if (const auto* s = std::get_if<std::string>(&a.value)) {
        attr.set_type(ONNX_NAMESPACE::AttributeProto::STRING);
        attr.set_s(*s);
      } else {
        attr.set_type(ONNX_NAMESPACE::AttributeProto::INTS);
        for (const std::int64_t v : std::get<std::vector<std::int64_t>>(a.value)) attr.add_ints(v);
      }
    }
    return out;
  }

  [[nodiscard]] ONNX_NAMESPACE::GraphProto& graph() noexcept { return *graph_; }

private:
  // A 1-D initializer of ONNX element type `type` holding `values`.
  template <class T>
  std::string vector_constant(std::string_view hint, std::int32_t type, const std::vector<T>& values) {
    const std::string n = name(hint);
    ONNX_NAMESPACE::TensorProto& t = *graph_->add_initializer();
    t.set_name(n);
    t.set_data_type(type);
    t.add_dims(static_cast<std::int64_t>(values.size()));
    t.set_raw_data(raw_bytes(values.data(), static_cast<std::int64_t>(values.size())));
    return n;
  }

  // Little-endian bytes, as ONNX's raw_data is defined whatever the host.
  template <class T>
  static std::string raw_bytes(const T* values, std::int64_t count) {
    std::string bytes(static_cast<std::size_t>(count) * sizeof(T), '\0');
    for (std::int64_t i = 0; i < count; ++i) {
      unsigned char b[sizeof(T)];
      std::memcpy(b, values + i, sizeof(T));
      if constexpr (std::endian::native == std::endian::big)
        for (std::size_t k = 0; k < sizeof(T) / 2; ++k) std::swap(b[k], b[sizeof(T) - 1 - k]);
      std::memcpy(bytes.data() + static_cast<std::size_t>(i) * sizeof(T), b, sizeof(T));
    }
    return bytes;
  }

  ONNX_NAMESPACE::GraphProto* graph_;
  std::string prefix_ = "graph";
  std::string scope_; // the enclosing blocks' prefixes, each followed by '/'; empty at the top
  std::vector<std::pair<std::string, std::string>> scopes_; // (scope_, prefix_) of each block entered
  std::set<std::string> used_;                              // every name given out, so that none repeats
};

/// How a bound layer is written as ONNX nodes. A specialisation provides
///
///     template <class S>
///     static std::string emit(OnnxGraph<S>& g, const Layer& layer, const S* params,
///                             const std::string& input);
///
/// which adds the layer's nodes reading tensor `input` ((N, the layer's input shape),
/// row-major: forgery's batch layout) with the layer's slice of the parameter buffer, and
/// returns the name of the tensor holding its output. The primary template has none: a
/// network with such a layer does not compile with export_onnx. Specialise it for a layer of
/// your own (the bound type, `Spec::bind<In>::layer<B>`).
template <class Layer>
struct onnx_node {};

/// How an activation function policy (forgery::activation) is written: a specialisation gives
/// `static std::string emit(OnnxGraph<S>&, const std::string& input)`. Activation<Fn> layers
/// export through it; specialise it for a function policy of your own.
template <class Fn>
struct onnx_activation {};

/// A bound layer that onnx_node can write.
template <class L>
concept OnnxExportable = requires(OnnxGraph<typename L::scalar>& g, const L& layer, const typename L::scalar* p,
                                  const std::string& input) {
  { onnx_node<L>::emit(g, layer, p, input) } -> std::convertible_to<std::string>;
};

namespace detail {

/// A column-major rows x cols matrix as row-major rows x cols (ONNX's order).
template <class S>
std::vector<S> onnx_row_major(const S* col_major, index_t rows, index_t cols) {
  std::vector<S> out(static_cast<std::size_t>(rows * cols));
  for (index_t r = 0; r < rows; ++r)
    for (index_t c = 0; c < cols; ++c) out[static_cast<std::size_t>(r * cols + c)] = col_major[c * rows + r];
  return out;
}

/// Divides the rows x cols weight at `dst` by sigma = u^T op(W) v, op(W) the rows x cols
/// matrix `w` (leading dimension `ldw`, transposed when `trans`), with the backend's
/// operations in forward's order, so that the exported weight has forward's bits.
template <class B, class S>
void onnx_divide_by_sigma(::forgery::backend::Trans trans, index_t rows, index_t cols, const S* w, index_t ldw,
                          const S* u, const S* v, S* dst) {
  std::vector<S> wv(static_cast<std::size_t>(rows));
  B::gemm(trans, ::forgery::backend::Trans::no, rows, 1, cols, S(1), w, ldw, v, cols, S(0), wv.data(), rows);
  const S sigma = B::dot(rows, u, wv.data());
  B::scale(rows * cols, S(1) / sigma, dst);
}

/// Shape (N, dims...) with a symbolic N.
template <class Shape>
void onnx_set_shape(ONNX_NAMESPACE::ValueInfoProto& v, const std::string& name, std::int32_t type,
                    const std::string& batch_dim) {
  v.set_name(name);
  ONNX_NAMESPACE::TypeProto_Tensor& t = *v.mutable_type()->mutable_tensor_type();
  t.set_elem_type(type);
  ONNX_NAMESPACE::TensorShapeProto& s = *t.mutable_shape();
  s.add_dim()->set_dim_param(batch_dim);
  for (const index_t d : Shape::dims) s.add_dim()->set_dim_value(d);
}

/// A layer's `name` for node names ("l3.Conv2d/Conv"), "Layer" for one without.
template <class L>
constexpr const char* onnx_layer_name() {
  if constexpr (requires { L::name; })
    return L::name;
  else
    return "Layer";
}

/// Whether onnx_node<L> writes L through the onnx_node of each of its children (a block:
/// Sequential, Residual), so that the check below looks at the children instead.
template <class L>
struct onnx_through_children : std::false_type {};
template <class B, class In, class... Bound>
struct onnx_through_children<forgery::detail::SequentialLayer<B, In, forgery::detail::type_list<Bound...>>>
    : std::true_type {};
template <class B, class In, class MainBound, class ShortcutBound, bool IdentityShortcut>
struct onnx_through_children<forgery::detail::ResidualLayer<B, In, MainBound, ShortcutBound, IdentityShortcut>>
    : std::true_type {};

template <class L>
constexpr bool onnx_form_check();

template <class Tuple>
struct onnx_children_check;
template <class... Ls>
struct onnx_children_check<std::tuple<Ls...>> {
  static constexpr bool value = (onnx_form_check<Ls>() && ...);
};

// Where the instantiation trace names the layer: static_assert messages cannot name a type.
// A block is checked through its children, so that a layer without a form at any depth is
// the one named.
template <class L>
constexpr bool onnx_form_check() {
  if constexpr (onnx_through_children<L>::value) {
    return onnx_children_check<typename L::children_type>::value;
  } else {
    static_assert(
        OnnxExportable<L>,
        "fg::io::export_onnx: a layer of this network has no ONNX form (the layer is L in this instantiation). "
        "Specialise forgery::io::onnx_node<L> with a static emit(OnnxGraph<S>&, const L&, const S* params, "
        "const std::string& input) that writes its nodes (for an Activation<Fn>: "
        "forgery::io::onnx_activation<Fn>), or export a network without it.");
    return OnnxExportable<L>;
  }
}

/// Writes the children of a chain (a Sequential block) one after the other from `tensor`,
/// child I with the slice at Block::param_offsets[I] of `p`; returns the last output.
template <class Block, class S>
std::string onnx_emit_chain(OnnxGraph<S>& g, const Block& block, const S* p, std::string tensor) {
  using children = typename Block::children_type;
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    ((g.begin_layer(I, onnx_layer_name<std::tuple_element_t<I, children>>()),
      tensor = onnx_node<std::tuple_element_t<I, children>>::emit(g, block.template layer<I>(),
                                                                  p + Block::param_offsets[I], tensor)),
     ...);
  }
  (std::make_index_sequence<std::tuple_size_v<children>>{});
  return tensor;
}

template <class L>
struct onnx_is_chain : std::false_type {};
template <class B, class In, class... Bound>
struct onnx_is_chain<forgery::detail::SequentialLayer<B, In, forgery::detail::type_list<Bound...>>> : std::true_type {};

/// A Residual's branch: "main" or "shortcut" for a Sequential (its children follow as
/// "main/l0.Conv2d", ...), "main.Conv2d" for a single layer.
template <class L>
std::string onnx_branch_name(std::string_view branch) {
  std::string n(branch);
  if constexpr (!onnx_is_chain<L>::value) {
    n.push_back('.');
    n.append(onnx_layer_name<L>());
  }
  return n;
}

} // namespace detail

// --- What forgery's layers are in ONNX ------------------------------------------------------

/// Dense: Gemm(x, W^T, b). W is Out x In column-major, which is W^T (In x Out) row-major:
/// the parameter slice is the Gemm's B as it stands.
template <index_t In, index_t Out, bool HasBias, class B>
struct onnx_node<forgery::detail::DenseLayer<In, Out, HasBias, B>> {
  template <class S>
  static std::string emit(OnnxGraph<S>& g, const forgery::detail::DenseLayer<In, Out, HasBias, B>&, const S* p,
                          const std::string& input) {
    std::vector<std::string> inputs{input, g.constant("weight_t", {In, Out}, p)};
    if constexpr (HasBias) inputs.push_back(g.constant("bias", {Out}, p + In * Out));
    return g.node("Gemm", inputs);
  }
};

/// Conv2d: Conv with a (Out, C, K, K) weight, the Out x (C K K) column-major matrix
/// transposed; symmetric pads.
template <index_t C, index_t H, index_t W, index_t Out, index_t K, index_t Stride, index_t Pad, bool HasBias, class B>
struct onnx_node<forgery::detail::Conv2dLayer<C, H, W, Out, K, Stride, Pad, HasBias, B>> {
  template <class S>
  static std::string emit(OnnxGraph<S>& g,
                          const forgery::detail::Conv2dLayer<C, H, W, Out, K, Stride, Pad, HasBias, B>&, const S* p,
                          const std::string& input) {
    std::vector<std::string> inputs{input,
                                    g.constant("weight", {Out, C, K, K}, detail::onnx_row_major(p, Out, C * K * K))};
    if constexpr (HasBias) inputs.push_back(g.constant("bias", {Out}, p + Out * C * K * K));
    return g.node("Conv", inputs,
                  {{"kernel_shape", std::vector<std::int64_t>{K, K}},
                   {"strides", std::vector<std::int64_t>{Stride, Stride}},
                   {"pads", std::vector<std::int64_t>{Pad, Pad, Pad, Pad}}});
  }
};

/// ConvTranspose2d: ConvTranspose with a (C, Out, K, K) weight, the C x (Out K K) column-major
/// matrix transposed; pads crop the full output as forgery's Pad does, no output_padding, so
/// the output is (H - 1) Stride - 2 Pad + K as in forgery.
template <index_t C, index_t H, index_t W, index_t Out, index_t K, index_t Stride, index_t Pad, bool HasBias, class B>
struct onnx_node<forgery::detail::ConvTranspose2dLayer<C, H, W, Out, K, Stride, Pad, HasBias, B>> {
  template <class S>
  static std::string emit(OnnxGraph<S>& g,
                          const forgery::detail::ConvTranspose2dLayer<C, H, W, Out, K, Stride, Pad, HasBias, B>&,
                          const S* p, const std::string& input) {
    std::vector<std::string> inputs{input,
                                    g.constant("weight", {C, Out, K, K}, detail::onnx_row_major(p, C, Out * K * K))};
    if constexpr (HasBias) inputs.push_back(g.constant("bias", {Out}, p + C * Out * K * K));
    return g.node("ConvTranspose", inputs,
                  {{"kernel_shape", std::vector<std::int64_t>{K, K}},
                   {"strides", std::vector<std::int64_t>{Stride, Stride}},
                   {"pads", std::vector<std::int64_t>{Pad, Pad, Pad, Pad}}});
  }
};

/// BatchNorm: BatchNormalization in inference mode with the running statistics, which is
/// what forgery's eval mode computes; per channel of (N, C, H, W) or per feature of (N, F).
template <class In, double Momentum, double Eps, class B>
struct onnx_node<forgery::detail::BatchNormLayer<In, Momentum, Eps, B>> {
  using L = forgery::detail::BatchNormLayer<In, Momentum, Eps, B>;
  template <class S>
  static std::string emit(OnnxGraph<S>& g, const L& layer, const S* p, const std::string& input) {
    constexpr std::int64_t c = L::channels;
    const S* running = layer.state();
    return g.node("BatchNormalization",
                  {input, g.constant("scale", {c}, p), g.constant("bias", {c}, p + c),
                   g.constant("running_mean", {c}, running), g.constant("running_var", {c}, running + c)},
                  {{"epsilon", static_cast<float>(Eps)}, {"momentum", static_cast<float>(1.0 - Momentum)}});
  }
};

/// LayerNorm: LayerNormalization over every axis after the batch (axis 1), with forgery's
/// per-channel gamma and beta spread over each channel's positions (ONNX's scale and bias
/// have the normalised shape).
template <class In, double Eps, class B>
struct onnx_node<forgery::detail::LayerNormLayer<In, Eps, B>> {
  using L = forgery::detail::LayerNormLayer<In, Eps, B>;
  template <class S>
  static std::string emit(OnnxGraph<S>& g, const L&, const S* p, const std::string& input) {
    std::vector<S> scale(L::features), shift(L::features);
    for (index_t f = 0; f < L::features; ++f) {
      scale[static_cast<std::size_t>(f)] = p[f / L::spatial];
      shift[static_cast<std::size_t>(f)] = p[L::channels + f / L::spatial];
    }
    std::vector<std::int64_t> dims(In::dims.begin(), In::dims.end());
    return g.node("LayerNormalization", {input, g.constant("scale", dims, scale), g.constant("bias", dims, shift)},
                  {{"axis", std::int64_t{1}}, {"epsilon", static_cast<float>(Eps)}});
  }
};

/// Reshape and Flatten: Reshape to (N, the new shape); the batch dimension is copied (0).
template <class In, class Out, class B>
struct onnx_node<forgery::detail::ReshapeLayer<In, Out, B>> {
  template <class S>
  static std::string emit(OnnxGraph<S>& g, const forgery::detail::ReshapeLayer<In, Out, B>&, const S*,
                          const std::string& input) {
    std::vector<std::int64_t> shape{0};
    for (const index_t d : Out::dims) shape.push_back(d);
    return g.node("Reshape", {input, g.int64_constant("shape", shape)});
  }
};

/// Dropout: nothing (an exported model runs inference, where forgery's Dropout is the identity).
template <class In, double P, class B>
struct onnx_node<forgery::detail::DropoutLayer<In, P, B>> {
  template <class S>
  static std::string emit(OnnxGraph<S>&, const forgery::detail::DropoutLayer<In, P, B>&, const S*,
                          const std::string& input) {
    return input;
  }
};

/// SpectralNorm: the wrapped layer with W / sigma, sigma = u^T W v from the saved u and v, as
/// forward computes it (the same backend operations, so the same bits).
template <class Inner, int Iterations, class B>
struct onnx_node<forgery::detail::SpectralNormLayer<Inner, Iterations, B>> {
  using L = forgery::detail::SpectralNormLayer<Inner, Iterations, B>;
  template <class S>
  static std::string emit(OnnxGraph<S>& g, const L& layer, const S* p, const std::string& input) {
    static_assert(OnnxExportable<Inner>, "fg::io::export_onnx: the layer inside this fg::SpectralNorm has no ONNX "
                                         "form; specialise forgery::io::onnx_node for it.");
    const S* u = layer.state();
    std::vector<S> normalized(p, p + L::param_count);
    detail::onnx_divide_by_sigma<B>(::forgery::backend::Trans::no, L::rows, L::cols, p, L::rows, u, u + L::rows,
                                    normalized.data());
    // The wrapped layer of forgery's own kinds keeps nothing but workspace, so a fresh one
    // writes the same nodes; a wrapped layer with state would need its own specialisation.
    const Inner inner{};
    return onnx_node<Inner>::emit(g, inner, normalized.data(), input);
  }
};

/// Activation<Fn>: through onnx_activation<Fn>.
template <class Fn, class In, class B>
struct onnx_node<forgery::detail::ActivationLayer<Fn, In, B>> {
  template <class S>
  static std::string emit(OnnxGraph<S>& g, const forgery::detail::ActivationLayer<Fn, In, B>&, const S*,
                          const std::string& input) requires requires {
    onnx_activation<Fn>::emit(g, input);
  }
  { return onnx_activation<Fn>::emit(g, input); }
};

template <>
struct onnx_activation<activation::Identity> {
  template <class S>
  static std::string emit(OnnxGraph<S>&, const std::string& input) {
    return input;
  }
};
template <>
struct onnx_activation<activation::ReLU> {
  template <class S>
  static std::string emit(OnnxGraph<S>& g, const std::string& input) {
    return g.node("Relu", {input});
  }
};
template <double Slope>
struct onnx_activation<activation::LeakyReLU<Slope>> {
  template <class S>
  static std::string emit(OnnxGraph<S>& g, const std::string& input) {
    return g.node("LeakyRelu", {input}, {{"alpha", static_cast<float>(Slope)}});
  }
};
template <>
struct onnx_activation<activation::Tanh> {
  template <class S>
  static std::string emit(OnnxGraph<S>& g, const std::string& input) {
    return g.node("Tanh", {input});
  }
};
template <>
struct onnx_activation<activation::Sigmoid> {
  template <class S>
  static std::string emit(OnnxGraph<S>& g, const std::string& input) {
    return g.node("Sigmoid", {input});
  }
};

// --- Blocks ---------------------------------------------------------------------------------

/// A Sequential nested in a network: its children in order, each with its slice of the
/// block's parameters, named under the block ("l3.Sequential/l0.Conv2d/...").
template <class B, class In, class... Bound>
struct onnx_node<forgery::detail::SequentialLayer<B, In, forgery::detail::type_list<Bound...>>> {
  using L = forgery::detail::SequentialLayer<B, In, forgery::detail::type_list<Bound...>>;
  template <class S>
  static std::string emit(OnnxGraph<S>& g, const L& layer, const S* p, const std::string& input) {
    g.enter_block();
    std::string out = detail::onnx_emit_chain(g, layer, p, input);
    g.leave_block();
    return out;
  }
};

/// Residual: both branches read the block's input, then Add(main, shortcut); with the
/// identity shortcut, Add(main, input). Names: "l3.Residual/main/l0.Conv2d/...",
/// "l3.Residual/shortcut.Conv2d/...", "l3.Residual/Add".
template <class B, class In, class MainBound, class ShortcutBound, bool IdentityShortcut>
struct onnx_node<forgery::detail::ResidualLayer<B, In, MainBound, ShortcutBound, IdentityShortcut>> {
  using L = forgery::detail::ResidualLayer<B, In, MainBound, ShortcutBound, IdentityShortcut>;
  template <class S>
  static std::string emit(OnnxGraph<S>& g, const L& layer, const S* p, const std::string& input) {
    using Main = typename L::main_type;
    g.enter_block();
    g.begin_branch(detail::onnx_branch_name<Main>("main"));
    const std::string main = onnx_node<Main>::emit(g, layer.main(), p, input);
    std::string shortcut = input;
    if constexpr (!IdentityShortcut) {
      using Shortcut = typename L::shortcut_type;
      g.begin_branch(detail::onnx_branch_name<Shortcut>("shortcut"));
      shortcut = onnx_node<Shortcut>::emit(g, layer.shortcut(), p + L::param_offsets[1], input);
    }
    g.leave_block();
    return g.node("Add", {main, shortcut});
  }
};

// --- Resampling and attention ---------------------------------------------------------------

/// Upsample: Resize, mode nearest, scales (1, 1, F, F). With the asymmetric coordinate
/// transformation and floor rounding, output pixel y reads input pixel floor(y / F): each
/// value fills its F x F block, as forgery's (and PyTorch's export of nn.Upsample).
/// AvgPool2d: AveragePool with a K x K kernel and stride K, no padding.
template <index_t C, index_t H, index_t W, index_t F, bool Up, class B>
struct onnx_node<forgery::detail::ResampleLayer<C, H, W, F, Up, B>> {
  template <class S>
  static std::string emit(OnnxGraph<S>& g, const forgery::detail::ResampleLayer<C, H, W, F, Up, B>&, const S*,
                          const std::string& input) {
    if constexpr (Up) {
      const float f = static_cast<float>(F);
      // The second input (roi) is unused by these modes: the empty name leaves it out.
      return g.node("Resize", {input, std::string(), g.float_constant("scales", {1.0f, 1.0f, f, f})},
                    {{"mode", std::string("nearest")},
                     {"coordinate_transformation_mode", std::string("asymmetric")},
                     {"nearest_mode", std::string("floor")}});
    } else {
      return g.node("AveragePool", {input},
                    {{"kernel_shape", std::vector<std::int64_t>{F, F}}, {"strides", std::vector<std::int64_t>{F, F}}});
    }
  }
};

/// SelfAttention, per sample with X the P x C matrix of its positions (P = H W):
///   Xt = Transpose(Reshape(x, (N, C, P)), (0, 2, 1))                       (N, P, C)
///   Q, K, V = Xt Wq^T, Xt Wk^T, Xt Wv^T                                     MatMul
///   A = Softmax(Q K^T, axis -1)        row j: output position j over positions i, as forgery
///   Y = x + gamma Reshape(Transpose((A V) Wo^T, (0, 2, 1)), (N, C, H, W))
/// With Spectral, each projection is divided by its sigma = u^T W v from the saved u and v,
/// with the backend's operations in forward's order (the same bits as forward's weights).
template <index_t C, index_t H, index_t W, index_t KeyDiv, index_t ValueDiv, bool Spectral, class B>
struct onnx_node<forgery::detail::SelfAttentionLayer<C, H, W, KeyDiv, ValueDiv, Spectral, B>> {
  using L = forgery::detail::SelfAttentionLayer<C, H, W, KeyDiv, ValueDiv, Spectral, B>;
  template <class S>
  static std::string emit(OnnxGraph<S>& g, const L& layer, const S* p, const std::string& input) {
    using Trans = ::forgery::backend::Trans;
    constexpr index_t P = L::pixels;
    std::vector<S> w(p, p + L::param_count);
    if constexpr (Spectral) {
      const S* state = layer.state();
      index_t offset = 0; // u (out), then v (in), of each projection in turn
      for (const auto& pr : L::projections) {
        const S* u = state + offset;
        // As SelfAttentionLayer::update_sigma and normalize_weights, on the stored M = W^T.
        detail::onnx_divide_by_sigma<B>(Trans::yes, pr.out, pr.in, p + pr.offset, pr.in, u, u + pr.out,
                                        w.data() + pr.offset);
        offset += pr.in + pr.out;
      }
    }
    // W^T of each projection, in x out column-major, as an in x out row-major MatMul operand.
    const auto projection = [&](std::string_view hint, int b) {
      const auto& pr = L::projections[b];
      return g.constant(hint, {pr.in, pr.out}, detail::onnx_row_major(w.data() + pr.offset, pr.in, pr.out));
    };
    const std::vector<OnnxAttribute> swap_last{{"perm", std::vector<std::int64_t>{0, 2, 1}}};
    const std::string rows =
        g.node("Transpose", {g.node("Reshape", {input, g.int64_constant("shape_rows", {0, C, P})})}, swap_last);
    const std::string q = g.node("MatMul", {rows, projection("query_weight_t", 0)});
    const std::string k = g.node("MatMul", {rows, projection("key_weight_t", 1)});
    const std::string v = g.node("MatMul", {rows, projection("value_weight_t", 2)});
    const std::string scores = g.node("MatMul", {q, g.node("Transpose", {k}, swap_last)});
    const std::string attention = g.node("Softmax", {scores}, {{"axis", std::int64_t{-1}}});
    const std::string o = g.node("MatMul", {g.node("MatMul", {attention, v}), projection("output_weight_t", 3)});
    const std::string image =
        g.node("Reshape", {g.node("Transpose", {o}, swap_last), g.int64_constant("shape_image", {0, C, H, W})});
    const std::string scaled = g.node("Mul", {image, g.constant("gamma", {}, w.data() + L::gamma_offset)});
    return g.node("Add", {input, scaled});
  }
};

// --- Export ---------------------------------------------------------------------------------

/// The network as an ONNX model (IR version of the linked libonnx, ai.onnx opset 17, producer
/// "forgery"): its inference graph, in which BatchNorm uses its running statistics, Dropout is
/// the identity and SpectralNorm's weight is already divided by sigma, so the model computes
/// what `net` computes in eval mode. Blocks (a nested Sequential, Residual) are written as
/// their children's nodes, named by their path ("l2.Residual/main/l0.Conv2d/Conv"), a
/// Residual ending in an Add of its branches. Checked with onnx::checker; throws forgery::error if the
/// check fails, config_error for unusable options.
/// A network containing a layer without an ONNX form (at any depth of nesting; MinibatchStdDev
/// has none), or conditioning on class labels, does not compile.
template <class Spec, class B>
ONNX_NAMESPACE::ModelProto to_onnx(const Network<Spec, B>& net, const OnnxOptions& options = {}) {
  using Net = Network<Spec, B>;
  using S = typename Net::scalar;
  static_assert(B::host_memory, "fg::io::export_onnx reads parameters and layer state on the host: export a network "
                                "on backend::Cpu or backend::Reference (copy a device network's parameters and "
                                "state into one first).");
  static_assert(Net::label_classes == 0,
                "fg::io::export_onnx: this network conditions on class labels (ConcatOneHot, ConcatEmbedding, "
                "Projection), which the exported graph would need as a second input; export an unconditional "
                "network.");
  // Each layer checked (and a failing one named) once; a conditional network is reported above.
  constexpr bool exportable = [] {
    if constexpr (Net::label_classes > 0)
      return false;
    else
      return []<std::size_t... I>(std::index_sequence<I...>) {
        return (detail::onnx_form_check<std::tuple_element_t<I, typename Net::layers_type>>() && ...);
      }
    (std::make_index_sequence<Net::depth>{});
  }();

  const auto check_name = [](const char* field, const std::string& value) {
    if (value.empty()) throw config_error(std::string("OnnxOptions.") + field, "\"\"", "a non-empty name");
  };
  check_name("input_name", options.input_name);
  check_name("output_name", options.output_name);
  check_name("batch_dim", options.batch_dim);
  if (options.input_name == options.output_name)
    throw config_error("OnnxOptions.output_name", "\"" + options.output_name + "\"", "a name other than input_name's");

  ONNX_NAMESPACE::ModelProto model;
  model.set_ir_version(ONNX_NAMESPACE::IR_VERSION);
  model.set_producer_name("forgery");
  model.set_producer_version(std::to_string(FORGERY_VERSION_MAJOR) + "." + std::to_string(FORGERY_VERSION_MINOR) + "." +
                             std::to_string(FORGERY_VERSION_PATCH));
  if (!options.doc.empty()) model.set_doc_string(options.doc);
  ONNX_NAMESPACE::OperatorSetIdProto& opset = *model.add_opset_import();
  opset.set_domain("");
  opset.set_version(onnx_opset);

  ONNX_NAMESPACE::GraphProto& graph = *model.mutable_graph();
  graph.set_name(options.graph_name.empty() ? "forgery" : options.graph_name);
  detail::onnx_set_shape<typename Net::input_shape>(*graph.add_input(), options.input_name, OnnxGraph<S>::element_type,
                                                    options.batch_dim);

  OnnxGraph<S> g(graph);
  std::string tensor = options.input_name;
  // Guarded so that a layer without an ONNX form is reported once, by onnx_form_check.
  if constexpr (exportable) {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      ((g.begin_layer(I, detail::onnx_layer_name<std::tuple_element_t<I, typename Net::layers_type>>()),
        tensor = onnx_node<std::tuple_element_t<I, typename Net::layers_type>>::emit(
            g, net.template layer<I>(), net.params() + Net::param_offsets[I], tensor)),
       ...);
    }
    (std::make_index_sequence<Net::depth>{});
  }

  // The last node's output becomes the graph's output (and any later node reading it reads
  // the output); a network whose layers wrote no node (Dropout, Identity) gets an Identity node.
  bool renamed = false;
  for (int i = graph.node_size() - 1; i >= 0 && !renamed; --i) {
    ONNX_NAMESPACE::NodeProto& nd = *graph.mutable_node(i);
    for (int o = 0; o < nd.output_size(); ++o)
      if (nd.output(o) == tensor) {
        nd.set_output(o, options.output_name);
        renamed = true;
      }
    if (renamed)
      for (int j = i + 1; j < graph.node_size(); ++j) {
        ONNX_NAMESPACE::NodeProto& later = *graph.mutable_node(j);
        for (int k = 0; k < later.input_size(); ++k)
          if (later.input(k) == tensor) later.set_input(k, options.output_name);
      }
  }
  if (!renamed) {
    ONNX_NAMESPACE::NodeProto& nd = *graph.add_node();
    nd.set_name("output");
    nd.set_op_type("Identity");
    nd.add_input(tensor);
    nd.add_output(options.output_name);
  }
  detail::onnx_set_shape<typename Net::output_shape>(*graph.add_output(), options.output_name,
                                                     OnnxGraph<S>::element_type, options.batch_dim);

  try {
    ONNX_NAMESPACE::checker::check_model(model);
  } catch (const std::exception& e) {
    throw error(std::string("forgery: ONNX export: the model fails onnx::checker: ") + e.what());
  }
  return model;
}

/// Writes `net` as an ONNX model file (to_onnx), atomically: a failed export leaves any
/// earlier file at `path` as it was. Throws io_error naming the file.
template <class Spec, class B>
void export_onnx(const Network<Spec, B>& net, const std::filesystem::path& path, const OnnxOptions& options = {}) {
  const ONNX_NAMESPACE::ModelProto model = to_onnx(net, options);
  if (model.ByteSizeLong() > static_cast<std::size_t>(std::numeric_limits<int>::max()))
    throw io_error(path.string(), "the ONNX model is " + std::to_string(model.ByteSizeLong()) +
                                      " bytes, more than protobuf's 2 GiB limit for one message");
  std::string bytes;
  if (!model.SerializeToString(&bytes)) throw io_error(path.string(), "protobuf could not serialise the ONNX model");
  write_file_atomically(path, bytes);
}

} // namespace forgery::io
