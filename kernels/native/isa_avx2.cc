// AVX2 + FMA: row operations and a 6x16 GEMM micro-kernel. Selected at run time (cpuid), never
// executed on CPUs without AVX2/FMA.
#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "internal.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

namespace odc_native {
namespace isa_avx2 {
#include "rowops.inc"

constexpr int MR = 6, NR = 16;

template <int ACC>
static inline void ukr_t(int64_t kc, const float* __restrict A, const float* __restrict B,
                         float* __restrict C, int64_t ldc) {
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
  for (int i = 0; i < MR; ++i) _mm_prefetch((const char*)(C + i * ldc), _MM_HINT_T0);
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_loadu_ps(B), b1 = _mm256_loadu_ps(B + 8);
    __m256 a;
#define ODC_ROW(i)                          \
  a = _mm256_broadcast_ss(A + i);           \
  c##i##0 = _mm256_fmadd_ps(a, b0, c##i##0); \
  c##i##1 = _mm256_fmadd_ps(a, b1, c##i##1);
    ODC_ROW(0) ODC_ROW(1) ODC_ROW(2) ODC_ROW(3) ODC_ROW(4) ODC_ROW(5)
#undef ODC_ROW
    A += MR;
    B += NR;
  }
#define ODC_STORE(i)                                                                      \
  if (ACC) {                                                                              \
    c##i##0 = _mm256_add_ps(c##i##0, _mm256_loadu_ps(C + i * ldc));                       \
    c##i##1 = _mm256_add_ps(c##i##1, _mm256_loadu_ps(C + i * ldc + 8));                   \
  }                                                                                       \
  _mm256_storeu_ps(C + i * ldc, c##i##0);                                                 \
  _mm256_storeu_ps(C + i * ldc + 8, c##i##1);
  ODC_STORE(0) ODC_STORE(1) ODC_STORE(2) ODC_STORE(3) ODC_STORE(4) ODC_STORE(5)
#undef ODC_STORE
}

static void ukr(int64_t kc, const float* A, const float* B, float* C, int64_t ldc,
                int accumulate) {
  if (accumulate)
    ukr_t<1>(kc, A, B, C, ldc);
  else
    ukr_t<0>(kc, A, B, C, ldc);
}
// M rows x NV 8-float vectors; the last vector's lanes >= `tail` are masked (tail in 1..8).
template <int M, int NV, int ACC>
static void ukr_g(int64_t kc, const float* __restrict A, int64_t lda, const float* __restrict B,
                  int64_t ldb, float* __restrict C, int64_t ldc, int tail) {
  __m256 c[M][NV];
#pragma GCC unroll 8
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) c[i][v] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    __m256 b[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) b[v] = _mm256_loadu_ps(B + 8 * v);
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i) {
      const __m256 a = _mm256_broadcast_ss(A + i);
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) c[i][v] = _mm256_fmadd_ps(a, b[v], c[i][v]);
    }
    A += lda;
    B += ldb;
  }
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(tail), lanes);
#pragma GCC unroll 8
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) {
      float* p = C + i * ldc + 8 * v;
      if (v == NV - 1 && tail < 8) {
        __m256 r = c[i][v];
        if (ACC) r = _mm256_add_ps(r, _mm256_maskload_ps(p, mask));
        _mm256_maskstore_ps(p, mask, r);
      } else {
        __m256 r = c[i][v];
        if (ACC) r = _mm256_add_ps(r, _mm256_loadu_ps(p));
        _mm256_storeu_ps(p, r);
      }
    }
}

