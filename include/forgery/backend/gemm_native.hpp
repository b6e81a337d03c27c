// backend::NativeGemm: forgery's own packed single-precision GEMM. AVX-512 (32 x 12 register
// tile) or AVX2 + FMA (16 x 6) micro-kernels, chosen at run time from the CPU's features;
// Eigen (EigenGemm) for double and for CPUs with neither.
//
// Determinism: every output is the sum over k of fused multiply-adds taken in k order, one
// k-block at a time, with k-blocks whose bounds depend on k alone, then alpha and beta applied
// by the same operations (c = fma(acc, alpha, beta * c), or acc * alpha when beta is 0).
// No output's arithmetic depends on which tile, panel or thread computes it, so the grid of
// tiles can follow the thread count (it splits evenly over the threads) and the bits are
// still the same for any thread count, and the same for the AVX-512 and AVX2 kernels.
//
// Layout (the Goto/BLIS scheme): per k-block, op(A) is packed into panels of MR rows
// (k-major) and op(B) into panels of NR columns; the micro-kernel walks one A and one B
// panel and keeps the MR x NR block of C in registers. op(B) is packed once per call and
// shared; op(A) one row block of tiles at a time, by the thread that computes them, right
// before use (or once and shared, when there are fewer row blocks than threads). Packing
// space is per thread and only grows, so a steady-state call allocates nothing.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <type_traits>

#include "forgery/backend/gemm_eigen.hpp"
#include "forgery/backend/op_set.hpp"
#include "forgery/backend/parallel.hpp"
#include "forgery/core/buffer.hpp"
#include "forgery/core/config.hpp"

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define FORGERY_NATIVE_GEMM_X86 1
#include <immintrin.h>
#else
#define FORGERY_NATIVE_GEMM_X86 0
#endif

// Full unrolling keeps the micro-kernels' accumulators in registers (constant indices).
// nvcc's front end, which also reads host code, knows no unroll pragma for it.
#if defined(__CUDACC__)
#define FORGERY_UNROLL(n)
#else
#define FORGERY_PRAGMA(x) _Pragma(#x)
#define FORGERY_UNROLL(n) FORGERY_PRAGMA(GCC unroll n)
#endif

