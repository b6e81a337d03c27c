// Class conditioning for generators and critics: the sample's label appended to its
// features, as a one-hot code (ConcatOneHot) or a learned embedding (ConcatEmbedding). On a
// (C, H, W) input the code becomes extra channels, constant over each plane (Mirza &
// Osindero 2014). Labels come from the network's Context (Network::set_labels).
#pragma once

#include <cstdint>
#include <string>

#include "forgery/core/batch_view.hpp"
#include "forgery/core/error.hpp"
#include "forgery/core/shape.hpp"
#include "forgery/layers/context.hpp"
#include "forgery/layers/init.hpp"

namespace forgery {

namespace detail {

/// Reads and checks the batch's labels from the context: present, enough, and in range when
/// they are in host memory (`host_memory`; labels in device memory were checked on the host
/// before they were uploaded).
inline const std::int32_t* labels_for(const Context& ctx, index_t batch, index_t classes, const char* layer,
                                      bool host_memory = true) {
  if (ctx.labels == nullptr || ctx.label_count < batch)
    throw error(std::string("forgery: ") + layer + " conditions on class labels: call Network::set_labels with at " +
                "least " + std::to_string(batch) + " labels before the pass (the Trainer does this for conditional " +
                "networks); got " + std::to_string(ctx.labels == nullptr ? 0 : ctx.label_count));
  if (host_memory) check_label_range(ctx.labels, batch, classes, layer);
  return ctx.labels;
}

/// Plane geometry of a per-sample shape: channels and positions per channel (1 for flat).
template <class In>
struct planes {
  static constexpr index_t channels = In::dims[0];
  static constexpr index_t area = In::size / In::dims[0];
};

template <class In, index_t Extra>
using with_extra_channels = std::conditional_t<
    In::rank == 1, Shape<In::size + Extra>,
    Shape<In::dims[0] + Extra, (In::rank == 3 ? In::dims[1] : 1), (In::rank == 3 ? In::dims[2] : 1)>>;

} // namespace detail

namespace kernels {

/// Per sample j: y_j = [x_j ; code(label_j)], the code `Code` values per position.
/// Embedding codes read column label_j of `table` (Code x classes); one-hot codes use
/// table == nullptr.
template <class S>
struct ConcatCode {
  const S* x;
  S* y;
  const std::int32_t* labels;
  const S* table;
  index_t in_size, code, area;
  FORGERY_HOST_DEVICE void operator()(index_t j) const {
    const S* xj = x + j * in_size;
    S* yj = y + j * (in_size + code * area);
    for (index_t i = 0; i < in_size; ++i) yj[i] = xj[i];
    S* cj = yj + in_size;
    const index_t c = labels[j];
    for (index_t d = 0; d < code; ++d) {
      const S v = table ? table[d + c * code] : (d == c ? S(1) : S(0));
      for (index_t p = 0; p < area; ++p) cj[d * area + p] = v;
    }
  }
};

/// Per sample j: y_j = [x_j ; 0] (a label carries no tangent).
template <class S>
struct ConcatZeros {
  const S* x;
  S* y;
  index_t in_size, extra;
  FORGERY_HOST_DEVICE void operator()(index_t j) const {
    const S* xj = x + j * in_size;
    S* yj = y + j * (in_size + extra);
    for (index_t i = 0; i < in_size; ++i) yj[i] = xj[i];
    for (index_t i = 0; i < extra; ++i) yj[in_size + i] = S(0);
  }
};

/// Per sample j: dx_j = the first in_size values of dy_j.
template <class S>
struct SliceFeatures {
  const S* dy;
  S* dx;
  index_t in_size, out_size;
  FORGERY_HOST_DEVICE void operator()(index_t j) const {
    const S* src = dy + j * out_size;
    S* dst = dx + j * in_size;
    for (index_t i = 0; i < in_size; ++i) dst[i] = src[i];
  }
};

/// Per code row d: table_grad(d, label_j) += sum over the plane of dy's code channel d,
/// samples in order (one task per d: deterministic for any thread count).
template <class S>
struct EmbeddingGrad {
  const S* dy;
  const std::int32_t* labels;
  S* g;
  index_t batch, in_size, code, area;
  FORGERY_HOST_DEVICE void operator()(index_t d) const {
    const index_t out_size = in_size + code * area;
    for (index_t j = 0; j < batch; ++j) {
      const S* row = dy + j * out_size + in_size + d * area;
      S acc = S(0);
      for (index_t p = 0; p < area; ++p) acc += row[p];
      g[d + labels[j] * code] += acc;
    }
  }
};

} // namespace kernels

namespace detail {

/// Shared body of the two concatenations; Code values per position, a learned table when
/// Learned.
template <class In, index_t Classes, index_t Code, bool Learned, class B>
class ConcatLabelLayer {
public:
  using backend = B;
  using scalar = typename B::scalar;
  using S = scalar;
  using input_shape = In;
  using output_shape = with_extra_channels<In, Code>;
  static constexpr index_t label_classes = Classes;
  static constexpr index_t param_count = Learned ? Code * Classes : 0;
  static constexpr const char* name = Learned ? "ConcatEmbedding" : "ConcatOneHot";

