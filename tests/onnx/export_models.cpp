// The C++ half of the onnx.runtime test: exports each test network (tests/onnx/models.hpp)
// to DIR/<name>.onnx and writes fixed inputs and forgery's eval-mode outputs for them as
// DIR/<name>.input.npy and DIR/<name>.output.npy (batch x features, float), which
// onnx_compare.py runs through onnxruntime.
//   onnx_export_models DIR
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>

#include <forgery/io/onnx.hpp>
#include <forgery/io/samples.hpp>

#include "models.hpp"

namespace {

namespace models = forgery::test::onnx_models;
using B = fg::backend::Cpu<float>;

// `adjust` changes the prepared network before it runs and is exported.
template <class Spec, class Adjust = void (*)(fg::Network<Spec, B>&)>
void write(
    const std::filesystem::path& dir, const std::string& name, std::uint64_t seed, bool image_input,
    Adjust adjust = [](fg::Network<Spec, B>&) {}) {
  fg::Network<Spec, B> net;
  models::prepare(net, seed);
  adjust(net);
  using Net = fg::Network<Spec, B>;
  const fg::index_t batch = 5;
  const auto x = models::inputs<Net>(batch, seed, image_input);
  const auto y = net.forward({x.data(), Net::input_size, batch});
  fg::io::OnnxOptions options;
  options.doc = "forgery ONNX test network " + name;
  fg::io::export_onnx(net, dir / (name + ".onnx"), options);
  fg::io::save_npy(dir / (name + ".input.npy"), fg::ConstBatchView<float>(x.data(), Net::input_size, batch));
  fg::io::save_npy(dir / (name + ".output.npy"), y);
  std::printf("%s: %lld parameters, wrote %s.onnx\n", name.c_str(), static_cast<long long>(Net::param_count),
              name.c_str());
}

} // namespace

int main(int argc, char** argv) try {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  std::filesystem::create_directories(dir);
  write<models::MlpGenerator>(dir, "mlp_generator", 11, false);
  write<models::MlpCritic>(dir, "mlp_critic", 12, true);
  write<models::DcganGenerator>(dir, "dcgan_generator", 13, false);
  write<models::DcganCritic>(dir, "dcgan_critic", 14, true);
  write<models::LayerZoo>(dir, "layer_zoo", 15, true);
  write<models::ResnetGenerator>(dir, "resnet_generator", 16, false);
  write<models::ResnetCritic>(dir, "resnet_critic", 17, true, [](auto& net) {
    models::set_attention_gamma<models::resnet_critic_attention>(net, 0.8f);
  });
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "onnx_export_models: %s\n", e.what());
  return 1;
}
