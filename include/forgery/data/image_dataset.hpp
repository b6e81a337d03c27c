// ImageDataset: labelled images in memory as an (N, C, H, W) xtensor scaled to [-1, 1], and
// ShuffledBatches, the epoch-by-epoch batcher over it whose position is the data stream's
// counter, so that a resumed Trainer resumes its data order too.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <filesystem>
#include <new>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <xtensor/xtensor.hpp>

#include "forgery/core/batch_view.hpp"
#include "forgery/core/error.hpp"
#include "forgery/core/philox.hpp"
#include "forgery/data/idx.hpp"
#include "forgery/data/tensor_dataset.hpp"

namespace forgery::data {

namespace detail {

/// A byte 0..255 mapped to [-1, 1] (x / 127.5 - 1): 0 -> -1 and 255 -> 1 exactly.
template <class S>
constexpr S byte_to_unit(std::uint8_t b) noexcept {
  return static_cast<S>(static_cast<double>(b) / 127.5 - 1.0);
}

/// byte_to_unit of every byte, for converting a payload with one look-up per pixel.
template <class S>
std::array<S, 256> byte_to_unit_table() noexcept {
  std::array<S, 256> table{};
  for (int b = 0; b < 256; ++b) table[static_cast<std::size_t>(b)] = byte_to_unit<S>(static_cast<std::uint8_t>(b));
  return table;
}

/// The (N, C, H, W) shape of IDX images, N x H x W (one channel) or N x C x H x W; throws
/// io_error naming `name` for another dimension count.
inline std::array<std::size_t, 4> idx_image_shape(const std::string& name, const std::vector<std::size_t>& dims) {
  if (dims.size() == 3) return {dims[0], 1, dims[1], dims[2]};
  if (dims.size() == 4) return {dims[0], dims[1], dims[2], dims[3]};
  throw io_error(name, "expected images with 3 (N x H x W) or 4 (N x C x H x W) dimensions, found " +
                           std::to_string(dims.size()) + " (" + dims_string(dims) + ")");
}

/// The payload of `in` (its header read: 3 or 4 dimensions) scaled to [-1, 1] as it is
/// decoded, 64 KiB at a time, straight into the tensor: the bytes are never held whole next
/// to the scaled images. The tensor is allocated (uninitialised) once the header has passed
/// the limit and written as the data arrive, so a header that promises more than the file
/// holds costs address space, not memory.
template <class S>
xt::xtensor<S, 4> read_idx_scaled(IdxReader& in) {
  const std::array<std::size_t, 4> shape = idx_image_shape(in.name(), in.dims());
  const std::uint64_t total = in.payload_bytes();
  const std::string what = std::string("the images as ") + (sizeof(S) == 4 ? "float" : "double");
  xt::xtensor<S, 4> images;
  try {
    images = xt::xtensor<S, 4>::from_shape(shape);
  } catch (const std::bad_alloc& e) {
    throw in.cannot_allocate(total * sizeof(S), what, e.what());
  } catch (const std::length_error& e) {
    throw in.cannot_allocate(total * sizeof(S), what, e.what());
  }
  try {
    const std::array<S, 256> table = byte_to_unit_table<S>();
    std::vector<std::uint8_t> chunk(static_cast<std::size_t>(std::min<std::uint64_t>(total, 1 << 16)));
    S* dst = images.data();
    for (std::uint64_t done = 0; done < total;) {
      const auto piece = static_cast<std::size_t>(std::min<std::uint64_t>(total - done, chunk.size()));
      in.read_payload(chunk.data(), piece);
      for (std::size_t i = 0; i < piece; ++i) dst[done + i] = table[chunk[i]];
      done += piece;
    }
    in.finish();
  } catch (const std::bad_alloc&) {
    throw io_error(in.name(), "out of memory while reading the IDX file");
  }
  return images;
}

/// Consecutive 32-bit words of a Philox stream, and exact uniform integers drawn from them.
class PhiloxWords {
public:
  explicit PhiloxWords(RandomStream rng) noexcept : rng_(rng) {}

