// The TensorBoard callback: losses, gradient norms and each objective part as scalars, and
// optionally a grid of samples from fixed noise as an image, in an event file of a log
// directory (`tensorboard --logdir <dir>` shows them).
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "forgery/core/batch_view.hpp"
#include "forgery/core/error.hpp"
#include "forgery/core/philox.hpp"
#include "forgery/io/output_dir.hpp"
#include "forgery/io/png.hpp"
#include "forgery/io/tensorboard.hpp"
#include "forgery/train/trainer.hpp"

namespace forgery::callbacks {

/// What the TensorBoard callback logs, and how often.
struct TensorBoardOptions {
  long long every = 1;       ///< scalars every `every` steps, and at the run's last step
  long long image_every = 0; ///< a sample grid every `image_every` steps and at the last step (0: none)
  index_t images = 16;       ///< samples in the grid
  index_t columns = 0;       ///< grid columns (0: the smallest square that holds the samples)
  /// C, H, W of one sample (C 1 or 3). All 0: the generator's output shape, which must then
  /// be C x H x W; set it for a flat output (an MLP GAN's 784 features: {1, 28, 28}).
  std::array<index_t, 3> image_shape{};
  std::uint64_t image_seed = 0x7466'6576'656e'7473ULL; ///< the grid's fixed noise, the same at every step
  Weights weights = Weights::ema;                      ///< weights the grid is generated with
  io::GridOptions grid{};                              ///< padding and scale of the grid
  std::string filename_suffix{};                       ///< appended to each event file's name

  void validate() const {
    if (every < 1) throw config_error("TensorBoardOptions.every", std::to_string(every), "at least 1");
    if (image_every < 0)
      throw config_error("TensorBoardOptions.image_every", std::to_string(image_every), "at least 0 (0: no images)");
    if (images < 1) throw config_error("TensorBoardOptions.images", std::to_string(images), "at least 1");
    if (columns < 0)
      throw config_error("TensorBoardOptions.columns", std::to_string(columns), "at least 0 (0: a square grid)");
  }
};

/// Logs training to TensorBoard: every `every` steps, the scalars loss/d, loss/g,
/// grad_norm/d, grad_norm/g and part/<name> for each objective part once it has been
/// non-zero (constraints, always 0, are left out); every `image_every` steps, the image
/// "samples" (a grid of `images` samples from fixed noise, as a PNG). Steps are the
/// trainer's, so a resumed run continues the curves. Each fit() starts a new event file
/// in the directory (TensorBoard merges them) that begins with a session start at the
/// next step, which makes TensorBoard drop what a stopped run logged past the checkpoint
/// the new run resumed from (and after a rollback, when a step comes again).
class TensorBoard {
public:
  /// Creates `log_dir` where missing and proves it writable: io_error naming it otherwise,
  /// before any training time is spent.
  explicit TensorBoard(std::filesystem::path log_dir, TensorBoardOptions options = {})
      : dir_(std::move(log_dir)), options_(std::move(options)) {
    options_.validate();
    io::ensure_writable_directory(dir_);
  }

  template <class T>
  void on_begin(T& trainer, long long) {
    if (options_.image_every > 0) check_image_shape<T>();
    if (!writes_outputs(trainer)) return; // another rank than the root: writes nothing
    writer_.emplace(dir_, options_.filename_suffix);
    writer_->write_session_start(trainer.steps_done() + 1);
    last_step_ = trainer.steps_done();
  }

  template <class T>
  void on_step(T& trainer, const StepStats& s) {
    if (!writer_) return; // not the root rank
    // A step again: a callback rolled the trainer back after a divergence (Checkpoints);
    // TensorBoard then drops the steps logged since, as for a resumed run.
    if (s.step <= last_step_) writer_->write_session_start(s.step);
    last_step_ = s.step;
    if (s.step % options_.every == 0 || s.step == s.total) log_scalars(s);
    if (options_.image_every > 0 && (s.step % options_.image_every == 0 || s.step == s.total)) log_image(trainer, s);
  }

  template <class T>
  void on_end(T&, const StepStats&) {
    if (writer_) writer_->close();
  }

