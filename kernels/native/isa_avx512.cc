// AVX-512 (F/DQ/BW/VL) + FMA: row operations and a 14x32 GEMM micro-kernel (28 zmm
// accumulators). Selected at run time (cpuid + OS zmm state), never executed elsewhere.
#include <immintrin.h>

#include <cmath>
#include <array>
#include <cstdint>
#include <utility>

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

struct V {
  using T = __m512;
  static constexpr int W = 16;
  static T zero() { return _mm512_setzero_ps(); }
  static T load(const float* p) { return _mm512_loadu_ps(p); }
  static T load_tail(const float* p, int n) {
    return _mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1u), p);
  }
  static T bcast(const float* p) { return _mm512_set1_ps(*p); }
  static T fma(T a, T b, T c) { return _mm512_fmadd_ps(a, b, c); }
  // stores the first n lanes (accumulate: adds the current contents)
  static void store(float* p, T r, int n, int acc) {
    const __mmask16 k = (__mmask16)(n >= 16 ? 0xFFFFu : (1u << n) - 1u);
    if (acc) r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(k, p));
    _mm512_mask_storeu_ps(p, k, r);
  }
};
#include "ukr_tpl.inc"

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
    isa_avx512::ukr_mn,      isa_avx512::pack_gather, isa_avx512::ukr_ind, isa_avx512::ukr_indb, isa_avx512::pool_rows,
    isa_avx512::MR,          isa_avx512::NR,
    256,                    168,                     2048,
    isa_avx512::dw_block};

}  // namespace odc_native
#pragma GCC pop_options
