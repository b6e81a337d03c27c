// ImageDataset and ShuffledBatches: bytes scaled to [-1, 1], labels kept with their images,
// epochs that visit every image once in an order fixed by the stream, resumption from the
// stream's position, use as a Trainer data source; Fashion-MNIST when it is installed.
#include "../support.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <span>
#include <string>
#include <vector>

#include <sys/resource.h>
#include <unistd.h>
#include <zlib.h>

#include "forgery/data/fashion_mnist.hpp"
#include "forgery/data/idx.hpp"
#include "forgery/data/image_dataset.hpp"
#include "forgery/train/trainer.hpp"

namespace {

using fg::index_t;
using fg::data::IdxArray;
using fg::data::ImageDataset;
using fg::data::ShuffledBatches;

IdxArray idx(std::vector<std::size_t> dims, std::vector<std::uint8_t> bytes, std::string path = {}) {
  return IdxArray{std::move(dims), std::move(bytes), std::move(path)};
}

// N images of 1 x 2 x 2 whose pixel k is the byte 20 * i + k, labelled i % 3.
constexpr index_t kImages = 10, kFeatures = 4;
ImageDataset<float> numbered(std::size_t n = kImages) {
  std::vector<std::uint8_t> pixels(n * kFeatures), labels(n);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t k = 0; k < kFeatures; ++k) pixels[i * kFeatures + k] = static_cast<std::uint8_t>(20 * i + k);
    labels[i] = static_cast<std::uint8_t>(i % 3);
  }
  return ImageDataset<float>(idx({n, 2, 2}, pixels, "images"), idx({n}, labels, "labels"));
}

// Which numbered image a sample is; checks its pixels stayed together.
int image_of(const float* sample) {
  const long first = std::lround((sample[0] + 1.0) * 127.5);
  for (index_t k = 1; k < kFeatures; ++k) CHECK(std::lround((sample[k] + 1.0) * 127.5) == first + k);
  CHECK(first % 20 == 0);
  return static_cast<int>(first / 20);
}

// Draws `batches` batches of `batch` and returns the image of each sample, checking labels.
std::vector<int> draw(ShuffledBatches<float>& source, fg::RandomStream& rng, index_t batches, index_t batch) {
  std::vector<int> seen;
  std::vector<float> out(static_cast<std::size_t>(kFeatures * batch));
  std::vector<std::int32_t> labels(static_cast<std::size_t>(batch));
  for (index_t b = 0; b < batches; ++b) {
    source.sample(rng, fg::BatchView<float>(out.data(), kFeatures, batch), labels);
    for (index_t j = 0; j < batch; ++j) {
      const int image = image_of(out.data() + j * kFeatures);
      CHECK(labels[static_cast<std::size_t>(j)] == image % 3);
      seen.push_back(image);
    }
  }
  return seen;
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

using Bytes = std::vector<std::uint8_t>;

// An IDX file's bytes: the header for `dims`, then `payload`.
Bytes idx_file(const std::vector<std::uint32_t>& dims, const Bytes& payload) {
  Bytes b{0, 0, 0x08, static_cast<std::uint8_t>(dims.size())};
  for (const std::uint32_t d : dims)
    for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<std::uint8_t>(d >> shift));
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

Bytes pattern(std::size_t n, unsigned step, unsigned mod = 256) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(i * step % mod);
  return b;
}

std::filesystem::path write_file(const std::filesystem::path& path, const Bytes& bytes, bool gz) {
  if (gz) {
    gzFile f = gzopen(path.c_str(), "wb");
    REQUIRE(f != nullptr);
    REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) == static_cast<int>(bytes.size()));
    REQUIRE(gzclose(f) == Z_OK);
  } else {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    REQUIRE(out.good());
  }
  return path;
}

Bytes read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

using fg::test::io_error_of;

template <class S>
bool same_dataset(const ImageDataset<S>& a, const ImageDataset<S>& b) {
  return a.images().shape() == b.images().shape() && a.images() == b.images() && a.labels() == b.labels() &&
         a.classes() == b.classes();
}

