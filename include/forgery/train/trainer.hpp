// Trainer<G, D, Objective, Optimizer, Backend>: one GAN training loop composed from
// policies. It owns both networks, their optimizers, the EMA of the generator, the random
// streams, and the hand-off of the critic's input gradient into the generator's backward.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <utility>

#include "forgery/backend/cpu.hpp"
#include "forgery/core/batch_view.hpp"
#include "forgery/core/concepts.hpp"
#include "forgery/core/error.hpp"
#include "forgery/core/philox.hpp"
#include "forgery/layers/init.hpp"
#include "forgery/nn/sequential.hpp"
#include "forgery/optim/adam.hpp"
#include "forgery/penalty/workspace.hpp"
#include "forgery/train/objective.hpp"

namespace forgery {

/// Where training data come from: anything that fills a features x batch view from a
/// Philox stream (the toy samplers, in-memory datasets).
template <class Src, class S>
concept DataSource = requires(Src& src, RandomStream& rng, BatchView<S> out) {
  src.sample(rng, out);
};

/// Where labelled training data come from (conditional GANs): also fills the class label
/// of each sample (ShuffledBatches over an ImageDataset, for example).
template <class Src, class S>
concept LabelledDataSource = requires(Src& src, RandomStream& rng, BatchView<S> out, std::span<std::int32_t> labels) {
  src.sample(rng, out, labels);
};

namespace detail {
/// n labels uniform in [0, classes) from `rng` (Lemire's multiply-shift on Philox words).
inline void draw_labels(RandomStream& rng, index_t n, index_t classes, std::int32_t* out) {
  const index_t blocks = (n + 3) / 4;
  const std::uint64_t first = rng.take(static_cast<std::uint64_t>(blocks));
  for (index_t b = 0; b < blocks; ++b) {
    const PhiloxBlock w = philox_block(rng.seed, rng.stream, first + static_cast<std::uint64_t>(b));
    for (index_t l = 0; l < 4 && 4 * b + l < n; ++l)
      out[4 * b + l] =
          static_cast<std::int32_t>((static_cast<std::uint64_t>(w.w[l]) * static_cast<std::uint64_t>(classes)) >> 32);
  }
}
} // namespace detail

/// Which generator weights generate() uses.
enum class Weights { current, ema };

/// What one training step measured; handed to every callback.
struct StepStats {
  long long step = 0;                      ///< steps completed, this one included
  long long total = 0;                     ///< steps fit() was asked for (0 outside fit)
  double d_loss = 0;                       ///< critic loss of the last critic update (penalties excluded)
  double g_loss = 0;                       ///< generator loss
  double d_grad_norm = 0;                  ///< ||dL_D/dtheta_D|| of the last critic update, penalties included
  double g_grad_norm = 0;                  ///< ||dL_G/dtheta_G||
  std::span<const double> part_values;     ///< each objective part's value (constraints: 0)
  std::span<const char* const> part_names; ///< their names
};

namespace kernels {
/// ema = decay * ema + (1 - decay) * p.
template <class S>
struct EmaUpdate {
  S decay;
  const S* p;
  S* ema;
  FORGERY_HOST_DEVICE void operator()(index_t i) const { ema[i] = decay * ema[i] + (S(1) - decay) * p[i]; }
};
/// dst[j * dst_stride] = src[j * src_stride].
template <class S>
struct StridedCopy {
  const S* src;
  index_t src_stride;
  S* dst;
  index_t dst_stride;
  FORGERY_HOST_DEVICE void operator()(index_t j) const { dst[j * dst_stride] = src[j * src_stride]; }
};
} // namespace kernels

/// \tparam G generator spec (fg::Sequential); its input size is the latent size.
/// \tparam D critic spec; its input shape must equal G's output shape, its output one logit.
/// \tparam Obj a loss (fg::loss::NonSaturating) or an fg::Objective<Loss, Parts...>.
/// \tparam Opt optimizer policy; G and D each get their own State and Config (TTUR).
/// \tparam B backend policy.
template <NetworkSpec G, NetworkSpec D, class Obj, class Opt = optim::Adam, Backend B = backend::Cpu<float>>
class Trainer {
  static_assert(G::output_shape::size == D::input_shape::size,
                "fg::Trainer: the generator's output size must equal the discriminator's input size; make G's last "
                "layer produce D's Input<...> shape.");
  static_assert(Optimizer<Opt, B>, "fg::Trainer: Opt does not satisfy the fg::Optimizer concept (core/concepts.hpp).");

public:
  using objective_type = objective_of<Obj>;
  using loss_type = typename objective_type::loss_type;
  using backend = B;
  using scalar = typename B::scalar;
  using S = scalar;
  using generator_type = Network<G, B>;
  using discriminator_type = Network<D, B>;
  static_assert(Loss<loss_type, B>, "fg::Trainer: the loss does not satisfy the fg::Loss concept (core/concepts.hpp).");

