// backend::Cuda<S>: device memory (DeviceBuffer), cuBLAS GEMM, and the shared functor kernels
// of kernels.hpp launched as grid-stride CUDA kernels. Every launch and copy goes to the
// default stream, so ordering is the program's order; only results the host reads (sum,
// dot, to_host) wait for the device. Reductions use a fixed grid and a fixed tree, so they
// are deterministic; Philox fills give the CPU backend's numbers (uniform: bitwise; normal:
// within a few ulp, the device's log/sin/cos differ from glibc's in the last bits).
//
// nvcc only, and never included by forgery/forgery.hpp: compile the including file as CUDA
// and link the CMake target forgery::cuda (find_package(forgery COMPONENTS cuda)).
#pragma once

#if !defined(__CUDACC__)
// clang-format off
#error "forgery/backend/cuda.hpp needs nvcc: compile the including file as CUDA (.cu, or set_source_files_properties(... LANGUAGE CUDA)) and link forgery::cuda"
// clang-format on
#else // the whole header: without nvcc the #error above is the only diagnostic

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <climits>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>

#include "forgery/backend/kernels.hpp"
#include "forgery/backend/op_set.hpp"
#include "forgery/core/concepts.hpp"
#include "forgery/core/config.hpp"
#include "forgery/core/error.hpp"
#include "forgery/core/philox.hpp"

namespace forgery {

/// A failed CUDA runtime or cuBLAS call: names the call, the error and where it was made.
class cuda_error : public error {
public:
  cuda_error(const std::string& call, const std::string& what, const char* file, int line)
      : error("forgery: " + call + " failed: " + what + " (" + file + ":" + std::to_string(line) + ")"), call_(call) {}
  /// The call as written in the source, e.g. "cudaMalloc(&p, bytes)".
  [[nodiscard]] const std::string& call() const noexcept { return call_; }

private:
  std::string call_;
};

namespace cuda_detail {

inline void check(cudaError_t e, const char* call, const char* file, int line) {
  if (e == cudaSuccess) return;
  // Reset the runtime's last error (a failed cudaMalloc would otherwise resurface at the next
  // launch check); sticky errors, which corrupt the context, stay.
  static_cast<void>(cudaGetLastError());
  throw cuda_error(call, std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e), file, line);
}
inline void check(cublasStatus_t s, const char* call, const char* file, int line) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw cuda_error(call, std::string(cublasGetStatusName(s)) + ": " + cublasGetStatusString(s), file, line);
}

} // namespace cuda_detail

/// Checks a CUDA runtime (cudaError_t) or cuBLAS (cublasStatus_t) call; throws cuda_error.
#define FORGERY_CUDA_CHECK(call) ::forgery::cuda_detail::check((call), #call, __FILE__, __LINE__)

