#include <forgery/data/toy.hpp>
#include <forgery/distributed/mpi.hpp>
#include <forgery/forgery.hpp>
#include <forgery/train/checkpoints.hpp>

using G = fg::Sequential<fg::Input<8>, fg::Dense<128>, fg::LeakyReLU<>, fg::Dense<2>>;
using D = fg::Sequential<fg::Input<2>, fg::Dense<128>, fg::LeakyReLU<>, fg::Dense<1>>;
// The only change from a single-process program: the communicator type.
using T = fg::WganGpTrainer<G, D, fg::backend::Cpu<float>, fg::mpi::Communicator>;

int main(int argc, char** argv) {
  fg::mpi::Environment mpi(argc, argv);
  auto cfg = fg::wgan_gp_config<T>();
  cfg.batch = 256;
  cfg.shards = 4; // fixed for the run: 1, 2 or 4 ranks then give the same bits
  T trainer(cfg, fg::mpi::Communicator{});

  fg::callbacks::CheckpointOptions ck;
  ck.dir = "ring_checkpoints"; // shared by the ranks: rank 0 writes, every rank resumes
  ck.every = 500;
  fg::callbacks::Checkpoints checkpoints(ck);
  trainer.resume(ck.dir);
  fg::data::Ring ring;
  trainer.fit_until(ring, 2000, fg::callbacks::Progress(500), checkpoints); // rank 0 prints
}
