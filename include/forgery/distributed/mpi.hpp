// fg::mpi::Communicator: data-parallel training over MPI ranks (processes on one machine
// or several), for the forgery::mpi target. Every rank holds the same parameters and
// computes its shards of each update (Trainer::Config::shards, shard_range); the
// communicator gathers every shard's gradient on every rank (one MPI_Allgatherv per
// update), and each rank averages them in shard order, so the weights are the same bits
// for 1, 2, 3 or more ranks, and equal to a single-process Trainer with the same shards.
//
//   int main(int argc, char** argv) {
//     fg::mpi::Environment mpi(argc, argv);
//     fg::Trainer<G, D, fg::loss::Hinge, fg::optim::Adam, fg::backend::Cpu<float>,
//                 fg::mpi::Communicator> trainer(config, fg::mpi::Communicator{});
//     ...   // outputs and checkpoints where trainer.is_root()
//   }
//
// launched with `mpirun -np 4 program ...` (or `mpirun --hostfile hosts -np 8 ...`).
#pragma once

// The C API only: Open MPI and MPICH otherwise pull in their deprecated C++ bindings.
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "forgery/core/concepts.hpp"
#include "forgery/core/config.hpp"
#include "forgery/core/error.hpp"
#include "forgery/distributed/exchange.hpp"

namespace forgery::mpi {

/// An MPI call that failed: names the call, what it was doing and MPI's own message.
class mpi_error : public error {
public:
  mpi_error(const std::string& call, const std::string& during, int code)
      : error("forgery: " + call + " failed during " + during + ": " + message(code)), call_(call) {}
  [[nodiscard]] const std::string& call() const noexcept { return call_; }

private:
  static std::string message(int code) {
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
    return std::string(text, static_cast<std::size_t>(length));
  }
  std::string call_;
};

namespace detail {
inline void check(int code, const char* call, const std::string& during) {
  if (code != MPI_SUCCESS) throw mpi_error(call, during, code);
}
template <class S>
MPI_Datatype datatype() {
  static_assert(std::is_same_v<S, float> || std::is_same_v<S, double>,
                "fg::mpi: the backend's scalar must be float or double");
  return std::is_same_v<S, float> ? MPI_FLOAT : MPI_DOUBLE;
}
} // namespace detail

/// Ends the whole job from this rank: MPI_Abort on MPI_COMM_WORLD when MPI is running (the
/// launcher stops every rank and names this one), std::exit otherwise. A rank that fails
/// alone (an exception caught in main, a file it cannot write) must leave this way, not by
/// returning from main: MPI_Finalize would wait for ranks that wait in the next exchange.
[[noreturn]] inline void abort_job(int code) noexcept {
  int initialised = 0, finalised = 0;
  MPI_Initialized(&initialised);
  MPI_Finalized(&finalised);
  if (initialised && !finalised) {
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    std::fprintf(stderr, "forgery: rank %d of %d ends the job (MPI_Abort with error code %d)\n", rank, size, code);
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);
  }
  std::exit(code);
}

