// Writes the event log that tests/tools/tensorboard_read.py reads with TensorBoard's own
// reader (CTest tools.tensorboard): a short WGAN-GP run on 4 x 4 images with the TensorBoard
// callback, stopped two steps past a checkpoint and resumed from it, and expected.json, what
// TensorBoard must show: each tag's (step, value) pairs and each sample grid's size.
//   tensorboard_write <log dir>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "forgery/forgery.hpp"
#include "forgery/train/tensorboard.hpp"

namespace {

namespace fs = std::filesystem;

using G = fg::Sequential<fg::Input<4>, fg::Dense<16>, fg::Tanh, fg::Reshape<1, 4, 4>>;
using D = fg::Sequential<fg::Input<16>, fg::Dense<8>, fg::LeakyReLU<>, fg::Dense<1>>;
using T = fg::WganGpTrainer<G, D>;

// Every sample one 4 x 4 pattern in [-1, 1].
struct Pattern {
  void sample(fg::RandomStream&, fg::BatchView<float> out) const {
    for (fg::index_t j = 0; j < out.batch(); ++j)
      for (fg::index_t i = 0; i < 16; ++i) out.sample(j)[i] = static_cast<float>((i % 5) / 2.0 - 1.0);
  }
};

// What TensorBoard should show: the last value logged for each tag and step.
struct Expected {
  std::map<std::string, std::map<long long, float>> scalars;
  void add(const fg::StepStats& s) {
    scalars["loss/d"][s.step] = static_cast<float>(s.d_loss);
    scalars["loss/g"][s.step] = static_cast<float>(s.g_loss);
    scalars["grad_norm/d"][s.step] = static_cast<float>(s.d_grad_norm);
    scalars["grad_norm/g"][s.step] = static_cast<float>(s.g_grad_norm);
    for (std::size_t i = 0; i < s.part_values.size(); ++i)
      scalars[std::string("part/") + s.part_names[i]][s.step] = static_cast<float>(s.part_values[i]);
  }
};

struct Record {
  Expected* expected;
  template <class Trainer>
  void on_step(const Trainer&, const fg::StepStats& s) {
    expected->add(s);
  }
};

} // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <log dir>\n", argv[0]);
    return 2;
  }
  const fs::path dir = argv[1];
  try {
    // Only what an earlier run of this program wrote there.
    if (fs::is_directory(dir))
      for (const auto& entry : fs::directory_iterator(dir))
        if (entry.path().filename().string().starts_with("events.out.tfevents.")) fs::remove(entry.path());

    auto cfg = fg::wgan_gp_config<T>();
    cfg.batch = 8;
    cfg.seed = 11;
    const fg::callbacks::TensorBoardOptions options{.every = 1, .image_every = 2, .images = 6, .columns = 3};
    Pattern data;
    Expected expected;

    T first(cfg);
    fg::callbacks::TensorBoard tb(dir, options);
    first.fit(data, 3, tb, Record{&expected});
    first.save_checkpoint(dir / "step3.ckpt");
    first.fit(data, 2, tb); // steps 4 and 5, logged, then lost: the run stops

    T resumed(cfg);
    resumed.load_checkpoint(dir / "step3.ckpt");
    fs::remove(dir / "step3.ckpt");
    fg::callbacks::TensorBoard tb2(dir, options);
    resumed.fit(data, 3, tb2, Record{&expected});

    // Grids at steps 2 and 3 (the first fit's last), 4 and 6 after the resume: 6 samples
    // in 2 rows of 3, 4 x 4 pixels each, padding 2.
    std::ofstream out(dir / "expected.json");
    out << "{\"files\": 3, \"session_starts\": [1, 4, 4], \"image\": {\"tag\": \"samples\", \"steps\": [2, 3, 4, 6], "
           "\"width\": "
        << 3 * (4 + 2) + 2 << ", \"height\": " << 2 * (4 + 2) + 2 << ", \"channels\": 1}, \"scalars\": {";
    bool first_tag = true;
    for (const auto& [tag, values] : expected.scalars) {
      out << (first_tag ? "" : ", ") << '"' << tag << "\": [";
      first_tag = false;
      bool first_value = true;
      for (const auto& [step, value] : values) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%s[%lld, %.9g]", first_value ? "" : ", ", step, static_cast<double>(value));
        out << buf;
        first_value = false;
      }
      out << ']';
    }
    out << "}}\n";
    if (!out) throw fg::io_error((dir / "expected.json").string(), "write failed");
    std::printf("wrote %s and %s\n", tb.file().string().c_str(), tb2.file().string().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
