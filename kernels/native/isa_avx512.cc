// AVX-512 (F/DQ/BW/VL) + FMA: row operations and a 14x32 GEMM micro-kernel (28 zmm
// accumulators). Selected at run time (cpuid + OS zmm state), never executed elsewhere.
#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "internal.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma,f16c")

namespace odc_native {
namespace isa_avx512 {
#define ODC_OWN_POOL_ROWS
#include "rowops.inc"
#undef ODC_OWN_POOL_ROWS

static void pool_rows(const float* __restrict x, int64_t x_rs, int64_t stride, float* __restrict y,
                      int64_t y_rs, int64_t n, int64_t rows, int op) {
  const __m512i even =
      _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  for (int64_t r = 0; r < rows; ++r, x += x_rs, y += y_rs) {
    if (stride > 2) {
      for (int64_t i = 0; i < n; ++i) {
        const float v = x[i * stride];
        y[i] = op ? y[i] + v : (v > y[i] ? v : y[i]);
      }
      continue;
    }
    for (int64_t i = 0; i < n; i += 16) {
      const int64_t cnt = n - i < 16 ? n - i : 16;
      const __mmask16 m = (__mmask16)((1u << cnt) - 1u);
      __m512 v;
      if (stride == 1) {
        v = _mm512_maskz_loadu_ps(m, x + i);
      } else {  // the even elements of x[2i .. 2i + 2cnt - 2]
        const int64_t last = 2 * cnt - 1;  // elements [0, last) of the 32 are needed
        const __mmask16 mlo = (__mmask16)(last >= 16 ? 0xFFFFu : (1u << last) - 1u);
        const __mmask16 mhi = (__mmask16)(last > 16 ? (1u << (last - 16)) - 1u : 0u);
        const __m512 lo = _mm512_maskz_loadu_ps(mlo, x + 2 * i);
        const __m512 hi = _mm512_maskz_loadu_ps(mhi, x + 2 * i + 16);
        v = _mm512_permutex2var_ps(lo, even, hi);
      }
      const __m512 yv = _mm512_maskz_loadu_ps(m, y + i);
      const __m512 res = op ? _mm512_maskz_add_ps(m, yv, v) : _mm512_maskz_max_ps(m, v, yv);
      _mm512_mask_storeu_ps(y + i, m, res);
    }
  }
}

constexpr int MR = 14, NR = 32;

template <int ACC>
static inline void ukr_t(int64_t kc, const float* __restrict A, const float* __restrict B,
                         float* __restrict C, int64_t ldc) {
#define ODC_DECL(i) __m512 c##i##0 = _mm512_setzero_ps(), c##i##1 = _mm512_setzero_ps();
  ODC_DECL(0) ODC_DECL(1) ODC_DECL(2) ODC_DECL(3) ODC_DECL(4) ODC_DECL(5) ODC_DECL(6)
  ODC_DECL(7) ODC_DECL(8) ODC_DECL(9) ODC_DECL(10) ODC_DECL(11) ODC_DECL(12) ODC_DECL(13)
#undef ODC_DECL
  for (int i = 0; i < MR; ++i) {
    _mm_prefetch((const char*)(C + i * ldc), _MM_HINT_T0);
    _mm_prefetch((const char*)(C + i * ldc + 16), _MM_HINT_T0);
  }
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_loadu_ps(B), b1 = _mm512_loadu_ps(B + 16);
    _mm_prefetch((const char*)(A + 8 * MR), _MM_HINT_T0);
    __m512 a;
#define ODC_ROW(i)                          \
  a = _mm512_set1_ps(A[i]);                 \
  c##i##0 = _mm512_fmadd_ps(a, b0, c##i##0); \
  c##i##1 = _mm512_fmadd_ps(a, b1, c##i##1);
    ODC_ROW(0) ODC_ROW(1) ODC_ROW(2) ODC_ROW(3) ODC_ROW(4) ODC_ROW(5) ODC_ROW(6)
    ODC_ROW(7) ODC_ROW(8) ODC_ROW(9) ODC_ROW(10) ODC_ROW(11) ODC_ROW(12) ODC_ROW(13)
#undef ODC_ROW
    A += MR;
    B += NR;
  }
#define ODC_STORE(i)                                                                      \
  if (ACC) {                                                                              \
    c##i##0 = _mm512_add_ps(c##i##0, _mm512_loadu_ps(C + i * ldc));                       \
    c##i##1 = _mm512_add_ps(c##i##1, _mm512_loadu_ps(C + i * ldc + 16));                  \
  }                                                                                       \
  _mm512_storeu_ps(C + i * ldc, c##i##0);                                                 \
  _mm512_storeu_ps(C + i * ldc + 16, c##i##1);
  ODC_STORE(0) ODC_STORE(1) ODC_STORE(2) ODC_STORE(3) ODC_STORE(4) ODC_STORE(5) ODC_STORE(6)
  ODC_STORE(7) ODC_STORE(8) ODC_STORE(9) ODC_STORE(10) ODC_STORE(11) ODC_STORE(12)
  ODC_STORE(13)
#undef ODC_STORE
}

static void ukr(int64_t kc, const float* A, const float* B, float* C, int64_t ldc,
                int accumulate) {
  if (accumulate)
    ukr_t<1>(kc, A, B, C, ldc);
  else
    ukr_t<0>(kc, A, B, C, ldc);
}
// M rows x NV 16-float vectors; the last vector's lanes >= `tail` are masked (tail in 1..16).
template <int M, int NV, int ACC>
static void ukr_g(int64_t kc, const float* __restrict A, int64_t lda, const float* __restrict B,
                  int64_t ldb, float* __restrict C, int64_t ldc, int tail) {
  __m512 c[M][NV];
#pragma GCC unroll 16
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) c[i][v] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    __m512 b[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) b[v] = _mm512_loadu_ps(B + 16 * v);
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i) {
      const __m512 a = _mm512_set1_ps(A[i]);
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) c[i][v] = _mm512_fmadd_ps(a, b[v], c[i][v]);
    }
    A += lda;
    B += ldb;
  }
  const __mmask16 last = (__mmask16)((1u << tail) - 1u);
