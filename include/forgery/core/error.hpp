// The exception hierarchy: every runtime failure forgery reports derives from
// forgery::error and says what was expected and what was found.
#pragma once

#include <stdexcept>
#include <string>

namespace forgery {

/// Root of every exception forgery throws.
class error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// An invalid configuration value; names the field, the value and what is allowed.
class config_error : public error {
public:
  config_error(const std::string& field, const std::string& got, const std::string& expected)
      : error("forgery: invalid configuration '" + field + "' = " + got + ": expected " + expected), field_(field) {}
  [[nodiscard]] const std::string& field() const noexcept { return field_; }

private:
  std::string field_;
};

/// A run-time shape disagreement (batch size, feature count), with both shapes.
class shape_error : public error {
public:
  shape_error(const std::string& where, const std::string& expected, const std::string& got)
      : error("forgery: shape mismatch in " + where + ": expected " + expected + ", got " + got) {}
};

/// A file that could not be read or written, or whose content is not what was expected.
class io_error : public error {
public:
  io_error(const std::string& path, const std::string& what) : error("forgery: " + path + ": " + what), path_(path) {}
  [[nodiscard]] const std::string& path() const noexcept { return path_; }

private:
  std::string path_;
};

/// A non-finite value met during training; names the step and the quantity.
class numeric_error : public error {
public:
  numeric_error(long long step, const std::string& quantity, const std::string& what)
      : error("forgery: step " + std::to_string(step) + ": " + quantity + " " + what), step_(step) {}
  [[nodiscard]] long long step() const noexcept { return step_; }

private:
  long long step_;
};

} // namespace forgery
