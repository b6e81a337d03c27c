// A network's parameter buffer as a 1-D .npy file: written through xtensor, atomically;
// read back with every header field checked against the network it is loaded into.
#pragma once

#include <array>
#include <bit>
#include <concepts>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

#include <xtensor/xadapt.hpp>
#include <xtensor/xnpy.hpp>

#include "forgery/core/buffer.hpp"
#include "forgery/core/error.hpp"
#include "forgery/io/atomic_file.hpp"

namespace forgery::io {

namespace detail {

/// What a .npy header says.
struct NpyHeader {
  std::string descr; ///< e.g. "<f4"
  bool fortran_order = false;
  std::vector<std::size_t> shape;
  std::size_t data_offset = 0; ///< where the values start in the file
};

/// The dtype string numpy writes for S on this machine ("<f4", "<f8").
template <class S>
std::string npy_descr() {
  static_assert(std::is_floating_point_v<S> && (sizeof(S) == 4 || sizeof(S) == 8),
                "forgery .npy weights are float or double.");
  return std::string(std::endian::native == std::endian::little ? "<" : ">") + "f" + std::to_string(sizeof(S));
}

inline std::string shape_string(const std::vector<std::size_t>& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

/// The value text after `'key':` in a header dict, or throws naming the key.
inline std::string_view npy_field(const std::string& name, std::string_view dict, std::string_view key) {
  // Appended piece by piece: GCC 12's -Wrestrict misfires on "'" + std::string(key) at -O3.
  std::string quoted(1, '\'');
  quoted.append(key);
  quoted.push_back('\'');
  const std::size_t at = dict.find(quoted);
  const std::size_t colon = at == std::string_view::npos ? at : dict.find(':', at + quoted.size());
  if (colon == std::string_view::npos)
    throw io_error(name, "malformed .npy header: no " + quoted + " in " + std::string(dict));
  std::size_t begin = colon + 1;
  while (begin < dict.size() && dict[begin] == ' ') ++begin;
  return dict.substr(begin);
}

/// Where a .npy header's dict lies: it starts at `start` (after the magic, the version and
/// the header length) and is `length` bytes long.
struct NpyPreamble {
  std::size_t start = 0;
  std::size_t length = 0;
};

/// Reads the magic, the version and the header length from the first bytes of a .npy file
/// (all of them, or at least the first 12 where the file has them): a reader can then read
/// exactly the header before parse_npy_header. Throws io_error naming the file.
inline NpyPreamble parse_npy_preamble(const std::string& name, std::string_view bytes) {
  constexpr std::string_view magic("\x93NUMPY", 6);
  if (bytes.size() < 10 || bytes.substr(0, 6) != magic)
    throw io_error(name, "not a .npy file: expected the magic \\x93NUMPY, found " + std::to_string(bytes.size()) +
                             (bytes.size() < 10 ? " bytes in all" : " other bytes"));
  const auto major = static_cast<unsigned char>(bytes[6]);
  std::size_t len = 0;
  if (major == 1) {
    len = static_cast<unsigned char>(bytes[8]) | (std::size_t{static_cast<unsigned char>(bytes[9])} << 8);
    return {10, len};
  }
  if (major == 2 || major == 3) {
    if (bytes.size() < 12)
      throw io_error(name, "truncated .npy header: a version " + std::to_string(major) +
                               " file needs 12 bytes before its header, the file has " + std::to_string(bytes.size()));
    for (int i = 3; i >= 0; --i) len = (len << 8) | static_cast<unsigned char>(bytes[8 + static_cast<std::size_t>(i)]);
    return {12, len};
  }
  throw io_error(name, "unsupported .npy format version " + std::to_string(major) + ": expected 1, 2 or 3");
}

/// Parses the header of a .npy file held in `bytes` (the whole file, or at least its
/// header). Throws io_error naming the file.
inline NpyHeader parse_npy_header(const std::string& name, std::string_view bytes) {
  const auto [start, len] = parse_npy_preamble(name, bytes);
  if (bytes.size() < start + len)
    throw io_error(name, "truncated .npy header: it promises " + std::to_string(len) + " bytes, the file has " +
                             std::to_string(bytes.size() - start));
  const std::string_view dict = bytes.substr(start, len);
  NpyHeader h;
  h.data_offset = start + len;

  const std::string_view descr = npy_field(name, dict, "descr");
  const std::size_t close = descr.size() > 1 ? descr.find(descr[0], 1) : std::string_view::npos;
  if ((descr.empty() || (descr[0] != '\'' && descr[0] != '"')) || close == std::string_view::npos)
    throw io_error(name, "malformed .npy header: 'descr' is not a string in " + std::string(dict));
  h.descr = std::string(descr.substr(1, close - 1));

  h.fortran_order = npy_field(name, dict, "fortran_order").starts_with("True");

  const std::string_view shape = npy_field(name, dict, "shape");
  const std::size_t end = shape.find(')');
  if (shape.empty() || shape[0] != '(' || end == std::string_view::npos)
    throw io_error(name, "malformed .npy header: 'shape' is not a tuple in " + std::string(dict));
  std::size_t value = 0;
  bool digits = false;
  for (std::size_t i = 1; i <= end; ++i) {
    const char c = shape[i];
    if (c >= '0' && c <= '9') {
      if (value > (~std::size_t{0} - 9) / 10) throw io_error(name, "malformed .npy header: a dimension overflows");
      value = value * 10 + static_cast<std::size_t>(c - '0');
      digits = true;
    } else if (c == ',' || c == ')') {
      if (digits) h.shape.push_back(value);
      value = 0;
      digits = false;
    } else if (c != ' ' && c != 'L') {
      throw io_error(name, "malformed .npy header: unexpected '" + std::string(1, c) + "' in 'shape' of " +
                               std::string(dict));
    }
  }
  return h;
}

/// The longest .npy header (magic, version, length and dict) a weights file may have: numpy
/// writes version 1 (a 16-bit header length) whenever the header fits, and a 1-D array's
/// header always does; 12 bytes lead a version 2 or 3 header.
inline constexpr std::size_t npy_max_header_bytes = 12 + 65535;

/// The size of the largest valid weights file of `count` values of `elem` bytes each.
inline constexpr std::uintmax_t npy_max_file_bytes(std::size_t count, std::size_t elem) {
  return npy_max_header_bytes + std::uintmax_t{count} * elem;
}

/// Reads `path` whole, refusing a file above `max_bytes` (`what` says what they hold): its
/// size on disk is checked before anything is read, and the read itself stops after
/// max_bytes + 1 bytes (for a file that grows meanwhile, or one without a size, a pipe).
inline std::string read_file_at_most(const std::filesystem::path& path, std::uintmax_t max_bytes,
                                     const std::string& what) {
  const std::string name = path.string();
  const auto too_large = [&](const std::string& found) {
    return io_error(name, "the file is " + found + " bytes, expected at most " + std::to_string(max_bytes) + " (" +
                              what + ")");
  };
  std::error_code ec;
  const std::uintmax_t size = std::filesystem::file_size(path, ec);
  if (!ec && size > max_bytes) throw too_large(std::to_string(size));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw io_error(name, "cannot open for reading: no such file or not readable");
  std::string bytes(static_cast<std::size_t>(ec ? 0 : size), '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  bytes.resize(static_cast<std::size_t>(in.gcount()));
  char buf[4096];
  while (in && bytes.size() <= max_bytes) {
    in.read(buf, static_cast<std::streamsize>(sizeof buf));
    bytes.append(buf, static_cast<std::size_t>(in.gcount()));
  }
  if (in.bad()) throw io_error(name, "read failed");
  if (bytes.size() > max_bytes) throw too_large("at least " + std::to_string(bytes.size()));
  return bytes;
}

/// Checks a whole weights file held in `bytes` (header, dtype S, shape (count,), no missing
/// or trailing data) and copies its `count` values to dst. Throws io_error naming the file,
/// expected and found; dst is unchanged then.
template <class S>
void read_npy_values(const std::string& name, std::string_view bytes, S* dst, std::size_t count) {
  const NpyHeader h = parse_npy_header(name, bytes);
  if (h.data_offset > npy_max_header_bytes)
    throw io_error(name, "a .npy header of " + std::to_string(h.data_offset) + " bytes, expected at most " +
                             std::to_string(npy_max_header_bytes) + " for a 1-D array");
  const std::string want = npy_descr<S>();
  if (h.descr != want)
    throw io_error(name, "dtype '" + h.descr + "', expected '" + want + "' (" +
                             (sizeof(S) == 4 ? "float32" : "float64") + ", the network's scalar type)");
  const std::vector<std::size_t> expected_shape{count};
  if (h.shape != expected_shape)
    throw io_error(name, "shape " + shape_string(h.shape) + ", expected " + shape_string(expected_shape) +
                             " (the network's parameter count)");
  // Compared as have / sizeof(S) first, so that no count (from the caller) can overflow.
  const std::size_t have = bytes.size() - h.data_offset;
  const std::uintmax_t want_bytes = std::uintmax_t{count} * sizeof(S);
  if (have / sizeof(S) < count)
    throw io_error(name, "truncated: the header promises " + std::to_string(want_bytes) + " data bytes, the file has " +
                             std::to_string(have));
  if (have > want_bytes)
    throw io_error(name, "trailing bytes: the header promises " + std::to_string(want_bytes) +
                             " data bytes, the file has " + std::to_string(have));
  if (count > 0) std::memcpy(dst, bytes.data() + h.data_offset, count * sizeof(S));
}

template <class Net>
concept HostNetwork = requires(const Net& net) {
  typename Net::scalar;
  { Net::param_count } -> std::convertible_to<index_t>;
  { net.params() } -> std::convertible_to<const typename Net::scalar*>;
  requires std::is_same_v<typename Net::template buffer<typename Net::scalar>, HostBuffer<typename Net::scalar>>;
};

} // namespace detail

/// Writes `net`'s parameter buffer (every layer's parameters and state, in layer order) as
/// a 1-D .npy array of Net::param_count values, atomically.
/// \tparam Net an fg::Network on a host backend (Cpu, Reference).
template <detail::HostNetwork Net>
void save_weights_npy(const std::filesystem::path& path, const Net& net) {
  using S = typename Net::scalar;
  const std::array<std::size_t, 1> shape{static_cast<std::size_t>(Net::param_count)};
  const auto array = xt::adapt(const_cast<S*>(net.params()), shape[0], xt::no_ownership(), shape);
  write_file_atomically(path, xt::dump_npy(array));
}

/// Replaces `net`'s parameters with those in a file written by save_weights_npy. Throws
/// io_error naming the file, what was expected and what was found (not .npy, another
/// dtype, another shape, truncated or trailing data); `net` is unchanged then. A file
/// larger than any valid one for `net` is refused from its size, before it is read.
/// \tparam Net an fg::Network on a host backend (Cpu, Reference).
template <detail::HostNetwork Net>
void load_weights_npy(const std::filesystem::path& path, Net& net) {
  using S = typename Net::scalar;
  constexpr auto count = static_cast<std::size_t>(Net::param_count);
  const std::string bytes = detail::read_file_at_most(
      path, detail::npy_max_file_bytes(count, sizeof(S)),
      "a .npy header of at most " + std::to_string(detail::npy_max_header_bytes) + " bytes, then " +
          std::to_string(count) + (sizeof(S) == 4 ? " float32" : " float64") + " values");
  detail::read_npy_values(path.string(), bytes, net.params(), count);
}

/// Writes each layer's slice of the parameter buffer as `dir/<prefix><I>.npy` (1-D), for
/// layers with parameters, e.g. to inspect one layer's weights in numpy. Returns the paths.
/// \tparam Net an fg::Network on a host backend (Cpu, Reference).
template <detail::HostNetwork Net>
std::vector<std::filesystem::path> save_layer_weights_npy(const std::filesystem::path& dir, const Net& net,
                                                          std::string_view prefix = "layer") {
  using S = typename Net::scalar;
  std::vector<std::filesystem::path> written;
  for (std::size_t i = 0; i < Net::depth; ++i) {
    const auto count = static_cast<std::size_t>(Net::param_offsets[i + 1] - Net::param_offsets[i]);
    if (count == 0) continue;
    const std::array<std::size_t, 1> shape{count};
    const auto array =
        xt::adapt(const_cast<S*>(net.params() + Net::param_offsets[i]), count, xt::no_ownership(), shape);
    written.push_back(dir / (std::string(prefix) + std::to_string(i) + ".npy"));
    write_file_atomically(written.back(), xt::dump_npy(array));
  }
  return written;
}

} // namespace forgery::io