#pragma GCC unroll 16
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) {
      float* p = C + i * ldc + 16 * v;
      const __mmask16 k = v == NV - 1 ? last : (__mmask16)0xFFFF;
      __m512 r = c[i][v];
      if (ACC) r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(k, p));
      _mm512_mask_storeu_ps(p, k, r);
    }
}

template <int M, int NV, int ACC>
static void ukr_gb(int64_t kc, const float* __restrict A, int64_t lda,
                   const float* __restrict bbase, const int32_t* __restrict koff,
                   float* __restrict C, int64_t ldc, int tail) {
  const __mmask16 lastb = (__mmask16)((1u << tail) - 1u);
  __m512 c[M][NV];
#pragma GCC unroll 16
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) c[i][v] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const float* B = bbase + koff[k];
    __m512 b[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v)
      b[v] = v == NV - 1 ? _mm512_maskz_loadu_ps(lastb, B + 16 * v) : _mm512_loadu_ps(B + 16 * v);
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i) {
      const __m512 a = _mm512_set1_ps(A[i]);
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) c[i][v] = _mm512_fmadd_ps(a, b[v], c[i][v]);
    }
    A += lda;
  }
  const __mmask16 last = (__mmask16)((1u << tail) - 1u);
#pragma GCC unroll 16
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) {
      float* p = C + i * ldc + 16 * v;
      const __mmask16 k = v == NV - 1 ? last : (__mmask16)0xFFFF;
      __m512 r = c[i][v];
      if (ACC) r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(k, p));
      _mm512_mask_storeu_ps(p, k, r);
    }
}

template <int M, int NV, int ACC>
static void ukr_gi(int64_t kc, const float* __restrict base, const int32_t* __restrict koff, const float* __restrict B,
                  int64_t ldb, float* __restrict C, int64_t ldc, int tail) {
  __m512 c[M][NV];
#pragma GCC unroll 16
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) c[i][v] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const float* A = base + koff[k];
    __m512 b[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) b[v] = _mm512_loadu_ps(B + 16 * v);
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i) {
      const __m512 a = _mm512_set1_ps(A[i]);
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) c[i][v] = _mm512_fmadd_ps(a, b[v], c[i][v]);
    }
    B += ldb;
  }
  const __mmask16 last = (__mmask16)((1u << tail) - 1u);
#pragma GCC unroll 16
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) {
      float* p = C + i * ldc + 16 * v;
      const __mmask16 k = v == NV - 1 ? last : (__mmask16)0xFFFF;
      __m512 r = c[i][v];
      if (ACC) r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(k, p));
      _mm512_mask_storeu_ps(p, k, r);
    }
}