TEST_CASE_TEMPLATE("ImageDataset scales bytes to [-1, 1]", S, FORGERY_SCALARS) {
  const std::vector<std::uint8_t> bytes{0, 255, 127, 128, 1, 254};
  const ImageDataset<S> d(idx({1, 2, 3}, bytes));
  CHECK(d.size() == 1);
  CHECK(d.channels() == 1);
  CHECK(d.height() == 2);
  CHECK(d.width() == 3);
  CHECK(d.features() == 6);
  CHECK_FALSE(d.labelled());
  const fg::ConstBatchView<S> v = d.view();
  CHECK(v.data() == d.images().data());
  CHECK(v(0, 0) == S(-1)); // exactly
  CHECK(v(1, 0) == S(1));
  for (index_t f = 0; f < 6; ++f) {
    CHECK(v(f, 0) >= S(-1));
    CHECK(v(f, 0) <= S(1));
    CHECK(v(f, 0) == doctest::Approx(bytes[static_cast<std::size_t>(f)] / 127.5 - 1.0).epsilon(1e-7));
  }
  // Four IDX dimensions are N x C x H x W.
  const ImageDataset<S> rgb(idx({2, 3, 1, 2}, std::vector<std::uint8_t>(12, 255)));
  CHECK(rgb.channels() == 3);
  CHECK(rgb.features() == 6);
  CHECK(rgb.size() == 2);
}

TEST_CASE("ImageDataset keeps labels, counts classes and rejects inconsistent input") {
  const ImageDataset<float> d = numbered();
  CHECK(d.classes() == 3); // the largest label + 1
  CHECK(d.class_counts() == std::vector<index_t>{4, 3, 3});
  CHECK(d.labels()(4) == 1);

  const auto images = idx({3, 1, 1}, {1, 2, 3}, "img.idx");
  try {
    ImageDataset<float>(images, idx({3}, {0, 5, 1}, "lab.idx"), 4);
    FAIL("expected an io_error");
  } catch (const fg::io_error& e) {
    CHECK(has(e.what(), "lab.idx"));
    CHECK(has(e.what(), "label 5 at index 1 is not below the class count 4"));
  }
  try {
    ImageDataset<float>(images, idx({2}, {0, 1}, "lab.idx"));
    FAIL("expected an io_error");
  } catch (const fg::io_error& e) {
    CHECK(has(e.what(), "lab.idx"));
    CHECK(has(e.what(), "expected 3 labels (one per image of img.idx)"));
  }
  CHECK_THROWS_AS(ImageDataset<float>(idx({3, 1}, {1, 2, 3}, "flat.idx")), fg::io_error);
  CHECK_THROWS_AS(ImageDataset<float>(ImageDataset<float>::image_tensor::from_shape({0, 1, 2, 2})), fg::shape_error);
  auto four = ImageDataset<float>::image_tensor::from_shape({4, 1, 2, 2});
  CHECK_THROWS_AS(ImageDataset<float>(four, ImageDataset<float>::label_tensor::from_shape({3}), 2), fg::shape_error);
  ImageDataset<float>::label_tensor labels = {0, 1, 2, 1};
  CHECK_THROWS_AS(ImageDataset<float>(four, labels, 2), fg::config_error);
  CHECK(ImageDataset<float>(four, labels, 3).classes() == 3);
}

TEST_CASE("subset, take and split copy images with their labels") {
  const ImageDataset<float> d = numbered();
  const std::vector<index_t> pick{7, 2, 7};
  const auto sub = d.subset(pick);
  REQUIRE(sub.size() == 3);
  CHECK(sub.classes() == 3);
  for (index_t k = 0; k < 3; ++k) {
    CHECK(image_of(sub.view().sample(k)) == pick[static_cast<std::size_t>(k)]);
    CHECK(sub.labels()(static_cast<std::size_t>(k)) == pick[static_cast<std::size_t>(k)] % 3);
  }
  const auto [train, valid] = d.split(8);
  CHECK(train.size() == 8);
  CHECK(valid.size() == 2);
  CHECK(image_of(train.view().sample(7)) == 7);
  CHECK(image_of(valid.view().sample(0)) == 8);
  CHECK(valid.labels()(1) == 0);
  CHECK(d.take(4).size() == 4);
  CHECK_THROWS_AS((void)d.take(11), fg::config_error);
  CHECK_THROWS_AS((void)d.split(10), fg::config_error);
  const std::vector<index_t> outside{3, 10};
  CHECK_THROWS_AS((void)d.subset(outside), fg::config_error);
}

