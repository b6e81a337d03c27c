// The extension points of forgery as C++20 concepts. Next to each concept stands a minimal
// conforming type, static_assert-ed against it, so this documentation cannot drift from
// the code. Concepts of later areas (Loss, Penalty, Optimizer, Callback) join this file.
#pragma once

#include <concepts>
#include <type_traits>

#include "forgery/backend/op_set.hpp"
#include "forgery/core/batch_view.hpp"
#include "forgery/core/buffer.hpp"
#include "forgery/core/config.hpp"
#include "forgery/core/philox.hpp"
#include "forgery/core/shape.hpp"
#include "forgery/layers/context.hpp"

namespace forgery {

// --------------------------------------------------------------------------------------
// Backend: where the math runs. A bundle of types and a few static entry points on
// column-major data; layers never call Eigen or CUDA themselves.
// --------------------------------------------------------------------------------------

/// The op set a backend provides (see backend/op_set.hpp for the shared part).
template <class B>
concept Backend = requires {
  typename B::scalar;
  typename B::template buffer<typename B::scalar>;
  { B::host_memory } -> std::convertible_to<bool>;
}
&&std::is_floating_point_v<typename B::scalar>&& requires(typename B::scalar* x, const typename B::scalar* cx,
                                                          typename B::scalar s, index_t n, RandomStream& rng,
                                                          backend::Trans t) {
  B::gemm(t, t, n, n, n, s, cx, n, cx, n, s, x, n);
  B::fill(n, x, s);
  B::copy(n, cx, x);
  B::axpy(n, s, cx, x);
  B::scale(n, s, x);
  B::add_column_vector(n, n, cx, x);
  B::row_sums(n, n, cx, n, s, x);
  B::col_sums(n, n, cx, n, s, x);
  B::fill_uniform(n, x, rng, s, s);
  B::fill_normal(n, x, rng, s, s);
  { B::sum(n, cx) } -> std::same_as<typename B::scalar>;
  { B::dot(n, cx, cx) } -> std::same_as<typename B::scalar>;
};

// --------------------------------------------------------------------------------------
// Layer: a user writes a layer *spec* (Dense<256>) that Sequential binds to an input shape
// and a backend, giving the *layer* that runs. A layer reads its parameters from the
// network's one parameter buffer and adds its parameter gradients into the one gradient
// buffer, at the offsets the network gives it.
// --------------------------------------------------------------------------------------

/// What Sequential accepts as an element: `L::bind<In>` gives the output shape and the
/// layer type for a backend.
template <class L>
concept LayerSpec = requires {
  typename L::template bind<Shape<1>>;
};

/// A layer bound to its input shape and backend.
template <class L>
concept Layer = ShapeType<typename L::input_shape> && ShapeType<typename L::output_shape> &&
    Backend<typename L::backend> &&
    requires(L& layer, const typename L::scalar* p, typename L::scalar* g, ConstBatchView<typename L::scalar> in,
             BatchView<typename L::scalar> out, const Context& ctx) {
  { L::param_count } -> std::convertible_to<index_t>;
  layer.forward(p, in, out, ctx);
  layer.backward(p, g, in, in, in, out);
};

/// A layer that also carries tangents (design.md, 'gradients of gradients'): required of
/// every layer of a critic used with an input-gradient penalty.
template <class L>
concept DualLayer = Layer<L> &&
    requires(L& layer, const typename L::scalar* p, typename L::scalar* g, ConstBatchView<typename L::scalar> in,
             BatchView<typename L::scalar> out, const Context& ctx) {
  layer.forward_dual(p, in, in, out, out, ctx);
  layer.backward_dual(p, g, in, in, in, in, in, in, out, out);
};

/// A dual layer that can form the tangent alone, ty = J(x) tx, from a forward pass's cached
/// (x, y): Network::forward_tangent then skips recomputing y. Optional; without it the
/// layer's forward_dual runs and rewrites the same y.
template <class L>
concept TangentLayer = DualLayer<L> &&
    requires(L& layer, const typename L::scalar* p, ConstBatchView<typename L::scalar> in,
             BatchView<typename L::scalar> out, const Context& ctx) {
  layer.forward_tangent(p, in, in, in, out, ctx);
};

namespace example {

/// A minimal conforming backend's interface (declarations only: the concept checks
/// signatures). backend::Reference is the complete, obviously-correct one to copy.
template <class S>
struct MinimalBackend {
  using scalar = S;
  template <class T>
  using buffer = HostBuffer<T>;
  static constexpr bool host_memory = true;
  static void gemm(backend::Trans, backend::Trans, index_t m, index_t n, index_t k, S alpha, const S* a, index_t lda,
                   const S* b, index_t ldb, S beta, S* c, index_t ldc);
  static void fill(index_t n, S* x, S value);
  static void copy(index_t n, const S* src, S* dst);
  static void axpy(index_t n, S a, const S* x, S* y);
  static void scale(index_t n, S a, S* y);
  static void add_column_vector(index_t rows, index_t cols, const S* b, S* y);
  static void row_sums(index_t rows, index_t cols, const S* a, index_t lda, S beta, S* out);
  static void col_sums(index_t rows, index_t cols, const S* a, index_t lda, S beta, S* out);
  static void fill_uniform(index_t n, S* x, RandomStream& rng, S lo, S hi);
  static void fill_normal(index_t n, S* x, RandomStream& rng, S mean, S stddev);
  static S sum(index_t n, const S* x);
  static S dot(index_t n, const S* x, const S* y);
};
static_assert(Backend<MinimalBackend<float>>);

/// A minimal conforming layer spec: y = 2 x, no parameters, with its tangent pass.
struct Double {
  template <class In>
  struct bind {
    using output_shape = In;
    template <class B>
    struct layer {
      using backend = B;
      using scalar = typename B::scalar;
      using input_shape = In;
      using output_shape = In;
      static constexpr index_t param_count = 0;
      static constexpr const char* name = "Double";
      void forward(const scalar*, ConstBatchView<scalar> x, BatchView<scalar> y, const Context&) const {
        B::copy(x.size(), x.data(), y.data());
        B::scale(y.size(), scalar(2), y.data());
      }
      void backward(const scalar*, scalar*, ConstBatchView<scalar>, ConstBatchView<scalar>, ConstBatchView<scalar> dy,
                    BatchView<scalar> dx) const {
        if (dx.empty()) return;
        B::copy(dy.size(), dy.data(), dx.data());
        B::scale(dx.size(), scalar(2), dx.data());
      }
      void forward_dual(const scalar* p, ConstBatchView<scalar> x, ConstBatchView<scalar> tx, BatchView<scalar> y,
                        BatchView<scalar> ty, const Context& ctx) const {
        forward(p, x, y, ctx);
        forward(p, tx, ty, ctx);
      }
      void backward_dual(const scalar* p, scalar* g, ConstBatchView<scalar> x, ConstBatchView<scalar>,
                         ConstBatchView<scalar> y, ConstBatchView<scalar>, ConstBatchView<scalar> gy,
                         ConstBatchView<scalar> gty, BatchView<scalar> gx, BatchView<scalar> gtx) const {
        backward(p, g, x, y, gy, gx);
        backward(p, g, x, y, gty, gtx);
      }
    };
  };
};
static_assert(LayerSpec<Double>);
static_assert(DualLayer<Double::bind<Shape<4>>::layer<MinimalBackend<float>>>);

} // namespace example

// --------------------------------------------------------------------------------------
// Loss: an adversarial loss on critic logits. It computes its own discriminator and
// generator terms (mean over the batch) and their gradients with respect to the logits,
// in numerically stable form, through backend ops so it runs wherever the logits live.
// --------------------------------------------------------------------------------------

/// \tparam L a loss policy (fg::loss::NonSaturating, ...); \tparam B the backend.
template <class L, class B>
concept Loss = Backend<B> && requires {
  typename L::Config;
} && std::constructible_from<L, typename L::Config> &&
    requires(const L& loss, index_t n, const typename B::scalar* logits, typename B::scalar* out) {
  { L::generator_uses_real } -> std::convertible_to<bool>;
  // discriminator(n, real, fake, d_real, d_fake, work[2n]) -> loss value
  { loss.template discriminator<B>(n, logits, logits, out, out, out) } -> std::same_as<typename B::scalar>;
  // generator(n, real (may be null unless generator_uses_real), fake, d_fake, work[2n])
  { loss.template generator<B>(n, logits, logits, out, out) } -> std::same_as<typename B::scalar>;
};

// --------------------------------------------------------------------------------------
// Optimizer: a policy with a run-time Config and, per backend, a State holding the
// moments for one parameter buffer. step() is one fused pass over the whole buffer.
// --------------------------------------------------------------------------------------

/// \tparam O an optimizer policy (fg::optim::Adam, ...); \tparam B the backend.
template <class O, class B>
concept Optimizer = Backend<B> && requires {
  typename O::Config;
  typename O::template State<B>;
} && std::constructible_from < typename O::template State<B>,
const typename O::Config&, index_t > &&requires(typename O::template State<B>& state, const typename O::Config& cfg,
                                                typename B::scalar* p, const typename B::scalar* g) {
  cfg.validate();
  state.step(p, g);
  { state.config() } -> std::convertible_to<const typename O::Config&>;
  { state.steps() } -> std::convertible_to<long long>;
};

namespace example {

/// A loss's interface (declarations only); fg::loss::Wasserstein is the simplest real one.
struct MinimalLoss {
  struct Config {};
  explicit MinimalLoss(Config = {}) {}
  static constexpr bool generator_uses_real = false;
  template <class B>
  typename B::scalar discriminator(index_t n, const typename B::scalar* real, const typename B::scalar* fake,
                                   typename B::scalar* d_real, typename B::scalar* d_fake,
                                   typename B::scalar* work) const;
  template <class B>
  typename B::scalar generator(index_t n, const typename B::scalar* real, const typename B::scalar* fake,
                               typename B::scalar* d_fake, typename B::scalar* work) const;
};
static_assert(Loss<MinimalLoss, MinimalBackend<float>>);

/// An optimizer's interface (declarations only); fg::optim::SGD is the simplest real one.
struct MinimalOptimizer {
  struct Config {
    double lr = 0.01;
    void validate() const;
  };
  template <class B>
  struct State {
    State(const Config&, index_t n);
    void step(typename B::scalar* params, const typename B::scalar* grads);
    const Config& config() const;
    long long steps() const;
  };
};
static_assert(Optimizer<MinimalOptimizer, MinimalBackend<float>>);

} // namespace example

} // namespace forgery

