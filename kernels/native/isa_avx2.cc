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
}  // namespace isa_avx2

const RowOps kAvx2Ops = {
    "avx2",           isa_avx2::epilogue_row, isa_avx2::unary_row,   isa_avx2::binary_row,
    isa_avx2::softmax_row, isa_avx2::layernorm_row, isa_avx2::dot_row, isa_avx2::axpy_row,
    isa_avx2::dw_plane,    isa_avx2::ukr,           isa_avx2::MR,      isa_avx2::NR,
    256,                   144,                     2048,
    isa_avx2::dw_block};

}  // namespace odc_native
#pragma GCC pop_options