using UkrG = void (*)(int64_t, const float*, int64_t, const float*, int64_t, float*, int64_t, int);
template <int M>
struct UkrRow {
  static constexpr UkrG fns[4] = {ukr_g<M, 1, 0>, ukr_g<M, 1, 1>, ukr_g<M, 2, 0>, ukr_g<M, 2, 1>};
};
static const UkrG* const kUkrTable[MR] = {
    UkrRow<1>::fns,  UkrRow<2>::fns,  UkrRow<3>::fns,  UkrRow<4>::fns,  UkrRow<5>::fns,
    UkrRow<6>::fns,  UkrRow<7>::fns,  UkrRow<8>::fns,  UkrRow<9>::fns,  UkrRow<10>::fns,
    UkrRow<11>::fns, UkrRow<12>::fns, UkrRow<13>::fns, UkrRow<14>::fns};

using UkrGI = void (*)(int64_t, const float*, const int32_t*, const float*, int64_t, float*, int64_t,
                      int);
template <int M>
struct UkrRowI {
  static constexpr UkrGI fns[4] = {ukr_gi<M, 1, 0>, ukr_gi<M, 1, 1>, ukr_gi<M, 2, 0>, ukr_gi<M, 2, 1>};
};
static const UkrGI* const kUkrTableI[MR] = {
    UkrRowI<1>::fns,  UkrRowI<2>::fns,  UkrRowI<3>::fns,  UkrRowI<4>::fns,  UkrRowI<5>::fns,
    UkrRowI<6>::fns,  UkrRowI<7>::fns,  UkrRowI<8>::fns,  UkrRowI<9>::fns,  UkrRowI<10>::fns,
    UkrRowI<11>::fns, UkrRowI<12>::fns, UkrRowI<13>::fns, UkrRowI<14>::fns};

using UkrGB = void (*)(int64_t, const float*, int64_t, const float*, const int32_t*, float*, int64_t,
                      int);
template <int M>
struct UkrRowB {
  static constexpr UkrGB fns[4] = {ukr_gb<M, 1, 0>, ukr_gb<M, 1, 1>, ukr_gb<M, 2, 0>, ukr_gb<M, 2, 1>};
};
static const UkrGB* const kUkrTableB[MR] = {
    UkrRowB<1>::fns,  UkrRowB<2>::fns,  UkrRowB<3>::fns,  UkrRowB<4>::fns,  UkrRowB<5>::fns,
    UkrRowB<6>::fns,  UkrRowB<7>::fns,  UkrRowB<8>::fns,  UkrRowB<9>::fns,  UkrRowB<10>::fns,
    UkrRowB<11>::fns, UkrRowB<12>::fns, UkrRowB<13>::fns, UkrRowB<14>::fns};

using UkrGI = void (*)(int64_t, const float*, const int32_t*, const float*, int64_t, float*, int64_t,
                      int);
template <int M>
struct UkrRowBI {
  static constexpr UkrGI fns[4] = {ukr_gi<M, 1, 0>, ukr_gi<M, 1, 1>, ukr_gi<M, 2, 0>, ukr_gi<M, 2, 1>};
};
static const UkrGI* const kUkrTableBI[MR] = {
    UkrRowBI<1>::fns,  UkrRowBI<2>::fns,  UkrRowBI<3>::fns,  UkrRowBI<4>::fns,  UkrRowBI<5>::fns,
    UkrRowBI<6>::fns,  UkrRowBI<7>::fns,  UkrRowBI<8>::fns,  UkrRowBI<9>::fns,  UkrRowBI<10>::fns,
    UkrRowBI<11>::fns, UkrRowBI<12>::fns, UkrRowBI<13>::fns, UkrRowBI<14>::fns};

static void ukr_mn(int64_t kc, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
                   int64_t ldc, int accumulate, int m, int n) {
  const int nv = (n + 15) / 16;
  kUkrTable[m - 1][(nv - 1) * 2 + (accumulate ? 1 : 0)](kc, A, lda, B, ldb, C, ldc,
                                                        n - 16 * (nv - 1));
}
static void ukr_ind(int64_t kc, const float* base, const int32_t* koff, const float* B,
                    int64_t ldb, float* C, int64_t ldc, int accumulate, int m, int n) {
  const int nv = (n + 15) / 16;
  kUkrTableI[m - 1][(nv - 1) * 2 + (accumulate ? 1 : 0)](kc, base, koff, B, ldb, C, ldc,
                                                         n - 16 * (nv - 1));
}

static void ukr_indb(int64_t kc, const float* A, int64_t lda, const float* bbase,
                     const int32_t* koff, float* C, int64_t ldc, int accumulate, int m, int n) {
  const int nv = (n + 15) / 16;
  kUkrTableB[m - 1][(nv - 1) * 2 + (accumulate ? 1 : 0)](kc, A, lda, bbase, koff, C, ldc,
                                                         n - 16 * (nv - 1));
}

