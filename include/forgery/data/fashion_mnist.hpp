// Fashion-MNIST (Xiao et al. 2017): 28x28 grey images of 10 kinds of clothing, read from
// the IDX files that Debian's dataset-fashion-mnist package installs (or any directory
// holding the same four files, compressed or not).
#pragma once

#include <array>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

#include "forgery/core/error.hpp"
#include "forgery/data/idx.hpp"
#include "forgery/data/image_dataset.hpp"

namespace forgery::data {

/// Which part of a dataset: the training or the test images.
enum class Split { train, test };

/// Fashion-MNIST's class names, by label.
inline constexpr std::array<std::string_view, 10> fashion_mnist_class_names = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};

/// Where Fashion-MNIST is looked for: $FORGERY_FASHION_MNIST when set and not empty, else
/// /usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist).
inline std::filesystem::path fashion_mnist_dir() {
  const char* env = std::getenv("FORGERY_FASHION_MNIST");
  if (env != nullptr && *env != '\0') return env;
  return "/usr/share/datasets/fashion-mnist";
}

namespace detail {
// The file `stem` in `dir`, gzip-compressed as distributed or already uncompressed.
inline std::filesystem::path fashion_mnist_file(const std::filesystem::path& dir, const std::string& stem) {
  std::error_code ec;
  for (const std::string& name : {stem + ".gz", stem})
    if (std::filesystem::is_regular_file(dir / name, ec)) return dir / name;
  throw io_error(dir.string(), "no Fashion-MNIST file " + stem +
                                   "[.gz] here: install dataset-fashion-mnist or pass "
                                   "--data <dir> (or set FORGERY_FASHION_MNIST) to a directory holding the IDX files");
}
} // namespace detail

/// Loads a split of Fashion-MNIST as an ImageDataset (C = 1, H = W = 28, 10 classes,
/// values in [-1, 1]), scaling the bytes as they are decompressed (see load_idx_dataset):
/// the training split takes 188 MB as float. Throws io_error naming the directory when a
/// file is missing, or the file when it is not 28x28 images with labels below 10, is damaged
/// (see read_idx) or promises more than `limits` allow.
/// \tparam S the scalar type of the images.
template <class S>
ImageDataset<S> load_fashion_mnist(Split split, const std::filesystem::path& dir = fashion_mnist_dir(),
                                   const IdxLimits& limits = {}) {
  const std::string prefix = split == Split::train ? "train" : "t10k";
  const auto images = detail::fashion_mnist_file(dir, prefix + "-images-idx3-ubyte");
  const auto labels = detail::fashion_mnist_file(dir, prefix + "-labels-idx1-ubyte");
  const IdxArray label_bytes = load_idx_labels(labels, limits);
  detail::IdxReader in(images, limits);
  detail::check_image_file(in.name(), in.dims());
  if (in.dims()[1] != 28 || in.dims()[2] != 28)
    throw io_error(images.string(), "expected 28 x 28 Fashion-MNIST images, found " + std::to_string(in.dims()[1]) +
                                        " x " + std::to_string(in.dims()[2]));
  detail::check_one_label_per_image(in.name(), in.dims().front(), labels.string(), label_bytes.count());
  return ImageDataset<S>(detail::read_idx_scaled<S>(in), label_bytes,
                         static_cast<index_t>(fashion_mnist_class_names.size()));
}

} // namespace forgery::data