namespace forgery {

// --------------------------------------------------------------------------------------
// Penalty and Constraint: regularisers of the critic. A penalty adds a term P to the
// critic's objective: apply() adds dP/dtheta into critic.grads(), on top of the loss
// gradient already there, and returns P. Input-gradient penalties (GP, R1, DRAGAN) get
// dP/dtheta exactly through the critic's tangent pass (design.md). A constraint acts on
// the critic's parameters after each of its optimizer steps (WeightClip).
// --------------------------------------------------------------------------------------

namespace penalty {
template <class B>
class Workspace;
} // namespace penalty

/// \tparam P a penalty policy (fg::penalty::GradientPenalty, ...); \tparam Net the critic
/// (an fg::Network).
template <class P, class Net>
concept Penalty = std::constructible_from<P, typename P::Config> &&
    requires(const P& penalty, Net& critic, ConstBatchView<typename Net::scalar> x, RandomStream& rng,
             penalty::Workspace<typename Net::backend>& ws) {
  { P::name } -> std::convertible_to<const char*>;
  // apply(critic, real, fake, rng, workspace) -> P
  { penalty.apply(critic, x, x, rng, ws) } -> std::same_as<typename Net::scalar>;
};

/// \tparam C a constraint policy (fg::penalty::WeightClip); \tparam Net the critic.
template <class C, class Net>
concept Constraint = std::constructible_from<C, typename C::Config> && requires(const C& constraint, Net& critic) {
  { C::name } -> std::convertible_to<const char*>;
  constraint.after_critic_step(critic);
};

namespace example {

/// What a penalty or a constraint uses of a critic's type (fg::Network has it all).
struct MinimalCritic {
  using backend = MinimalBackend<float>;
  using scalar = float;
};

/// A penalty's interface (declarations only); fg::penalty::R1 is the simplest real one.
struct MinimalPenalty {
  struct Config {};
  explicit MinimalPenalty(Config = {}) {}
  static constexpr const char* name = "MinimalPenalty";
  template <class Net>
  typename Net::scalar apply(Net& critic, ConstBatchView<typename Net::scalar> real,
                             ConstBatchView<typename Net::scalar> fake, RandomStream& rng,
                             penalty::Workspace<typename Net::backend>& ws) const;
};
static_assert(Penalty<MinimalPenalty, MinimalCritic>);

/// A constraint's interface (declarations only); fg::penalty::WeightClip is a real one.
struct MinimalConstraint {
  struct Config {};
  explicit MinimalConstraint(Config = {}) {}
  static constexpr const char* name = "MinimalConstraint";
  template <class Net>
  void after_critic_step(Net& critic) const;
};
static_assert(Constraint<MinimalConstraint, MinimalCritic>);

} // namespace example

} // namespace forgery