  /// The event file of the current (or last) fit; empty before the first.
  [[nodiscard]] std::filesystem::path file() const { return writer_ ? writer_->path() : std::filesystem::path(); }

  /// Adds a scalar of the caller's own (a metric computed elsewhere) to the current file.
  void log_scalar(long long step, std::string_view tag, double value) {
    if (!writer_ || !writer_->is_open())
      throw io_error(dir_.string(), "TensorBoard::log_scalar outside fit(): no event file is open");
    writer_->write_scalar(step, tag, value);
  }

private:
  void log_scalars(const StepStats& s) {
    io::Summary summary;
    summary.scalar("loss/d", s.d_loss).scalar("loss/g", s.g_loss);
    summary.scalar("grad_norm/d", s.d_grad_norm).scalar("grad_norm/g", s.g_grad_norm);
    if (parts_seen_.size() != s.part_values.size()) parts_seen_.assign(s.part_values.size(), false);
    for (std::size_t i = 0; i < s.part_values.size(); ++i) {
      if (s.part_values[i] != 0) parts_seen_[i] = true;
      if (parts_seen_[i]) summary.scalar(std::string("part/") + s.part_names[i], s.part_values[i]);
    }
    writer_->write(s.step, summary);
  }

  template <class T>
  static std::array<index_t, 3> image_shape(const TensorBoardOptions& o) {
    using shape = typename T::generator_type::output_shape;
    if (o.image_shape != std::array<index_t, 3>{}) return o.image_shape;
    if constexpr (shape::rank == 3) return {shape::dims[0], shape::dims[1], shape::dims[2]};
    return {};
  }

  template <class T>
  void check_image_shape() const {
    const auto [c, h, w] = image_shape<T>(options_);
    const std::string got = std::to_string(c) + " x " + std::to_string(h) + " x " + std::to_string(w);
    if (c == 0 && h == 0 && w == 0)
      throw config_error("TensorBoardOptions.image_shape", "unset",
                         "C, H, W of a sample: the generator's output is " + std::to_string(T::sample_size) +
                             " features, not C x H x W");
    if ((c != 1 && c != 3) || h < 1 || w < 1 || c * h * w != T::sample_size)
      throw config_error("TensorBoardOptions.image_shape", got,
                         "C x H x W with C 1 or 3 and C*H*W = " + std::to_string(T::sample_size) +
                             ", the generator's output size");
  }

  template <class T>
  void log_image(T& trainer, const StepStats& s) {
    using S = typename T::scalar;
    using B = typename T::backend;
    const index_t n = options_.images;
    const index_t values = T::sample_size * n;
    typename B::template buffer<S> out(values);
    const BatchView<S> view(out.data(), T::sample_size, n);
    RandomStream rng{options_.image_seed, 0, 0};
    if constexpr (T::conditional) {
      // Classes in turn, so that a row of `classes` columns holds one sample of each.
      std::vector<std::int32_t> labels(static_cast<std::size_t>(n));
      for (index_t j = 0; j < n; ++j) labels[static_cast<std::size_t>(j)] = static_cast<std::int32_t>(j % T::classes);
      trainer.generate(rng, view, labels, options_.weights);
    } else {
      trainer.generate(rng, view, options_.weights);
    }
    std::vector<S> host(static_cast<std::size_t>(values));
    B::to_host(values, out.data(), host.data());
    const auto [c, h, w] = image_shape<T>(options_);
    const index_t columns =
        options_.columns > 0 ? options_.columns : static_cast<index_t>(std::ceil(std::sqrt(static_cast<double>(n))));
    const io::EncodedPng png =
        io::encode_png_grid(ConstBatchView<S>(host.data(), T::sample_size, n), c, h, w, columns, options_.grid);
    writer_->write(s.step, io::Summary().image("samples", png));
  }

  std::filesystem::path dir_;
  TensorBoardOptions options_;
  std::optional<io::EventWriter> writer_;
  std::vector<bool> parts_seen_;
  long long last_step_ = 0;
};

} // namespace forgery::callbacks
