// Datasets from .npy files: an (N, C, H, W) array (or (N, H, W), one channel) as an
// ImageDataset, optionally with an (N,) array of labels, and an (N, F) array as a
// TensorDataset. Every header field, and the payload size against the limit and the file's
// size, is checked before anything is allocated; the values are then read in pieces straight
// into the dataset's tensor and checked as they arrive.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <limits>
#include <new>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xtensor/xtensor.hpp>

#include "forgery/core/config.hpp"
#include "forgery/core/error.hpp"
#include "forgery/core/shape.hpp"
#include "forgery/data/image_dataset.hpp"
#include "forgery/data/tensor_dataset.hpp"
#include "forgery/io/checkpoint.hpp"
#include "forgery/io/weights.hpp"

namespace forgery::data {

/// How the .npy loaders check a file.
struct NpyOptions {
  /// Largest payload accepted, in bytes as stored in the file (N x values per sample x the
  /// dtype's size), checked against the header before anything is allocated. The default,
  /// 256 MiB, is IdxLimits'; the dataset takes sizeof(S) / (the dtype's size) times that
  /// (1 GiB of floats for a uint8 file at the limit).
  std::uint64_t max_bytes = std::uint64_t{256} << 20;
  /// For float32 and float64 files: refuse a value outside [low, high]. Non-finite values
  /// are refused whatever this says. uint8 files are scaled to [-1, 1] and not checked.
  bool check_range = true;
  double low = -1.0;
  double high = 1.0;
};

namespace detail {

/// The .npy dtypes the loaders read: values (uint8, float32, float64) and labels (uint8,
/// int32, int64), all little-endian where the byte order matters.
enum class NpyDtype { uint8, float32, float64, int32, int64 };

inline const char* npy_dtype_name(NpyDtype t) noexcept {
  switch (t) {
  case NpyDtype::uint8:
    return "uint8";
  case NpyDtype::float32:
    return "float32";
  case NpyDtype::float64:
    return "float64";
  case NpyDtype::int32:
    return "int32";
  case NpyDtype::int64:
    return "int64";
  }
  return "?";
}

inline std::size_t npy_item_size(NpyDtype t) noexcept {
  switch (t) {
  case NpyDtype::uint8:
    return 1;
  case NpyDtype::float32:
  case NpyDtype::int32:
    return 4;
  case NpyDtype::float64:
  case NpyDtype::int64:
    return 8;
  }
  return 1;
}

/// The dtype of a descr numpy writes ('|u1', '<f4', ...); false for any other, including
/// big-endian ones. A one-byte type has no byte order: '<u1' and '>u1' read as '|u1'.
inline bool npy_dtype_of(std::string_view descr, NpyDtype& out) noexcept {
  if (descr == "|u1" || descr == "<u1" || descr == ">u1")
    out = NpyDtype::uint8;
  else if (descr == "<f4")
    out = NpyDtype::float32;
  else if (descr == "<f8")
    out = NpyDtype::float64;
  else if (descr == "<i4")
    out = NpyDtype::int32;
  else if (descr == "<i8")
    out = NpyDtype::int64;
  else
    return false;
  return true;
}

/// "(3, 32, 32)" for a per-sample shape.
template <class Range>
std::string tuple_string(const Range& dims) {
  std::string s = "(";
  bool first = true;
  for (const auto d : dims) {
    s += (first ? "" : ", ") + std::to_string(d);
    first = false;
  }
  return s + (dims.size() == 1 ? ",)" : ")");
}

/// The shortest text that reads back as `v` ("0.1", "nan", "-inf").
template <class T>
std::string shortest(T v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

/// A .npy file opened for reading, its header parsed. Only a regular file (or a link to
/// one) is opened, without blocking; the header is read alone (at most
/// io::detail::npy_max_header_bytes), and the payload later in pieces at known offsets, so
/// nothing is allocated for the payload until its size has been checked.
class NpyFile {
public:
  explicit NpyFile(const std::filesystem::path& path) : name_(path.string()) {
    // The type is checked before opening (a FIFO is never opened), then on the descriptor.
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);
    if (!std::filesystem::exists(status)) throw io_error(name_, "cannot open: no such file");
    if (!std::filesystem::is_regular_file(status))
      throw io_error(name_,
                     "not a .npy file: it is " + io::detail::entry_kind(path) + " (only regular files are read)");
    fd_.fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd_.fd < 0) throw io_error(name_, std::string("cannot open: ") + std::strerror(errno));
    struct ::stat st {};
    if (::fstat(fd_.fd, &st) != 0) fail(std::string("cannot stat: ") + std::strerror(errno));
    if (!S_ISREG(st.st_mode))
      fail("not a .npy file: it is " + std::string(io::detail::mode_kind(st.st_mode)) +
           " (only regular files are read)");
    size_ = static_cast<std::uint64_t>(st.st_size);
    read_header();
  }
  NpyFile(const NpyFile&) = delete;
  NpyFile& operator=(const NpyFile&) = delete;

  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  [[nodiscard]] const std::vector<std::size_t>& shape() const noexcept { return header_.shape; }
  [[nodiscard]] std::string shape_text() const { return io::detail::shape_string(header_.shape); }

