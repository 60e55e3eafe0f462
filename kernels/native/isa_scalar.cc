// Baseline ISA (whatever the compiler's default target is, SSE2 on x86-64): row operations and a
// portable 4x8 GEMM micro-kernel. Always available.
#include <cmath>
#include <cstdint>

#include "internal.h"

namespace odc_native {
namespace isa_scalar {
#include "rowops.inc"

constexpr int MR = 4, NR = 8;
static void ukr(int64_t kc, const float* __restrict A, const float* __restrict B,
                float* __restrict C, int64_t ldc, int accumulate) {
  float acc[MR][NR] = {};
  for (int64_t k = 0; k < kc; ++k) {
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) acc[i][j] += A[i] * B[j];
    A += MR;
    B += NR;
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) C[i * ldc + j] = (accumulate ? C[i * ldc + j] : 0.f) + acc[i][j];
}
static void ukr_mn(int64_t kc, const float* __restrict A, int64_t lda, const float* __restrict B,
                   int64_t ldb, float* __restrict C, int64_t ldc, int accumulate, int m, int n) {
  float acc[MR][NR] = {};
  for (int64_t k = 0; k < kc; ++k) {
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < NR; ++j) acc[i][j] += A[i] * B[j];
    A += lda;
    B += ldb;
  }
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) C[i * ldc + j] = (accumulate ? C[i * ldc + j] : 0.f) + acc[i][j];
}
static void ukr_ind(int64_t kc, const float* __restrict base, const int32_t* __restrict koff,
                    const float* __restrict B, int64_t ldb, float* __restrict C, int64_t ldc,
                    int accumulate, int m, int n) {
  float acc[MR][NR] = {};
  for (int64_t k = 0; k < kc; ++k) {
    const float* A = base + koff[k];
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < NR; ++j) acc[i][j] += A[i] * B[j];
    B += ldb;
  }
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) C[i * ldc + j] = (accumulate ? C[i * ldc + j] : 0.f) + acc[i][j];
}

static void ukr_indb(int64_t kc, const float* __restrict A, int64_t lda,
                     const float* __restrict bbase, const int32_t* __restrict koff,
                     float* __restrict C, int64_t ldc, int accumulate, int m, int n) {
  float acc[MR][NR] = {};
  for (int64_t k = 0; k < kc; ++k) {
    const float* B = bbase + koff[k];
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) acc[i][j] += A[i] * B[j];
    A += lda;
  }
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) C[i * ldc + j] = (accumulate ? C[i * ldc + j] : 0.f) + acc[i][j];
}

static void pack_gather(const float* src, const int32_t* koff, int64_t kc, const int32_t* poff,
                        int m, float* dst, int64_t lda) {
  for (int64_t k = 0; k < kc; ++k) {
    const float* s = src + koff[k];
    float* d = dst + k * lda;
    int i = 0;
    for (; i < m; ++i) d[i] = s[poff[i]];
    for (; i < lda; ++i) d[i] = 0.f;
  }
}
}  // namespace isa_scalar

const RowOps kScalarOps = {
    "scalar",           isa_scalar::epilogue_row, isa_scalar::unary_row,
    isa_scalar::binary_row, isa_scalar::softmax_row, isa_scalar::layernorm_row,
    isa_scalar::dot_row,    isa_scalar::axpy_row,    isa_scalar::dw_plane,
    isa_scalar::ukr,        isa_scalar::ukr_mn,      isa_scalar::pack_gather, isa_scalar::ukr_ind,
    isa_scalar::ukr_indb,   isa_scalar::pool_rows,   isa_scalar::MR,          isa_scalar::NR,
    256,                    128,                     1024,
    isa_scalar::dw_block};

}  // namespace odc_native
