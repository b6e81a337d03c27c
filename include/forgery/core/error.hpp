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

/// A size product (batch x features, elements x bytes) that does not fit in index_t, or a
/// negative size; a config_error whose field is the setting the size came from.
class size_error : public config_error {
public:
  using config_error::config_error;
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

/// A non-finite value met during training; names the step, the network and the quantity.
class numeric_error : public error {
public:
  numeric_error(long long step, const std::string& quantity, const std::string& what)
      : error("forgery: step " + std::to_string(step) + ": " + quantity + " " + what), step_(step),
        quantity_(quantity) {}
  /// \param network "generator" or "discriminator" (or another name for the part that diverged)
  numeric_error(long long step, const std::string& network, const std::string& quantity, const std::string& what)
      : error("forgery: step " + std::to_string(step) + ": " + network + " " + quantity + " " + what), step_(step),
        network_(network), quantity_(quantity) {}
  /// The training step (1-based) that produced the value.
  [[nodiscard]] long long step() const noexcept { return step_; }
  /// The network the quantity belongs to (empty when not specific to one).
  [[nodiscard]] const std::string& network() const noexcept { return network_; }
  /// The quantity: "loss", a penalty's name, "gradient norm", "parameters", ...
  [[nodiscard]] const std::string& quantity() const noexcept { return quantity_; }

private:
  long long step_;
  std::string network_;
  std::string quantity_;
};

} // namespace forgery