namespace forgery {

// --------------------------------------------------------------------------------------
// GradientsHook: the one place of an optimizer update where every gradient of that update
// is in its network's gradient buffer and nothing has read it yet: the Trainer calls it
// once per critic update and once per generator update, before the non-finite guard, the
// gradient norm and the optimizer step. With shards (Trainer::Config::shards) it sees the
// shards' mean, after a communicator's exchange (below); the single-process trainer's hook
// (fg::LocalGradients) does nothing.
// --------------------------------------------------------------------------------------

/// Which network's gradients are ready.
enum class GradientsOf { critic, generator };

/// What the gradients-ready hook is told: the gradient buffer it may read and rewrite in
/// place (backend memory: device memory on a device backend) and where the update stands.
/// \tparam B the backend.
template <class B>
struct GradientsReady {
  GradientsOf network;              ///< whose gradients these are
  typename B::scalar* grads;        ///< the network's gradient buffer
  const typename B::scalar* params; ///< its parameters, not yet stepped
  index_t count;                    ///< values in both
  index_t batch;                    ///< samples per update (Trainer::Config::batch)
  long long step;                   ///< the training step in progress (1 for the first)
};

/// \tparam H a gradients-ready hook (fg::LocalGradients); \tparam B the backend.
template <class H, class B>
concept GradientsHook = Backend<B> && requires(H& hook, const GradientsReady<B>& ready) {
  hook.gradients_ready(ready);
};

// --------------------------------------------------------------------------------------
// Communicator: a gradients-ready hook that also spreads one training run over several
// ranks (processes). The global batch is cut into a fixed number of shards
// (Trainer::Config::shards); rank r computes the shards shard_range(shards, ranks, r) alone,
// each from its own random streams, and exchange_shards gives every rank every shard's
// slot, which each rank then sums in shard order. The result is the same bits for any rank
// count. fg::mpi::Communicator (forgery/distributed/mpi.hpp) is one; fg::LocalGradients,
// which is not, is one rank holding every shard.
// --------------------------------------------------------------------------------------

/// The shards [first, first + count) that one rank computes: contiguous, balanced (the
/// first shards % ranks ranks hold one more).
struct ShardRange {
  index_t first = 0;
  index_t count = 0;
};

/// Rank `rank`'s shards of `shards` over `ranks` ranks (1 <= ranks <= shards).
constexpr ShardRange shard_range(index_t shards, index_t ranks, index_t rank) noexcept {
  const index_t base = shards / ranks, extra = shards % ranks;
  return {rank * base + (rank < extra ? rank : extra), base + (rank < extra ? 1 : 0)};
}

/// One update's shard results, laid out by shard: slot s of `slots` (backend memory) holds
/// shard s's gradients and the layer states its passes left (stride scalars), slot s of
/// `host_slots` its loss and objective part values (host_stride doubles). On entry the
/// calling rank's slots are filled; exchange_shards fills the others.
template <class B>
struct ShardExchange {
  GradientsOf network;       ///< whose update this is
  typename B::scalar* slots; ///< shards x stride scalars, backend memory
  index_t stride;            ///< scalars per shard slot
  double* host_slots;        ///< shards x host_stride doubles, host memory
  index_t host_stride;       ///< doubles per shard slot
  index_t shards;            ///< Trainer::Config::shards
  long long step;            ///< the training step in progress (1 for the first)
};

/// \tparam C a communicator (fg::mpi::Communicator); \tparam B the backend.
template <class C, class B>
concept Communicator = GradientsHook<C, B> && requires(C& c, const C& cc, const ShardExchange<B>& x) {
  { cc.rank() } -> std::convertible_to<index_t>;
  { cc.size() } -> std::convertible_to<index_t>;
  c.exchange_shards(x);
};

namespace example {

/// A gradients-ready hook's interface (declarations only); fg::LocalGradients is the
/// single-process one.
struct MinimalGradientsHook {
  template <class B>
  void gradients_ready(const GradientsReady<B>& ready);
};
static_assert(GradientsHook<MinimalGradientsHook, MinimalBackend<float>>);

/// A communicator's interface (declarations only): every rank calls exchange_shards with
/// its own slots filled and returns with all of them filled.
struct MinimalCommunicator {
  template <class B>
  void gradients_ready(const GradientsReady<B>& ready);
  [[nodiscard]] index_t rank() const;
  [[nodiscard]] index_t size() const;
  template <class B>
  void exchange_shards(const ShardExchange<B>& x);
};
static_assert(Communicator<MinimalCommunicator, MinimalBackend<float>>);
static_assert(!Communicator<MinimalGradientsHook, MinimalBackend<float>>);

} // namespace example

} // namespace forgery
