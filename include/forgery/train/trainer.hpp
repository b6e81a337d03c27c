// Trainer<G, D, Objective, Optimizer, Backend, Hook>: one GAN training loop composed from
// policies. It owns both networks, their optimizers, the EMA of the generator, the random
// streams, and the hand-off of the critic's input gradient into the generator's backward.
// What the losses read and their gradients belong to the objective (train/objective.hpp),
// the checkpoint records to train/checkpoint.hpp, and what happens to the gradients before
// each optimizer step to the gradients-ready hook (train/gradients_ready.hpp).
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <new>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "forgery/backend/cpu.hpp"
#include "forgery/core/batch_view.hpp"
#include "forgery/core/buffer.hpp"
#include "forgery/core/concepts.hpp"
#include "forgery/core/error.hpp"
#include "forgery/core/philox.hpp"
#include "forgery/core/type_name.hpp"
#include "forgery/io/checkpoint.hpp"
#include "forgery/layers/init.hpp"
#include "forgery/nn/sequential.hpp"
#include "forgery/optim/adam.hpp"
#include "forgery/penalty/workspace.hpp"
#include "forgery/train/checkpoint.hpp"
#include "forgery/train/critic_batch.hpp"
#include "forgery/train/gradients_ready.hpp"
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

/// Whether `trainer` writes the run's outputs (logs, checkpoints, images): its root rank
/// only when it spreads over several (Trainer::is_root), always otherwise. The callbacks
/// ask it, so that one set of files is written whatever the rank count.
template <class T>
[[nodiscard]] bool writes_outputs(const T& trainer) noexcept {
  if constexpr (requires { trainer.is_root(); })
    return trainer.is_root();
  else
    return true;
}

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

/// out[i] = (slot 0 + slot 1 + ... + slot shards-1)[i] / shards, summed in shard order: the
/// same bits whichever rank computed which slot, and on any thread count.
template <class S>
struct ShardMean {
  const S* slots;
  index_t stride;
  index_t shards;
  S* out;
  FORGERY_HOST_DEVICE void operator()(index_t i) const {
    S acc = slots[i];
    for (index_t s = 1; s < shards; ++s) acc += slots[s * stride + i];
    out[i] = acc / static_cast<S>(shards);
  }
};
} // namespace kernels

/// \tparam G generator spec (fg::Sequential); its input size is the latent size.
/// \tparam D critic spec; its input shape must equal G's output shape, its output one logit.
/// \tparam Obj a loss (fg::loss::NonSaturating) or an fg::Objective<Loss, Parts...>.
/// \tparam Opt optimizer policy; G and D each get their own State and Config (TTUR).
/// \tparam B backend policy.
/// \tparam Hook gradients-ready hook (fg::GradientsHook): called once per critic update and
/// once per generator update with all of that update's gradients, before the non-finite
/// guard, the gradient norm and the optimizer step. fg::LocalGradients, the default, does
/// nothing. A hook that is also an fg::Communicator (fg::mpi::Communicator) spreads the
/// shards of each update (Config::shards) over its ranks.
template <NetworkSpec G, NetworkSpec D, class Obj, class Opt = optim::Adam, Backend B = backend::Cpu<float>,
          class Hook = LocalGradients>
class Trainer {
  static_assert(G::output_shape::size == D::input_shape::size,
                "fg::Trainer: the generator's output size must equal the discriminator's input size; make G's last "
                "layer produce D's Input<...> shape.");
  static_assert(Optimizer<Opt, B>, "fg::Trainer: Opt does not satisfy the fg::Optimizer concept (core/concepts.hpp).");
  static_assert(GradientsHook<Hook, B>,
                "fg::Trainer: Hook does not satisfy the fg::GradientsHook concept (core/concepts.hpp): it needs "
                "gradients_ready(const fg::GradientsReady<B>&).");

public:
  using objective_type = objective_of<Obj>;
  using loss_type = typename objective_type::loss_type;
  using backend = B;
  using scalar = typename B::scalar;
  using S = scalar;
  using generator_type = Network<G, B>;
  using discriminator_type = Network<D, B>;
  using hook_type = Hook;
  static_assert(Loss<loss_type, B>, "fg::Trainer: the loss does not satisfy the fg::Loss concept (core/concepts.hpp).");

  /// Critic outputs per sample: the adversarial logit, then any classifier head's logits.
  static constexpr index_t critic_rows = objective_type::critic_rows;
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
  /// layer such as BatchNorm) rather than one batch of 2n: it then runs [real | fake] as
  /// one pass of 2n with two statistics groups (Context::statistics_groups), which
  /// normalise each half as a pass of its own would.
  static constexpr bool split_critic_batches = discriminator_type::uses_batch_statistics;
  static constexpr index_t latent_size = G::input_shape::size;
  static constexpr index_t sample_size = D::input_shape::size;

