// fashion_classifier: trains the small CNN whose penultimate features the image examples
// measure Frechet distance and KID on, reports its test accuracy and saves its weights.
#include <cstdio>
#include <exception>

#include "../fashion_common/fashion.hpp"

int main(int argc, char** argv) try {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const toy::Args args(argc, argv,
                       {{"epochs", "2"},
                        {"seed", "1"},
                        {"out", "fashion_classifier_out"},
                        {"data", fg::data::fashion_mnist_dir().string()}},
                       "usage: fashion_classifier [--epochs N] [--seed S] [--out DIR] [--data DIR]\n"
                       "Trains the metric classifier on Fashion-MNIST and saves DIR/classifier.npy.\n");
  const fashion::fs::path out = args.str("out");
  fashion::fs::create_directories(out);
  const auto train = fg::data::load_fashion_mnist<float>(fg::data::Split::train, args.str("data"));
  const auto test = fg::data::load_fashion_mnist<float>(fg::data::Split::test, args.str("data"));
  fashion::Classifier net;
  const double acc = fashion::train_classifier(net, train, test, static_cast<int>(args.integer("epochs")),
                                               static_cast<std::uint64_t>(args.integer("seed")));
  fg::io::save_weights_npy(out / "classifier.npy", net);
  std::printf("test accuracy %.2f %%\nwrote %s/classifier.npy\n", 100 * acc, out.c_str());
  return acc >= 0.88 ? 0 : 2;
} catch (const std::exception& e) {
  std::fprintf(stderr, "fashion_classifier: %s\n", e.what());
  return 1;
}