  void init_params(S* p, RandomStream& rng, Init) const {
    // Unit-variance codes, on the scale of the latent noise they join (PyTorch's Embedding).
    if constexpr (Learned) B::fill_normal(param_count, p, rng, S(0), S(1));
  }

  void forward(const S* p, ConstBatchView<S> x, BatchView<S> y, const Context& ctx) {
    const index_t n = x.batch();
    labels_ = labels_for(ctx, n, Classes, name, B::host_memory);
    B::for_each(
        n, kernels::ConcatCode<S>{x.data(), y.data(), labels_, Learned ? p : nullptr, In::size, Code, planes<In>::area},
        output_shape::size);
  }

  void backward(const S*, S* g, ConstBatchView<S> x, ConstBatchView<S>, ConstBatchView<S> dy, BatchView<S> dx) const {
    const index_t n = x.batch();
    if constexpr (Learned) {
      if (g != nullptr)
        B::for_each(Code, kernels::EmbeddingGrad<S>{dy.data(), labels_, g, n, In::size, Code, planes<In>::area},
                    n * planes<In>::area);
    }
    if (!dx.empty())
      B::for_each(n, kernels::SliceFeatures<S>{dy.data(), dx.data(), In::size, output_shape::size}, output_shape::size);
  }

  void forward_dual(const S* p, ConstBatchView<S> x, ConstBatchView<S> tx, BatchView<S> y, BatchView<S> ty,
                    const Context& ctx) {
    forward(p, x, y, ctx);
    B::for_each(tx.batch(), kernels::ConcatZeros<S>{tx.data(), ty.data(), In::size, output_shape::size - In::size},
                output_shape::size);
  }

  // The code does not depend on x, so the tangent's code part is 0: only gy reaches the table.
  void backward_dual(const S* p, S* g, ConstBatchView<S> x, ConstBatchView<S>, ConstBatchView<S> y, ConstBatchView<S>,
                     ConstBatchView<S> gy, ConstBatchView<S> gty, BatchView<S> gx, BatchView<S> gtx) const {
    backward(p, g, x, y, gy, gx);
    if (!gtx.empty())
      B::for_each(x.batch(), kernels::SliceFeatures<S>{gty.data(), gtx.data(), In::size, output_shape::size},
                  output_shape::size);
  }

private:
  const std::int32_t* labels_ = nullptr;
};

template <class In>
constexpr bool conditionable_shape = In::rank == 1 || In::rank == 3;

} // namespace detail

/// Appends the one-hot code of the sample's class: Shape<F> -> Shape<F + Classes>, or
/// Shape<C, H, W> -> Shape<C + Classes, H, W> with one constant plane per class.
/// \tparam Classes number of classes; labels must lie in [0, Classes).
template <index_t Classes>
struct ConcatOneHot {
  static_assert(Classes >= 2, "fg::ConcatOneHot<Classes>: a conditional model needs at least 2 classes.");
  template <class In>
  struct bind {
    static_assert(detail::conditionable_shape<In>,
                  "fg::ConcatOneHot needs a flat (F) or image (C, H, W) input; Reshape to one of them first.");
    using output_shape = detail::with_extra_channels<In, Classes>;
    template <class B>
    using layer = detail::ConcatLabelLayer<In, Classes, Classes, false, B>;
  };
};

/// Appends a learned Dim-dimensional embedding of the sample's class (a Dim x Classes
/// table in the parameters): Shape<F> -> Shape<F + Dim>, or Shape<C, H, W> ->
/// Shape<C + Dim, H, W> with the embedding broadcast over each plane.
/// \tparam Classes number of classes; labels must lie in [0, Classes).
/// \tparam Dim size of the embedding.
template <index_t Classes, index_t Dim>
struct ConcatEmbedding {
  static_assert(Classes >= 2, "fg::ConcatEmbedding<Classes, Dim>: a conditional model needs at least 2 classes.");
  static_assert(Dim >= 1, "fg::ConcatEmbedding<Classes, Dim>: Dim must be positive.");
  template <class In>
  struct bind {
    static_assert(detail::conditionable_shape<In>,
                  "fg::ConcatEmbedding needs a flat (F) or image (C, H, W) input; Reshape to one of them first.");
    using output_shape = detail::with_extra_channels<In, Dim>;
    template <class B>
    using layer = detail::ConcatLabelLayer<In, Classes, Dim, true, B>;
  };
};

} // namespace forgery
