// fashion_classifier: trains the small CNN whose penultimate features the image examples
// measure Frechet distance and KID on, reports its test accuracy and saves its weights.
#include <cstdio>
#include <exception>
#include <limits>

#include "../fashion_common/fashion.hpp"

int main(int argc, char** argv) try {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  int epochs = 2;
  std::uint64_t seed = 1;
  fashion::fs::path out = "fashion_classifier_out", data = fg::data::fashion_mnist_dir();
  cli::Command("fashion_classifier", "Trains the metric classifier on Fashion-MNIST and saves DIR/classifier.npy.")
      .integer("--epochs", epochs, 1, std::numeric_limits<int>::max(), "passes over the training set")
      .integer("--seed", seed, std::uint64_t{0}, std::numeric_limits<std::uint64_t>::max(),
               "seed of the initialisation and the batch order", "S")
      .path("--out", out, "output directory of classifier.npy")
      .path("--data", data,
            "Fashion-MNIST IDX files (default: $FORGERY_FASHION_MNIST or /usr/share/datasets/fashion-mnist)")
      .parse(argc, argv);
  cli::require_writable_directory("--out", out);
  const auto train = fg::data::load_fashion_mnist<float>(fg::data::Split::train, data);
  const auto test = fg::data::load_fashion_mnist<float>(fg::data::Split::test, data);
  fashion::Classifier net;
  const double acc = fashion::train_classifier(net, train, test, epochs, seed);
  fg::io::save_weights_npy(out / "classifier.npy", net);
  std::printf("test accuracy %.2f %%\nwrote %s/classifier.npy\n", 100 * acc, out.c_str());
  return acc >= 0.88 ? 0 : 2;
} catch (const std::exception& e) {
  std::fprintf(stderr, "fashion_classifier: %s\n", e.what());
  return 1;
}