  /// Critic outputs per sample: the adversarial logit, then any classifier head's logits.
  static constexpr index_t critic_rows = 1 + objective_type::head_outputs;
  static_assert(D::output_shape::size == critic_rows,
                "fg::Trainer: the discriminator must output one logit per sample (end it with fg::Dense<1> or "
                "fg::Projection<Classes>; no Sigmoid: losses take logits), or 1 + K logits with an "
                "fg::AuxClassifier<K> objective part (end it with fg::Dense<1 + K>).");
  static_assert(generator_type::label_classes == 0 || discriminator_type::label_classes == 0 ||
                    generator_type::label_classes == discriminator_type::label_classes,
                "fg::Trainer: the generator and the discriminator condition on different numbers of classes.");
  static_assert(objective_type::head_outputs == 0 || generator_type::label_classes == objective_type::head_outputs,
                "fg::Trainer: an fg::AuxClassifier<K> objective needs a generator conditioned on the same K classes "
                "(put fg::ConcatOneHot<K> or fg::ConcatEmbedding<K, Dim> after its Input).");
  /// Number of classes of a conditional GAN (0: unconditional).
  static constexpr index_t classes = generator_type::label_classes > discriminator_type::label_classes
                                         ? generator_type::label_classes
                                         : discriminator_type::label_classes;
  static constexpr bool conditional = classes > 0;
  /// Whether the critic sees real and fake as separate batches (it has a batch-statistics
  /// layer such as BatchNorm) rather than one batch of 2n.
  static constexpr bool split_critic_batches = discriminator_type::uses_batch_statistics;
  static constexpr index_t latent_size = G::input_shape::size;
  static constexpr index_t sample_size = D::input_shape::size;

  /// Run-time settings; every field is validated at construction.
  struct Config {
    index_t batch = 64;                          ///< samples per update
    index_t n_critic = 1;                        ///< critic updates per generator update
    std::uint64_t seed = 0;                      ///< everything random derives from it
    Init init = Init::glorot_uniform;            ///< weight initialisation of both networks
    typename Opt::Config g_optimizer{};          ///< generator optimizer
    typename Opt::Config d_optimizer{};          ///< critic optimizer
    typename objective_type::Config objective{}; ///< loss and penalty settings
    double ema_decay = 0;                        ///< EMA of G's weights; 0 turns it off (e.g. 0.999)
    /// Warm the EMA up: decay min(ema_decay, (1 + t) / (10 + t)) at the t-th generator
    /// update (as TensorFlow's ExponentialMovingAverage with num_updates), so that a short
    /// run's average is not dominated by the initial weights.
    bool ema_warmup = false;
    bool check_finite = true; ///< throw numeric_error on a non-finite loss

    void validate() const {
      if (batch <= 0) throw config_error("Trainer.batch", std::to_string(batch), "a positive batch size");
      if (n_critic <= 0) throw config_error("Trainer.n_critic", std::to_string(n_critic), "at least 1");
      if (!(ema_decay >= 0 && ema_decay < 1))
        throw config_error("Trainer.ema_decay", std::to_string(ema_decay), "a value in [0, 1) (0 disables the EMA)");
      g_optimizer.validate();
      d_optimizer.validate();
    }
  };

  // Random streams, by purpose (the stream id of RandomStream).
  enum Stream : std::uint64_t {
    init_g = 1,
    init_d = 2,
    noise = 3,
    data = 4,
    penalty = 5,
    labels = 6,
    dropout_g = 7,
    dropout_d = 8
  };

