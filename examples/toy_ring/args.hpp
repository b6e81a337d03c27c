// Minimal command-line parsing for the examples: --name value pairs with typed errors.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <map>
#include <stdexcept>
#include <string>

namespace toy {

/// Parses "--key value" pairs; unknown keys and malformed numbers are reported by name.
class Args {
public:
  Args(int argc, char** argv, std::map<std::string, std::string> defaults, const char* usage)
      : values_(std::move(defaults)) {
    for (int i = 1; i < argc; ++i) {
      const std::string key = argv[i];
      if (key == "--help" || key == "-h") {
        std::printf("%s", usage);
        std::exit(0);
      }
      if (key.rfind("--", 0) != 0 || !values_.count(key.substr(2)) || i + 1 >= argc)
        throw std::invalid_argument("unknown or incomplete option '" + key + "'; see --help");
      values_[key.substr(2)] = argv[++i];
    }
  }
  [[nodiscard]] std::string str(const std::string& key) const { return values_.at(key); }
  [[nodiscard]] long long integer(const std::string& key) const {
    const std::string& v = values_.at(key);
    char* end = nullptr;
    const long long x = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0') throw std::invalid_argument("--" + key + " expects an integer, got '" + v + "'");
    return x;
  }

private:
  std::map<std::string, std::string> values_;
};

} // namespace toy