namespace forgery::backend {

/// The instruction set a NativeGemm micro-kernel uses.
enum class GemmIsa { none, avx2, avx512 };

namespace native_gemm {

/// The k-block: at most this many products per register accumulation.
inline constexpr index_t max_kc = 256;
/// Tile bounds: a tile's packed A (<= 256 x 256) and B (<= 256 x 384) per k-block stay in L2.
inline constexpr index_t max_tile_m = 256, max_tile_n = 384;

constexpr index_t cdiv(index_t a, index_t b) { return (a + b - 1) / b; }
constexpr index_t round_up(index_t x, index_t to) { return cdiv(x, to) * to; }

/// The best kernel this CPU runs.
inline GemmIsa detect_isa() {
#if FORGERY_NATIVE_GEMM_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return GemmIsa::avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return GemmIsa::avx2;
#endif
  return GemmIsa::none;
}

inline GemmIsa& active_isa() {
  static GemmIsa isa = detect_isa();
  return isa;
}

#if FORGERY_NATIVE_GEMM_X86
/// Eight source vectors (in + e * ld, e < 8) of eight consecutive k each, transposed: out + q
/// * stride receives the eight vectors' values at k q. Only called where the CPU has AVX2
/// (the packers run for NativeGemm's kernels alone).
__attribute__((target("avx2"))) inline void transpose_8x8(const float* in, index_t ld, float* out, index_t stride) {
  const __m256 r0 = _mm256_loadu_ps(in), r1 = _mm256_loadu_ps(in + ld), r2 = _mm256_loadu_ps(in + 2 * ld),
               r3 = _mm256_loadu_ps(in + 3 * ld), r4 = _mm256_loadu_ps(in + 4 * ld), r5 = _mm256_loadu_ps(in + 5 * ld),
               r6 = _mm256_loadu_ps(in + 6 * ld), r7 = _mm256_loadu_ps(in + 7 * ld);
  const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
  const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
  const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
  const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  _mm256_storeu_ps(out, _mm256_permute2f128_ps(u0, u4, 0x20));
  _mm256_storeu_ps(out + stride, _mm256_permute2f128_ps(u1, u5, 0x20));
  _mm256_storeu_ps(out + 2 * stride, _mm256_permute2f128_ps(u2, u6, 0x20));
  _mm256_storeu_ps(out + 3 * stride, _mm256_permute2f128_ps(u3, u7, 0x20));
  _mm256_storeu_ps(out + 4 * stride, _mm256_permute2f128_ps(u0, u4, 0x31));
  _mm256_storeu_ps(out + 5 * stride, _mm256_permute2f128_ps(u1, u5, 0x31));
  _mm256_storeu_ps(out + 6 * stride, _mm256_permute2f128_ps(u2, u6, 0x31));
  _mm256_storeu_ps(out + 7 * stride, _mm256_permute2f128_ps(u3, u7, 0x31));
}
#endif

/// One panel of W operand vectors over k in [k0, k0 + kb): dst[kk * W + e] is element e0 + e
/// at k0 + kk, read at src[e + k * ld] (contiguous) or src[k + e * ld] (gathered), zeros
/// for e >= width. Full panels (Width == W) run with constant bounds.
template <index_t W, index_t Width>
void pack_panel(bool contiguous, const float* src, index_t ld, index_t e0, index_t width_if_partial, index_t k0,
                index_t kb, float* dst) {
  const index_t width = Width == W ? W : width_if_partial;
  if (contiguous) {
    for (index_t kk = 0; kk < kb; ++kk) {
      const float* in = src + e0 + (k0 + kk) * ld;
      float* out = dst + kk * W;
      for (index_t e = 0; e < width; ++e) out[e] = in[e];
      for (index_t e = width; e < W; ++e) out[e] = 0.0f;
    }
    return;
  }
  // Blocks of 8 k: each of the W source vectors gives 8 contiguous values, and each k a
  // whole row of the panel (loads gathered from cache-resident lines, stores contiguous).
  const float* in = src + k0 + e0 * ld;
  index_t kk = 0;
  for (; kk + 8 <= kb; kk += 8) {
    index_t e8 = 0;
#if FORGERY_NATIVE_GEMM_X86
    // Groups of 8 vectors through an 8 x 8 register transpose; the rest below.
    for (; e8 + 8 <= width; e8 += 8) transpose_8x8(in + kk + e8 * ld, ld, dst + kk * W + e8, W);
    if constexpr (Width == W && W % 8 == 0) continue;
    e8 = std::min(e8, W); // a no-op (e8 <= width <= W) that tells GCC the bound of block[e8]
#endif
    float block[W][8];
    for (index_t e = e8; e < width; ++e)
      for (index_t q = 0; q < 8; ++q) block[e][q] = in[kk + q + e * ld];
    for (index_t e = width; e < W; ++e)
      for (index_t q = 0; q < 8; ++q) block[e][q] = 0.0f;
    for (index_t q = 0; q < 8; ++q)
      for (index_t e = e8; e < W; ++e) dst[(kk + q) * W + e] = block[e][q];
  }
  for (; kk < kb; ++kk) {
    for (index_t e = 0; e < width; ++e) dst[kk * W + e] = in[kk + e * ld];
    for (index_t e = width; e < W; ++e) dst[kk * W + e] = 0.0f;
  }
}

/// Packs elements [first, first + count) of an operand, over k in [k0, k0 + kb), into
/// consecutive panels of W (each W * kb values). op(A) packs its rows with W = MR
/// (contiguous when A is not transposed), op(B) its columns with W = NR (contiguous when B
/// is transposed).
template <index_t W>
void pack_panels(bool contiguous, const float* src, index_t ld, index_t first, index_t count, index_t k0, index_t kb,
                 float* dst) {
  for (index_t p = 0; p * W < count; ++p, dst += W * kb) {
    const index_t width = std::min(W, count - p * W), e0 = first + p * W;
    if (width == W)
      pack_panel<W, W>(contiguous, src, ld, e0, W, k0, kb, dst);
    else
      pack_panel<W, 0>(contiguous, src, ld, e0, width, k0, kb, dst);
  }
}

/// What the micro-kernel does with C: the first k-block applies beta, later ones add.
struct Epilogue {
  float alpha;
  float beta;
  bool first;
};

#if FORGERY_NATIVE_GEMM_X86

// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized/-Wuninitialized (GCC PR 105593).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

/// Fetches the tile of C (rows x cols, column stride ldc) that a kernel will read (not one
/// it only writes): issued before the products, the lines arrive while they run instead of
/// stalling the epilogue (the weight gradients' C is read once per call, from L3, with k =
/// the batch: few products to hide it behind).
inline void prefetch_c(const float* c, index_t ldc, index_t rows, index_t cols, Epilogue e) {
  if (e.first && e.beta == 0.0f) return;
  for (index_t j = 0; j < cols; ++j) {
    _mm_prefetch(reinterpret_cast<const char*>(c + j * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + j * ldc + rows - 1), _MM_HINT_T0);
  }
}

struct Avx512 {
  static constexpr index_t mr = 32, nr = 12;