  /// The file's dtype if it is one of `allowed`; otherwise throws io_error naming the dtype
  /// found and the ones expected (`expected`, for the message).
  NpyDtype dtype(std::initializer_list<NpyDtype> allowed, const std::string& expected) const {
    NpyDtype t{};
    if (!npy_dtype_of(header_.descr, t) || std::find(allowed.begin(), allowed.end(), t) == allowed.end()) {
      const std::string& d = header_.descr;
      const bool big = d.size() == 3 && d[0] == '>';
      fail("dtype '" + d + "'" + (big ? " (big-endian)" : "") + ", expected " + expected +
           (big ? "; numpy: a.astype(a.dtype.newbyteorder('<'))" : ""));
    }
    return t;
  }

  /// Throws unless the values are in C order. A 1-D array is the same in either order.
  void require_c_order() const {
    if (header_.fortran_order && header_.shape.size() > 1)
      fail("fortran_order is True, expected C order (row-major; numpy: np.ascontiguousarray(a))");
  }

  /// Throws unless every extent, N included, is positive: a dataset needs a value, and a
  /// product with a 0 in it would pass any size check.
  void require_positive_extents() const {
    for (const std::size_t d : header_.shape)
      if (d == 0) fail("shape " + shape_text() + " has no values: every extent, N included, must be positive");
  }

  /// Checks that the header's shape promises `item` bytes per value within `max_bytes` and
  /// exactly what the file holds after its header; returns the number of values.
  std::uint64_t check_payload(NpyDtype type, std::uint64_t max_bytes) const {
    require_positive_extents();
    const std::size_t item = npy_item_size(type);
    const std::uint64_t max_values = max_bytes / item;
    std::uint64_t count = 1;
    bool over = false;
    for (const std::size_t d : header_.shape) {
      // Dividing first keeps the product from wrapping: once above the limit, stay there.
      if (over || count > max_values / d)
        over = true;
      else
        count *= d;
    }
    if (over) {
      long double approx = static_cast<long double>(item);
      for (const std::size_t d : header_.shape) approx *= static_cast<long double>(d);
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.4Lg", approx);
      fail("header promises shape " + shape_text() + " of " + npy_dtype_name(type) + " = " + buf +
           " bytes, above the limit of " + std::to_string(max_bytes) +
           " bytes (NpyOptions::max_bytes; pass a larger one to load larger files)");
    }
    const std::uint64_t payload = count * item, have = size_ - header_.data_offset;
    const std::string promise = "header promises " + std::to_string(payload) + " payload bytes (shape " + shape_text() +
                                " of " + npy_dtype_name(type) + ")";
    if (have < payload) fail("truncated: " + promise + ", the file has " + std::to_string(have));
    if (have > payload)
      fail("trailing bytes: " + promise + ", the file has " + std::to_string(have - payload) + " more");
    return count;
  }

  /// Reads payload bytes [at, at + n) into dst; throws io_error when the file has shrunk.
  void read(std::uint64_t at, void* dst, std::size_t n) const {
    const std::uint64_t offset = header_.data_offset + at;
    if (io::detail::read_at(fd_.fd, static_cast<char*>(dst), n, offset, name_) != n)
      fail("the file changed size while it was read (it ends before byte " + std::to_string(offset + n) + ")");
  }