TEST_CASE("ShuffledBatches visits every image once per epoch, across batch boundaries") {
  const ImageDataset<float> d = numbered();
  ShuffledBatches<float> batches(d);
  fg::RandomStream rng{42, 4, 0};
  // Batches of 3 over 10 images: epochs end inside batches.
  const std::vector<int> seen = draw(batches, rng, 14, 3);
  REQUIRE(seen.size() == 42);
  CHECK(rng.counter == 42); // one block per sample: the counter is the position
  std::vector<std::vector<int>> epochs;
  for (std::size_t e = 0; e < 4; ++e) {
    std::vector<int> epoch(seen.begin() + static_cast<std::ptrdiff_t>(10 * e),
                           seen.begin() + static_cast<std::ptrdiff_t>(10 * e + 10));
    std::vector<int> sorted = epoch;
    std::sort(sorted.begin(), sorted.end());
    std::vector<int> all(10);
    std::iota(all.begin(), all.end(), 0);
    CHECK(sorted == all);
    // The order the batcher reports for this epoch is the one it used.
    fg::RandomStream key{42, 4, 0};
    const auto order = batches.epoch_order(key, e);
    CHECK(std::equal(epoch.begin(), epoch.end(), order.begin()));
    epochs.push_back(epoch);
  }
  CHECK(epochs[0] != epochs[1]);
  CHECK(epochs[1] != epochs[2]);
  CHECK(epochs[2] != epochs[3]);
  CHECK(batches.position(rng) == ShuffledBatches<float>::Position{4, 2});
}

TEST_CASE("ShuffledBatches is a function of the stream and resumes from a saved position") {
  const ImageDataset<float> d = numbered();
  ShuffledBatches<float> a(d), b(d);
  fg::RandomStream ra{7, 4, 0}, rb{7, 4, 0}, other{8, 4, 0};
  const auto first = draw(a, ra, 9, 4);
  CHECK(draw(b, rb, 9, 4) == first);
  CHECK(draw(b, other, 9, 4) != first); // another seed, another order

  // Save after 5 batches (mid-epoch), go on; a fresh batcher at the saved position repeats it.
  fg::RandomStream run{3, 4, 0};
  ShuffledBatches<float> original(d);
  (void)draw(original, run, 5, 4);
  const auto saved = original.position(run);
  CHECK(saved == ShuffledBatches<float>::Position{2, 0});
  const auto rest = draw(original, run, 6, 4);

  ShuffledBatches<float> resumed(d);
  fg::RandomStream restart{3, 4, 0};
  resumed.set_position(restart, saved);
  CHECK(restart.counter == 20);
  CHECK(draw(resumed, restart, 6, 4) == rest);
  CHECK_THROWS_AS(resumed.set_position(restart, {0, 10}), fg::config_error);
}

TEST_CASE("ShuffledBatches and ImageDataset check what they fill") {
  const ImageDataset<float> d = numbered();
  ShuffledBatches<float> batches(d);
  fg::RandomStream rng{1, 4, 0};
  std::vector<float> out(5 * 2);
  std::vector<std::int32_t> labels(3);
  try {
    batches.sample(rng, fg::BatchView<float>(out.data(), 5, 2));
    FAIL("expected a shape_error");
  } catch (const fg::shape_error& e) {
    CHECK(has(e.what(), "4 features per sample (C*H*W = 1*2*2)"));
  }
  CHECK_THROWS_AS(d.sample(rng, fg::BatchView<float>(out.data(), 5, 2)), fg::shape_error);
  CHECK_THROWS_AS(batches.sample(rng, fg::BatchView<float>(out.data(), 4, 2), labels), fg::shape_error);
  const ImageDataset<float> unlabelled(idx({2, 2, 2}, std::vector<std::uint8_t>(8, 0)));
  std::vector<std::int32_t> two(2);
  CHECK_THROWS_AS(unlabelled.sample(rng, fg::BatchView<float>(out.data(), 4, 2), two), fg::config_error);
  CHECK(rng.counter == 0); // nothing was drawn by a call that threw
}