  /// C(0:rows, 0:cols) <- epilogue(A panel * B panel) over kb products. A narrow last panel
  /// of B runs a kernel that computes only the columns it has (columns are independent, so
  /// the bits do not change): batch 64 is 5 panels of 12 and one of 4, not 6 of 12, and a
  /// matrix-vector product one column.
  static void kernel(index_t kb, const float* a, const float* b, float* c, index_t ldc, index_t rows, index_t cols,
                     Epilogue e) {
    if (cols > 8)
      columns<12>(kb, a, b, c, ldc, rows, cols, e);
    else if (cols > 4)
      columns<8>(kb, a, b, c, ldc, rows, cols, e);
    else if (cols > 1)
      columns<4>(kb, a, b, c, ldc, rows, cols, e);
    else
      columns<1>(kb, a, b, c, ldc, rows, cols, e);
  }

  /// The epilogue alone, on accumulators computed elsewhere (acc, column stride lda): the
  /// same operations as `kernel`'s, for products split over k-blocks.
  __attribute__((target("avx512f,fma"))) static void combine(index_t rows, index_t cols, const float* acc, index_t lda,
                                                             float* c, index_t ldc, Epilogue e) {
    const __mmask16 m0 = lanes(rows), m1 = lanes(rows - 16);
    const Store st(e);
    for (index_t j = 0; j < cols; ++j) {
      st(c + j * ldc, m0, _mm512_maskz_loadu_ps(m0, acc + j * lda));
      st(c + j * ldc + 16, m1, _mm512_maskz_loadu_ps(m1, acc + j * lda + 16));
    }
  }

private:
  /// The kernel on the first N columns of the B panel (its stride stays nr).
  template <index_t N>
  __attribute__((target("avx512f,fma"))) static void columns(index_t kb, const float* a, const float* b, float* c,
                                                             index_t ldc, index_t rows, index_t cols, Epilogue e) {
    __m512 acc0[N], acc1[N];
    prefetch_c(c, ldc, rows, cols, e);
    FORGERY_UNROLL(12)
    for (index_t j = 0; j < N; ++j) acc0[j] = acc1[j] = _mm512_setzero_ps();
    FORGERY_UNROLL(4)
    for (index_t kk = 0; kk < kb; ++kk, a += mr, b += nr) {
      const __m512 a0 = _mm512_loadu_ps(a), a1 = _mm512_loadu_ps(a + 16);
      FORGERY_UNROLL(12)
      for (index_t j = 0; j < N; ++j) {
        const __m512 bj = _mm512_set1_ps(b[j]);
        acc0[j] = _mm512_fmadd_ps(a0, bj, acc0[j]);
        acc1[j] = _mm512_fmadd_ps(a1, bj, acc1[j]);
      }
    }
    const __mmask16 m0 = lanes(rows), m1 = lanes(rows - 16);
    const Store st(e);
    // Constant indices only (the loop is unrolled), so the accumulators stay in registers.
    FORGERY_UNROLL(12)
    for (index_t j = 0; j < N; ++j) {
      if (j < cols) {
        st(c + j * ldc, m0, acc0[j]);
        st(c + j * ldc + 16, m1, acc1[j]);
      }
    }
  }

  /// The mask of the first n of 16 lanes (none for n <= 0, all for n >= 16).
  static __mmask16 lanes(index_t n) {
    return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1u);
  }

  /// The epilogue: c = acc * alpha (first k-block, beta 0: C is not read), else
  /// c = fma(acc, alpha, beta * c) on the first k-block and fma(acc, alpha, c) after.
  struct Store {
    __attribute__((target("avx512f,fma"), always_inline)) explicit Store(Epilogue e)
        : alpha(_mm512_set1_ps(e.alpha)), beta(_mm512_set1_ps(e.beta)), overwrite(e.first && e.beta == 0.0f),
          scale(e.first && e.beta != 1.0f) {}
    __attribute__((target("avx512f,fma"), always_inline)) void operator()(float* c, __mmask16 m, __m512 acc) const {
      if (m == 0) return;
      __m512 r;
      if (overwrite) {
        r = _mm512_mul_ps(acc, alpha);
      } else {
        __m512 old = _mm512_maskz_loadu_ps(m, c);
        if (scale) old = _mm512_mul_ps(old, beta);
        r = _mm512_fmadd_ps(acc, alpha, old);
      }
      _mm512_mask_storeu_ps(c, m, r);
    }
    __m512 alpha, beta;
    bool overwrite, scale;
  };
};

struct Avx2 {
  static constexpr index_t mr = 16, nr = 6;