  std::uint32_t next() noexcept {
    if (lane_ == 4) {
      block_ = philox_block(rng_.seed, rng_.stream, rng_.take(1));
      lane_ = 0;
    }
    return block_.w[lane_++];
  }
  /// Uniform in [0, bound), bound > 0, without bias: Lemire's multiply-shift with rejection
  /// (ACM TOMS 2019). A shuffle must not favour any order, unlike a one-off sample index.
  std::uint32_t below(std::uint32_t bound) noexcept {
    std::uint64_t m = std::uint64_t{next()} * bound;
    auto low = static_cast<std::uint32_t>(m);
    if (low < bound) {
      const std::uint32_t threshold = static_cast<std::uint32_t>(-bound) % bound;
      while (low < threshold) {
        m = std::uint64_t{next()} * bound;
        low = static_cast<std::uint32_t>(m);
      }
    }
    return static_cast<std::uint32_t>(m >> 32);
  }

private:
  RandomStream rng_;
  PhiloxBlock block_{};
  int lane_ = 4;
};

inline std::string idx_name(const IdxArray& a) { return a.path.empty() ? "IDX array in memory" : a.path.string(); }

template <class S, class T>
void copy_sample(const S* src, index_t n, T* dst) {
  if constexpr (std::is_same_v<S, T>)
    std::copy_n(src, n, dst);
  else
    for (index_t f = 0; f < n; ++f) dst[f] = static_cast<T>(src[f]);
}

} // namespace detail

/// Images (N, C, H, W) with values in [-1, 1] and, optionally, an integer class label per
/// image. A sample is C*H*W contiguous values, one column of a batch. Usable directly as a
/// Trainer data source (draws with replacement) or through ShuffledBatches (epochs).
/// \tparam S the scalar type of the images (float or double).
template <class S>
class ImageDataset {
  static_assert(std::is_floating_point_v<S>, "fg::data::ImageDataset holds images as float or double.");

public:
  using image_tensor = xt::xtensor<S, 4>;
  using label_tensor = xt::xtensor<std::int32_t, 1>;

  /// Unlabelled images. Throws shape_error for an empty tensor or 2^32 images or more.
  explicit ImageDataset(image_tensor images) : images_(std::move(images)) { check_images(); }

  /// Labelled images: one label in [0, classes) per image. Throws shape_error when the
  /// counts differ, config_error for a label outside [0, classes).
  ImageDataset(image_tensor images, label_tensor labels, index_t classes)
      : images_(std::move(images)), labels_(std::move(labels)), classes_(classes) {
    check_images();
    if (classes_ < 1) throw config_error("ImageDataset classes", std::to_string(classes_), "at least 1");
    if (labels_.size() != images_.shape()[0])
      throw shape_error("ImageDataset labels", std::to_string(images_.shape()[0]) + " labels (one per image)",
                        std::to_string(labels_.size()));
    for (std::size_t i = 0; i < labels_.size(); ++i)
      if (labels_(i) < 0 || labels_(i) >= classes_)
        throw config_error("ImageDataset classes", std::to_string(classes_),
                           "labels in [0, classes); label " + std::to_string(labels_(i)) + " at image " +
                               std::to_string(i));
  }

  /// Unlabelled images from IDX bytes: N x H x W (one channel) or N x C x H x W.
  explicit ImageDataset(const IdxArray& images) : images_(scale(images)) { check_images(); }

  /// Labelled images from IDX bytes (see load_idx_pair). `classes` = 0 takes the largest
  /// label + 1. Throws io_error naming the file when counts differ or a label is too large.
  ImageDataset(const IdxArray& images, const IdxArray& labels, index_t classes = 0) : images_(scale(images)) {
    check_images();
    set_labels(labels, classes, " of " + detail::idx_name(images));
  }

  /// Labelled images already scaled (see load_idx_dataset) with labels from IDX bytes.
  /// `classes` = 0 takes the largest label + 1. Throws io_error naming the label file when
  /// the counts differ or a label is too large.
  ImageDataset(image_tensor images, const IdxArray& labels, index_t classes = 0) : images_(std::move(images)) {
    check_images();
    set_labels(labels, classes, "");
  }

