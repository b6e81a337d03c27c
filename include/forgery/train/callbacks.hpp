// Training callbacks: a progress line (redrawn in a terminal, plain lines in a log) and
// loss logs as CSV or JSON lines. A callback is any object with some of the hooks
// on_begin(trainer, total_steps), on_step(trainer, stats) and on_end(trainer, stats).
#pragma once

#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

#include "forgery/core/error.hpp"
#include "forgery/io/atomic_file.hpp"
#include "forgery/train/trainer.hpp"

namespace forgery::callbacks {

/// One status line every `every` steps: step, losses, steps/s, ETA. On a terminal the line
/// is redrawn in place; in a file or pipe each report is its own line.
class Progress {
public:
  explicit Progress(long long every = 100, std::FILE* out = stderr) : every_(every < 1 ? 1 : every), out_(out) {}

  template <class T>
  void on_begin(const T& trainer, long long total) {
    quiet_ = !writes_outputs(trainer);
    total_ = total;
    first_step_ = trainer.steps_done();
    start_ = clock::now();
    tty_ = ::isatty(::fileno(out_)) != 0;
  }
  template <class T>
  void on_step(const T&, const StepStats& s) {
    if (quiet_ || (s.step % every_ != 0 && s.step != total_)) return;
    const double elapsed = std::chrono::duration<double>(clock::now() - start_).count();
    const double rate = elapsed > 0 ? static_cast<double>(s.step - first_step_) / elapsed : 0.0;
    const double eta = rate > 0 ? static_cast<double>(total_ - s.step) / rate : 0.0;
    std::fprintf(out_, "%sstep %lld/%lld  d_loss %+.4f  g_loss %+.4f", tty_ ? "\r\033[K" : "", s.step, total_, s.d_loss,
                 s.g_loss);
    for (std::size_t i = 0; i < s.part_values.size(); ++i)
      if (s.part_values[i] != 0) std::fprintf(out_, "  %s %.4f", s.part_names[i], s.part_values[i]);
    std::fprintf(out_, "  %.1f steps/s  ETA %s%s", rate, format_duration(eta).c_str(), tty_ ? "" : "\n");
    std::fflush(out_);
  }
  template <class T>
  void on_end(const T&, const StepStats&) {
    if (quiet_) return;
    if (tty_) std::fputc('\n', out_);
    std::fflush(out_);
  }

  static std::string format_duration(double seconds) {
    const long long s = std::llround(seconds);
    char buf[32];
    if (s >= 3600)
      std::snprintf(buf, sizeof buf, "%lldh%02lldm", s / 3600, (s / 60) % 60);
    else
      std::snprintf(buf, sizeof buf, "%lldm%02llds", s / 60, s % 60);
    return buf;
  }

private:
  using clock = std::chrono::steady_clock;
  long long every_;
  std::FILE* out_;
  long long total_ = 0, first_step_ = 0;
  clock::time_point start_{};
  bool tty_ = false;
  bool quiet_ = false; // not the root rank: prints nothing
};

/// Log format of LossLog.
enum class LogFormat { csv, json_lines };

/// Writes step, losses, gradient norms and each objective part's value every `every`
/// steps, as CSV (with a header) or JSON lines, flushed per line so a crashed run keeps
/// its history.
class LossLog {
public:
  explicit LossLog(std::filesystem::path path, LogFormat format = LogFormat::csv, long long every = 1)
      : path_(std::move(path)), format_(format), every_(every < 1 ? 1 : every) {}

  template <class T>
  void on_begin(const T& trainer, long long) {
    quiet_ = !writes_outputs(trainer);
    if (quiet_) return;
    const bool append = trainer.steps_done() > 0 && std::filesystem::exists(path_);
    // A run resumed from a checkpoint may have logged steps past it before it stopped:
    // those rows are dropped, so that the log holds each step once, as the resumed run has it.
    if (append) drop_rows_after(trainer.steps_done());
    out_.open(path_, append ? std::ios::app : std::ios::trunc);
    if (!out_) throw io_error(path_.string(), "cannot open the training log for writing");
    if (format_ == LogFormat::csv && !append) {
      out_ << "step,d_loss,g_loss,d_grad_norm,g_grad_norm";
      const auto& s = trainer.last_stats();
      for (const char* name : s.part_names) out_ << ',' << name;
      out_ << '\n';
    }
  }
  template <class T>
  void on_step(const T&, const StepStats& s) {
    if (quiet_ || s.step % every_ != 0) return;
    char buf[256];
    if (format_ == LogFormat::csv) {
      std::snprintf(buf, sizeof buf, "%lld,%.9g,%.9g,%.9g,%.9g", s.step, s.d_loss, s.g_loss, s.d_grad_norm,
                    s.g_grad_norm);
      out_ << buf;
      for (double v : s.part_values) {
        std::snprintf(buf, sizeof buf, ",%.9g", v);
        out_ << buf;
      }
    } else {
      std::snprintf(buf, sizeof buf, R"({"step":%lld,"d_loss":%s,"g_loss":%s,"d_grad_norm":%s,"g_grad_norm":%s)",
                    s.step, json_number(s.d_loss).c_str(), json_number(s.g_loss).c_str(),
                    json_number(s.d_grad_norm).c_str(), json_number(s.g_grad_norm).c_str());
      out_ << buf;
      for (std::size_t i = 0; i < s.part_values.size(); ++i)
        out_ << ",\"" << s.part_names[i] << "\":" << json_number(s.part_values[i]);
      out_ << '}';
    }
    out_ << '\n';
    out_.flush();
    if (!out_) throw io_error(path_.string(), "write failed at step " + std::to_string(s.step));
  }
  template <class T>
  void on_end(const T&, const StepStats&) {
    out_.close();
  }

private:
  // Rewrites the log (atomically) without the rows of steps after `step`.
  void drop_rows_after(long long step) {
    std::ifstream in(path_);
    if (!in) throw io_error(path_.string(), "cannot open the training log to resume it");
    std::string kept, line;
    bool dropped = false;
    while (std::getline(in, line)) {
      long long row_step = -1;
      if (format_ == LogFormat::csv)
        row_step =
            std::isdigit(static_cast<unsigned char>(line.empty() ? 'x' : line[0])) ? std::atoll(line.c_str()) : -1;
      else if (line.starts_with("{\"step\":"))
        row_step = std::atoll(line.c_str() + 8);
      if (row_step > step) {
        dropped = true;
        continue;
      }
      kept += line;
      kept += '\n';
    }
    in.close();
    if (dropped) io::write_file_atomically(path_, kept);
  }

  // JSON has no NaN or Infinity: they are written as null.
  static std::string json_number(double v) {
    if (!std::isfinite(v)) return "null";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", v);
    return buf;
  }

  std::filesystem::path path_;
  LogFormat format_;
  long long every_;
  std::ofstream out_;
  bool quiet_ = false; // not the root rank: writes nothing
};

} // namespace forgery::callbacks
