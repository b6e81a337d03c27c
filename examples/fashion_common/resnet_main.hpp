// The command line, configuration and run both ResNet recipes share (fashion_resnet_gan,
// fashion_resnet_cgan): the paper's schedule (resnet::config) with the options every image
// example takes.
#pragma once

#include <cstdio>
#include <exception>

#include "fashion.hpp"
#include "resnet_specs.hpp"

namespace fashion::resnet {

/// Parses the command line, trains T with the SN-GAN schedule and evaluates it; the exit code.
template <class T>
int main(int argc, char** argv, const char* name, const char* what) try {
  const auto o = fashion::parse(argc, argv, name, what, 1000, 64, T::max_batch);
  auto hook = fashion::make_hook(o, argc, argv);
  auto cfg = config<T>();
  fashion::apply_options(cfg, o, hook);
  T trainer(cfg, std::move(hook));
  return fashion::run(trainer, o, name);
} catch (const std::exception& e) {
  return fashion::fail(name, e);
}

} // namespace fashion::resnet
