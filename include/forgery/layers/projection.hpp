// The projection discriminator's head (Miyato & Koyama 2018): one logit per sample,
// w . phi + b + e_y . phi, where phi are the critic's features and e_y the learned
// embedding of the sample's class. Labels come from the Context (Network::set_labels).
#pragma once

#include <cstdint>

#include "forgery/core/batch_view.hpp"
#include "forgery/core/shape.hpp"
#include "forgery/layers/context.hpp"
#include "forgery/layers/init.hpp"
#include "forgery/layers/label_conditioning.hpp"

namespace forgery {

namespace detail {} // namespace detail

namespace kernels {

/// Per sample j: out_j = sum_f (w_f + E(f, y_j)) x_fj (+ b when bias != nullptr).
template <class S>
struct ProjectRow {
  const S* w;
  const S* table;
  const S* bias;
  const std::int32_t* labels;
  const S* x;
  S* out;
  index_t features;
  FORGERY_HOST_DEVICE void operator()(index_t j) const {
    const S* xj = x + j * features;
    const S* e = table + labels[j] * features;
    S acc = S(0);
    for (index_t f = 0; f < features; ++f) acc += (w[f] + e[f]) * xj[f];
    out[j] = bias ? acc + *bias : acc;
  }
};

/// Per sample j: dx_j = (w + E(:, y_j)) dy_j.
template <class S>
struct ProjectBack {
  const S* w;
  const S* table;
  const std::int32_t* labels;
  const S* dy;
  S* dx;
  index_t features;
  FORGERY_HOST_DEVICE void operator()(index_t j) const {
    const S* e = table + labels[j] * features;
    S* d = dx + j * features;
    for (index_t f = 0; f < features; ++f) d[f] = (w[f] + e[f]) * dy[j];
  }
};

/// Per feature f, samples in order: gw_f += sum_j a_j x_fj (+ c_j t_fj) and the same into
/// the class column E(f, y_j). One task per f: deterministic for any thread count.
template <class S>
struct ProjectWeightGrad {
  const S* a;
  const S* x;
  const S* c; // nullptr: no tangent term
  const S* t;
  const std::int32_t* labels;
  S* gw;
  S* gtable;
  index_t batch, features;
  FORGERY_HOST_DEVICE void operator()(index_t f) const {
    S total = S(0);
    for (index_t j = 0; j < batch; ++j) {
      S v = a[j] * x[j * features + f];
      if (c) v += c[j] * t[j * features + f];
      total += v;
      gtable[labels[j] * features + f] += v;
    }
    gw[f] += total;
  }
};

} // namespace kernels

namespace detail {

template <class In, index_t Classes, class B>
class ProjectionLayer {
public:
  using backend = B;
  using scalar = typename B::scalar;
  using S = scalar;
  using input_shape = In;
  using output_shape = Shape<1>;
  static constexpr index_t features = In::size;
  static constexpr index_t label_classes = Classes;
  // Layout: w (features), b (1), E (features x Classes, column y is class y's embedding).
  static constexpr index_t param_count = features + 1 + features * Classes;
  static constexpr const char* name = "Projection";

  void init_params(S* p, RandomStream& rng, Init scheme) const {
    init_weights<B>(p, features, features, 1, scheme, rng);
    B::fill(1, p + features, S(0));
    init_weights<B>(p + features + 1, features * Classes, features, 1, scheme, rng);
  }

  void forward(const S* p, ConstBatchView<S> x, BatchView<S> y, const Context& ctx) {
    const index_t n = x.batch();
    labels_ = labels_for(ctx, n, Classes, name, B::host_memory);
    B::for_each(n, kernels::ProjectRow<S>{p, table(p), p + features, labels_, x.data(), y.data(), features}, features);
  }

  void backward(const S* p, S* g, ConstBatchView<S> x, ConstBatchView<S>, ConstBatchView<S> dy, BatchView<S> dx) const {
    const index_t n = x.batch();
    if (g != nullptr) {
      B::for_each(features,
                  kernels::ProjectWeightGrad<S>{dy.data(), x.data(), nullptr, nullptr, labels_, g, g + features + 1, n,
                                                features},
                  n);
      B::row_sums(1, n, dy.data(), 1, S(1), g + features);
    }
    if (!dx.empty())
      B::for_each(n, kernels::ProjectBack<S>{p, table(p), labels_, dy.data(), dx.data(), features}, features);
  }

  // The head is linear in x: ty = (w + e_y) . tx.
  void forward_dual(const S* p, ConstBatchView<S> x, ConstBatchView<S> tx, BatchView<S> y, BatchView<S> ty,
                    const Context& ctx) {
    forward(p, x, y, ctx);
    B::for_each(tx.batch(), kernels::ProjectRow<S>{p, table(p), nullptr, labels_, tx.data(), ty.data(), features},
                features);
  }

  void backward_dual(const S* p, S* g, ConstBatchView<S> x, ConstBatchView<S> tx, ConstBatchView<S>, ConstBatchView<S>,
                     ConstBatchView<S> gy, ConstBatchView<S> gty, BatchView<S> gx, BatchView<S> gtx) const {
    const index_t n = x.batch();
    if (g != nullptr) {
      B::for_each(features,
                  kernels::ProjectWeightGrad<S>{gy.data(), x.data(), gty.data(), tx.data(), labels_, g,
                                                g + features + 1, n, features},
                  n);
      B::row_sums(1, n, gy.data(), 1, S(1), g + features);
    }
    if (!gx.empty())
      B::for_each(n, kernels::ProjectBack<S>{p, table(p), labels_, gy.data(), gx.data(), features}, features);
    if (!gtx.empty())
      B::for_each(n, kernels::ProjectBack<S>{p, table(p), labels_, gty.data(), gtx.data(), features}, features);
  }

private:
  static const S* table(const S* p) noexcept { return p + features + 1; }
  const std::int32_t* labels_ = nullptr;
};

} // namespace detail

/// Projection discriminator head: Shape<F> -> Shape<1>, the logit w . phi + b + e_y . phi
/// with a learned F-dimensional embedding e_y per class. Ends a conditional critic in place
/// of Dense<1>.
/// \tparam Classes number of classes; labels must lie in [0, Classes).
template <index_t Classes>
struct Projection {
  static_assert(Classes >= 2, "fg::Projection<Classes>: a conditional critic needs at least 2 classes.");
  template <class In>
  struct bind {
    static_assert(In::rank == 1, "fg::Projection needs flat features: insert fg::Flatten before it.");
    using output_shape = Shape<1>;
    template <class B>
    using layer = detail::ProjectionLayer<In, Classes, B>;
  };
};

} // namespace forgery