template <int M, int NV, int ACC>
static void ukr_gb(int64_t kc, const float* __restrict A, int64_t lda,
                   const float* __restrict bbase, const int32_t* __restrict koff,
                   float* __restrict C, int64_t ldc, int tail) {
  const __m256i bmask = _mm256_cmpgt_epi32(_mm256_set1_epi32(tail), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  __m256 c[M][NV];
#pragma GCC unroll 8
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) c[i][v] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const float* B = bbase + koff[k];
    __m256 b[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v)
      b[v] = v == NV - 1 ? _mm256_maskload_ps(B + 8 * v, bmask) : _mm256_loadu_ps(B + 8 * v);
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i) {
      const __m256 a = _mm256_broadcast_ss(A + i);
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) c[i][v] = _mm256_fmadd_ps(a, b[v], c[i][v]);
    }
    A += lda;
  }
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(tail), lanes);
#pragma GCC unroll 8
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) {
      float* p = C + i * ldc + 8 * v;
      if (v == NV - 1 && tail < 8) {
        __m256 r = c[i][v];
        if (ACC) r = _mm256_add_ps(r, _mm256_maskload_ps(p, mask));
        _mm256_maskstore_ps(p, mask, r);
      } else {
        __m256 r = c[i][v];
        if (ACC) r = _mm256_add_ps(r, _mm256_loadu_ps(p));
        _mm256_storeu_ps(p, r);
      }
    }
}

template <int M, int NV, int ACC>
static void ukr_gi(int64_t kc, const float* __restrict base, const int32_t* __restrict koff, const float* __restrict B,
                  int64_t ldb, float* __restrict C, int64_t ldc, int tail) {
  __m256 c[M][NV];
#pragma GCC unroll 8
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) c[i][v] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const float* A = base + koff[k];
    __m256 b[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) b[v] = _mm256_loadu_ps(B + 8 * v);
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i) {
      const __m256 a = _mm256_broadcast_ss(A + i);
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) c[i][v] = _mm256_fmadd_ps(a, b[v], c[i][v]);
    }
    B += ldb;
  }
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(tail), lanes);
#pragma GCC unroll 8
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) {
      float* p = C + i * ldc + 8 * v;
      if (v == NV - 1 && tail < 8) {
        __m256 r = c[i][v];
        if (ACC) r = _mm256_add_ps(r, _mm256_maskload_ps(p, mask));
        _mm256_maskstore_ps(p, mask, r);
      } else {
        __m256 r = c[i][v];
        if (ACC) r = _mm256_add_ps(r, _mm256_loadu_ps(p));
        _mm256_storeu_ps(p, r);
      }
    }
}

using UkrG = void (*)(int64_t, const float*, int64_t, const float*, int64_t, float*, int64_t, int);
template <int M>
struct UkrRow {
  static constexpr UkrG fns[4] = {ukr_g<M, 1, 0>, ukr_g<M, 1, 1>, ukr_g<M, 2, 0>, ukr_g<M, 2, 1>};
};
static const UkrG* const kUkrTable[MR] = {UkrRow<1>::fns, UkrRow<2>::fns, UkrRow<3>::fns,
                                          UkrRow<4>::fns, UkrRow<5>::fns, UkrRow<6>::fns};

using UkrGI = void (*)(int64_t, const float*, const int32_t*, const float*, int64_t, float*, int64_t,
                      int);
template <int M>
struct UkrRowI {
  static constexpr UkrGI fns[4] = {ukr_gi<M, 1, 0>, ukr_gi<M, 1, 1>, ukr_gi<M, 2, 0>, ukr_gi<M, 2, 1>};
};
static const UkrGI* const kUkrTableI[MR] = {UkrRowI<1>::fns, UkrRowI<2>::fns, UkrRowI<3>::fns,
                                          UkrRowI<4>::fns, UkrRowI<5>::fns, UkrRowI<6>::fns};

using UkrGB = void (*)(int64_t, const float*, int64_t, const float*, const int32_t*, float*, int64_t,
                      int);
template <int M>
struct UkrRowB {
  static constexpr UkrGB fns[4] = {ukr_gb<M, 1, 0>, ukr_gb<M, 1, 1>, ukr_gb<M, 2, 0>, ukr_gb<M, 2, 1>};
};
static const UkrGB* const kUkrTableB[MR] = {UkrRowB<1>::fns, UkrRowB<2>::fns, UkrRowB<3>::fns,
                                          UkrRowB<4>::fns, UkrRowB<5>::fns, UkrRowB<6>::fns};