  [[noreturn]] void fail(const std::string& what) const { throw io_error(name_, what); }

private:
  void read_header() {
    // The preamble (magic, version, header length) is in the first 12 bytes, or in the
    // whole file when it is shorter; it says how much more to read.
    std::string bytes(static_cast<std::size_t>(std::min<std::uint64_t>(size_, 12)), '\0');
    bytes.resize(io::detail::read_at(fd_.fd, bytes.data(), bytes.size(), 0, name_));
    const io::detail::NpyPreamble p = io::detail::parse_npy_preamble(name_, bytes);
    if (p.length > io::detail::npy_max_header_bytes - p.start)
      fail("a .npy header of " + std::to_string(p.start + p.length) + " bytes, expected at most " +
           std::to_string(io::detail::npy_max_header_bytes));
    const std::size_t header_bytes = static_cast<std::size_t>(std::min<std::uint64_t>(size_, p.start + p.length));
    if (header_bytes > bytes.size()) {
      const std::size_t had = bytes.size();
      bytes.resize(header_bytes);
      bytes.resize(had + io::detail::read_at(fd_.fd, bytes.data() + had, header_bytes - had, had, name_));
    }
    header_ = io::detail::parse_npy_header(name_, bytes);
  }

  // A member, so that the descriptor is closed when the constructor throws.
  struct Fd {
    int fd = -1;
    Fd() = default;
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() {
      if (fd >= 0) ::close(fd);
    }
  };

  std::string name_;
  Fd fd_;
  std::uint64_t size_ = 0;
  io::detail::NpyHeader header_;
};

/// Throws io_error naming `file` unless `got` (a per-sample shape) is `Sample`'s: the same
/// extents, or for a flat Sample (a network reading a sample as one vector) the same count.
template <class Sample, std::size_t Rank>
void check_sample_shape(const NpyFile& file, const std::array<std::size_t, Rank>& got) {
  if constexpr (!std::is_void_v<Sample>) {
    bool same = true;
    if constexpr (Sample::rank == 1) {
      // Extents are positive; the product stops once above F, so it cannot wrap.
      std::uint64_t n = 1;
      for (const std::size_t d : got) n = n > static_cast<std::uint64_t>(Sample::size) / d ? 0 : n * d;
      same = n == static_cast<std::uint64_t>(Sample::size);
    } else {
      static_assert(static_cast<std::size_t>(Sample::rank) == Rank);
      for (std::size_t i = 0; i < Rank; ++i) same = same && got[i] == static_cast<std::size_t>(Sample::dims[i]);
    }
    if (!same)
      file.fail("samples of shape " + tuple_string(got) + " (file shape " + file.shape_text() +
                "), expected samples of shape " + tuple_string(Sample::dims) + " (the network's)");
  }
}

/// The first value of `values` (an S array, or the file's own type when it differs) that is
/// not finite, or outside the range options ask for, as an io_error naming the file, the
/// value's index (flat, and as sample and position) and the value.
template <class T>
void check_values(const NpyFile& file, const T* values, std::size_t n, std::uint64_t first, index_t features,
                  const NpyOptions& o) {
  for (std::size_t i = 0; i < n; ++i) {
    const T v = values[i];
    const bool finite = std::isfinite(v);
    if (finite && (!o.check_range || (static_cast<double>(v) >= o.low && static_cast<double>(v) <= o.high))) continue;
    const std::uint64_t at = first + i;
    const auto f = static_cast<std::uint64_t>(features);
    file.fail("value " + shortest(v) + " at index " + std::to_string(at) + " (sample " + std::to_string(at / f) +
              ", value " + std::to_string(at % f) + ") is " +
              (finite ? "outside [" + shortest(o.low) + ", " + shortest(o.high) +
                            "] (NpyOptions::low and high, or check_range = false, accept other values)"
                      : std::string("not finite: expected finite values")));
  }
}

/// Reads `count` values of type `type` into dst as S: uint8 scaled to [-1, 1], floats as
/// they are, checked. Values of S's own type are read straight into dst; others pass through
/// a 64 KiB buffer, so that no second copy of the whole payload is ever held.
template <class S>
void read_values(const NpyFile& file, NpyDtype type, S* dst, std::uint64_t count, index_t features,
                 const NpyOptions& o) {
  const auto convert = [&]<class Src>(Src) {
    if constexpr (std::is_same_v<Src, S>) {
      constexpr std::uint64_t piece_values = (std::uint64_t{1} << 20) / sizeof(S);
      for (std::uint64_t done = 0; done < count;) {
        const auto n = static_cast<std::size_t>(std::min(count - done, piece_values));
        file.read(done * sizeof(S), dst + done, n * sizeof(S));
        check_values(file, dst + done, n, done, features, o);
        done += n;
      }
    } else {
      std::vector<Src> chunk(static_cast<std::size_t>(std::min<std::uint64_t>(count, (1 << 16) / sizeof(Src))));
      std::array<S, 256> table{};
      if constexpr (std::is_same_v<Src, std::uint8_t>) table = byte_to_unit_table<S>();
      for (std::uint64_t done = 0; done < count;) {
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(count - done, chunk.size()));
        file.read(done * sizeof(Src), chunk.data(), n * sizeof(Src));
        S* out = dst + done;
        if constexpr (std::is_same_v<Src, std::uint8_t>) {
          for (std::size_t i = 0; i < n; ++i) out[i] = table[chunk[i]];
        } else {
          check_values(file, chunk.data(), n, done, features, o);
          for (std::size_t i = 0; i < n; ++i) {
            out[i] = static_cast<S>(chunk[i]);
            // Only a double above float's range, when the range check is off, gets here.
            if (!std::isfinite(out[i]))
              file.fail("value " + shortest(chunk[i]) + " at index " + std::to_string(done + i) +
                        " does not fit float32, the dataset's scalar type");
          }
        }
        done += n;
      }
    }
  };
  static_assert(std::endian::native == std::endian::little,
                "fg::data's .npy loaders read little-endian values as they are: they need a little-endian host.");
  static_assert(sizeof(float) == 4 && sizeof(double) == 8 && std::numeric_limits<double>::is_iec559);
  switch (type) {
  case NpyDtype::uint8:
    convert(std::uint8_t{});
    break;
  case NpyDtype::float32:
    convert(float{});
    break;
  case NpyDtype::float64:
    convert(double{});
    break;
  default:
    file.fail(std::string("internal: dtype ") + npy_dtype_name(type) + " is not a value dtype");
  }
}

