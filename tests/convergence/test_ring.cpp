// Seeded training runs on the ring of 8 Gaussians (Release builds only): the
// non-saturating, hinge and WGAN-GP objectives reach all 8 modes with at least 80 % of
// samples within 3 sigma of a mode, with the settings the toy examples use.
#include <doctest/doctest.h>

#include "../../examples/toy_ring/toy_setup.hpp"

namespace {

template <class T>
void require_ring_learned(typename T::Config cfg, long long steps) {
  T trainer(cfg);
  const auto r = toy::train_and_evaluate(trainer, steps);
  INFO("modes " << r.coverage.modes_covered << "/8, high quality " << r.coverage.high_quality_fraction << ", MMD^2 "
                << r.mmd << ", " << r.seconds << " s");
  CHECK(r.coverage.modes_covered == 8);
  CHECK(r.coverage.high_quality_fraction >= 0.80);
  CHECK(r.mmd < 0.01);
}

TEST_CASE("non-saturating GAN learns the ring") {
  using T = fg::Trainer<toy::G, toy::D, fg::loss::NonSaturating>;
  require_ring_learned<T>(toy::ring_config<T>(1), 4000);
}

TEST_CASE("hinge GAN learns the ring") {
  using T = fg::Trainer<toy::G, toy::D, fg::loss::Hinge>;
  require_ring_learned<T>(toy::ring_config<T>(1), 4000);
}

TEST_CASE("WGAN-GP learns the ring") {
  using T = fg::WganGpTrainer<toy::G, toy::D>;
  require_ring_learned<T>(toy::wgan_gp_ring_config<T>(1), 1600);
}

} // namespace
