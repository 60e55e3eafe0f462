// AVX2 + FMA: row operations and a 6x16 GEMM micro-kernel. Selected at run time (cpuid), never
// executed on CPUs without AVX2/FMA.
#include <immintrin.h>

#include <cmath>
#include <array>
#include <cstdint>
#include <utility>

#include "internal.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

namespace odc_native {
namespace isa_avx2 {
#include "rowops.inc"

constexpr int MR = 6, NR = 16;

struct V {
  using T = __m256;
  static constexpr int W = 8;
  static __m256i mask(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static T zero() { return _mm256_setzero_ps(); }
  static T load(const float* p) { return _mm256_loadu_ps(p); }
  static T load_tail(const float* p, int n) { return _mm256_maskload_ps(p, mask(n)); }
  static T bcast(const float* p) { return _mm256_broadcast_ss(p); }
  static T fma(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
  // stores the first n lanes (accumulate: adds the current contents)
  static void store(float* p, T r, int n, int acc) {
    if (n >= 8) {
      if (acc) r = _mm256_add_ps(r, _mm256_loadu_ps(p));
      _mm256_storeu_ps(p, r);
      return;
    }
    const __m256i m = mask(n);
    if (acc) r = _mm256_add_ps(r, _mm256_maskload_ps(p, m));
    _mm256_maskstore_ps(p, m, r);
  }
};
#include "ukr_tpl.inc"

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
    isa_avx2::dw_plane,    isa_avx2::ukr_mn,  isa_avx2::pack_gather, isa_avx2::ukr_ind, isa_avx2::ukr_indb, isa_avx2::pool_rows,
    isa_avx2::MR,
    isa_avx2::NR,
    256,                   144,                     2048,
    isa_avx2::dw_block};

}  // namespace odc_native
#pragma GCC pop_options