  /// Most values one buffer sized from the batch may hold (2^36, 256 GiB of floats): a batch
  /// that needs more is a configuration error, long before a size product overflows.
  static constexpr index_t max_buffer_values = index_t{1} << 36;
  /// Values per sample of the widest buffer the Trainer or its networks size from the batch:
  /// the widest layer boundary of G and D (their inputs and outputs included), at least 2
  /// (the loss workspace holds 4 per sample of a batch of n, i.e. 2 per critic sample).
  static constexpr index_t widest_boundary = [] {
    index_t w = std::max<index_t>(critic_rows, 2);
    for (index_t x : generator_type::widths) w = std::max(w, x);
    for (index_t x : discriminator_type::widths) w = std::max(w, x);
    return w;
  }();
  /// The largest batch accepted: the critic runs real and fake as one batch of 2 x batch, so
  /// 2 x batch x widest_boundary values must fit in max_buffer_values. Every buffer sized
  /// from the batch (G's input and output, each boundary of both networks, the 2n critic
  /// batch, labels, loss workspace) is then far from overflowing index_t.
  static constexpr index_t max_batch = max_buffer_values / (2 * widest_boundary);

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
    /// Shards of each update's batch (data-parallel training): the batch is cut into
    /// `shards` equal parts, each part's gradient is computed alone (its own noise, penalty,
    /// label and dropout draws, its own BatchNorm statistics) and the parts' gradients are
    /// averaged in shard order. The result does not depend on how many ranks (processes of
    /// a communicator) share the shards or on the thread count, so fix it for a run: a run
    /// on 1, 2 or 4 ranks with the same `shards` gives the same bits. Layer states (running
    /// statistics) after an update are shard 0's. 1, the default, is the plain batch.
    index_t shards = 1;