/// MPI for the life of main: MPI_Init_thread (funneled: only the thread that calls the
/// Trainer calls MPI; OpenMP threads do not) unless MPI is already initialised, and
/// MPI_Finalize at the end if it initialised it. Construct it before any Communicator; on
/// an error that only this rank meets, leave through abort_job.
class Environment {
public:
  Environment(int& argc, char**& argv) {
    int initialised = 0;
    MPI_Initialized(&initialised);
    if (initialised) return;
    int provided = 0;
    detail::check(MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread", "start-up");
    owns_ = true;
  }
  Environment(const Environment&) = delete;
  Environment& operator=(const Environment&) = delete;
  ~Environment() {
    int finalised = 0;
    MPI_Finalized(&finalised);
    if (owns_ && !finalised) MPI_Finalize();
  }

private:
  bool owns_ = false;
};

/// The ranks of one training run: the Trainer's gradients-ready hook and communicator
/// (fg::Communicator). Holds its own duplicate of `comm` with errors returned, not fatal,
/// so that a failed exchange throws mpi_error naming the update. A rank that dies ends the
/// job: mpirun stops every other rank and names the lost one (exit status non-zero), so no
/// rank waits forever in an exchange. Move-only.
class Communicator {
public:
  /// All processes of the launch (MPI_COMM_WORLD).
  Communicator() : Communicator(MPI_COMM_WORLD) {}
  /// The processes of `comm` (duplicated: the Trainer's traffic never mixes with the
  /// caller's).
  explicit Communicator(MPI_Comm comm) {
    int initialised = 0;
    MPI_Initialized(&initialised);
    if (!initialised)
      throw config_error("fg::mpi::Communicator", "MPI not initialised",
                         "an fg::mpi::Environment (or MPI_Init) in main before the communicator");
    detail::check(MPI_Comm_dup(comm, &comm_), "MPI_Comm_dup", "the communicator's construction");
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    int r = 0, n = 0;
    MPI_Comm_rank(comm_, &r);
    MPI_Comm_size(comm_, &n);
    rank_ = r;
    size_ = n;
  }
  /// One rank that calls no MPI at all (MPI need not be initialised): the same Trainer
  /// type then also runs as a plain single process, e.g. without a --mpi flag.
  [[nodiscard]] static Communicator local() noexcept { return Communicator(Local{}); }
  Communicator(Communicator&& o) noexcept { swap(o); }
  Communicator& operator=(Communicator&& o) noexcept {
    Communicator t(std::move(o));
    swap(t);
    return *this;
  }
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;
  ~Communicator() {
    int finalised = 0;
    MPI_Finalized(&finalised);
    if (finalised) return;
    for (auto& t : types_) MPI_Type_free(&t.type);
    if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
  }

  [[nodiscard]] index_t rank() const noexcept { return rank_; }
  [[nodiscard]] index_t size() const noexcept { return size_; }
  /// The rank that writes the run's outputs.
  [[nodiscard]] bool is_root() const noexcept { return rank_ == 0; }
  [[nodiscard]] MPI_Comm native() const noexcept { return comm_; }

  /// The gradients arrive already averaged over every shard (exchange_shards): nothing
  /// left to do.
  template <class B>
  void gradients_ready(const GradientsReady<B>&) const noexcept {}