  __attribute__((target("avx2,fma"))) static void kernel(index_t kb, const float* a, const float* b, float* c,
                                                         index_t ldc, index_t rows, index_t cols, Epilogue e) {
    __m256 acc0[nr], acc1[nr];
    prefetch_c(c, ldc, rows, cols, e);
    FORGERY_UNROLL(6)
    for (index_t j = 0; j < nr; ++j) acc0[j] = acc1[j] = _mm256_setzero_ps();
    for (index_t kk = 0; kk < kb; ++kk, a += mr, b += nr) {
      const __m256 a0 = _mm256_loadu_ps(a), a1 = _mm256_loadu_ps(a + 8);
      FORGERY_UNROLL(6)
      for (index_t j = 0; j < nr; ++j) {
        const __m256 bj = _mm256_broadcast_ss(b + j);
        acc0[j] = _mm256_fmadd_ps(a0, bj, acc0[j]);
        acc1[j] = _mm256_fmadd_ps(a1, bj, acc1[j]);
      }
    }
    const Rows r(rows);
    const Store st(e);
    FORGERY_UNROLL(6)
    for (index_t j = 0; j < nr; ++j) {
      if (j < cols) {
        st(c + j * ldc, r.m0, r.full0, acc0[j]);
        if (r.any1) st(c + j * ldc + 8, r.m1, r.full1, acc1[j]);
      }
    }
  }

  /// The epilogue alone (see Avx512::combine).
  __attribute__((target("avx2,fma"))) static void combine(index_t rows, index_t cols, const float* acc, index_t lda,
                                                          float* c, index_t ldc, Epilogue e) {
    const Rows r(rows);
    const Store st(e);
    for (index_t j = 0; j < cols; ++j) {
      st(c + j * ldc, r.m0, r.full0, _mm256_maskload_ps(acc + j * lda, r.m0));
      if (r.any1) st(c + j * ldc + 8, r.m1, r.full1, _mm256_maskload_ps(acc + j * lda + 8, r.m1));
    }
  }

private:
  /// The lane masks of a tile's rows: the first 8 and the next 8 (m0, m1), whether each is
  /// whole, and whether the second has any.
  struct Rows {
    __attribute__((target("avx2,fma"), always_inline)) explicit Rows(index_t rows)
        : m0(mask(rows)), m1(mask(rows - 8)), full0(rows >= 8), full1(rows >= 16), any1(rows > 8) {}
    __m256i m0, m1;
    bool full0, full1, any1;

  private:
    // 8 values from ones_then_zeros + 8 - n have their first n lanes all ones.
    __attribute__((target("avx2,fma"), always_inline)) static __m256i mask(index_t n) {
      alignas(32) static constexpr std::int32_t ones_then_zeros[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                                                       0,  0,  0,  0,  0,  0,  0,  0};
      return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ones_then_zeros + 8 - std::clamp<index_t>(n, 0, 8)));
    }
  };

  /// The epilogue: c = acc * alpha (first k-block, beta 0: C is not read), else
  /// c = fma(acc, alpha, beta * c) on the first k-block and fma(acc, alpha, c) after.
  struct Store {
    __attribute__((target("avx2,fma"), always_inline)) explicit Store(Epilogue e)
        : alpha(_mm256_set1_ps(e.alpha)), beta(_mm256_set1_ps(e.beta)), overwrite(e.first && e.beta == 0.0f),
          scale(e.first && e.beta != 1.0f) {}
    __attribute__((target("avx2,fma"), always_inline)) void operator()(float* c, __m256i m, bool full,
                                                                       __m256 acc) const {
      __m256 r;
      if (overwrite) {
        r = _mm256_mul_ps(acc, alpha);
      } else {
        __m256 old = full ? _mm256_loadu_ps(c) : _mm256_maskload_ps(c, m);
        if (scale) old = _mm256_mul_ps(old, beta);
        r = _mm256_fmadd_ps(acc, alpha, old);
      }
      if (full)
        _mm256_storeu_ps(c, r);
      else
        _mm256_maskstore_ps(c, m, r);
    }
    __m256 alpha, beta;
    bool overwrite, scale;
  };
};

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

/// The k-blocks: as equal as possible, at most max_kc each, bounds fixed by k.
inline index_t k_block(index_t k) { return cdiv(k, cdiv(k, max_kc)); }