TEST_CASE_TEMPLATE("ImageDataset draws with replacement, labels following images", S, FORGERY_SCALARS) {
  const ImageDataset<float> d = numbered();
  std::vector<S> a(kFeatures * 32), b(kFeatures * 32);
  std::vector<std::int32_t> la(32), lb(32);
  fg::RandomStream r1{9, 4, 0}, r2{9, 4, 0};
  d.sample(r1, fg::BatchView<S>(a.data(), kFeatures, 32), la);
  d.sample(r2, fg::BatchView<S>(b.data(), kFeatures, 32), lb);
  CHECK(a == b);
  CHECK(la == lb);
  CHECK(r1.counter == 32);
  for (index_t j = 0; j < 32; ++j) {
    const long image =
        std::lround((static_cast<double>(a[static_cast<std::size_t>(j * kFeatures)]) + 1.0) * 127.5) / 20;
    CHECK(la[static_cast<std::size_t>(j)] == image % 3);
  }
}

TEST_CASE("ShuffledBatches feeds a Trainer from its data stream") {
  static_assert(fg::DataSource<ShuffledBatches<float>, float>);
  static_assert(fg::DataSource<ImageDataset<float>, float>);
  using G = fg::Sequential<fg::Input<2>, fg::Dense<4>, fg::Tanh>;
  using D = fg::Sequential<fg::Input<4>, fg::Dense<4>, fg::LeakyReLU<>, fg::Dense<1>>;
  fg::Trainer<G, D, fg::loss::NonSaturating> trainer({.batch = 4, .seed = 5});
  const ImageDataset<float> d = numbered();
  ShuffledBatches<float> batches(d);
  trainer.fit(batches, 3);
  // Three critic updates of 4 real images: 12 samples, epoch 1, index 2.
  CHECK(batches.position(*trainer.random_streams()[1]) == ShuffledBatches<float>::Position{1, 2});
}

TEST_CASE_TEMPLATE("load_idx_dataset scales as it reads, to the same dataset as ImageDataset(load_idx_pair)", S,
                   FORGERY_SCALARS) {
  fg::test::Scratch s;
  // More pixels than one 64 KiB piece, so the scaling runs across pieces.
  for (const bool gz : {false, true})
    for (const std::vector<std::uint32_t>& dims :
         {std::vector<std::uint32_t>{30, 50, 60}, std::vector<std::uint32_t>{30, 2, 30, 50}}) {
      CAPTURE(gz);
      CAPTURE(dims.size());
      const auto images = write_file(s.dir / (gz ? "img.gz" : "img"), idx_file(dims, pattern(90000, 7)), gz);
      const auto labels = write_file(s.dir / (gz ? "lab.gz" : "lab"), idx_file({30}, pattern(30, 1, 4)), gz);
      const ImageDataset<S> streamed = fg::data::load_idx_dataset<S>(images, labels);
      const fg::data::IdxArray image_bytes = fg::data::read_idx(images);
      const ImageDataset<S> copied(image_bytes, fg::data::load_idx_labels(labels));
      CHECK(same_dataset(streamed, copied));
      CHECK(streamed.classes() == 4);
      CHECK(streamed.channels() == (dims.size() == 4 ? 2 : 1));
      CHECK(fg::data::load_idx_dataset<S>(images, labels, 9).classes() == 9);
    }
}

