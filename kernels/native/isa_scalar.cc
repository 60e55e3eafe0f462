// Baseline ISA (whatever the compiler's default target is, SSE2 on x86-64): row operations and a
// portable 4x8 GEMM micro-kernel. Always available.
#include <cmath>
#include <array>
#include <cstdint>
#include <utility>

#include "internal.h"

namespace odc_native {
namespace isa_scalar {
#include "rowops.inc"

constexpr int MR = 4, NR = 8;

// A "vector" of 4 floats in plain C++ (the compiler's baseline target may still vectorize it).
struct V {
  struct T {
    float x[4];
  };
  static constexpr int W = 4;
  static T zero() { return T{{0.f, 0.f, 0.f, 0.f}}; }
  static T load(const float* p) { return T{{p[0], p[1], p[2], p[3]}}; }
  static T load_tail(const float* p, int n) {
    T r = zero();
    for (int j = 0; j < n; ++j) r.x[j] = p[j];
    return r;
  }
  static T bcast(const float* p) { return T{{*p, *p, *p, *p}}; }
  static T fma(T a, T b, T c) {
    for (int j = 0; j < 4; ++j) c.x[j] += a.x[j] * b.x[j];
    return c;
  }
  static void store(float* p, T r, int n, int acc) {
    for (int j = 0; j < n && j < 4; ++j) p[j] = (acc ? p[j] : 0.f) + r.x[j];
  }
};
#include "ukr_tpl.inc"

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
    isa_scalar::ukr_mn,      isa_scalar::pack_gather, isa_scalar::ukr_ind,
    isa_scalar::ukr_indb,   isa_scalar::pool_rows,   isa_scalar::MR,          isa_scalar::NR,
    256,                    128,                     1024,
    isa_scalar::dw_block};

}  // namespace odc_native