/// Sample parameters of the loaders: void (any shape), or a Shape of one of these ranks.
template <class Sample>
concept NoShapeOrImageShape = std::is_void_v<Sample> ||(ShapeType<Sample> && (Sample::rank == 3 || Sample::rank == 1));
template <class Sample>
concept NoShapeOrFlatShape = std::is_void_v<Sample> || FlatShape<Sample>;

inline constexpr const char* npy_value_dtypes = "'|u1' (uint8, scaled to [-1, 1]), '<f4' (float32) or '<f8' (float64)";

/// A data file checked up to its values: dtype, order, rank, extents, the network's sample
/// shape, the payload size; `dims` is its shape, a rank-3 file read as one channel.
template <std::size_t Rank>
struct NpyValues {
  NpyDtype type{};
  std::array<std::size_t, Rank> dims{};
  std::uint64_t count = 0;
};

template <class S, class Sample, std::size_t Rank>
NpyValues<Rank> open_values(NpyFile& file, const NpyOptions& o) {
  if (o.check_range && !(o.low <= o.high))
    throw config_error("NpyOptions low, high", shortest(o.low) + ", " + shortest(o.high), "low <= high");
  NpyValues<Rank> v;
  v.type = file.dtype({NpyDtype::uint8, NpyDtype::float32, NpyDtype::float64}, npy_value_dtypes);
  file.require_c_order();
  const std::vector<std::size_t>& shape = file.shape();
  if constexpr (Rank == 4) {
    if (shape.size() == 3)
      v.dims = {shape[0], 1, shape[1], shape[2]};
    else if (shape.size() == 4)
      v.dims = {shape[0], shape[1], shape[2], shape[3]};
    else
      file.fail("shape " + file.shape_text() + ", expected images: 4 dimensions (N, C, H, W) or 3 (N, H, W)");
  } else {
    static_assert(Rank == 2);
    if (shape.size() != 2) file.fail("shape " + file.shape_text() + ", expected 2 dimensions (N, F)");
    v.dims = {shape[0], shape[1]};
  }
  // The shapes are compared before the sizes: a file made for another network is the likelier mistake.
  file.require_positive_extents();
  std::array<std::size_t, Rank - 1> sample{};
  std::copy(v.dims.begin() + 1, v.dims.end(), sample.begin());
  check_sample_shape<Sample>(file, sample);
  v.count = file.check_payload(v.type, o.max_bytes);
  if (v.dims[0] >= (std::uint64_t{1} << 32))
    file.fail("shape " + file.shape_text() + ": " + std::to_string(v.dims[0]) + " samples, expected fewer than 2^32");
  if (v.count > static_cast<std::uint64_t>(std::numeric_limits<index_t>::max()) / sizeof(S))
    file.fail("shape " + file.shape_text() + ": too many values to hold in memory");
  return v;
}