TEST_CASE("load_idx_dataset names the file: counts, shapes, limits, damaged gzip members") {
  fg::test::Scratch s;
  const auto images = write_file(s.dir / "img.gz", idx_file({3, 2, 2}, pattern(12, 20)), true);
  const auto labels = write_file(s.dir / "lab.gz", idx_file({2}, {0, 1}), true);
  std::string msg = io_error_of([&] { (void)fg::data::load_idx_dataset<float>(images, labels); });
  CHECK(has(msg, images.string()));
  CHECK(has(msg, labels.string()));
  CHECK(has(msg, "has 2 labels but"));
  CHECK(has(msg, "has 3 images: expected one label per image"));

  const auto labels3 = write_file(s.dir / "lab3", idx_file({3}, {0, 1, 5}), false);
  msg = io_error_of([&] { (void)fg::data::load_idx_dataset<float>(images, labels3, 4); });
  CHECK(has(msg, labels3.string()));
  CHECK(has(msg, "label 5 at index 2 is not below the class count 4"));

  const auto flat = write_file(s.dir / "flat", idx_file({3, 4}, pattern(12, 1)), false);
  msg = io_error_of([&] { (void)fg::data::load_idx_dataset<float>(flat, labels3); });
  CHECK(has(msg, flat.string()));
  CHECK(has(msg, "expected images with 3 (N x H x W) or 4 (N x C x H x W) dimensions, found 2 (3 x 4)"));

  msg = io_error_of([&] { (void)fg::data::load_idx_dataset<float>(images, labels3, 0, {.max_bytes = 11}); });
  CHECK(has(msg, images.string()));
  CHECK(has(msg, "above the limit of 11 bytes (IdxLimits::max_bytes"));

  // The images' trailer is checked after the last pixel was scaled.
  const Bytes gz = read_file(images);
  for (std::size_t n = 1; n <= 8; ++n) {
    CAPTURE(n);
    const auto cut = write_file(s.dir / "cut.gz", Bytes(gz.begin(), gz.end() - static_cast<std::ptrdiff_t>(n)), false);
    msg = io_error_of([&] { (void)fg::data::load_idx_dataset<float>(cut, labels3, 6); });
    CHECK(has(msg, cut.string()));
    CHECK(has(msg, "the gzip stream is cut short inside member 1"));
  }
  Bytes bad_crc = gz;
  bad_crc[gz.size() - 7] ^= 0x40;
  const auto crc = write_file(s.dir / "crc.gz", bad_crc, false);
  msg = io_error_of([&] { (void)fg::data::load_idx_dataset<double>(crc, labels3, 6); });
  CHECK(has(msg, crc.string()));
  CHECK(has(msg, "fails its CRC-32 check"));
}

TEST_CASE("load_idx_dataset: images a header promises but the file lacks are not written") {
  fg::test::Scratch s;
  // 60000 x 64 x 64 images (246 MB, under the default limit; 983 MB as floats), 3 of them held.
  const auto images = write_file(s.dir / "img.gz", idx_file({60000, 64, 64}, pattern(3 * 64 * 64, 5)), true);
  const auto labels = write_file(s.dir / "lab.gz", idx_file({60000}, Bytes(60000, 1)), true);
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  const long before = u.ru_maxrss;
  const std::string msg = io_error_of([&] { (void)fg::data::load_idx_dataset<float>(images, labels); });
  getrusage(RUSAGE_SELF, &u);
  CHECK(has(msg, images.string()));
  CHECK(has(msg, "truncated: header promises 245760000 payload bytes (60000 x 64 x 64), the decompressed data end "
                 "after 12288"));
  MESSAGE("peak resident set grew by " << u.ru_maxrss - before << " KiB for images that promise 983 MB as floats");
  CHECK(u.ru_maxrss - before < 64 * 1024);
}

