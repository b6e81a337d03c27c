// fg::nccl::Communicator: data-parallel training of the Cuda backend over NCCL (one GPU per
// rank), for the forgery::nccl target. The semantics are fg::mpi::Communicator's: every rank
// computes its shards of each update (Trainer::Config::shards, shard_range) and the exchange
// gives every rank every shard's slot, which each rank averages in shard order, so the
// weights are the same bits for any rank count, and equal to a single-process Cuda Trainer
// with the same shards. The exchange runs in device memory: one grouped ncclBroadcast per
// rank's slots (ranks may hold different shard counts), on the backend's stream.
//
// NCCL needs one ncclUniqueId shared by all ranks before it starts; with MPI:
//
//   fg::mpi::Environment env(argc, argv);
//   fg::mpi::Communicator mpi;
//   cudaSetDevice(local_rank);
//   auto nccl = fg::nccl::Communicator::from(mpi);   // rank 0's id, broadcast over MPI
//   fg::Trainer<G, D, Obj, Opt, fg::backend::Cuda<float>, fg::nccl::Communicator> t(cfg, std::move(nccl));
#pragma once

#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "forgery/backend/cuda.hpp"
#include "forgery/core/concepts.hpp"
#include "forgery/core/config.hpp"
#include "forgery/core/error.hpp"
#include "forgery/distributed/exchange.hpp"

namespace forgery::nccl {

/// An NCCL call that failed: names the call, what it was doing and NCCL's own message.
class nccl_error : public error {
public:
  nccl_error(const std::string& call, const std::string& during, ncclResult_t code)
      : error("forgery: " + call + " failed during " + during + ": " + ncclGetErrorString(code)), call_(call) {}
  [[nodiscard]] const std::string& call() const noexcept { return call_; }

private:
  std::string call_;
};

namespace detail {
inline void check(ncclResult_t code, const char* call, const std::string& during) {
  if (code != ncclSuccess) throw nccl_error(call, during, code);
}
template <class S>
constexpr ncclDataType_t datatype() {
  static_assert(std::is_same_v<S, float> || std::is_same_v<S, double>,
                "fg::nccl: the backend's scalar must be float or double");
  return std::is_same_v<S, float> ? ncclFloat32 : ncclFloat64;
}
} // namespace detail

/// The ranks of one training run on NCCL: the Trainer's gradients-ready hook and
/// communicator (fg::Communicator) for backend::Cuda. Each rank uses the CUDA device current
/// when it is constructed. Move-only.
class Communicator {
public:
  /// A fresh id, made on one rank and given to every other (from() sends it over MPI).
  [[nodiscard]] static ncclUniqueId unique_id() {
    ncclUniqueId id;
    detail::check(ncclGetUniqueId(&id), "ncclGetUniqueId", "the communicator's id");
    return id;
  }

  /// Rank `rank` of `size`, all joined under `id` (collective: every rank constructs it).
  Communicator(const ncclUniqueId& id, index_t rank, index_t size) : rank_(rank), size_(size) {
    if (size < 1 || rank < 0 || rank >= size)
      throw config_error("fg::nccl::Communicator rank", std::to_string(rank) + " of " + std::to_string(size),
                         "a rank in [0, size)");
    detail::check(ncclCommInitRank(&comm_, static_cast<int>(size), id, static_cast<int>(rank)), "ncclCommInitRank",
                  "the communicator's construction");
  }

  /// The ranks of an MPI communicator (any type with rank(), size() and
  /// broadcast(void*, bytes, root), such as fg::mpi::Communicator): rank 0 makes the id and
  /// broadcasts it.
  template <class Mpi>
  [[nodiscard]] static Communicator from(Mpi& mpi) {
    ncclUniqueId id{};
    if (mpi.rank() == 0) id = unique_id();
    mpi.broadcast(&id, sizeof id, 0);
    return Communicator(id, static_cast<index_t>(mpi.rank()), static_cast<index_t>(mpi.size()));
  }

  Communicator(Communicator&& o) noexcept { swap(o); }
  Communicator& operator=(Communicator&& o) noexcept {
    Communicator t(std::move(o));
    swap(t);
    return *this;
  }
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;
  ~Communicator() {
    if (staging_ != nullptr) cudaFree(staging_);
    if (comm_ != nullptr) ncclCommDestroy(comm_);
  }

  [[nodiscard]] index_t rank() const noexcept { return rank_; }
  [[nodiscard]] index_t size() const noexcept { return size_; }
  [[nodiscard]] bool is_root() const noexcept { return rank_ == 0; }
  [[nodiscard]] ncclComm_t native() const noexcept { return comm_; }

  /// The gradients arrive averaged over every shard (exchange_shards).
  template <class B>
  void gradients_ready(const GradientsReady<B>&) const noexcept {}