/// Owning device memory for `n` trivially copyable `T`: HostBuffer's interface where it
/// makes sense on memory the host cannot dereference (no operator[], begin or end; move data
/// with Cuda<S>::to_host / to_device). `resize` keeps the old values, zero-fills the new
/// ones and only ever grows the allocation, so a steady-state training step allocates
/// nothing. Copies are device-to-device. Memory belongs to the device current at allocation.
template <class T>
class DeviceBuffer {
  static_assert(std::is_trivially_copyable_v<T>, "forgery::DeviceBuffer holds trivially copyable values only.");

public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(index_t n) { resize(n); }
  // Delegates to the default constructor so that a failed copy still frees the allocation.
  DeviceBuffer(const DeviceBuffer& o) : DeviceBuffer() {
    if (o.size_ == 0) return;
    data_ = allocate(o.size_);
    size_ = capacity_ = o.size_;
    FORGERY_CUDA_CHECK(cudaMemcpy(data_, o.data_, bytes(size_), cudaMemcpyDeviceToDevice));
  }
  DeviceBuffer(DeviceBuffer&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)),
        capacity_(std::exchange(o.capacity_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer o) noexcept {
    swap(o);
    return *this;
  }
  ~DeviceBuffer() { release(); }

  void swap(DeviceBuffer& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    std::swap(capacity_, o.capacity_);
  }

  /// Sets the size; values up to the old size are kept, new values are zero.
  void resize(index_t n) {
    if (n < 0) n = 0;
    if (n > capacity_) {
      T* fresh = allocate(n);
      if (size_ > 0) {
        const cudaError_t e = cudaMemcpy(fresh, data_, bytes(size_), cudaMemcpyDeviceToDevice);
        if (e != cudaSuccess) {
          static_cast<void>(cudaFree(fresh));
          cuda_detail::check(e, "cudaMemcpy(fresh, data_, bytes(size_), cudaMemcpyDeviceToDevice)", __FILE__, __LINE__);
        }
      }
      const index_t kept = size_;
      release();
      data_ = fresh;
      size_ = kept;
      capacity_ = n;
    }
    if (n > size_) FORGERY_CUDA_CHECK(cudaMemset(data_ + size_, 0, bytes(n - size_)));
    size_ = n;
  }

  [[nodiscard]] T* data() noexcept { return data_; }
  [[nodiscard]] const T* data() const noexcept { return data_; }
  [[nodiscard]] index_t size() const noexcept { return size_; }
  [[nodiscard]] index_t capacity() const noexcept { return capacity_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }

private:
  static std::size_t bytes(index_t n) noexcept { return static_cast<std::size_t>(n) * sizeof(T); }
  static T* allocate(index_t n) {
    void* p = nullptr;
    FORGERY_CUDA_CHECK(cudaMalloc(&p, bytes(n)));
    return static_cast<T*>(p);
  }
  // Errors are ignored here: a destructor cannot throw, and at process exit the runtime may
  // already be shutting down (cudaErrorCudartUnloading).
  void release() noexcept {
    if (data_ != nullptr) static_cast<void>(cudaFree(data_));
    data_ = nullptr;
    size_ = capacity_ = 0;
  }

  T* data_ = nullptr;
  index_t size_ = 0;
  index_t capacity_ = 0;
};

