// Training that survives: the Checkpoints callback saves the Trainer's whole state every N
// steps (keeping the newest K files), on SIGINT/SIGTERM, and at the end; on divergence (the
// Trainer's NaN/Inf guard) it stops, or rolls back to the newest usable checkpoint (chosen
// as Trainer::resume chooses) with lower learning rates and goes on. A diverged state is never written: the Trainer
// refuses to checkpoint non-finite values, and on_end is not reached after an unhandled divergence.
#pragma once

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <string>
#include <system_error>
#include <utility>

#include <signal.h>

#include "forgery/core/error.hpp"
#include "forgery/io/checkpoint.hpp"
#include "forgery/train/trainer.hpp"

namespace forgery {

/// What the Checkpoints callback does when a step diverges (a non-finite loss, penalty or
/// gradient).
enum class OnDivergence {
  stop,    ///< the numeric_error (naming step, network and quantity) propagates out of fit()
  rollback ///< reload the newest usable checkpoint, multiply both learning rates by lr_factor, go on
};

namespace detail {
/// The signal that asked for a checkpoint-and-stop (0: none). Set by the handler only.
inline volatile std::sig_atomic_t checkpoint_signal = 0;
extern "C" inline void checkpoint_signal_handler(int signo) { checkpoint_signal = signo; }
} // namespace detail

namespace callbacks {

/// Settings of the Checkpoints callback; validate() names the first invalid field.
struct CheckpointOptions {
  std::filesystem::path dir;  ///< where step-<N>.fgck files go (created if missing)
  long long every = 1000;     ///< steps between checkpoints; 0: only at the end and on a signal
  std::size_t keep = 3;       ///< newest checkpoints kept (>= 1); older ones are deleted
  bool save_at_end = true;    ///< save when fit() ends (if the last step has no checkpoint yet)
  bool handle_signals = true; ///< SIGINT/SIGTERM during fit(): finish the step, save, stop
  OnDivergence on_divergence = OnDivergence::stop;
  double lr_factor = 0.5;  ///< rollback: learning rates become at most lr_factor x their value at the divergence
  int max_rollbacks = 3;   ///< rollbacks allowed before a divergence propagates anyway
  std::FILE* log = stderr; ///< one line per save, rollback and signal; nullptr: silent

  void validate() const {
    if (dir.empty()) throw config_error("CheckpointOptions.dir", "''", "a directory for the checkpoint files");
    if (every < 0)
      throw config_error("CheckpointOptions.every", std::to_string(every), "a step count >= 0 (0: at the end only)");
    if (keep < 1) throw config_error("CheckpointOptions.keep", std::to_string(keep), "at least 1");
    if (!(lr_factor > 0 && lr_factor < 1))
      throw config_error("CheckpointOptions.lr_factor", std::to_string(lr_factor), "a factor in (0, 1)");
    if (max_rollbacks < 0)
      throw config_error("CheckpointOptions.max_rollbacks", std::to_string(max_rollbacks), "a count >= 0");
  }
};

/// The fault-tolerance callback: pass it to Trainer::fit / fit_until. Resume first with
/// trainer.resume(options.dir), then fit_until(source, total, checkpoints) finishes the run
/// with the same bits as an uninterrupted one.
class Checkpoints {
public:
  explicit Checkpoints(CheckpointOptions options) : opt_(std::move(options)) { opt_.validate(); }
  Checkpoints(const Checkpoints&) = delete;
  Checkpoints& operator=(const Checkpoints&) = delete;
  ~Checkpoints() { restore_signals(); }

  template <class T>
  void on_begin(T& trainer, long long) {
    std::error_code ec;
    std::filesystem::create_directories(opt_.dir, ec);
    if (ec) throw io_error(opt_.dir.string(), "cannot create the checkpoint directory: " + ec.message());
    // Only the writer clears temporaries: another rank could remove one it is writing.
    if (writes_outputs(trainer)) io::remove_stale_temporaries(opt_.dir);
    signal_ = 0;
    if (opt_.handle_signals) install_signals();
    // A rollback needs a good state to return to: make sure the starting point is one.
    if (opt_.on_divergence == OnDivergence::rollback && !has_checkpoint_at(trainer.steps_done())) save(trainer);
  }

  template <class T>
  void on_step(T& trainer, const StepStats& s) {
    if (detail::checkpoint_signal != 0) {
      signal_ = detail::checkpoint_signal;
      detail::checkpoint_signal = 0;
      if (opt_.log)
        std::fprintf(opt_.log, "forgery: %s at step %lld: saving a checkpoint and stopping\n", signal_name(signal_),
                     s.step);
      save(trainer);
      trainer.request_stop();
      return;
    }
    if (opt_.every > 0 && s.step % opt_.every == 0) save(trainer);
  }