/// Allocates the tensor for `v` and reads the file's values into it.
template <class S, std::size_t Rank>
xt::xtensor<S, Rank> read_tensor(const NpyFile& file, const NpyValues<Rank>& v, const NpyOptions& o) {
  xt::xtensor<S, Rank> t;
  const std::string bytes = std::to_string(v.count * sizeof(S));
  try {
    t = xt::xtensor<S, Rank>::from_shape(v.dims);
  } catch (const std::bad_alloc& e) {
    file.fail("cannot allocate " + bytes + " bytes for the dataset: " + e.what());
  } catch (const std::length_error& e) {
    file.fail("cannot allocate " + bytes + " bytes for the dataset: " + e.what());
  }
  read_values(file, v.type, t.data(), v.count, static_cast<index_t>(v.count / v.dims[0]), o);
  return t;
}

/// The labels of `labels` (shape (N,), int32, int64 or uint8), each in [0, classes);
/// `classes` = 0 takes the largest label + 1, which it then returns in `classes`.
inline xt::xtensor<std::int32_t, 1> read_labels(const std::filesystem::path& labels, const NpyFile& images,
                                                std::size_t count, index_t& classes, const NpyOptions& o) {
  if (classes < 0)
    throw config_error("load_npy_images classes", std::to_string(classes), "0 (from the labels) or more");
  NpyFile file(labels);
  const NpyDtype type = file.dtype({NpyDtype::int32, NpyDtype::int64, NpyDtype::uint8},
                                   "'<i4' (int32), '<i8' (int64) or '|u1' (uint8) labels");
  if (file.shape().size() != 1) file.fail("shape " + file.shape_text() + ", expected labels of shape (N,)");
  if (file.shape()[0] != count)
    file.fail("has " + std::to_string(file.shape()[0]) + " labels but " + images.name() + " has " +
              std::to_string(count) + " images: expected one label per image");
  file.check_payload(type, o.max_bytes);
  const std::size_t item = npy_item_size(type);
  auto out = xt::xtensor<std::int32_t, 1>::from_shape({count});
  std::vector<unsigned char> chunk(std::min<std::size_t>(count * item, std::size_t{1} << 16));
  std::int64_t largest = -1;
  for (std::size_t done = 0; done < count;) {
    const std::size_t n = std::min(count - done, chunk.size() / item);
    file.read(done * item, chunk.data(), n * item);
    for (std::size_t i = 0; i < n; ++i) {
      std::int64_t l = 0;
      if (type == NpyDtype::uint8) {
        l = chunk[i];
      } else if (type == NpyDtype::int32) {
        std::int32_t x;
        std::memcpy(&x, chunk.data() + i * 4, 4);
        l = x;
      } else {
        std::memcpy(&l, chunk.data() + i * 8, 8);
      }
      const std::string label = "label " + std::to_string(l) + " at index " + std::to_string(done + i);
      if (l < 0) file.fail(label + " is negative, expected a class index in [0, classes)");
      if (classes > 0 && l >= classes) file.fail(label + " is not below the class count " + std::to_string(classes));
      if (l >= std::numeric_limits<std::int32_t>::max())
        file.fail(label + " is above the largest class index forgery holds (2^31 - 2)");
      largest = std::max(largest, l);
      out(done + i) = static_cast<std::int32_t>(l);
    }
    done += n;
  }
  if (classes == 0) classes = static_cast<index_t>(largest + 1);
  return out;
}

} // namespace detail