namespace cuda_detail {

/// Threads per block of every launch.
inline constexpr int block_threads = 256;
/// Grid cap of for_each: enough resident threads for any current GPU; the grid-stride loop
/// covers the rest. Results never depend on it (each index is independent).
inline constexpr index_t max_blocks = 8192;
/// Partial sums of sum/dot: at most this many blocks, each a fixed tree over block_threads
/// lanes, then one block combines the partials in a fixed tree. The grouping depends on n only.
inline constexpr int reduce_blocks = 256;

template <class F>
__global__ void for_each_kernel(index_t n, F f) {
  const index_t stride = static_cast<index_t>(gridDim.x) * blockDim.x;
  for (index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) f(i);
}

template <class S>
__device__ void block_tree_sum(S* lane) {
  for (int w = block_threads / 2; w > 0; w /= 2) {
    if (static_cast<int>(threadIdx.x) < w) lane[threadIdx.x] += lane[threadIdx.x + w];
    __syncthreads();
  }
}

// Block b sums term(i) for i = b * T + t + k * (blocks * T) per thread t in k order, then the
// block's lanes in a fixed tree; partial[b] gets the block's sum.
template <class S, class Term>
__global__ void reduce_partials_kernel(index_t n, Term term, S* partial) {
  __shared__ S lane[block_threads];
  const index_t stride = static_cast<index_t>(gridDim.x) * block_threads;
  S acc = S(0);
  for (index_t i = static_cast<index_t>(blockIdx.x) * block_threads + threadIdx.x; i < n; i += stride) acc += term(i);
  lane[threadIdx.x] = acc;
  __syncthreads();
  block_tree_sum(lane);
  if (threadIdx.x == 0) partial[blockIdx.x] = lane[0];
}

// One block: out = the fixed-tree sum of partial[0..count), count <= block_threads.
template <class S>
__global__ void reduce_final_kernel(index_t count, const S* partial, S* out) {
  __shared__ S lane[block_threads];
  lane[threadIdx.x] = static_cast<index_t>(threadIdx.x) < count ? partial[threadIdx.x] : S(0);
  __syncthreads();
  block_tree_sum(lane);
  if (threadIdx.x == 0) *out = lane[0];
}
static_assert(reduce_blocks <= block_threads, "the final reduction is one block");

// sum_each: block b takes outputs b, b + gridDim.x, ...; for each, thread t adds the terms
// i = t, t + T, t + 2T, ... (i = n * inner + k) in order, then the block's lanes are added in
// a fixed tree and thread 0 finishes the output. The grouping depends on batch * inner only.
template <class Acc, class Term, class Finish>
__global__ void sum_each_kernel(index_t outputs, index_t batch, index_t inner, Term term, Finish finish) {
  __shared__ alignas(Acc) unsigned char storage[block_threads * sizeof(Acc)];
  Acc* const lane = reinterpret_cast<Acc*>(storage);
  const index_t count = batch * inner;
  for (index_t o = blockIdx.x; o < outputs; o += gridDim.x) {
    Acc acc{};
    for (index_t i = threadIdx.x; i < count; i += block_threads) acc += term(o, i / inner, i % inner);
    lane[threadIdx.x] = acc;
    __syncthreads();
    block_tree_sum(lane);
    if (threadIdx.x == 0) finish(o, lane[0]);
    __syncthreads(); // lane is refilled for the next output
  }
}

template <class S>
struct SumTerm {
  const S* x;
  __device__ S operator()(index_t i) const { return x[i]; }
};
template <class S>
struct DotTerm {
  const S* x;
  const S* y;
  __device__ S operator()(index_t i) const { return x[i] * y[i]; }
};

/// The calling thread's cuBLAS handle: created on first use, pedantic math (no TF32 or other
/// reduced-precision shortcuts, so results compare with the CPU backend), default stream.
class CublasHandle {
public:
  CublasHandle() {
    FORGERY_CUDA_CHECK(cublasCreate(&handle_));
    try {
      FORGERY_CUDA_CHECK(cublasSetMathMode(handle_, CUBLAS_PEDANTIC_MATH));
      FORGERY_CUDA_CHECK(cublasSetPointerMode(handle_, CUBLAS_POINTER_MODE_HOST));
      FORGERY_CUDA_CHECK(cublasSetStream(handle_, nullptr));
    } catch (...) {
      static_cast<void>(cublasDestroy(handle_));
      throw;
    }
  }
  CublasHandle(const CublasHandle&) = delete;
  CublasHandle& operator=(const CublasHandle&) = delete;
  ~CublasHandle() { static_cast<void>(cublasDestroy(handle_)); }
  [[nodiscard]] cublasHandle_t get() const noexcept { return handle_; }

private:
  cublasHandle_t handle_ = nullptr;
};

inline cublasHandle_t cublas() {
  thread_local CublasHandle handle;
  return handle.get();
}

/// A BLAS dimension as cuBLAS's int, or a clear error.
inline int blas_int(index_t v, const char* what) {
  if (v < 0 || v > INT_MAX)
    throw config_error(std::string("backend::Cuda::gemm ") + what, std::to_string(v), "a value in [0, INT_MAX]");
  return static_cast<int>(v);
}

/// The leading dimension passed to cuBLAS for a stored rows x cols operand: BLAS requires
/// ld >= max(1, rows) even when there is a single column, whose ld is never used to address
/// memory; other backends accept any ld then, so the single-column case is made valid here.
inline index_t leading_dimension(index_t ld, index_t rows, index_t cols) {
  const index_t need = rows > 1 ? rows : 1;
  return cols <= 1 && ld < need ? need : ld;
}

} // namespace cuda_detail