  explicit Trainer(const Config& config = {})
      : config_((config.validate(), config)), objective_(config.objective), g_opt_(config.g_optimizer, G_params()),
        d_opt_(config.d_optimizer, D_params()) {
    g_.initialize(config_.seed, config_.init, init_g);
    d_.initialize(config_.seed, config_.init, init_d);
    if (config_.ema_decay > 0) {
      ema_.resize(G_params());
      B::copy(G_params(), g_.params(), ema_.data());
    }
    noise_ = RandomStream{config_.seed, noise, 0};
    data_ = RandomStream{config_.seed, data, 0};
    penalty_ = RandomStream{config_.seed, penalty, 0};
    labels_rng_ = RandomStream{config_.seed, labels, 0};
    dropout_g_ = RandomStream{config_.seed, dropout_g, 0};
    dropout_d_ = RandomStream{config_.seed, dropout_d, 0};
    const index_t n = config_.batch;
    if constexpr (conditional) labels_.resize(2 * n);
    if constexpr (critic_rows > 1) d_out_grad_.resize(critic_rows * 2 * n);
    z_.resize(latent_size * n);
    critic_in_.resize(sample_size * 2 * n);
    d_logits_.resize(2 * n);
    loss_work_.resize(4 * n);
  }

  /// One training step: n_critic critic updates, then one generator update.
  template <class Source>
  requires DataSource<Source, S> || LabelledDataSource<Source, S>
  const StepStats& step(Source& source) {
    for (index_t k = 0; k < config_.n_critic; ++k) train_critic(source);
    train_generator();
    stats_.step = ++steps_;
    return stats_;
  }

  /// One critic update on a fresh real batch and a fresh fake batch: loss, penalties,
  /// optimizer step, constraints. step() calls it n_critic times; custom schedules may
  /// call it directly.
  template <class Source>
  requires DataSource<Source, S> || LabelledDataSource<Source, S>
  void train_critic(Source& source) { critic_update(source); }

  /// One generator update (and the EMA update): the critic's input gradient at a fresh
  /// fake batch is back-propagated through the generator.
  void train_generator() {
    generator_update();
    if (!ema_.empty()) {
      double d = config_.ema_decay;
      if (config_.ema_warmup) {
        const double t = static_cast<double>(g_updates_);
        d = std::min(d, (1 + t) / (10 + t));
      }
      ++g_updates_;
      const S decay = static_cast<S>(d);
      B::for_each(G_params(), kernels::EmaUpdate<S>{decay, g_.params(), ema_.data()});
    }
  }

  /// Runs `steps` training steps, calling each callback's on_begin / on_step / on_end
  /// hooks where present. Returns the last step's statistics.
  template <class Source, class... Callbacks>
  requires DataSource<Source, S> || LabelledDataSource<Source, S> StepStats fit(Source& source, long long steps,
                                                                                Callbacks&&... callbacks) {
    if (steps < 0) throw config_error("fit steps", std::to_string(steps), "a non-negative step count");
    const long long total = steps_ + steps;
    stats_.total = total;
    (call_begin(callbacks, total), ...);
    for (long long i = 0; i < steps; ++i) {
      step(source);
      (call_step(callbacks), ...);
    }
    (call_end(callbacks), ...);
    return stats_;
  }

  /// Fills `out` (sample_size x n) with generated samples from latent draws of `rng`, in
  /// eval mode, using the EMA weights when asked for and enabled.
  void generate(RandomStream& rng, BatchView<S> out, Weights weights = Weights::ema) {
    static_assert(!conditional, "fg::Trainer::generate: this GAN is class-conditional; call "
                                "generate(rng, out, labels, weights) with one label per sample.");
    generate_impl(rng, out, weights);
  }