  /// Gives every rank every shard's slots: one MPI_Allgatherv of the gradient slots (a
  /// contiguous type of one slot, so counts are shards, not scalars) and one of the host
  /// scalars. Collective: every rank calls it at the same update.
  template <class B>
  void exchange_shards(const ShardExchange<B>& x) {
    static_assert(B::host_memory, "fg::mpi::Communicator exchanges host memory: with the Cuda backend use "
                                  "fg::nccl::Communicator (forgery/distributed/nccl.hpp)");
    using S = typename B::scalar;
    const auto start = std::chrono::steady_clock::now();
    counts_.resize(static_cast<std::size_t>(size_));
    displs_.resize(static_cast<std::size_t>(size_));
    for (index_t r = 0; r < size_; ++r) {
      const ShardRange range = shard_range(x.shards, size_, r);
      counts_[static_cast<std::size_t>(r)] = static_cast<int>(range.count);
      displs_[static_cast<std::size_t>(r)] = static_cast<int>(range.first);
    }
    int code = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, x.slots, counts_.data(), displs_.data(),
                              slot_type(detail::datatype<S>(), x.stride), comm_);
    if (code != MPI_SUCCESS) throw mpi_error("MPI_Allgatherv", distributed::exchange_name(x), code);
    code = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, x.host_slots, counts_.data(), displs_.data(),
                          slot_type(MPI_DOUBLE, x.host_stride), comm_);
    if (code != MPI_SUCCESS) throw mpi_error("MPI_Allgatherv", distributed::exchange_name(x), code);
    seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ++exchanges_;
  }

  /// Throws config_error on every rank unless every rank passed the same `text` (the
  /// Trainer passes its configuration and type signatures at construction): ranks that
  /// disagree would compute different shards and never give the same bits. Collective.
  void check_same(std::string_view what, std::string_view text) {
    const std::uint64_t mine = distributed::fingerprint(text);
    std::vector<std::uint64_t> all(static_cast<std::size_t>(size_));
    detail::check(MPI_Allgather(&mine, 1, MPI_UINT64_T, all.data(), 1, MPI_UINT64_T, comm_), "MPI_Allgather",
                  std::string(what) + " check");
    distributed::require_same(what, all.data(), size_);
  }

  /// Whether `flag` is true on any rank (collective): the Trainer's agreement on stopping.
  [[nodiscard]] bool any(bool flag) {
    int mine = flag ? 1 : 0, all = 0;
    detail::check(MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_LOR, comm_), "MPI_Allreduce", "the stop agreement");
    return all != 0;
  }

  /// Copies `bytes` bytes at `data` from rank `root` to every rank (collective): how
  /// fg::nccl::Communicator::from shares NCCL's id.
  void broadcast(void* data, std::size_t bytes, index_t root) {
    if (bytes > static_cast<std::size_t>(INT32_MAX))
      throw config_error("fg::mpi::Communicator::broadcast bytes", std::to_string(bytes), "at most 2^31 - 1");
    detail::check(MPI_Bcast(data, static_cast<int>(bytes), MPI_BYTE, static_cast<int>(root), comm_), "MPI_Bcast",
                  "a broadcast from rank " + std::to_string(root));
  }

  /// Waits for every rank (collective).
  void barrier() { detail::check(MPI_Barrier(comm_), "MPI_Barrier", "a barrier"); }

  /// Seconds spent in exchange_shards so far (waiting for the slowest rank included), and
  /// how many exchanges: what the benchmarks report as the exchange's share of a step.
  [[nodiscard]] double exchange_seconds() const noexcept { return seconds_; }
  [[nodiscard]] long long exchanges() const noexcept { return exchanges_; }

private:
  struct Local {};
  explicit Communicator(Local) noexcept {}

  struct SlotType {
    MPI_Datatype base;
    index_t stride;
    MPI_Datatype type;
  };
  // A committed contiguous type of `stride` values of `base`, made once per stride (the
  // critic's and the generator's).
  MPI_Datatype slot_type(MPI_Datatype base, index_t stride) {
    for (const auto& t : types_)
      if (t.base == base && t.stride == stride) return t.type;
    if (stride > static_cast<index_t>(INT32_MAX))
      throw config_error("fg::mpi::Communicator slot", std::to_string(stride) + " values",
                         "at most 2^31 - 1 values per shard slot");
    MPI_Datatype type = MPI_DATATYPE_NULL;
    detail::check(MPI_Type_contiguous(static_cast<int>(stride), base, &type), "MPI_Type_contiguous",
                  "the shard slot type");
    detail::check(MPI_Type_commit(&type), "MPI_Type_commit", "the shard slot type");
    types_.push_back({base, stride, type});
    return type;
  }
  void swap(Communicator& o) noexcept {
    std::swap(comm_, o.comm_);
    std::swap(rank_, o.rank_);
    std::swap(size_, o.size_);
    std::swap(types_, o.types_);
    std::swap(counts_, o.counts_);
    std::swap(displs_, o.displs_);
    std::swap(seconds_, o.seconds_);
    std::swap(exchanges_, o.exchanges_);
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  index_t rank_ = 0, size_ = 1;
  std::vector<SlotType> types_;
  std::vector<int> counts_, displs_;
  double seconds_ = 0;
  long long exchanges_ = 0;
};

} // namespace forgery::mpi