namespace backend {

/// The CUDA backend: memory is device memory (DeviceBuffer), GEMMs run in cuBLAS, every
/// other op is a functor of kernels.hpp launched over a grid-stride loop. Uses the current
/// device and its default stream.
/// \tparam S the scalar type, float or double.
template <class S>
struct Cuda : OpSet<Cuda<S>, S> {
  static_assert(std::is_same_v<S, float> || std::is_same_v<S, double>,
                "forgery::backend::Cuda<S>: S must be float or double.");
  using scalar = S;
  /// Memory the backend computes on: device memory; the host reaches it through to_host and
  /// to_device.
  template <class T>
  using buffer = DeviceBuffer<T>;
  static constexpr bool host_memory = false;
  static constexpr const char* name = "cuda";

  /// The number of CUDA devices, 0 when there are none or the driver cannot be used.
  [[nodiscard]] static int device_count() noexcept {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      static_cast<void>(cudaGetLastError()); // clears the sticky "no device" error
      return 0;
    }
    return n;
  }

  /// Waits for every launched kernel and copy; reports an asynchronous failure as cuda_error.
  static void synchronize() { FORGERY_CUDA_CHECK(cudaDeviceSynchronize()); }

  /// Calls f(i) for i in [0, n) on the device: f is copied to the kernel by value and must be
  /// callable in device code (a kernels.hpp functor: FORGERY_HOST_DEVICE operator(); a
  /// __device__ lambda needs nvcc's --extended-lambda, which forgery::cuda does not add).
  /// Asynchronous; launch errors are reported at once, execution errors at the next
  /// synchronising call (sum, dot, to_host, synchronize). Define FORGERY_CUDA_SYNC_CHECK to
  /// synchronise after every launch (slow; pins an error to its launch).
  /// `work` (elements per index, a scheduling hint for the CPU backend) is ignored: every
  /// index is one device thread.
  template <class F>
  static void for_each(index_t n, F f, index_t /*work*/ = 1) {
    static_assert(std::is_trivially_copyable_v<F>, "backend::Cuda::for_each: the functor is copied to the device.");
    if (n <= 0) return;
    const index_t want = (n + cuda_detail::block_threads - 1) / cuda_detail::block_threads;
    const auto blocks = static_cast<unsigned>(want < cuda_detail::max_blocks ? want : cuda_detail::max_blocks);
    cuda_detail::for_each_kernel<<<blocks, cuda_detail::block_threads>>>(n, f);
    FORGERY_CUDA_CHECK(cudaGetLastError());
#if defined(FORGERY_CUDA_SYNC_CHECK)
    synchronize();
#endif
  }

  /// C = alpha * op(A) * op(B) + beta * C (column-major, BLAS conventions) through cuBLAS,
  /// pedantic math. beta == 0 ignores C's old values.
  static void gemm(Trans ta, Trans tb, index_t m, index_t n, index_t k, S alpha, const S* a, index_t lda, const S* b,
                   index_t ldb, S beta, S* c, index_t ldc) {
    if (m <= 0 || n <= 0) return;
    // Stored shapes: A is m x k (k x m transposed), B is k x n (n x k transposed).
    lda = ta == Trans::no ? cuda_detail::leading_dimension(lda, m, k) : cuda_detail::leading_dimension(lda, k, m);
    ldb = tb == Trans::no ? cuda_detail::leading_dimension(ldb, k, n) : cuda_detail::leading_dimension(ldb, n, k);
    ldc = cuda_detail::leading_dimension(ldc, m, n);
    const cublasOperation_t opa = ta == Trans::no ? CUBLAS_OP_N : CUBLAS_OP_T;
    const cublasOperation_t opb = tb == Trans::no ? CUBLAS_OP_N : CUBLAS_OP_T;
    const int im = cuda_detail::blas_int(m, "m"), in = cuda_detail::blas_int(n, "n"),
              ik = cuda_detail::blas_int(k, "k"), ilda = cuda_detail::blas_int(lda, "lda"),
              ildb = cuda_detail::blas_int(ldb, "ldb"), ildc = cuda_detail::blas_int(ldc, "ldc");
    if constexpr (std::is_same_v<S, float>)
      FORGERY_CUDA_CHECK(
          cublasSgemm(cuda_detail::cublas(), opa, opb, im, in, ik, &alpha, a, ilda, b, ildb, &beta, c, ildc));
    else
      FORGERY_CUDA_CHECK(
          cublasDgemm(cuda_detail::cublas(), opa, opb, im, in, ik, &alpha, a, ilda, b, ildb, &beta, c, ildc));
#if defined(FORGERY_CUDA_SYNC_CHECK)
    synchronize();
#endif
  }