  /// Class-conditional generation: sample j of `out` belongs to class labels[j].
  void generate(RandomStream& rng, BatchView<S> out, std::span<const std::int32_t> labels,
                Weights weights = Weights::ema) {
    static_assert(conditional, "fg::Trainer::generate: this GAN is not conditional; call generate(rng, out).");
    if (static_cast<index_t>(labels.size()) != out.batch())
      throw shape_error("Trainer::generate labels", std::to_string(out.batch()) + " labels (one per sample)",
                        std::to_string(labels.size()));
    g_.set_labels(labels.data(), out.batch());
    generate_impl(rng, out, weights);
  }

private:
  void generate_impl(RandomStream& rng, BatchView<S> out, Weights weights) {
    if (out.features() != sample_size)
      throw shape_error("Trainer::generate output", std::to_string(sample_size) + " features per sample",
                        std::to_string(out.features()));
    const index_t n = out.batch();
    gen_z_.resize(latent_size * n);
    B::fill_normal(latent_size * n, gen_z_.data(), rng, S(0), S(1));
    const bool use_ema = weights == Weights::ema && !ema_.empty();
    if (use_ema) g_.param_buffer().swap(ema_);
    g_.eval();
    const auto y = g_.forward({gen_z_.data(), latent_size, n});
    B::copy(y.size(), y.data(), out.data());
    g_.train();
    if (use_ema) g_.param_buffer().swap(ema_);
  }

public:
  [[nodiscard]] generator_type& generator() noexcept { return g_; }
  [[nodiscard]] discriminator_type& discriminator() noexcept { return d_; }
  [[nodiscard]] const generator_type& generator() const noexcept { return g_; }
  [[nodiscard]] const discriminator_type& discriminator() const noexcept { return d_; }
  [[nodiscard]] objective_type& objective() noexcept { return objective_; }
  [[nodiscard]] typename Opt::template State<B>& generator_optimizer() noexcept { return g_opt_; }
  [[nodiscard]] typename Opt::template State<B>& discriminator_optimizer() noexcept { return d_opt_; }
  [[nodiscard]] const Config& config() const noexcept { return config_; }
  [[nodiscard]] long long steps_done() const noexcept { return steps_; }
  [[nodiscard]] const StepStats& last_stats() const noexcept { return stats_; }
  /// The EMA of G's parameters (empty when ema_decay is 0).
  [[nodiscard]] const typename B::template buffer<S>& ema_params() const noexcept { return ema_; }
  /// The random streams' positions, in Stream order (noise, data, penalty, labels, G's and
  /// D's dropout): with the weights, layer states and optimizer states, what a checkpoint
  /// must hold to resume bit for bit.
  [[nodiscard]] std::array<RandomStream*, 6> random_streams() noexcept {
    return {&noise_, &data_, &penalty_, &labels_rng_, &dropout_g_, &dropout_d_};
  }

private:
  static constexpr index_t G_params() { return generator_type::param_count; }
  static constexpr index_t D_params() { return discriminator_type::param_count; }

  // Generates a batch into the fake half of the critic's input buffer.
  void generate_fakes() {
    const index_t n = config_.batch;
    B::fill_normal(latent_size * n, z_.data(), noise_, S(0), S(1));
    const auto fake = g_.forward({z_.data(), latent_size, n});
    B::copy(fake.size(), fake.data(), critic_in_.data() + sample_size * n);
  }

  template <class Source>
  void critic_update(Source& source) {
    const index_t n = config_.batch;
    S* const real = critic_in_.data();
    S* const fake = critic_in_.data() + sample_size * n;
    bind_streams();
    if constexpr (conditional) {
      static_assert(LabelledDataSource<Source, S>,
                    "fg::Trainer: this GAN is class-conditional, so its data source must also give labels: "
                    "src.sample(rng, out, std::span<std::int32_t> labels) (fg::data::ShuffledBatches does).");
      // The fakes of a critic update take the real batch's labels: each class is seen as
      // often real as fake, and penalties that mix real and fake points keep one label.
      source.sample(data_, BatchView<S>(real, sample_size, n), std::span<std::int32_t>(labels_.data(), n));
      std::copy(labels_.data(), labels_.data() + n, labels_.data() + n);
      g_.set_labels(labels_.data() + n, n);
    } else {
      source.sample(data_, BatchView<S>(real, sample_size, n));
    }
    generate_fakes();
    const ConstBatchView<S> out = critic_forward_both();
    const S* logits = adversarial_logits(out);
    const S loss = objective_.loss.template discriminator<B>(n, logits, logits + n, d_logits_.data(),
                                                             d_logits_.data() + n, loss_work_.data());
    check_finite(loss, "discriminator loss");
    stats_.d_loss = static_cast<double>(loss);
    d_.zero_grad();
    if constexpr (critic_rows > 1) {
      scatter_adversarial_gradient(2 * n);
      objective_.template critic_heads<B>(n, out.data(), labels_.data(), d_out_grad_.data(), loss_work_.data(),
                                          stats_.values.data());
      critic_backward_both(d_out_grad_.data());
    } else {
      critic_backward_both(d_logits_.data());
    }
    objective_.apply_penalties(d_, ConstBatchView<S>(real, sample_size, n), ConstBatchView<S>(fake, sample_size, n),
                               penalty_, workspace_, stats_.values.data());
    for (std::size_t i = 0; i < stats_.values.size(); ++i)
      check_finite(stats_.values[i], objective_type::part_names[i]);
    stats_.d_grad_norm = std::sqrt(static_cast<double>(B::dot(D_params(), d_.grads(), d_.grads())));
    d_opt_.step(d_.params(), d_.grads());
    objective_.after_critic_step(d_);
    d_.after_step();
  }