using UkrGI = void (*)(int64_t, const float*, const int32_t*, const float*, int64_t, float*, int64_t,
                      int);
template <int M>
struct UkrRowBI {
  static constexpr UkrGI fns[4] = {ukr_gi<M, 1, 0>, ukr_gi<M, 1, 1>, ukr_gi<M, 2, 0>, ukr_gi<M, 2, 1>};
};
static const UkrGI* const kUkrTableBI[MR] = {UkrRowBI<1>::fns, UkrRowBI<2>::fns, UkrRowBI<3>::fns,
                                          UkrRowBI<4>::fns, UkrRowBI<5>::fns, UkrRowBI<6>::fns};

static void ukr_mn(int64_t kc, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
                   int64_t ldc, int accumulate, int m, int n) {
  const int nv = (n + 7) / 8;
  kUkrTable[m - 1][(nv - 1) * 2 + (accumulate ? 1 : 0)](kc, A, lda, B, ldb, C, ldc,
                                                        n - 8 * (nv - 1));
}
static void ukr_ind(int64_t kc, const float* base, const int32_t* koff, const float* B,
                    int64_t ldb, float* C, int64_t ldc, int accumulate, int m, int n) {
  const int nv = (n + 7) / 8;
  kUkrTableI[m - 1][(nv - 1) * 2 + (accumulate ? 1 : 0)](kc, base, koff, B, ldb, C, ldc,
                                                         n - 8 * (nv - 1));
}

static void ukr_indb(int64_t kc, const float* A, int64_t lda, const float* bbase,
                     const int32_t* koff, float* C, int64_t ldc, int accumulate, int m, int n) {
  const int nv = (n + 7) / 8;
  kUkrTableB[m - 1][(nv - 1) * 2 + (accumulate ? 1 : 0)](kc, A, lda, bbase, koff, C, ldc,
                                                         n - 8 * (nv - 1));
}

static void pack_gather(const float* src, const int32_t* koff, int64_t kc, const int32_t* poff,
                        int m, float* dst, int64_t lda) {
  // lda >= mr = 6 and a multiple of 8: one 8-lane row per k
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(m), lanes);
  const __m256i vp = _mm256_maskload_epi32(poff, mask);
  bool contiguous = true;
  for (int i = 1; i < m; ++i) contiguous &= poff[i] == poff[0] + i;
  for (int64_t k = 0; k < kc; ++k) {
    float* d = dst + k * lda;
    __m256 v;
    if (contiguous) {
      v = _mm256_maskload_ps(src + koff[k] + poff[0], mask);
    } else {
      const __m256i idx = _mm256_add_epi32(vp, _mm256_set1_epi32(koff[k]));
      v = _mm256_mask_i32gather_ps(_mm256_setzero_ps(), src, idx, _mm256_castsi256_ps(mask), 4);
    }
    _mm256_storeu_ps(d, v);
    for (int64_t i = 8; i < lda; i += 8) _mm256_storeu_ps(d + i, _mm256_setzero_ps());
  }
}
}  // namespace isa_avx2

const RowOps kAvx2Ops = {
    "avx2",           isa_avx2::epilogue_row, isa_avx2::unary_row,   isa_avx2::binary_row,
    isa_avx2::softmax_row, isa_avx2::layernorm_row, isa_avx2::dot_row, isa_avx2::axpy_row,
    isa_avx2::dw_plane,    isa_avx2::ukr,           isa_avx2::ukr_mn,  isa_avx2::pack_gather, isa_avx2::ukr_ind, isa_avx2::ukr_indb, isa_avx2::pool_rows,
    isa_avx2::MR,
    isa_avx2::NR,
    256,                   144,                     2048,
    isa_avx2::dw_block};

}  // namespace odc_native
#pragma GCC pop_options
