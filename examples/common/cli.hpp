// The examples' command lines, on CLI11: flags, --help and unknown or incomplete options are
// CLI11's; values are parsed here, strictly (the whole string, in range, no NaN or
// infinity), and every refusal names the flag and the form it expects. An output directory
// is proved writable before any training starts.
#pragma once

#include <charconv>
#include <cmath>
#include <concepts>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <initializer_list>
#include <limits>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include <CLI/CLI.hpp>

#include <forgery/io/output_dir.hpp>

namespace cli {

/// A command line the program cannot run with; the message names the flag.
class usage_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

namespace detail {

inline std::string quoted(const std::string& s) { return "'" + s + "'"; }

template <std::integral T>
T parse_integer(const std::string& flag, const std::string& text, T lo, T hi) {
  const std::string expected =
      "expected a whole number from " + std::to_string(lo) + " to " + std::to_string(hi) + ", got ";
  if (text.empty()) throw CLI::ValidationError(flag, expected + "an empty value");
  T value{};
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec == std::errc::result_out_of_range || (ec == std::errc() && ptr == end && (value < lo || value > hi)))
    throw CLI::ValidationError(flag, expected + quoted(text) + " (out of range)");
  if (ec != std::errc() || ptr != end) throw CLI::ValidationError(flag, expected + quoted(text));
  return value;
}

inline std::string number_text(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", x);
  return buf;
}

inline double parse_real(const std::string& flag, const std::string& text, double lo, double hi, bool hi_open) {
  const std::string expected =
      "expected a number in [" + number_text(lo) + ", " + number_text(hi) + (hi_open ? ")" : "]") + ", got ";
  if (text.empty()) throw CLI::ValidationError(flag, expected + "an empty value");
  double value = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end || !std::isfinite(value))
    throw CLI::ValidationError(flag, expected + quoted(text));
  if (value < lo || value > hi || (hi_open && value == hi))
    throw CLI::ValidationError(flag, expected + quoted(text) + " (out of range)");
  return value;
}

} // namespace detail

/// An example's command line: declare the options with their defaults in the targets, then
/// parse(). --help prints the usage and exits with status 0.
class Command {
public:
  Command(const std::string& name, const std::string& description) : app_(description, name) {
    app_.get_formatter()->column_width(30);
  }

  /// A whole number in [lo, hi].
  template <std::integral T>
  Command& integer(const std::string& flag, T& target, T lo, T hi, const std::string& help,
                   const std::string& form = "N") {
    app_.add_option_function<std::string>(
            flag, [&target, flag, lo, hi](const std::string& s) { target = detail::parse_integer(flag, s, lo, hi); },
            help)
        ->type_name(form)
        ->default_str(std::to_string(target));
    return *this;
  }

  /// A switch without a value: true when given.
  Command& flag(const std::string& name, bool& target, const std::string& help) {
    app_.add_flag(name, target, help);
    return *this;
  }

  /// A finite number in [lo, hi], or [lo, hi) with hi_open.
  Command& real(const std::string& flag, double& target, double lo, double hi, bool hi_open, const std::string& help,
                const std::string& form = "D") {
    app_.add_option_function<std::string>(
            flag,
            [&target, flag, lo, hi, hi_open](const std::string& s) {
              target = detail::parse_real(flag, s, lo, hi, hi_open);
            },
            help)
        ->type_name(form)
        ->default_str(detail::number_text(target));
    return *this;
  }

  /// A path, not empty: an empty --out once became "/checkpoints", the file system's root.
  Command& path(const std::string& flag, std::filesystem::path& target, const std::string& help,
                const std::string& form = "DIR") {
    app_.add_option_function<std::string>(
            flag,
            [&target, flag, form](const std::string& s) {
              if (s.empty()) throw CLI::ValidationError(flag, "expected a " + form + " path, got an empty value");
              target = s;
            },
            help)
        ->type_name(form)
        ->default_str(target.string());
    return *this;
  }

  /// One of `allowed`.
  Command& choice(const std::string& flag, std::string& target, std::vector<std::string> allowed,
                  const std::string& help) {
    std::string form;
    for (const std::string& a : allowed) form += (form.empty() ? "" : "|") + a;
    app_.add_option_function<std::string>(
            flag,
            [&target, flag, allowed, form](const std::string& s) {
              for (const std::string& a : allowed)
                if (s == a) {
                  target = s;
                  return;
                }
              throw CLI::ValidationError(flag, "expected " + form + ", got " + detail::quoted(s));
            },
            help)
        ->type_name(form)
        ->default_str(target);
    return *this;
  }

  /// Text printed after the options in --help.
  Command& footer(const std::string& text) {
    app_.footer(text);
    return *this;
  }

  /// Parses the command line into the targets. Prints --help and exits(0); throws
  /// usage_error naming the flag for anything else it cannot use.
  void parse(int argc, char** argv) {
    try {
      app_.parse(argc, argv);
    } catch (const CLI::CallForHelp&) {
      std::fputs(app_.help().c_str(), stdout);
      std::exit(0);
    } catch (const CLI::ParseError& e) {
      throw usage_error(std::string(e.what()) + " (see --help)");
    }
  }

private:
  CLI::App app_;
};

/// Creates the output directory `dir` of `flag` and proves it writable (a probe file with a
/// temporary name, written, fsync'ed and removed); throws usage_error naming the flag and the
/// directory otherwise, before any training time is spent.
inline void require_writable_directory(const std::string& flag, const std::filesystem::path& dir) {
  try {
    forgery::io::ensure_writable_directory(dir);
  } catch (const forgery::io_error& e) {
    throw usage_error(flag + ": " + e.what());
  }
}

} // namespace cli