  /// OpSet::sum_each with a block of threads per output (a grid-stride loop over outputs),
  /// instead of one thread adding a whole output's terms: a BatchNorm channel or a
  /// convolution's bias gradient sums batch x positions values (OpSet's channel_sums comes here too). Deterministic:
  /// the grouping depends on batch * inner only. Asynchronous, as for_each.
  template <class Acc, class Term, class Finish>
  static void sum_each(index_t outputs, index_t batch, index_t inner, Term term, Finish finish) {
    static_assert(std::is_trivially_copyable_v<Term> && std::is_trivially_copyable_v<Finish>,
                  "backend::Cuda::sum_each: the functors are copied to the device.");
    if (outputs <= 0) return;
    const auto blocks = static_cast<unsigned>(outputs < cuda_detail::max_blocks ? outputs : cuda_detail::max_blocks);
    cuda_detail::sum_each_kernel<Acc><<<blocks, cuda_detail::block_threads>>>(outputs, batch, inner, term, finish);
    FORGERY_CUDA_CHECK(cudaGetLastError());
#if defined(FORGERY_CUDA_SYNC_CHECK)
    synchronize();
#endif
  }

  /// Sum of x[0..n) (device memory), returned to the host: deterministic, a fixed grid and
  /// fixed trees whose grouping depends on n only. Waits for the device.
  static S sum(index_t n, const S* x) { return reduce(n, cuda_detail::SumTerm<S>{x}); }
  /// Dot product of x and y (device memory), deterministic as sum. Waits for the device.
  static S dot(index_t n, const S* x, const S* y) { return reduce(n, cuda_detail::DotTerm<S>{x, y}); }

  /// Copies n values from device memory to host memory (waits for the device).
  template <class T>
  static void to_host(index_t n, const T* src, T* host_dst) {
    if (n <= 0) return;
    FORGERY_CUDA_CHECK(cudaMemcpy(host_dst, src, static_cast<std::size_t>(n) * sizeof(T), cudaMemcpyDeviceToHost));
  }
  /// Copies n values from host memory into device memory (ordered with the launches).
  template <class T>
  static void to_device(index_t n, const T* host_src, T* dst) {
    if (n <= 0) return;
    FORGERY_CUDA_CHECK(cudaMemcpy(dst, host_src, static_cast<std::size_t>(n) * sizeof(T), cudaMemcpyHostToDevice));
  }

private:
  template <class Term>
  static S reduce(index_t n, Term term) {
    if (n <= 0) return S(0);
    using cuda_detail::block_threads;
    const index_t want = (n + block_threads - 1) / block_threads;
    const index_t blocks = want < cuda_detail::reduce_blocks ? want : cuda_detail::reduce_blocks;
    // Partials, then the result, in a per-thread buffer that only grows (launches of one
    // thread are ordered on the default stream, so reusing it is safe).
    thread_local DeviceBuffer<S> scratch;
    if (scratch.size() < cuda_detail::reduce_blocks + 1) scratch.resize(cuda_detail::reduce_blocks + 1);
    S* const partial = scratch.data();
    S* const result = partial + cuda_detail::reduce_blocks;
    cuda_detail::reduce_partials_kernel<S><<<static_cast<unsigned>(blocks), block_threads>>>(n, term, partial);
    FORGERY_CUDA_CHECK(cudaGetLastError());
    cuda_detail::reduce_final_kernel<S><<<1, block_threads>>>(blocks, partial, result);
    FORGERY_CUDA_CHECK(cudaGetLastError());
    S out = S(0);
    to_host(1, result, &out);
    return out;
  }
};

static_assert(Backend<Cuda<float>> && Backend<Cuda<double>>);

} // namespace backend

} // namespace forgery

#endif // __CUDACC__
