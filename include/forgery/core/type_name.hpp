// The name of a type as the compiler spells it, e.g. to record which networks a checkpoint
// was written by and to name both sides when another architecture tries to load it.
#pragma once

#include <string>
#include <string_view>

namespace forgery {

namespace detail {
template <class T>
constexpr std::string_view pretty_function() noexcept {
  return __PRETTY_FUNCTION__;
}
} // namespace detail

/// The compiler's spelling of T ("forgery::Sequential<forgery::Input<2>, ...>"). Stable for
/// one compiler; GCC and Clang may differ in spacing and in how they print constants.
template <class T>
std::string type_name() {
  const std::string_view f = detail::pretty_function<T>();
  const std::size_t at = f.find("T = ");
  if (at == std::string_view::npos) return std::string(f);
  std::size_t i = at + 4;
  int depth = 0;
  for (; i < f.size(); ++i) {
    const char c = f[i];
    if (c == '<' || c == '(' || c == '[')
      ++depth;
    else if ((c == '>' || c == ')') && depth > 0)
      --depth;
    else if (c == ']' && depth-- == 0)
      break;
    else if (c == ';' && depth == 0)
      break;
  }
  return std::string(f.substr(at + 4, i - (at + 4)));
}

} // namespace forgery
