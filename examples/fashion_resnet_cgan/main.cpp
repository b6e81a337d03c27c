// fashion_resnet_cgan: the class-conditional ResNet recipe on Fashion-MNIST (SN-GAN's
// conditional setting with SAGAN's attention): conditional BatchNorm (per-class gain and
// bias) in G's residual blocks, a projection critic with spectral norm, self-attention at
// 14 x 14 in both networks (fashion_common/resnet_specs.hpp), hinge loss, Adam(2e-4, 0, 0.9),
// 5 critic updates per generator update. The grid has one row per class.
#include "../fashion_common/resnet_main.hpp"

int main(int argc, char** argv) {
  using namespace fashion::resnet;
  return fashion::resnet::main<fg::Trainer<ConditionalG, ConditionalD, fg::loss::Hinge, fg::optim::Adam,
                                           fg::backend::Cpu<float>, fashion::Hook>>(
      argc, argv, "fashion_resnet_cgan",
      "Trains the class-conditional ResNet GAN (conditional BatchNorm, projection critic, self-attention, hinge "
      "loss) on Fashion-MNIST; the grid has one row per class.");
}