  [[nodiscard]] index_t size() const noexcept { return static_cast<index_t>(images_.shape()[0]); }
  [[nodiscard]] index_t channels() const noexcept { return static_cast<index_t>(images_.shape()[1]); }
  [[nodiscard]] index_t height() const noexcept { return static_cast<index_t>(images_.shape()[2]); }
  [[nodiscard]] index_t width() const noexcept { return static_cast<index_t>(images_.shape()[3]); }
  /// Values per sample: C * H * W.
  [[nodiscard]] index_t features() const noexcept { return channels() * height() * width(); }
  /// Number of classes (0 for an unlabelled dataset).
  [[nodiscard]] index_t classes() const noexcept { return classes_; }
  [[nodiscard]] bool labelled() const noexcept { return classes_ > 0; }
  [[nodiscard]] const image_tensor& images() const noexcept { return images_; }
  /// The labels (empty for an unlabelled dataset).
  [[nodiscard]] const label_tensor& labels() const noexcept { return labels_; }
  /// All images as a features x N batch view (the same memory).
  [[nodiscard]] ConstBatchView<S> view() const noexcept { return {images_.data(), features(), size()}; }
  /// How many images each class has.
  [[nodiscard]] std::vector<index_t> class_counts() const {
    std::vector<index_t> counts(static_cast<std::size_t>(classes_), 0);
    for (const std::int32_t l : labels_) ++counts[static_cast<std::size_t>(l)];
    return counts;
  }

  /// The images (and labels) at `indices`, in that order; repeats are allowed. Throws
  /// config_error for an index outside [0, size()) and shape_error for no index.
  [[nodiscard]] ImageDataset subset(std::span<const index_t> indices) const {
    for (const index_t i : indices)
      if (i < 0 || i >= size())
        throw config_error("ImageDataset::subset index", std::to_string(i),
                           "an index in [0, " + std::to_string(size()) + ")");
    return gather(indices.size(), [&](std::size_t k) { return indices[k]; });
  }
  /// The first `n` images, 1 <= n <= size().
  [[nodiscard]] ImageDataset take(index_t n) const {
    if (n < 1 || n > size())
      throw config_error("ImageDataset::take count", std::to_string(n), "1 to " + std::to_string(size()));
    return gather(static_cast<std::size_t>(n), [](std::size_t k) { return static_cast<index_t>(k); });
  }
  /// The first `n` images and the rest, 1 <= n < size() (e.g. training and validation).
  [[nodiscard]] std::pair<ImageDataset, ImageDataset> split(index_t n) const {
    if (n < 1 || n >= size())
      throw config_error("ImageDataset::split count", std::to_string(n), "1 to " + std::to_string(size() - 1));
    return {take(n),
            gather(static_cast<std::size_t>(size() - n), [n](std::size_t k) { return n + static_cast<index_t>(k); })};
  }

  /// Philox blocks each sample takes from the stream (sample j of a draw uses the block at
  /// the stream's counter + j): a sharded Trainer draws shard s at its first column.
  static constexpr std::uint64_t blocks_per_sample = 1;

  /// Fills `out` (features x batch) with images drawn uniformly with replacement; one
  /// Philox block of `rng` per image, as fg::data::TensorDataset.
  template <class T>
  void sample(RandomStream& rng, BatchView<T> out) const {
    draw(rng, out, {});
  }
  /// The same draw, also writing each drawn image's label into `labels` (size out.batch()).
  template <class T>
  void sample(RandomStream& rng, BatchView<T> out, std::span<std::int32_t> labels) const {
    check_labels_out("ImageDataset::sample", labels, out.batch());
    draw(rng, out, labels);
  }

  /// Copies image `index` into `dst` (features() values) and returns its label (-1 when
  /// unlabelled). No bounds check: for batchers that already checked.
  template <class T>
  std::int32_t copy_image(index_t index, T* dst) const noexcept {
    detail::copy_sample(images_.data() + index * features(), features(), dst);
    return labelled() ? labels_(static_cast<std::size_t>(index)) : -1;
  }