  void generator_update() {
    const index_t n = config_.batch;
    bind_streams();
    if constexpr (conditional) {
      // Fresh uniform labels for the generator's batch; the real half keeps its labels.
      detail::draw_labels(labels_rng_, n, classes, labels_.data() + n);
      g_.set_labels(labels_.data() + n, n);
    }
    generate_fakes();
    S loss;
    ConstBatchView<S> dx;
    if constexpr (loss_type::generator_uses_real) {
      // Relativistic losses compare with the critic's view of the last real batch.
      const ConstBatchView<S> out = critic_forward_both();
      const S* logits = adversarial_logits(out);
      loss = objective_.loss.template generator<B>(n, logits, logits + n, d_logits_.data() + n, loss_work_.data());
      B::fill(n, d_logits_.data(), S(0));
      const S* grad = d_logits_.data();
      if constexpr (critic_rows > 1) {
        scatter_adversarial_gradient(2 * n);
        loss += objective_.template generator_heads<B>(n, out.data() + critic_rows * n, labels_.data() + n,
                                                       d_out_grad_.data() + critic_rows * n, loss_work_.data());
        grad = d_out_grad_.data();
      }
      if constexpr (split_critic_batches) {
        // The critic's activations are the fake pass's (critic_forward_both runs it last).
        dx = d_.backward({grad + critic_rows * n, critic_rows, n}, Grad::input);
      } else {
        dx = d_.backward({grad, critic_rows, 2 * n}, Grad::input);
        dx = ConstBatchView<S>(dx.data() + sample_size * n, sample_size, n);
      }
    } else {
      if constexpr (conditional) d_.set_labels(labels_.data() + n, n);
      const auto out = d_.forward({critic_in_.data() + sample_size * n, sample_size, n});
      const S* logits = adversarial_logits(out);
      loss = objective_.loss.template generator<B>(n, static_cast<const S*>(nullptr), logits, d_logits_.data(),
                                                   loss_work_.data());
      if constexpr (critic_rows > 1) {
        scatter_adversarial_gradient(n);
        loss += objective_.template generator_heads<B>(n, out.data(), labels_.data() + n, d_out_grad_.data(),
                                                       loss_work_.data());
        dx = d_.backward({d_out_grad_.data(), critic_rows, n}, Grad::input);
      } else {
        dx = d_.backward({d_logits_.data(), 1, n}, Grad::input);
      }
    }
    check_finite(loss, "generator loss");
    stats_.g_loss = static_cast<double>(loss);
    // The hand-off: the critic's input gradient is the generator's output gradient. G's
    // activations are those of generate_fakes() above, which produced this batch.
    g_.zero_grad();
    g_.backward(dx, Grad::params);
    stats_.g_grad_norm = std::sqrt(static_cast<double>(B::dot(G_params(), g_.grads(), g_.grads())));
    g_opt_.step(g_.params(), g_.grads());
    g_.after_step();
  }

