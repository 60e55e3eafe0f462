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
#include "rowops.inc"

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
}  // namespace isa_avx512

const RowOps kAvx512Ops = {
    "avx512",           isa_avx512::epilogue_row, isa_avx512::unary_row,
    isa_avx512::binary_row, isa_avx512::softmax_row, isa_avx512::layernorm_row,
    isa_avx512::dot_row,    isa_avx512::axpy_row,    isa_avx512::dw_plane,
    isa_avx512::ukr,        isa_avx512::MR,          isa_avx512::NR,
    256,                    168,                     2048,
    isa_avx512::dw_block};

}  // namespace odc_native
#pragma GCC pop_options