/// The grid of tiles of C: about one task per 2^18 multiply-adds (a power of two, at most
/// 32), tiles no larger than max_tile_m x max_tile_n; then, with several threads, one or two
/// more row (or column) blocks so that the tiles split evenly over the threads. Blocks are
/// whole panels, as equal as possible (block_bounds), so tiles differ by at most a panel a
/// side. The grid changes no bit of C: each output's FMA chain depends on k alone.
template <class K>
void tile_grid(index_t m, index_t n, index_t k, index_t threads, index_t& tiles_m, index_t& tiles_n) {
  const index_t panels_m = cdiv(m, K::mr), panels_n = cdiv(n, K::nr);
  tiles_m = cdiv(m, max_tile_m);
  tiles_n = cdiv(n, max_tile_n);
  const index_t work = (m * n * k) >> 18;
  index_t want = 1;
  while (want < 32 && want * 2 <= work) want *= 2;
  while (tiles_m * tiles_n < want) {
    const bool can_n = cdiv(n, tiles_n + 1) >= 2 * K::nr, can_m = cdiv(m, tiles_m + 1) >= 2 * K::mr;
    if (!can_n && !can_m) break;
    if (can_n && (!can_m || cdiv(n, tiles_n) * 2 >= cdiv(m, tiles_m)))
      ++tiles_n;
    else
      ++tiles_m;
  }
  if (threads < 2 || tiles_m * tiles_n < 2) return;
  while ((tiles_m * tiles_n) % threads != 0) {
    if (tiles_m < panels_m)
      ++tiles_m;
    else if (tiles_n < panels_n)
      ++tiles_n;
    else
      break;
  }
}

/// Block b of `blocks` over `panels` panels of `width` (extent elements in all): elements
/// [lo, hi), whole panels, block sizes differing by at most one panel.
inline void block_bounds(index_t b, index_t blocks, index_t panels, index_t width, index_t extent, index_t& lo,
                         index_t& hi) {
  lo = b * panels / blocks * width;
  hi = std::min(extent, (b + 1) * panels / blocks * width);
}

/// The tiles a thread has left, [first, end), in one word: its owner takes them from the
/// front and, once their own run out, the other threads take them from the back, so a
/// thread slowed down (by another process on its core, say) hands its last tiles to the
/// others instead of holding the whole team at the barrier. Which thread computes a tile
/// changes no bit of it.
class alignas(64) TileRange {
public:
  void reset(index_t first, index_t end) noexcept { word_.store(pack(first, end), std::memory_order_relaxed); }
  /// The next tile from the front (the owner's order), or -1 when none is left.
  index_t take_front() noexcept { return take(true); }
  /// The last tile (for another thread), or -1 when none is left.
  index_t take_back() noexcept { return take(false); }

private:
  static std::uint64_t pack(index_t first, index_t end) noexcept {
    return (static_cast<std::uint64_t>(first) << 32) | static_cast<std::uint64_t>(end);
  }
  index_t take(bool front) noexcept {
    std::uint64_t w = word_.load(std::memory_order_relaxed);
    for (;;) {
      const auto first = static_cast<index_t>(w >> 32), end = static_cast<index_t>(w & 0xFFFFFFFFu);
      if (first >= end) return -1;
      const std::uint64_t next = front ? pack(first + 1, end) : pack(first, end - 1);
      if (word_.compare_exchange_weak(w, next, std::memory_order_relaxed)) return front ? first : end - 1;
    }
  }
  std::atomic<std::uint64_t> word_{0};
};

/// The calling thread's tile ranges, one per thread of its team; grows, never shrinks.
inline TileRange* tile_ranges(index_t threads) {
  thread_local std::unique_ptr<TileRange[]> ranges;
  thread_local index_t capacity = 0;
  if (capacity < threads) {
    ranges = std::make_unique<TileRange[]>(static_cast<std::size_t>(threads));
    capacity = threads;
  }
  return ranges.get();
}

/// Per-thread space for a row block of packed op(A) (tm x k); grows, never shrinks.
inline HostBuffer<float>& a_workspace() {
  thread_local HostBuffer<float> space;
  return space;
}

/// Per-thread space for a tile of C stored by rows (run's c_rows); grows, never shrinks.
inline HostBuffer<float>& c_workspace() {
  thread_local HostBuffer<float> space;
  return space;
}