  /// Throws unless `labels` can take `batch` labels of this (labelled) dataset.
  void check_labels_out(const char* where, std::span<std::int32_t> labels, index_t batch) const {
    if (!labelled())
      throw config_error(std::string(where) + " labels", "requested", "a labelled dataset (this one has no labels)");
    if (static_cast<index_t>(labels.size()) != batch)
      throw shape_error(std::string(where) + " labels", std::to_string(batch) + " labels (one per sample)",
                        std::to_string(labels.size()));
  }
  /// Throws shape_error unless `out` has features() rows.
  void check_out(const char* where, index_t out_features) const {
    if (out_features != features())
      throw shape_error(where,
                        std::to_string(features()) + " features per sample (C*H*W = " + std::to_string(channels()) +
                            "*" + std::to_string(height()) + "*" + std::to_string(width()) + ")",
                        std::to_string(out_features));
  }

private:
  ImageDataset() = default;

  static image_tensor scale(const IdxArray& a) {
    const std::array<std::size_t, 4> shape = detail::idx_image_shape(detail::idx_name(a), a.dims);
    std::size_t n = 1;
    for (const std::size_t d : shape) n *= d;
    if (n != a.bytes.size())
      throw io_error(detail::idx_name(a), "dimensions " + detail::dims_string(a.dims) + " need " + std::to_string(n) +
                                              " bytes, the array has " + std::to_string(a.bytes.size()));
    const std::array<S, 256> table = detail::byte_to_unit_table<S>();
    auto t = image_tensor::from_shape(shape);
    S* dst = t.data();
    for (std::size_t i = 0; i < n; ++i) dst[i] = table[a.bytes[i]];
    return t;
  }

  // `of_images` completes "expected N labels (one per image...)" with the image file's name.
  void set_labels(const IdxArray& labels, index_t classes, const std::string& of_images) {
    const auto count = static_cast<std::size_t>(size());
    if (labels.dims.size() != 1 || labels.count() != count || labels.bytes.size() != labels.count())
      throw io_error(detail::idx_name(labels), "expected " + std::to_string(count) + " labels (one per image" +
                                                   of_images + "), found dimensions " +
                                                   detail::dims_string(labels.dims));
    const std::uint8_t largest = *std::max_element(labels.bytes.begin(), labels.bytes.end());
    classes_ = classes > 0 ? classes : index_t{largest} + 1;
    labels_ = label_tensor::from_shape({labels.count()});
    for (std::size_t i = 0; i < labels.count(); ++i) {
      if (labels.bytes[i] >= classes_)
        throw io_error(detail::idx_name(labels), "label " + std::to_string(labels.bytes[i]) + " at index " +
                                                     std::to_string(i) + " is not below the class count " +
                                                     std::to_string(classes_));
      labels_(i) = labels.bytes[i];
    }
  }

  void check_images() const {
    // xtensor's size() wraps modulo 2^64, so a shape such as (2, 2^63 + 1, 1, 1) would pass
    // as 2 values: the extents' product is checked first, as TensorDataset checks its own.
    detail::values_per_sample(images_.shape(), "ImageDataset");
    if (images_.shape()[0] == 0 || images_.size() == 0)
      throw shape_error("ImageDataset", "at least one image with at least one value",
                        "shape (" + std::to_string(images_.shape()[0]) + ", " + std::to_string(images_.shape()[1]) +
                            ", " + std::to_string(images_.shape()[2]) + ", " + std::to_string(images_.shape()[3]) +
                            ")");
    if (images_.shape()[0] >= (std::uint64_t{1} << 32))
      throw shape_error("ImageDataset", "fewer than 2^32 images", std::to_string(images_.shape()[0]) + " images");
  }