  template <class T>
  void on_end(T& trainer, const StepStats&) {
    restore_signals();
    if (opt_.save_at_end && last_step_ != trainer.steps_done()) save(trainer);
  }

  /// Rolls back (as configured) and returns true, or returns false to let the error through.
  /// The file is chosen as Trainer::resume chooses it (Trainer::load_newest_checkpoint):
  /// the newest usable one, skipping (and logging) damaged files, files with non-finite
  /// state and entries that are not regular files. With none usable, the divergence
  /// propagates.
  template <class T>
  bool on_divergence(T& trainer, const numeric_error& e) {
    if (opt_.on_divergence != OnDivergence::rollback || rollbacks_ >= opt_.max_rollbacks) {
      if (opt_.log && opt_.on_divergence == OnDivergence::rollback)
        std::fprintf(opt_.log, "forgery: %s; rollback limit reached, stopping\n", e.what());
      restore_signals();
      return false;
    }
    auto& g = trainer.generator_optimizer().config();
    auto& d = trainer.discriminator_optimizer().config();
    static_assert(
        requires { g.lr; }, "fg::callbacks::Checkpoints rollback lowers Config::lr; this optimizer has none.");
    const double g_lr = g.lr * opt_.lr_factor, d_lr = d.lr * opt_.lr_factor;
    const io::NewestCheckpoint found = trainer.load_newest_checkpoint(opt_.dir, opt_.log);
    if (!found) {
      if (opt_.log)
        std::fprintf(opt_.log, "forgery: %s; no usable checkpoint in %s to roll back to\n", e.what(), opt_.dir.c_str());
      restore_signals();
      return false;
    }
    const CheckpointEntry& good = found.loaded;
    g.lr = std::min(g.lr, g_lr);
    d.lr = std::min(d.lr, d_lr);
    ++rollbacks_;
    last_step_ = good.step;
    if (opt_.log)
      std::fprintf(opt_.log,
                   "forgery: %s\nforgery: rolled back to step %lld (%s); learning rates now %.3g (generator), "
                   "%.3g (discriminator)\n",
                   e.what(), good.step, good.path.c_str(), g.lr, d.lr);
    return true;
  }

  /// The signal (SIGINT, SIGTERM) that stopped the last fit(), or 0.
  [[nodiscard]] int interrupted_by() const noexcept { return signal_; }
  /// Rollbacks so far.
  [[nodiscard]] int rollbacks() const noexcept { return rollbacks_; }
  /// The last file saved (empty before the first save).
  [[nodiscard]] const std::filesystem::path& last_saved() const noexcept { return last_path_; }
  [[nodiscard]] const CheckpointOptions& options() const noexcept { return opt_; }

  /// Saves the trainer's state now as dir/step-<N>.fgck and deletes the oldest beyond keep
  /// (io::prune_checkpoints up to step N: files of later steps, which this run passed over
  /// as unusable, take no place of its own).
  template <class T>
  void save(const T& trainer) {
    const long long step = trainer.steps_done();
    const auto path = io::checkpoint_path(opt_.dir, step);
    // With several ranks, rank 0 writes: every rank holds the same state.
    if (writes_outputs(trainer)) {
      trainer.save_checkpoint(path);
      io::prune_checkpoints(opt_.dir, opt_.keep, step);
    }
    last_step_ = step;
    last_path_ = path;
  }

private:
  using CheckpointEntry = io::CheckpointEntry;

  bool has_checkpoint_at(long long step) const {
    std::error_code ec;
    return std::filesystem::is_regular_file(io::checkpoint_path(opt_.dir, step), ec);
  }

  static const char* signal_name(int signo) {
    return signo == SIGINT ? "SIGINT" : signo == SIGTERM ? "SIGTERM" : "a signal";
  }

  void install_signals() {
    if (installed_) return;
    detail::checkpoint_signal = 0;
    struct sigaction sa {};
    sa.sa_handler = &detail::checkpoint_signal_handler;
    sigemptyset(&sa.sa_mask);
    // A second Ctrl-C takes the default action (terminates) without waiting for the save.
    sa.sa_flags = SA_RESETHAND;
    ::sigaction(SIGINT, &sa, &old_int_);
    ::sigaction(SIGTERM, &sa, &old_term_);
    installed_ = true;
  }
  void restore_signals() noexcept {
    if (!installed_) return;
    ::sigaction(SIGINT, &old_int_, nullptr);
    ::sigaction(SIGTERM, &old_term_, nullptr);
    installed_ = false;
  }

  CheckpointOptions opt_;
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
  bool installed_ = false;
  int signal_ = 0;
  int rollbacks_ = 0;
  long long last_step_ = -1;
  std::filesystem::path last_path_;
};

} // namespace callbacks

} // namespace forgery