/// C = alpha op(A) op(B) + beta C with micro-kernel K; k > 0 and alpha != 0. With c_rows, C
/// is stored by rows (element (i, j) at c[j + i * ldc]): each tile then runs in a
/// column-major copy of itself and is copied back, the same operations on the same values
/// (NativeGemm::gemm runs a product as its transpose this way). op(B) is packed
/// once, in parallel, into the calling thread's workspace. When there are at least as many
/// row blocks of tiles as threads, each thread packs the row block of op(A) its tiles need
/// into its own space right before using it (the packed A is then read back from L2, not
/// memory, and the space is bounded by a tile's rows); otherwise the threads would share row
/// blocks, and op(A) is packed once, in parallel, beside B. Then the tiles of C run in
/// parallel. Packing only copies, so neither choice changes a bit of C.
template <class K>
void run(Trans ta, Trans tb, index_t m, index_t n, index_t k, float alpha, const float* a, index_t lda, const float* b,
         index_t ldb, float beta, float* c, index_t ldc, bool c_rows = false) {
  index_t threads = 1;
#if defined(_OPENMP)
  if (!omp_in_parallel()) threads = omp_get_max_threads();
#endif
  index_t tiles_m = 1, tiles_n = 1;
  tile_grid<K>(m, n, k, threads, tiles_m, tiles_n);
  const index_t kc = k_block(k), k_blocks = cdiv(k, kc);
  const index_t panels_m = cdiv(m, K::mr), panels_n = cdiv(n, K::nr);
  const index_t m_pad = panels_m * K::mr, n_pad = panels_n * K::nr;
  const index_t tiles = tiles_m * tiles_n;
  // One tile (small m x n) with many k-blocks, such as a convolution's weight gradient
  // (64 x 16 x 12544): the k-blocks run in parallel instead, each into its own space of
  // accumulators, and the epilogues then add them to C in k-block order, the same
  // operations as one thread's chain.
  const bool k_split = !c_rows && tiles == 1 && threads > 1 && k_blocks > 1 && m * n * k >= (index_t(1) << 20);
  if (tiles < 2 && !k_split) threads = 1;
  // The most rows a row block has (its A space's k-block stride).
  const index_t tm = cdiv(panels_m, tiles_m) * K::mr;
  const bool shared_a = k_split || tiles_m < threads;
  // The calling thread's grow-only GEMM space (shared with EigenGemm's tiles, never in use
  // by both at once). k-block kb starting at k0: B's panels at pb + k0 * n_pad (NR x kb
  // each, panel p at p * NR * kb); a shared A's at pa + k0 * m_pad, and a row block of A in
  // a thread's own space likewise at k0 * tm.
  HostBuffer<float>& space = detail::gemm_workspace<float>();
  const index_t need = n_pad * k + (shared_a ? m_pad * k : 0) + (k_split ? k_blocks * m_pad * n_pad : 0);
  if (space.size() < need) space.resize(need);
  float* const pb = space.data();
  float* const pa = space.data() + n_pad * k;
  float* const acc = pa + m_pad * k; // k_split: k-block kbi's accumulators at kbi * m_pad * n_pad
  // Shared packing: one task per k-block and group of 4 panels (B's, then A's if shared).
  constexpr index_t group = 4;
  const index_t groups_n = cdiv(panels_n, group), groups_m = shared_a ? cdiv(panels_m, group) : 0;
  const index_t pack_tasks = k_blocks * (groups_n + groups_m);
  auto pack = [=](index_t t) {
    const index_t kbi = t / (groups_n + groups_m), g = t % (groups_n + groups_m);
    const index_t k0 = kbi * kc, kb = std::min(kc, k - k0);
    if (g < groups_n) {
      const index_t j0 = g * group * K::nr;
      pack_panels<K::nr>(tb == Trans::yes, b, ldb, j0, std::min(group * K::nr, n - j0), k0, kb,
                         pb + k0 * n_pad + j0 * kb);
    } else {
      const index_t i0 = (g - groups_n) * group * K::mr;
      pack_panels<K::mr>(ta == Trans::no, a, lda, i0, std::min(group * K::mr, m - i0), k0, kb,
                         pa + k0 * m_pad + i0 * kb);
    }
  };
  // A thread's tiles; `own` is its A space (unused when A is shared) and `packed` the row
  // block that space holds (-1: none yet).
  auto tile = [=](index_t t, float* own, index_t& packed) {
    // n varies fastest: a thread's contiguous share of the tiles covers whole row blocks, so
    // it packs each row block of A once, and the narrower last column of tiles is spread
    // over the threads.
    const index_t row_block = t / tiles_n;
    index_t i0 = 0, i1 = 0, j0 = 0, j1 = 0;
    block_bounds(row_block, tiles_m, panels_m, K::mr, m, i0, i1);
    block_bounds(t % tiles_n, tiles_n, panels_n, K::nr, n, j0, j1);
    const index_t mb = i1 - i0;
    // A's panels for k-block k0 and row i: base + k0 * rows + (i - first) * kb.
    const float* base = pa;
    index_t rows = m_pad, first = 0;
    // A row block new to this thread's space is packed one k-block at a time, each just
    // before its products, while it is hot in cache.
    const bool fresh = !shared_a && packed != row_block;
    if (!shared_a) {
      packed = row_block;
      base = own;
      rows = tm;
      first = i0;
    }
    // Where the kernels write element (i, j) of the tile: ct + (i - i0) + (j - j0) * ldt.
    float* ct = c + i0 + j0 * ldc;
    index_t ldt = ldc;
    if (c_rows) {
      ldt = mb;
      HostBuffer<float>& space = c_workspace();
      if (space.size() < mb * (j1 - j0)) space.resize(mb * (j1 - j0));
      ct = space.data();
      if (beta != 0.0f) // else the first k-block writes without reading
        for (index_t i = i0; i < i1; ++i)
          for (index_t j = j0; j < j1; ++j) ct[(i - i0) + (j - j0) * ldt] = c[j + i * ldc];
    }
    for (index_t k0 = 0; k0 < k; k0 += kc) {
      const index_t kb = std::min(kc, k - k0);
      if (fresh) pack_panels<K::mr>(ta == Trans::no, a, lda, i0, mb, k0, kb, own + k0 * tm);
      const float* const ak = base + k0 * rows;
      const float* const bk = pb + k0 * n_pad;
      const Epilogue e{alpha, beta, k0 == 0};
      for (index_t j = j0; j < j1; j += K::nr) {
        const index_t cols = std::min(K::nr, n - j);
        for (index_t i = i0; i < i1; i += K::mr)
          K::kernel(kb, ak + (i - first) * kb, bk + j * kb, ct + (i - i0) + (j - j0) * ldt, ldt, std::min(K::mr, m - i),
                    cols, e);
      }
    }
    if (c_rows)
      for (index_t i = i0; i < i1; ++i)
        for (index_t j = j0; j < j1; ++j) c[j + i * ldc] = ct[(i - i0) + (j - j0) * ldt];
  };
  auto own_space = [=]() -> float* {
    if (shared_a) return nullptr;
    HostBuffer<float>& own = a_workspace();
    if (own.size() < tm * k) own.resize(tm * k);
    return own.data();
  };
#if defined(_OPENMP)
  if (k_split) {
#pragma omp parallel num_threads(threads)
    {
#pragma omp for schedule(static)
      for (index_t t = 0; t < pack_tasks; ++t) pack(t);
#pragma omp for schedule(dynamic, 1)
      for (index_t kbi = 0; kbi < k_blocks; ++kbi) {
        const index_t k0 = kbi * kc, kb = std::min(kc, k - k0);
        float* const out = acc + kbi * m_pad * n_pad;
        // alpha 1, beta 0: the accumulators themselves (times 1, exact).
        const Epilogue e{1.0f, 0.0f, true};
        for (index_t j = 0; j < n; j += K::nr)
          for (index_t i = 0; i < m; i += K::mr)
            K::kernel(kb, pa + k0 * m_pad + i * kb, pb + k0 * n_pad + j * kb, out + i + j * m_pad, m_pad,
                      std::min(K::mr, m - i), std::min(K::nr, n - j), e);
      }
    }
    for (index_t kbi = 0; kbi < k_blocks; ++kbi)
      for (index_t j = 0; j < n; j += K::nr)
        for (index_t i = 0; i < m; i += K::mr)
          K::combine(std::min(K::mr, m - i), std::min(K::nr, n - j), acc + kbi * m_pad * n_pad + i + j * m_pad, m_pad,
                     c + i + j * ldc, ldc, Epilogue{alpha, beta, kbi == 0});
    return;
  }
#endif
  // One parallel region (one fork) for both phases, with the barrier between them. Thread
  // i owns the i-th contiguous share of the tiles (whole row blocks when tiles_m >= threads,
  // as tile_grid arranges) and then takes what is left of the others' shares, from their
  // ends (TileRange).
#if defined(_OPENMP)
  if (threads > 1) {
    TileRange* const ranges = tile_ranges(threads);
#pragma omp parallel num_threads(threads)
    {
      const auto team = static_cast<index_t>(omp_get_num_threads()), me = static_cast<index_t>(omp_get_thread_num());
      ranges[me].reset(me * tiles / team, (me + 1) * tiles / team);
#pragma omp for schedule(static)
      for (index_t t = 0; t < pack_tasks; ++t) pack(t);
      float* const own = own_space();
      index_t packed = -1;
      for (index_t t; (t = ranges[me].take_front()) >= 0;) tile(t, own, packed);
      for (index_t other = 1; other < team; ++other)
        for (index_t t; (t = ranges[(me + other) % team].take_back()) >= 0;) tile(t, own, packed);
    }
    return;
  }
#endif
  for (index_t t = 0; t < pack_tasks; ++t) pack(t);
  float* const own = own_space();
  index_t packed = -1;
  for (index_t t = 0; t < tiles; ++t) tile(t, own, packed);
}

