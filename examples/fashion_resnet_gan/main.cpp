// fashion_resnet_gan: the SN-GAN ResNet recipe (Miyato et al. 2018) on Fashion-MNIST: residual
// up blocks with BatchNorm in G, residual down blocks with spectral norm on every weight in
// the critic (fashion_common/resnet_specs.hpp), hinge loss, Adam(2e-4, 0, 0.9), 5 critic
// updates per generator update. Same flags, outputs and metrics as fashion_dcgan.
#include "../fashion_common/resnet_main.hpp"

int main(int argc, char** argv) {
  using namespace fashion::resnet;
  return fashion::resnet::main<
      fg::Trainer<G, D, fg::loss::Hinge, fg::optim::Adam, fg::backend::Cpu<float>, fashion::Hook>>(
      argc, argv, "fashion_resnet_gan",
      "Trains the SN-GAN ResNet generator and critic (hinge loss, spectral norm, 5 critic updates per generator "
      "update) on Fashion-MNIST.");
}