    void validate() const {
      if (batch <= 0 || batch > max_batch)
        throw config_error("Trainer.batch", std::to_string(batch),
                           "a batch size from 1 to " + std::to_string(max_batch) + " (2 x batch x " +
                               std::to_string(widest_boundary) +
                               " values, real and fake at the widest layer boundary of G and D, must stay within "
                               "2^36)");
      if (n_critic <= 0) throw config_error("Trainer.n_critic", std::to_string(n_critic), "at least 1");
      if (shards <= 0 || batch % shards != 0)
        throw config_error("Trainer.shards", std::to_string(shards),
                           "a divisor of the batch (" + std::to_string(batch) + ") from 1 to the batch");
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

  explicit Trainer(const Config& config = {}, Hook hook = {})
      : config_((config.validate(), config)), objective_(config.objective), g_opt_(config.g_optimizer, G_params()),
        d_opt_(config.d_optimizer, D_params()), hook_(std::move(hook)) {
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
    if constexpr (Communicator<Hook, B>) {
      ranks_ = static_cast<index_t>(hook_.size());
      rank_ = static_cast<index_t>(hook_.rank());
    }
    if (config_.shards < ranks_)
      throw config_error("Trainer.shards", std::to_string(config_.shards),
                         "at least the number of ranks (" + std::to_string(ranks_) +
                             "), since every rank computes whole shards; fix it for the run, not per launch");
    local_ = shard_range(config_.shards, ranks_, rank_);
    sharded_ = config_.shards > 1 || ranks_ > 1;
    const index_t n = shard_batch();
    if constexpr (conditional) labels_.resize(2 * n);
    if constexpr (!B::host_memory) {
      host_real_.resize(sample_size * n);
      if constexpr (conditional) host_labels_.resize(2 * n);
    }
    z_.resize(latent_size * n);
    critic_in_.resize(sample_size * 2 * n);
    critic_batch_.resize(n);
    if (sharded_) {
      for_each_layer_state([&](S*, index_t, index_t count) { state_count_ += count; });
      states_.resize(state_count_);
      slots_.resize(config_.shards * std::max(slot_stride(D_params()), slot_stride(G_params())));
      host_slots_.assign(static_cast<std::size_t>(config_.shards * host_stride), 0.0);
      if constexpr (generator_reads_real) {
        reals_.resize(local_.count * sample_size * n);
        if constexpr (conditional) real_labels_.resize(local_.count * n);
      }
    }
    if constexpr (requires(std::string_view t) { hook_.check_same(t, t); }) {
      // Ranks that start from different settings, types or weights would never give the
      // same bits: every rank compares its whole initial state (as checkpoint bytes), or,
      // where the optimizer's state cannot be written, its settings and types.
      if (ranks_ > 1) {
        if constexpr (checkpoint_type::checkpointable)
          hook_.check_same("Trainer configuration and initial state", checkpoint().bytes());
        else
          hook_.check_same("Trainer configuration", checkpoint_type::config_text(config_) + type_name<G>() + "\n" +
                                                        type_name<D>() + "\n" + type_name<Obj>() + "\n" +
                                                        type_name<Opt>() + "\n" + type_name<S>());
      }
    }
  }

  /// One training step: n_critic critic updates, then one generator update.
  template <class Source>
  requires DataSource<Source, S> || LabelledDataSource<Source, S>
  const StepStats& step(Source& source) {
    for (index_t k = 0; k < config_.n_critic; ++k) train_critic(source);
    train_generator();
    stats_.step = ++steps_;
    phase_ = 0;
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

  /// Runs `steps` more training steps (see fit_until).
  template <class Source, class... Callbacks>
  requires DataSource<Source, S> || LabelledDataSource<Source, S> StepStats fit(Source& source, long long steps,
                                                                                Callbacks&&... callbacks) {
    if (steps < 0) throw config_error("fit steps", std::to_string(steps), "a non-negative step count");
    return fit_until(source, steps_ + steps, std::forward<Callbacks>(callbacks)...);
  }

  /// Trains until steps_done() reaches `total` (a resumed run continues where it stopped),
  /// calling each callback's hooks where present:
  ///   on_begin(trainer, total), on_step(trainer, stats) after each step, on_end(trainer,
  ///   stats) when done or stopped (request_stop()), and, when a step throws numeric_error
  ///   (the NaN/Inf guard), on_divergence(trainer, error): a callback that returns true has
  ///   restored a good state (callbacks::Checkpoints rolls back) and training goes on;
  ///   otherwise the error propagates and on_end is not called, so nothing saves a diverged
  ///   state. Returns the last step's statistics.
  template <class Source, class... Callbacks>
  requires DataSource<Source, S> || LabelledDataSource<Source, S> StepStats fit_until(Source& source, long long total,
                                                                                      Callbacks&&... callbacks) {
    if (total < steps_)
      throw config_error("fit_until total", std::to_string(total),
                         "at least the steps already done (" + std::to_string(steps_) + ")");
    stop_requested_ = false;
    stats_.total = total;
    (call_begin(callbacks, total), ...);
    while (steps_ < total && !stop_requested_) {
      try {
        step(source);
        (call_step(callbacks), ...);
        agree_on_stop();
      } catch (const numeric_error& e) {
        bool handled = false;
        ((handled = handled || call_divergence(callbacks, e)), ...);
        if (!handled) throw;
        stats_.total = total;
      }
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
    if constexpr (B::host_memory) {
      g_.set_labels(labels.data(), out.batch());
    } else {
      detail::check_label_range(labels.data(), out.batch(), classes, "Trainer::generate");
      gen_labels_.resize(out.batch());
      B::to_device(out.batch(), labels.data(), gen_labels_.data());
      g_.set_labels(gen_labels_.data(), out.batch());
    }
    generate_impl(rng, out, weights);
  }

private:
  void generate_impl(RandomStream& rng, BatchView<S> out, Weights weights) {
    if (out.features() != sample_size)
      throw shape_error("Trainer::generate output", std::to_string(sample_size) + " features per sample",
                        std::to_string(out.features()));
    const index_t n = out.batch();
    if (n > max_buffer_values / widest_boundary)
      throw shape_error("Trainer::generate output",
                        "a batch of at most " + std::to_string(max_buffer_values / widest_boundary) +
                            " samples (its buffers must stay within 2^36 values)",
                        std::to_string(n) + " samples");
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
  /// The gradients-ready hook.
  [[nodiscard]] Hook& hook() noexcept { return hook_; }
  /// Ranks sharing each update's shards (1 unless the hook is a communicator), this
  /// process's rank among them, and its shards of Config::shards.
  [[nodiscard]] index_t ranks() const noexcept { return ranks_; }
  [[nodiscard]] index_t rank() const noexcept { return rank_; }
  [[nodiscard]] ShardRange local_shards() const noexcept { return local_; }
  /// Whether this process writes the run's outputs (checkpoints, logs, images): rank 0.
  [[nodiscard]] bool is_root() const noexcept { return rank_ == 0; }
  /// Samples per shard: Config::batch / Config::shards.
  [[nodiscard]] index_t shard_batch() const noexcept { return config_.batch / config_.shards; }
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

  // ---- checkpoints ------------------------------------------------------------------

  /// The whole training state as a checkpoint: both networks' parameters and layer states
  /// (BatchNorm statistics, SpectralNorm vectors), the EMA, both optimizers' state and
  /// settings, the random streams' positions, the step counters, the configuration, and the
  /// type signatures of the networks, objective and optimizer. Throws numeric_error (naming
  /// the network and the quantity) if any of it is not finite: a diverged state is never
  /// written. The records and their names: TrainerCheckpoint (train/checkpoint.hpp).
  [[nodiscard]] io::CheckpointWriter checkpoint() const { return checkpoint_mapping().write(); }

  /// Writes checkpoint() to `path` atomically (temporary file, fsync, rename).
  void save_checkpoint(const std::filesystem::path& path) const { checkpoint().save(path); }

  /// Restores the training state from a checkpoint written by a Trainer of the same types
  /// and configuration (batch, n_critic, seed, init, EMA settings): training then continues
  /// bit for bit as if it had never stopped. The optimizers' settings (learning rates,
  /// betas, ...) are restored too, since a rollback may have lowered them; change them after
  /// loading to train on with others. Everything is checked before anything is changed: on
  /// any error (io_error naming the file and record, or the two differing types or
  /// settings) this Trainer is unchanged.
  void load_checkpoint(const io::CheckpointFile& file) {
    checkpoint_mapping().read(file);
    stats_.step = steps_;
    phase_ = 0;
  }

  /// Reads and loads a checkpoint file (see load_checkpoint(const io::CheckpointFile&)),
  /// within `limits` and within checkpoint_limits(): a file larger than any checkpoint of
  /// this trainer is refused before it is read.
  void load_checkpoint(const std::filesystem::path& path, const io::CheckpointLimits& limits = {}) {
    io::CheckpointLimits within = checkpoint_limits();
    if (limits.max_bytes < within.max_bytes) {
      within.max_bytes = limits.max_bytes;
      within.max_bytes_source = limits.max_bytes_source;
    }
    within.max_records = std::min(within.max_records, limits.max_records);
    const io::CheckpointFile file = io::CheckpointFile::read(path, within);
    try {
      load_checkpoint(file);
    } catch (const std::bad_alloc&) {
      throw io_error(path.string(), "out of memory while loading the checkpoint");
    }
  }

  /// The limits a checkpoint file of this trainer fits in: the size and record count of its
  /// own checkpoint (the arrays sized by the networks, the text records as it writes them),
  /// plus 64 KiB and 64 records of room for settings written with other digits or by
  /// another version.
  [[nodiscard]] io::CheckpointLimits checkpoint_limits() const { return checkpoint_mapping().limits(); }

  /// Loads the newest usable checkpoint in `dir`: io::load_newest_checkpoint with this
  /// trainer's load_checkpoint and checkpoint_limits(). Entries that are not regular files,
  /// damaged or oversized files, and files of another trainer or with non-finite state are
  /// reported to `log` (unless null) and skipped for the next older one. Changes nothing
  /// when nothing loads. resume() and the rollback of callbacks::Checkpoints both choose
  /// through it, so they agree on which file is good.
  io::NewestCheckpoint load_newest_checkpoint(const std::filesystem::path& dir, std::FILE* log = stderr) {
    return io::load_newest_checkpoint(
        dir, [this](const io::CheckpointFile& file) { load_checkpoint(file); }, checkpoint_limits(), log);
  }

  /// Loads the newest usable checkpoint in `dir` (load_newest_checkpoint, reporting skipped
  /// entries on stderr) and returns its path. Returns an empty path and changes nothing when
  /// `dir` holds no entry named as a checkpoint. When entries exist but none is usable (all
  /// damaged, or a FIFO, directory or device under a checkpoint's name), throws the newest
  /// entry's io_error instead of starting afresh, so nothing silently discards the run.
  std::filesystem::path resume(const std::filesystem::path& dir) {
    const io::NewestCheckpoint found = load_newest_checkpoint(dir, stderr);
    if (!found && found.newest_error) std::rethrow_exception(found.newest_error);
    return found.loaded.path;
  }

  /// Asks fit() to return after the step in progress (from a callback or a signal handler's
  /// flag check); the next fit() clears it.
  void request_stop() noexcept { stop_requested_ = true; }
  [[nodiscard]] bool stop_requested() const noexcept { return stop_requested_; }

private:
  using checkpoint_type = TrainerCheckpoint<G, D, Obj, Opt, B>;

  // The checkpoint records' view of this Trainer's state. A const Trainer's view is only
  // written from (checkpoint(), checkpoint_limits()); the networks' state visitors are not
  // const, which is why the view holds mutable references.
  checkpoint_type checkpoint_mapping() const {
    auto& self = const_cast<Trainer&>(*this);
    return checkpoint_type{self.g_,     self.d_,         self.g_opt_,
                           self.d_opt_, self.ema_,       self.random_streams(),
                           self.steps_, self.g_updates_, checkpoint_type::config_text(config_)};
  }

  static constexpr index_t G_params() { return generator_type::param_count; }
  static constexpr index_t D_params() { return discriminator_type::param_count; }

  static constexpr bool generator_reads_real = objective_type::generator_columns(1) > 1;
  static constexpr index_t host_stride = 1 + static_cast<index_t>(objective_type::part_count);

  // Scalars of one shard's slot for a network of `params` parameters: its gradients, then
  // both networks' layer states, rounded up to 16 (64 bytes of floats).
  [[nodiscard]] index_t slot_stride(index_t params) const noexcept { return (params + state_count_ + 15) / 16 * 16; }

  // Generates a shard's batch into the fake half of the critic's input buffer.
  void generate_fakes(RandomStream& noise) {
    const index_t n = shard_batch();
    B::fill_normal(latent_size * n, z_.data(), noise, S(0), S(1));
    const auto fake = g_.forward({z_.data(), latent_size, n});
    B::copy(fake.size(), fake.data(), critic_in_.data() + sample_size * n);
  }

  // The random stream of `purpose` for shard `shard` of the update in progress: keyed by
  // (shard, step, update within the step), so a shard draws the same values whichever rank
  // computes it, and no rank needs another's stream positions.
  [[nodiscard]] RandomStream shard_stream(Stream purpose, index_t shard) const noexcept {
    return RandomStream{config_.seed, purpose, 0}
        .substream(static_cast<std::uint64_t>(shard))
        .substream(static_cast<std::uint64_t>(steps_))
        .substream(static_cast<std::uint64_t>(phase_));
  }

  // A shard's data stream. A source that takes a fixed number of blocks per sample
  // (blocks_per_sample: the datasets, ShuffledBatches, the toy samplers) draws shard s from
  // the run's data stream at s's first column, so the shards together see exactly the
  // batch a run without shards sees (and a rank reads only its shards' samples); the data
  // stream then moves past the whole batch (advance_data). Other sources draw from a
  // stream keyed by shard and update.
  template <class Source>
  [[nodiscard]] RandomStream shard_data_stream(index_t shard) const noexcept {
    if constexpr (requires { std::remove_cvref_t<Source>::blocks_per_sample; }) {
      RandomStream r = data_;
      r.counter += static_cast<std::uint64_t>(std::remove_cvref_t<Source>::blocks_per_sample) *
                   static_cast<std::uint64_t>(shard * shard_batch());
      return r;
    } else {
      return shard_stream(Stream::data, shard);
    }
  }
  template <class Source>
  void advance_data() noexcept {
    if constexpr (requires { std::remove_cvref_t<Source>::blocks_per_sample; })
      data_.take(static_cast<std::uint64_t>(std::remove_cvref_t<Source>::blocks_per_sample) *
                 static_cast<std::uint64_t>(config_.batch));
  }

  // f(state, offset, count) for each layer state of both networks (G's, then D's), with its
  // offset in a buffer that holds them all; and the copies to and from such a buffer.
  template <class F>
  void for_each_layer_state(F&& f) {
    index_t off = 0;
    const auto visit = [&](auto, S* state, index_t count) {
      f(state, off, count);
      off += count;
    };
    g_.for_each_state(visit);
    d_.for_each_state(visit);
  }
  void save_states(S* dst) {
    for_each_layer_state([&](S* state, index_t off, index_t count) { B::copy(count, state, dst + off); });
  }
  void load_states(const S* src) {
    for_each_layer_state([&](S* state, index_t off, index_t count) { B::copy(count, src + off, state); });
  }

  // One shard of a critic update: draws the real batch (into the real half of the critic's
  // input), the fakes, the loss and its gradient, the penalties; leaves the shard's
  // gradient in D's gradient buffer and its part values in `values`. `j` is the shard's
  // place among this rank's shards.
  template <class Source>
  S critic_shard(Source& source, RandomStream& data_rng, RandomStream& noise, RandomStream& penalty_rng, double* values,
                 [[maybe_unused]] index_t j) {
    const index_t n = shard_batch();
    S* const real = critic_in_.data();
    S* const fake = critic_in_.data() + sample_size * n;
    if constexpr (conditional) {
      static_assert(LabelledDataSource<Source, S>,
                    "fg::Trainer: this GAN is class-conditional, so its data source must also give labels: "
                    "src.sample(rng, out, std::span<std::int32_t> labels) (fg::data::ShuffledBatches does).");
      // The fakes of a critic update take the real batch's labels: each class is seen as
      // often real as fake, and penalties that mix real and fake points keep one label.
      if constexpr (B::host_memory) {
        source.sample(data_rng, BatchView<S>(real, sample_size, n), std::span<std::int32_t>(labels_.data(), n));
        std::copy(labels_.data(), labels_.data() + n, labels_.data() + n);
      } else {
        source.sample(data_rng, BatchView<S>(host_real_.data(), sample_size, n),
                      std::span<std::int32_t>(host_labels_.data(), n));
        detail::check_label_range(host_labels_.data(), n, classes, "Trainer data source");
        std::copy(host_labels_.data(), host_labels_.data() + n, host_labels_.data() + n);
        B::to_device(sample_size * n, host_real_.data(), real);
        B::to_device(2 * n, host_labels_.data(), labels_.data());
      }
      g_.set_labels(labels_.data() + n, n);
    } else if constexpr (B::host_memory) {
      source.sample(data_rng, BatchView<S>(real, sample_size, n));
    } else {
      source.sample(data_rng, BatchView<S>(host_real_.data(), sample_size, n));
      B::to_device(sample_size * n, host_real_.data(), real);
    }
    if constexpr (generator_reads_real) {
      // The generator update of a loss that compares with the real batch reads this shard's
      // real batch again after the other shards have used the input buffer.
      if (sharded_) {
        B::copy(sample_size * n, real, reals_.data() + j * sample_size * n);
        if constexpr (conditional)
          B::for_each(n, kernels::Copy<std::int32_t>{labels_.data(), real_labels_.data() + j * n});
      }
    }
    generate_fakes(noise);
    const ConstBatchView<S> out = critic_forward(2 * n);
    const auto terms = objective_.template critic_terms<B>(n, out, labels_.data(), critic_batch_, values);
    d_.zero_grad();
    d_.backward({terms.grad, critic_rows, 2 * n}, Grad::params);
    objective_.apply_penalties(d_, ConstBatchView<S>(real, sample_size, n), ConstBatchView<S>(fake, sample_size, n),
                               penalty_rng, workspace_, values);
    return terms.loss;
  }

  // One shard of a generator update: fresh labels, the fakes, the critic's input gradient
  // at them back-propagated through G; leaves the shard's gradient in G's gradient buffer.
  S generator_shard(RandomStream& labels_rng, RandomStream& noise, [[maybe_unused]] index_t j) {
    const index_t n = shard_batch();
    if constexpr (conditional) {
      // Fresh uniform labels for the generator's batch; the real half keeps its labels.
      if constexpr (B::host_memory) {
        detail::draw_labels(labels_rng, n, classes, labels_.data() + n);
      } else {
        detail::draw_labels(labels_rng, n, classes, host_labels_.data() + n);
        B::to_device(n, host_labels_.data() + n, labels_.data() + n);
      }
      g_.set_labels(labels_.data() + n, n);
    }
    if constexpr (generator_reads_real) {
      if (sharded_) {
        B::copy(sample_size * n, reals_.data() + j * sample_size * n, critic_in_.data());
        if constexpr (conditional)
          B::for_each(n, kernels::Copy<std::int32_t>{real_labels_.data() + j * n, labels_.data()});
      }
    }
    generate_fakes(noise);
    // The critic batch the objective reads: the fakes, or [real | fake] for a loss that
    // compares them with the last real batch; the fakes are its last n samples.
    const index_t cols = objective_type::generator_columns(n);
    const ConstBatchView<S> out = critic_forward(cols);
    const auto terms = objective_.template generator_terms<B>(n, out, labels_.data(), critic_batch_);
    // The fakes' input gradient (with statistics groups, the halves do not mix).
    const ConstBatchView<S> dx_all = d_.backward({terms.grad, critic_rows, cols}, Grad::input);
    const ConstBatchView<S> dx(dx_all.data() + sample_size * (cols - n), sample_size, n);
    // The hand-off: the critic's input gradient is the generator's output gradient. G's
    // activations are those of generate_fakes() above, which produced this batch.
    g_.zero_grad();
    g_.backward(dx, Grad::params);
    return terms.loss;
  }

  // The shards of an update: each of this rank's shards from the layer states the update
  // began with, its gradient, states and scalars in its slot; then the communicator's
  // exchange (every rank gets every slot); then the shard mean of the gradients into
  // `net`'s gradient buffer, shard 0's layer states, and the shard mean of the scalars
  // (loss, part values) into `scalars`. `compute(j, shard, values)` computes one shard and
  // returns its loss.
  template <class Net, class Compute>
  void run_shards(GradientsOf which, Net& net, double* scalars, Compute&& compute) {
    const index_t stride = slot_stride(Net::param_count);
    S* const slots = slots_.data();
    save_states(states_.data());
    for (index_t j = 0; j < local_.count; ++j) {
      const index_t shard = local_.first + j;
      if (j > 0) load_states(states_.data());
      double* const host = host_slots_.data() + shard * host_stride;
      std::fill(host, host + host_stride, 0.0);
      host[0] = static_cast<double>(compute(j, shard, host + 1));
      S* const slot = slots + shard * stride;
      B::copy(Net::param_count, net.grads(), slot);
      save_states(slot + Net::param_count);
    }
    if constexpr (Communicator<Hook, B>) {
      if (ranks_ > 1)
        hook_.exchange_shards(
            ShardExchange<B>{which, slots, stride, host_slots_.data(), host_stride, config_.shards, steps_ + 1});
    }
    B::for_each(Net::param_count, kernels::ShardMean<S>{slots, stride, config_.shards, net.grads()});
    load_states(slots + Net::param_count);
    for (index_t k = 0; k < host_stride; ++k) {
      double acc = host_slots_[static_cast<std::size_t>(k)];
      for (index_t s = 1; s < config_.shards; ++s) acc += host_slots_[static_cast<std::size_t>(s * host_stride + k)];
      scalars[k] = acc / static_cast<double>(config_.shards);
    }
  }

  template <class Source>
  void critic_update(Source& source) {
    double loss = 0;
    if (!sharded_) {
      bind_streams();
      loss = static_cast<double>(critic_shard(source, data_, noise_, penalty_, stats_.values.data(), 0));
    } else {
      std::array<double, host_stride> scalars{};
      run_shards(GradientsOf::critic, d_, scalars.data(), [&](index_t j, index_t shard, double* values) {
        RandomStream data_rng = shard_data_stream<Source>(shard), noise = shard_stream(Stream::noise, shard),
                     penalty_rng = shard_stream(Stream::penalty, shard),
                     drop_g = shard_stream(Stream::dropout_g, shard), drop_d = shard_stream(Stream::dropout_d, shard);
        g_.set_random_stream(&drop_g);
        d_.set_random_stream(&drop_d);
        return critic_shard(source, data_rng, noise, penalty_rng, values, j);
      });
      bind_streams();
      advance_data<Source>();
      loss = scalars[0];
      std::copy(scalars.begin() + 1, scalars.end(), stats_.values.begin());
    }
    gradients_ready(GradientsOf::critic, d_);
    // The guard reads the update's loss after the hook: with several ranks, every rank
    // then sees the same values and stops at the same update (none waits for a rank that
    // threw).
    check_finite(loss, "discriminator", "loss");
    stats_.d_loss = loss;
    for (std::size_t i = 0; i < stats_.values.size(); ++i)
      check_finite(stats_.values[i], "discriminator", objective_type::part_names[i]);
    stats_.d_grad_norm = std::sqrt(static_cast<double>(B::dot(D_params(), d_.grads(), d_.grads())));
    check_finite(stats_.d_grad_norm, "discriminator", "gradient norm");
    d_opt_.step(d_.params(), d_.grads());
    objective_.after_critic_step(d_);
    d_.after_step();
    ++phase_;
  }

  void generator_update() {
    double loss = 0;
    if (!sharded_) {
      bind_streams();
      loss = static_cast<double>(generator_shard(labels_rng_, noise_, 0));
    } else {
      std::array<double, host_stride> scalars{};
      run_shards(GradientsOf::generator, g_, scalars.data(), [&](index_t j, index_t shard, double*) {
        RandomStream labels_rng = shard_stream(Stream::labels, shard), noise = shard_stream(Stream::noise, shard),
                     drop_g = shard_stream(Stream::dropout_g, shard), drop_d = shard_stream(Stream::dropout_d, shard);
        g_.set_random_stream(&drop_g);
        d_.set_random_stream(&drop_d);
        return generator_shard(labels_rng, noise, j);
      });
      bind_streams();
      loss = scalars[0];
    }
    gradients_ready(GradientsOf::generator, g_);
    check_finite(loss, "generator", "loss");
    stats_.g_loss = loss;
    stats_.g_grad_norm = std::sqrt(static_cast<double>(B::dot(G_params(), g_.grads(), g_.grads())));
    check_finite(stats_.g_grad_norm, "generator", "gradient norm");
    g_opt_.step(g_.params(), g_.grads());
    g_.after_step();
    ++phase_;
  }

  // Every gradient of this update is in `net`'s gradient buffer: the hook's turn, before
  // anything reads them.
  template <class Net>
  void gradients_ready(GradientsOf which, Net& net) {
    hook_.gradients_ready(
        GradientsReady<B>{which, net.grads(), net.params(), Net::param_count, config_.batch, steps_ + 1});
  }

  // The critic on the last `cols` samples of [real | fake] (critic_rows x cols): 2n, the
  // critic update's batch, as one batch of 2n, one GEMM per layer, or n, the fakes alone. If
  // a layer normalises with batch statistics (BatchNorm), real and fake are two statistics
  // groups of that batch, each normalised as a batch of its own, as in the DCGAN reference
  // code, since statistics shared by both would let the critic compare them through the
  // normalisation (it collapses training). The running estimates are updated with the real
  // half, then the fake half.
  ConstBatchView<S> critic_forward(index_t cols) {
    const index_t n = shard_batch();
    const index_t first = 2 * n - cols;
    if constexpr (conditional) d_.set_labels(labels_.data() + first, cols);
    // Back to one group however the pass ends: the critic's other passes are one batch.
    struct OneGroupAfter {
      discriminator_type& d;
      ~OneGroupAfter() { d.set_statistics_groups(1); }
    } const reset{d_};
    d_.set_statistics_groups(split_critic_batches ? cols / n : 1);
    return d_.forward({critic_in_.data() + sample_size * first, sample_size, cols});
  }

  // With several ranks, a stop asked for on one (a signal, a callback) stops them all after
  // the same step: a rank that left fit() alone would leave the others waiting.
  void agree_on_stop() {
    if constexpr (requires(bool b) { hook_.any(b); }) {
      if (ranks_ > 1) stop_requested_ = hook_.any(stop_requested_);
    }
  }

  // Layers that draw (Dropout) use the trainer's streams; set before each update so that a
  // copied Trainer's networks point at its own streams.
  void bind_streams() noexcept {
    g_.set_random_stream(&dropout_g_);
    d_.set_random_stream(&dropout_d_);
  }

  // The NaN/Inf guard: a scalar per quantity per update (losses, penalties, gradient
  // norms; the norms cover every gradient entry), so it costs nothing next to the step.
  template <class V>
  void check_finite(V value, const char* network, const char* quantity) const {
    if (config_.check_finite && !std::isfinite(static_cast<double>(value)))
      throw numeric_error(steps_ + 1, network, quantity,
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
  template <class C>
  bool call_divergence(C& c, const numeric_error& e) {
    if constexpr (requires { c.on_divergence(*this, e); })
      return static_cast<bool>(c.on_divergence(*this, e));
    else
      return false;
  }

  Config config_;
  objective_type objective_;
  generator_type g_;
  discriminator_type d_;
  typename Opt::template State<B> g_opt_, d_opt_;
  typename B::template buffer<S> ema_, z_, gen_z_, critic_in_;
  CriticBatch<B, critic_rows> critic_batch_; // the losses' logits, their gradients, workspace
  Hook hook_;
  typename B::template buffer<std::int32_t> labels_;     // [real batch | fake batch] labels
  typename B::template buffer<std::int32_t> gen_labels_; // generate()'s labels on a device backend
  // Host staging for a backend with device memory: data sources and the label draws write
  // on the host, then one upload per batch (unused, and empty, on host backends).
  HostBuffer<S> host_real_;
  HostBuffer<std::int32_t> host_labels_;
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
  bool stop_requested_ = false;
  // Shards: this rank's among ranks_, whether updates run by shard (Config::shards > 1 or
  // several ranks), the updates done in the step in progress (the shard streams' key).
  index_t ranks_ = 1, rank_ = 0;
  ShardRange local_{};
  bool sharded_ = false;
  long long phase_ = 0;
  // Sharded updates: how many values both networks' layer states hold, the states an
  // update began with, every shard's slot (gradients and states; its loss and part values
  // on the host), and this rank's shards' real batches (for a loss whose generator update
  // reads them).
  index_t state_count_ = 0;
  typename B::template buffer<S> states_, slots_, reals_;
  typename B::template buffer<std::int32_t> real_labels_;
  std::vector<double> host_slots_;
};

} // namespace forgery