  template <class Index>
  ImageDataset gather(std::size_t count, Index index_of) const {
    if (count == 0) throw shape_error("ImageDataset::subset", "at least one index", "none");
    ImageDataset out;
    out.classes_ = classes_;
    out.images_ = image_tensor::from_shape({count, images_.shape()[1], images_.shape()[2], images_.shape()[3]});
    if (labelled()) out.labels_ = label_tensor::from_shape({count});
    for (std::size_t k = 0; k < count; ++k) {
      const std::int32_t label = copy_image(index_of(k), out.images_.data() + static_cast<index_t>(k) * features());
      if (labelled()) out.labels_(k) = label;
    }
    return out;
  }

  template <class T>
  void draw(RandomStream& rng, BatchView<T> out, std::span<std::int32_t> labels) const {
    check_out("ImageDataset::sample", out.features());
    const std::uint64_t first = rng.take(static_cast<std::uint64_t>(out.batch()));
    const auto n = static_cast<std::uint64_t>(size());
    for (index_t j = 0; j < out.batch(); ++j) {
      const PhiloxBlock b = philox_block(rng.seed, rng.stream, first + static_cast<std::uint64_t>(j));
      // Multiply-shift (Lemire) of one word: bias below n / 2^32, as TensorDataset.
      const auto index = static_cast<index_t>((std::uint64_t{b.w[0]} * n) >> 32);
      const std::int32_t label = copy_image(index, out.sample(j));
      if (!labels.empty()) labels[static_cast<std::size_t>(j)] = label;
    }
  }

  image_tensor images_;
  label_tensor labels_;
  index_t classes_ = 0;
};

/// Loads an IDX image file (N x H x W, or N x C x H x W) and its label file (N) as an
/// ImageDataset, scaling the image bytes to [-1, 1] as they are decoded: peak memory is the
/// scaled images, not the scaled images plus the bytes as ImageDataset(load_idx_pair(...))
/// needs. `classes` = 0 takes the largest label + 1. The label count is checked against the
/// image header before the images are read. Throws io_error naming the file, as read_idx
/// and the ImageDataset constructors do.
/// \tparam S the scalar type of the images.
template <class S>
ImageDataset<S> load_idx_dataset(const std::filesystem::path& images, const std::filesystem::path& labels,
                                 index_t classes = 0, const IdxLimits& limits = {}) {
  const IdxArray label_bytes = load_idx_labels(labels, limits);
  detail::IdxReader in(images, limits);
  detail::idx_image_shape(in.name(), in.dims());
  detail::check_one_label_per_image(in.name(), in.dims().front(), labels.string(), label_bytes.count());
  return ImageDataset<S>(detail::read_idx_scaled<S>(in), label_bytes, classes);
}

/// Epochs over an ImageDataset: each epoch visits every image exactly once, in an order
/// drawn by Fisher-Yates from the Philox stream keyed by (seed, stream, epoch); batches are
/// taken in that order and a batch that runs past the end of an epoch continues into the
/// next one.
///
/// The batcher has no cursor of its own: the data stream's counter is the position. Each
/// sample takes one block of `rng`, so after `k` samples the counter is `k`, which is
/// epoch `k / N`, index `k % N`. A Trainer's data stream is saved with its checkpoint, so
/// a resumed run continues the same epoch at the same place; position() and
/// set_position() translate between the counter and (epoch, index). Give the batcher a
/// stream of its own (the Trainer's data stream is): another draw from the same stream
/// would skip images.
///
/// Keeps a reference to the dataset, which must outlive it. Computes each epoch's order
/// once into a buffer sized at construction, so steady-state batches do not allocate.
/// \tparam S the scalar type of the dataset's images.
template <class S>
class ShuffledBatches {
public:
  /// Where the next sample comes from: image `order(epoch)[index]`.
  struct Position {
    std::uint64_t epoch = 0;
    index_t index = 0;
    friend constexpr bool operator==(const Position&, const Position&) = default;
  };

  /// One block per sample (the counter is the position): a sharded Trainer draws shard s
  /// from the run's data stream at s's first column, so the shards partition each batch.
  static constexpr std::uint64_t blocks_per_sample = 1;