  /// Gives every rank every shard's slots: the gradient slots in device memory, the host
  /// scalars through a device staging buffer. Collective.
  template <class B>
  void exchange_shards(const ShardExchange<B>& x) {
    static_assert(!B::host_memory, "fg::nccl::Communicator exchanges device memory: with a host backend use "
                                   "fg::mpi::Communicator (forgery/distributed/mpi.hpp)");
    using S = typename B::scalar;
    const auto start = std::chrono::steady_clock::now();
    broadcast_slots(x.slots, x.stride, detail::datatype<S>(), x, sizeof(S));
    const std::size_t host_bytes = static_cast<std::size_t>(x.shards * x.host_stride) * sizeof(double);
    double* const staging = static_cast<double*>(staging_bytes(host_bytes));
    FORGERY_CUDA_CHECK(cudaMemcpy(staging, x.host_slots, host_bytes, cudaMemcpyHostToDevice));
    broadcast_slots(staging, x.host_stride, ncclFloat64, x, sizeof(double));
    FORGERY_CUDA_CHECK(cudaMemcpy(x.host_slots, staging, host_bytes, cudaMemcpyDeviceToHost));
    seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ++exchanges_;
  }

  /// Whether `flag` is true on any rank (collective): the Trainer's agreement on stopping.
  [[nodiscard]] bool any(bool flag) {
    std::int32_t* const d = static_cast<std::int32_t*>(staging_bytes(sizeof(std::int32_t)));
    const std::int32_t mine = flag ? 1 : 0;
    std::int32_t all = 0;
    FORGERY_CUDA_CHECK(cudaMemcpy(d, &mine, sizeof mine, cudaMemcpyHostToDevice));
    detail::check(ncclAllReduce(d, d, 1, ncclInt32, ncclMax, comm_, nullptr), "ncclAllReduce", "the stop agreement");
    FORGERY_CUDA_CHECK(cudaMemcpy(&all, d, sizeof all, cudaMemcpyDeviceToHost));
    return all != 0;
  }

  /// Throws config_error on every rank unless every rank passed the same `text`. Collective.
  void check_same(std::string_view what, std::string_view text) {
    const std::uint64_t mine = distributed::fingerprint(text);
    const std::size_t bytes = static_cast<std::size_t>(size_) * sizeof(std::uint64_t);
    std::uint64_t* const d = static_cast<std::uint64_t*>(staging_bytes(bytes));
    FORGERY_CUDA_CHECK(cudaMemcpy(d + rank_, &mine, sizeof mine, cudaMemcpyHostToDevice));
    detail::check(ncclAllGather(d + rank_, d, 1, ncclUint64, comm_, nullptr), "ncclAllGather",
                  std::string(what) + " check");
    std::string all(bytes, '\0');
    FORGERY_CUDA_CHECK(cudaMemcpy(all.data(), d, bytes, cudaMemcpyDeviceToHost));
    distributed::require_same(what, reinterpret_cast<const std::uint64_t*>(all.data()), size_);
  }

  /// Seconds spent in exchange_shards so far, and how many exchanges.
  [[nodiscard]] double exchange_seconds() const noexcept { return seconds_; }
  [[nodiscard]] long long exchanges() const noexcept { return exchanges_; }

private:
  // Rank r's slots, [first, first + count) of `stride` values each, from rank r to all: one
  // grouped broadcast per rank (ranks hold different shard counts when they do not divide).
  // The exchange's name in an error is built only when a call fails.
  template <class B>
  void broadcast_slots(void* slots, index_t stride, ncclDataType_t type, const ShardExchange<B>& x,
                       std::size_t value_bytes) {
    if (const ncclResult_t code = ncclGroupStart(); code != ncclSuccess)
      throw nccl_error("ncclGroupStart", distributed::exchange_name(x), code);
    for (index_t r = 0; r < size_; ++r) {
      const ShardRange range = shard_range(x.shards, size_, r);
      if (range.count == 0) continue;
      void* const at = static_cast<char*>(slots) + static_cast<std::size_t>(range.first * stride) * value_bytes;
      const ncclResult_t code = ncclBroadcast(at, at, static_cast<std::size_t>(range.count * stride), type,
                                              static_cast<int>(r), comm_, nullptr);
      if (code != ncclSuccess) {
        ncclGroupEnd();
        throw nccl_error("ncclBroadcast", distributed::exchange_name(x), code);
      }
    }
    if (const ncclResult_t code = ncclGroupEnd(); code != ncclSuccess)
      throw nccl_error("ncclGroupEnd", distributed::exchange_name(x), code);
  }

  void* staging_bytes(std::size_t bytes) {
    if (bytes > staging_size_) {
      if (staging_ != nullptr) FORGERY_CUDA_CHECK(cudaFree(staging_));
      staging_ = nullptr;
      FORGERY_CUDA_CHECK(cudaMalloc(&staging_, bytes));
      staging_size_ = bytes;
    }
    return staging_;
  }

  void swap(Communicator& o) noexcept {
    std::swap(comm_, o.comm_);
    std::swap(rank_, o.rank_);
    std::swap(size_, o.size_);
    std::swap(staging_, o.staging_);
    std::swap(staging_size_, o.staging_size_);
    std::swap(seconds_, o.seconds_);
    std::swap(exchanges_, o.exchanges_);
  }

  ncclComm_t comm_ = nullptr;
  index_t rank_ = 0, size_ = 1;
  void* staging_ = nullptr;
  std::size_t staging_size_ = 0;
  double seconds_ = 0;
  long long exchanges_ = 0;
};

} // namespace forgery::nccl