static void pack_gather(const float* src, const int32_t* koff, int64_t kc, const int32_t* poff,
                        int m, float* dst, int64_t lda) {
  // lda >= mr = 14 and a multiple of 8 (16 here): one 16-lane row per k. Lanes whose offsets
  // advance by 1 (output pixels of one row, stride 1) or by 2 (stride 2) form runs; up to 4
  // runs are merged masked loads (lane i of a run starting at lane l reads
  // base + poff[l] + st*(i - l); masked-off lanes never fault), stride-2 runs load 32 floats and
  // keep the even ones; anything else uses a gather.
  const __mmask16 mk = (__mmask16)((1u << m) - 1u);
  // maximal runs with one common step st in {1, 2}; a single lane fits any step
  int nrun = 0, st = 0;
  int run_lane[16];
  __mmask16 run_mask[16];
  for (int i = 0; i < m;) {
    int j = i + 1;
    if (j < m) {
      const int d = poff[j] - poff[i];
      if ((d == 1 || d == 2) && (st == 0 || st == d)) {
        while (j < m && poff[j] - poff[j - 1] == d) ++j;
        st = d;
      }
    }
    run_lane[nrun] = i;
    run_mask[nrun++] = (__mmask16)(((1u << (j - i)) - 1u) << i);
    i = j;
  }
  if (st == 0) st = 1;
  if (st == 1 && nrun <= 4) {
    intptr_t base[4];
    for (int r = 0; r < nrun; ++r) base[r] = (intptr_t)poff[run_lane[r]] - run_lane[r];
    for (int64_t k = 0; k < kc; ++k) {
      __m512 v = _mm512_setzero_ps();
      for (int r = 0; r < nrun; ++r)
        v = _mm512_mask_loadu_ps(v, run_mask[r], src + (koff[k] + base[r]));
      _mm512_storeu_ps(dst + k * lda, v);
    }
  } else if (st == 2 && nrun <= 4) {
    // lane i of run r reads q_r[2i] with q_r = src + koff + poff[l] - 2l: the even elements of
    // 32 floats at q_r, loaded with masks that cover only indices [2l, 2*last] of the run
    intptr_t base[4];
    __mmask16 m0[4], m1[4];
    for (int r = 0; r < nrun; ++r) {
      const int l = run_lane[r];
      const int last = 31 - __builtin_clz((unsigned)run_mask[r]);
      base[r] = (intptr_t)poff[l] - 2 * l;
      uint32_t need = 0;  // bits 2l .. 2*last of a 32-bit window
      for (int i = l; i <= last; ++i) need |= 1u << (2 * i);
      m0[r] = (__mmask16)(need & 0xFFFFu);
      m1[r] = (__mmask16)(need >> 16);
    }
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    for (int64_t k = 0; k < kc; ++k) {
      __m512 v = _mm512_setzero_ps();
      for (int r = 0; r < nrun; ++r) {
        const float* q = src + (koff[k] + base[r]);
        const __m512 lo = _mm512_maskz_loadu_ps(m0[r], q);
        const __m512 hi = _mm512_maskz_loadu_ps(m1[r], q + 16);
        v = _mm512_mask_mov_ps(v, run_mask[r], _mm512_permutex2var_ps(lo, even, hi));
      }
      _mm512_storeu_ps(dst + k * lda, v);
    }
  } else {
    const __m512i vp = _mm512_maskz_loadu_epi32(mk, poff);
    for (int64_t k = 0; k < kc; ++k) {
      const __m512i idx = _mm512_add_epi32(vp, _mm512_set1_epi32(koff[k]));
      _mm512_storeu_ps(dst + k * lda, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mk, idx, src, 4));
    }
  }
  for (int64_t i = 16; i < lda; i += 16)
    for (int64_t k = 0; k < kc; ++k) _mm512_storeu_ps(dst + k * lda + i, _mm512_setzero_ps());
}

}  // namespace isa_avx512

const RowOps kAvx512Ops = {
    "avx512",           isa_avx512::epilogue_row, isa_avx512::unary_row,
    isa_avx512::binary_row, isa_avx512::softmax_row, isa_avx512::layernorm_row,
    isa_avx512::dot_row,    isa_avx512::axpy_row,    isa_avx512::dw_plane,
    isa_avx512::ukr,        isa_avx512::ukr_mn,      isa_avx512::pack_gather, isa_avx512::ukr_ind, isa_avx512::ukr_indb, isa_avx512::pool_rows,
    isa_avx512::MR,          isa_avx512::NR,
    256,                    168,                     2048,
    isa_avx512::dw_block};

}  // namespace odc_native
#pragma GCC pop_options