/// Loads a .npy array of images, (N, C, H, W) or (N, H, W) (one channel), as an ImageDataset.
/// dtype '|u1' (uint8) is scaled to [-1, 1] as the IDX loaders scale it (0 -> -1, 255 -> 1
/// exactly); '<f4' and '<f8' are taken as they are, every value checked finite and, by
/// default, within [-1, 1] (NpyOptions). Throws io_error naming the file and what was
/// expected and found: another dtype (big-endian included), fortran_order, another rank, an
/// extent of 0 (N = 0 included), samples of another shape than `Sample`, a payload above
/// NpyOptions::max_bytes, a file shorter or longer than its header promises (all checked
/// before anything is allocated), a value out of range (naming its index and value).
/// \tparam S the scalar type of the dataset (float or double).
/// \tparam Sample void (any shape), or the per-sample shape the network expects, such as
/// `D::input_shape`: Shape<C, H, W> must match (C, H, W); a flat Shape<F> needs C*H*W = F.
template <class S, class Sample = void>
ImageDataset<S> load_npy_images(const std::filesystem::path& path, const NpyOptions& options = {}) {
  static_assert(detail::NoShapeOrImageShape<Sample>,
                "fg::data::load_npy_images<S, Sample>: Sample is the per-sample shape the network expects, "
                "Shape<C, H, W> or a flat Shape<F> (e.g. D::input_shape), or void for any shape.");
  detail::NpyFile file(path);
  const auto values = detail::open_values<S, Sample, 4>(file, options);
  return ImageDataset<S>(detail::read_tensor<S>(file, values, options));
}

/// Loads images as load_npy_images(path) does and their labels from a second .npy file:
/// shape (N,), dtype '<i4', '<i8' or '|u1', each label in [0, classes). `classes` = 0 takes
/// the largest label + 1. Both headers are checked, and the counts compared, before the
/// images are read; an error names the file at fault (and both when the counts differ).
template <class S, class Sample = void>
ImageDataset<S> load_npy_images(const std::filesystem::path& images, const std::filesystem::path& labels,
                                index_t classes = 0, const NpyOptions& options = {}) {
  static_assert(detail::NoShapeOrImageShape<Sample>,
                "fg::data::load_npy_images<S, Sample>: Sample is the per-sample shape the network expects, "
                "Shape<C, H, W> or a flat Shape<F> (e.g. D::input_shape), or void for any shape.");
  detail::NpyFile file(images);
  const auto values = detail::open_values<S, Sample, 4>(file, options);
  auto label_tensor = detail::read_labels(labels, file, values.dims[0], classes, options);
  return ImageDataset<S>(detail::read_tensor<S>(file, values, options), std::move(label_tensor), classes);
}

/// Loads a .npy array of shape (N, F) as a TensorDataset of N samples of F values: the same
/// dtypes, scaling, checks and errors as load_npy_images.
/// \tparam S the scalar type of the dataset (float or double).
/// \tparam Sample void (any F), or the flat Shape<F> the network expects (`D::input_shape`).
template <class S, class Sample = void>
TensorDataset<S, 2> load_npy_tensor(const std::filesystem::path& path, const NpyOptions& options = {}) {
  static_assert(detail::NoShapeOrFlatShape<Sample>,
                "fg::data::load_npy_tensor<S, Sample>: an (N, F) file holds flat samples, so Sample is a flat "
                "Shape<F> (e.g. D::input_shape); for image-shaped samples use load_npy_images.");
  detail::NpyFile file(path);
  const auto values = detail::open_values<S, Sample, 2>(file, options);
  return TensorDataset<S, 2>(detail::read_tensor<S>(file, values, options));
}

} // namespace forgery::data