  // The critic on [real | fake] (critic_rows x 2n). One batch of 2n, one GEMM per layer,
  // unless a layer normalises with batch statistics (BatchNorm): then real and fake are
  // separate batches, as in the DCGAN reference code, since statistics shared by both would
  // let the critic compare them through the normalisation (it collapses training). The
  // fake pass runs last, so its activations are the ones a following backward sees.
  ConstBatchView<S> critic_forward_both() {
    const index_t n = config_.batch;
    if constexpr (!split_critic_batches) {
      if constexpr (conditional) d_.set_labels(labels_.data(), 2 * n);
      return d_.forward({critic_in_.data(), sample_size, 2 * n});
    } else {
      split_out_.resize(critic_rows * 2 * n);
      for (index_t half = 0; half < 2; ++half) {
        if constexpr (conditional) d_.set_labels(labels_.data() + half * n, n);
        const auto o = d_.forward({critic_in_.data() + half * sample_size * n, sample_size, n});
        B::copy(o.size(), o.data(), split_out_.data() + half * critic_rows * n);
      }
      return {split_out_.data(), critic_rows, 2 * n};
    }
  }
  // Parameter gradients of the critic for the output gradient `grad` (critic_rows x 2n) of
  // critic_forward_both(); split batches back-propagate the fake pass, then rerun the real one.
  void critic_backward_both(const S* grad) {
    const index_t n = config_.batch;
    if constexpr (!split_critic_batches) {
      d_.backward({grad, critic_rows, 2 * n}, Grad::params);
    } else {
      d_.backward({grad + critic_rows * n, critic_rows, n}, Grad::params);
      if constexpr (conditional) d_.set_labels(labels_.data(), n);
      d_.forward({critic_in_.data(), sample_size, n});
      d_.backward({grad, critic_rows, n}, Grad::params);
    }
  }

  // Layers that draw (Dropout) use the trainer's streams; set before each update so that a
  // copied Trainer's networks point at its own streams.
  void bind_streams() noexcept {
    g_.set_random_stream(&dropout_g_);
    d_.set_random_stream(&dropout_d_);
  }

  // Row 0 of the critic's output as a contiguous array for the loss (a 1-row output already is).
  const S* adversarial_logits(ConstBatchView<S> out) {
    if constexpr (critic_rows == 1) {
      return out.data();
    } else {
      const index_t cols = out.batch();
      adv_logits_.resize(2 * config_.batch);
      B::for_each(cols, kernels::StridedCopy<S>{out.data(), critic_rows, adv_logits_.data(), 1});
      return adv_logits_.data();
    }
  }
  // The loss's logit gradients (d_logits_) into row 0 of the full output gradient, zeros in
  // the head rows for the heads to add into.
  void scatter_adversarial_gradient(index_t cols) {
    B::fill(critic_rows * cols, d_out_grad_.data(), S(0));
    B::for_each(cols, kernels::StridedCopy<S>{d_logits_.data(), 1, d_out_grad_.data(), critic_rows});
  }

  template <class V>
  void check_finite(V value, const char* what) const {
    if (config_.check_finite && !std::isfinite(static_cast<double>(value)))
      throw numeric_error(steps_ + 1, what,
                          "is " + std::to_string(static_cast<double>(value)) +
                              ": training diverged (lower the learning rates, or add a penalty)");
  }

  template <class C>
  void call_begin(C& c, long long total) {
    if constexpr (requires { c.on_begin(*this, total); }) c.on_begin(*this, total);
  }
  template <class C>
  void call_step(C& c) {
    if constexpr (requires { c.on_step(*this, stats_); }) c.on_step(*this, stats_);
  }
  template <class C>
  void call_end(C& c) {
    if constexpr (requires { c.on_end(*this, stats_); }) c.on_end(*this, stats_);
  }

  Config config_;
  objective_type objective_;
  generator_type g_;
  discriminator_type d_;
  typename Opt::template State<B> g_opt_, d_opt_;
  typename B::template buffer<S> ema_, z_, gen_z_, critic_in_, d_logits_, loss_work_, adv_logits_, d_out_grad_,
      split_out_;
  typename B::template buffer<std::int32_t> labels_; // [real batch | fake batch] labels
  penalty::Workspace<B> workspace_;
  RandomStream noise_, data_, penalty_, labels_rng_, dropout_g_, dropout_d_;
  // The statistics and the part values their span points at; a copied Trainer's span points
  // at its own values.
  struct Stats : StepStats {
    std::array<double, objective_type::part_count> values{};
    Stats() { bind(); }
    Stats(const Stats& o) : StepStats(o), values(o.values) { bind(); }
    Stats& operator=(const Stats& o) {
      StepStats::operator=(o);
      values = o.values;
      bind();
      return *this;
    }
    void bind() {
      part_values = std::span<const double>(values.data(), values.size());
      part_names = std::span<const char* const>(objective_type::part_names);
    }
  };
  Stats stats_;
  long long steps_ = 0;
  long long g_updates_ = 0; // generator updates so far (the EMA warm-up's t)
};

} // namespace forgery