#endif // FORGERY_NATIVE_GEMM_X86

} // namespace native_gemm

/// GEMM provider: forgery's packed kernels for float on CPUs with AVX-512 or AVX2 + FMA;
/// EigenGemm for double and on other CPUs.
struct NativeGemm {
  static constexpr const char* name = "native";

  /// The kernel float products use on this CPU (GemmIsa::none: Eigen's).
  static GemmIsa isa() { return native_gemm::active_isa(); }

  /// Selects the kernel (tests compare the kernels' bits); a kernel the CPU lacks falls
  /// back to the best it has. Returns the kernel now in use. Not thread-safe: call it
  /// between steps.
  static GemmIsa use(GemmIsa wanted) {
    const GemmIsa best = native_gemm::detect_isa();
    GemmIsa chosen = wanted;
    if (wanted == GemmIsa::avx512 && best != GemmIsa::avx512) chosen = best;
    if (wanted == GemmIsa::avx2 && best == GemmIsa::none) chosen = best;
    native_gemm::active_isa() = chosen;
    return chosen;
  }

  /// C = alpha * op(A) * op(B) + beta * C (column-major, BLAS conventions).
  template <class S>
  static void gemm(Trans ta, Trans tb, index_t m, index_t n, index_t k, S alpha, const S* a, index_t lda, const S* b,
                   index_t ldb, S beta, S* c, index_t ldc) {
#if FORGERY_NATIVE_GEMM_X86
    if constexpr (std::is_same_v<S, float>) {
      const GemmIsa isa = native_gemm::active_isa();
      if (isa != GemmIsa::none) {
        if (m <= 0 || n <= 0) return;
        if (k <= 0 || alpha == 0.0f) {
          detail::scale_block(m, n, beta, c, ldc);
          return;
        }
        // A single contiguous row of C (a layer with one output, such as a critic's last):
        // its transpose C^T = op(B)^T op(A)^T is a column, so the kernel's rows run along n
        // instead of wasting 31 of 32 lanes on m. Same FMA chain per output, same bits.
        const auto flip = [](Trans t) { return t == Trans::no ? Trans::yes : Trans::no; };
        if (m == 1 && n > 1 && ldc == 1) {
          run(isa, flip(tb), flip(ta), n, 1, k, alpha, b, ldb, a, lda, beta, c, n);
          return;
        }
        // A few rows of C against an op(B) that would pack into more than the L2 caches hold
        // (a convolution's weight gradient, 128 x 1024 x 3136 with op(B) the 13 MB column
        // matrix): packed whole up front, op(B) would go out to memory and come back once per
        // row block. As the transpose C^T = op(B)^T op(A)^T, the large operand is packed a
        // row block and a k-block at a time, each right before its products, and the small
        // one is shared; C is then written through per-tile copies (c_rows). Each output
        // keeps its FMA chain (the same products in the same k order), so its bits.
        if (n * k >= (index_t(1) << 20) && 4 * m <= n) {
          run(isa, flip(tb), flip(ta), n, m, k, alpha, b, ldb, a, lda, beta, c, ldc, true);
          return;
        }
        run(isa, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
      }
    }
#endif
    EigenGemm::gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }

private:
#if FORGERY_NATIVE_GEMM_X86
  static void run(GemmIsa isa, Trans ta, Trans tb, index_t m, index_t n, index_t k, float alpha, const float* a,
                  index_t lda, const float* b, index_t ldb, float beta, float* c, index_t ldc, bool c_rows = false) {
    if (isa == GemmIsa::avx512)
      native_gemm::run<native_gemm::Avx512>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, c_rows);
    else
      native_gemm::run<native_gemm::Avx2>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, c_rows);
  }
#endif
};

} // namespace forgery::backend