  explicit ShuffledBatches(const ImageDataset<S>& data) : data_(&data), order_(static_cast<std::size_t>(data.size())) {}
  ShuffledBatches(const ImageDataset<S>&&) = delete; // would keep a dangling reference

  [[nodiscard]] const ImageDataset<S>& dataset() const noexcept { return *data_; }

  /// Fills `out` (features x batch, features = C*H*W) with the next images of the epoch
  /// order; throws shape_error for another feature count.
  template <class T>
  void sample(RandomStream& rng, BatchView<T> out) {
    draw(rng, out, {});
  }
  /// The same, also writing each image's label into `labels` (size out.batch()).
  template <class T>
  void sample(RandomStream& rng, BatchView<T> out, std::span<std::int32_t> labels) {
    data_->check_labels_out("ShuffledBatches::sample", labels, out.batch());
    draw(rng, out, labels);
  }

  /// The epoch and index the next sample drawn from `rng` comes from.
  [[nodiscard]] Position position(const RandomStream& rng) const noexcept {
    const auto n = static_cast<std::uint64_t>(data_->size());
    return {rng.counter / n, static_cast<index_t>(rng.counter % n)};
  }
  /// Moves `rng` so that its next sample is `p` (0 <= p.index < size()).
  void set_position(RandomStream& rng, Position p) const {
    const auto n = static_cast<std::uint64_t>(data_->size());
    if (p.index < 0 || p.index >= data_->size())
      throw config_error("ShuffledBatches position index", std::to_string(p.index),
                         "an index in [0, " + std::to_string(data_->size()) + ")");
    if (p.epoch > (~std::uint64_t{0} - static_cast<std::uint64_t>(p.index)) / n)
      throw config_error("ShuffledBatches position epoch", std::to_string(p.epoch),
                         "an epoch whose start fits 64 bits");
    rng.counter = p.epoch * n + static_cast<std::uint64_t>(p.index);
  }

  /// The order of `epoch` for the stream (seed, stream) of `rng`: a permutation of [0, N).
  /// The view is valid until the next call.
  [[nodiscard]] std::span<const std::uint32_t> epoch_order(const RandomStream& rng, std::uint64_t epoch) {
    shuffle(rng, epoch);
    return order_;
  }

private:
  void shuffle(const RandomStream& rng, std::uint64_t epoch) {
    if (cached_ && cached_seed_ == rng.seed && cached_stream_ == rng.stream && cached_epoch_ == epoch) return;
    for (std::size_t i = 0; i < order_.size(); ++i) order_[i] = static_cast<std::uint32_t>(i);
    // The epoch's own stream: independent of the counter, which is only the position.
    detail::PhiloxWords words(rng.substream(epoch));
    for (std::size_t i = order_.size() - 1; i > 0; --i)
      std::swap(order_[i], order_[words.below(static_cast<std::uint32_t>(i + 1))]);
    cached_ = true;
    cached_seed_ = rng.seed;
    cached_stream_ = rng.stream;
    cached_epoch_ = epoch;
  }

  template <class T>
  void draw(RandomStream& rng, BatchView<T> out, std::span<std::int32_t> labels) {
    data_->check_out("ShuffledBatches::sample", out.features());
    const RandomStream key = rng;
    const std::uint64_t first = rng.take(static_cast<std::uint64_t>(out.batch()));
    const auto n = static_cast<std::uint64_t>(data_->size());
    for (index_t j = 0; j < out.batch(); ++j) {
      const std::uint64_t at = first + static_cast<std::uint64_t>(j);
      shuffle(key, at / n);
      const std::int32_t label = data_->copy_image(static_cast<index_t>(order_[at % n]), out.sample(j));
      if (!labels.empty()) labels[static_cast<std::size_t>(j)] = label;
    }
  }

  const ImageDataset<S>* data_;
  std::vector<std::uint32_t> order_;
  bool cached_ = false;
  std::uint64_t cached_seed_ = 0, cached_stream_ = 0, cached_epoch_ = 0;
};

} // namespace forgery::data