TEST_CASE("load_fashion_mnist takes IdxLimits and checks the files it streams") {
  fg::test::Scratch s;
  const Bytes pixels = pattern(3 * 28 * 28, 1);
  write_file(s.dir / "t10k-images-idx3-ubyte.gz", idx_file({3, 28, 28}, pixels), true);
  write_file(s.dir / "t10k-labels-idx1-ubyte.gz", idx_file({3}, {9, 0, 4}), true);
  const auto d = fg::data::load_fashion_mnist<float>(fg::data::Split::test, s.dir);
  CHECK(d.size() == 3);
  CHECK(d.classes() == 10);
  CHECK(d.labels()(0) == 9);
  CHECK(d.images()(2, 0, 27, 27) == fg::data::detail::byte_to_unit<float>(pixels.back()));

  std::string msg = io_error_of(
      [&] { (void)fg::data::load_fashion_mnist<float>(fg::data::Split::test, s.dir, {.max_bytes = 1000}); });
  CHECK(has(msg, (s.dir / "t10k-images-idx3-ubyte.gz").string()));
  CHECK(has(msg, "header promises 3 x 28 x 28 = 2352 bytes, above the limit of 1000 bytes (IdxLimits::max_bytes"));
  CHECK(fg::data::load_fashion_mnist<double>(fg::data::Split::test, s.dir, {.max_bytes = 2352}).size() == 3);

  // The plain file is read when there is no .gz; its size is checked against its header.
  std::filesystem::remove(s.dir / "t10k-images-idx3-ubyte.gz");
  const auto plain =
      write_file(s.dir / "t10k-images-idx3-ubyte", idx_file({3, 27, 28}, pattern(3 * 27 * 28, 1)), false);
  msg = io_error_of([&] { (void)fg::data::load_fashion_mnist<float>(fg::data::Split::test, s.dir); });
  CHECK(has(msg, plain.string()));
  CHECK(has(msg, "expected 28 x 28 Fashion-MNIST images, found 27 x 28"));
  write_file(plain, idx_file({4, 28, 28}, pattern(4 * 28 * 28, 1)), false);
  msg = io_error_of([&] { (void)fg::data::load_fashion_mnist<float>(fg::data::Split::test, s.dir); });
  CHECK(has(msg, "has 3 labels but " + plain.string() + " has 4 images"));
}

TEST_CASE("Fashion-MNIST: the directory, the error without the files, the real test split") {
  const char* saved = std::getenv("FORGERY_FASHION_MNIST");
  const std::string saved_value = saved ? saved : "";
  ::setenv("FORGERY_FASHION_MNIST", "/some/where", 1);
  CHECK(fg::data::fashion_mnist_dir() == "/some/where");
  ::unsetenv("FORGERY_FASHION_MNIST");
  CHECK(fg::data::fashion_mnist_dir() == "/usr/share/datasets/fashion-mnist");
  if (saved) ::setenv("FORGERY_FASHION_MNIST", saved_value.c_str(), 1);
  CHECK(fg::data::fashion_mnist_class_names[9] == "Ankle boot");

  const auto empty = std::filesystem::temp_directory_path() / ("forgery_fmnist_" + std::to_string(::getpid()));
  std::filesystem::create_directories(empty);
  try {
    (void)fg::data::load_fashion_mnist<float>(fg::data::Split::test, empty);
    FAIL("expected an io_error");
  } catch (const fg::io_error& e) {
    CHECK(has(e.what(), empty.string()));
    CHECK(has(e.what(), "t10k-images-idx3-ubyte"));
    CHECK(has(e.what(), "install dataset-fashion-mnist or pass --data"));
  }
  std::filesystem::remove_all(empty);

  const std::filesystem::path dir = "/usr/share/datasets/fashion-mnist";
  if (!std::filesystem::exists(dir / "t10k-images-idx3-ubyte.gz")) {
    MESSAGE("skipped: " << dir << " is absent (install dataset-fashion-mnist to test the real files)");
    return;
  }
  const auto test = fg::data::load_fashion_mnist<float>(fg::data::Split::test, dir);
  CHECK(test.size() == 10000);
  CHECK(test.channels() == 1);
  CHECK(test.height() == 28);
  CHECK(test.width() == 28);
  CHECK(test.classes() == 10);
  CHECK(test.class_counts() == std::vector<index_t>(10, 1000));
  const auto [lo, hi] = std::minmax_element(test.images().begin(), test.images().end());
  CHECK(*lo == -1.0f);
  CHECK(*hi == 1.0f);
  // Scaled as it is decompressed, the same as scaling the bytes read whole.
  const auto pair = fg::data::load_idx_pair(dir / "t10k-images-idx3-ubyte.gz", dir / "t10k-labels-idx1-ubyte.gz");
  CHECK(same_dataset(test, ImageDataset<float>(pair.images, pair.labels, 10)));
}

} // namespace
