// Pooling kernels (NCHW fp32): maxpool2d_f32, avgpool2d_f32, global_avgpool_f32.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "internal.h"

namespace odc_native {
namespace {

struct PoolParams {
  int64_t kh, kw, sh, sw, pt, pl, pb, pr, dh, dw, ceil_mode, include_pad;
};

int pool_setup(const odc_kernel_args* a, PoolParams* p, View* X, View* Y, Err& e) {
  const int64_t* ip = a->iparams;
  p->kh = ip[0], p->kw = ip[1], p->sh = ip[2], p->sw = ip[3];
  p->pt = ip[4], p->pl = ip[5], p->pb = ip[6], p->pr = ip[7], p->dh = ip[8], p->dw = ip[9];
  p->ceil_mode = ip[10];
  const int64_t lim = int64_t(1) << 30;
  for (int i = 0; i < 10; ++i)
    if (ip[i] < (i >= 4 && i < 8 ? 0 : 1) || ip[i] > lim)
      return e.fail("iparams[%d] = %lld out of range", i, (long long)ip[i]);
  if (p->ceil_mode != 0 && p->ceil_mode != 1) return e.fail("ceil_mode must be 0 or 1");
  if (p->pt >= (p->kh - 1) * p->dh + 1 || p->pb >= (p->kh - 1) * p->dh + 1 ||
      p->pl >= (p->kw - 1) * p->dw + 1 || p->pr >= (p->kw - 1) * p->dw + 1)
    return e.fail("pads must be smaller than the (dilated) kernel");
  if (get_view(a->inputs[0], "input 0 (X)", 4, 4, false, X, e)) return 1;
  if (get_view(a->outputs[0], "output 0 (Y)", 4, 4, false, Y, e)) return 1;
  const int64_t H = X->shape[2], W = X->shape[3];
  const int64_t eh = (p->kh - 1) * p->dh + 1, ew = (p->kw - 1) * p->dw + 1;
  if (H + p->pt + p->pb < eh || W + p->pl + p->pr < ew)
    return e.fail("kernel larger than the padded input");
  auto out_len = [&](int64_t in, int64_t pa, int64_t pe, int64_t eff, int64_t s) {
    int64_t num = in + pa + pe - eff;
    int64_t o = (p->ceil_mode ? (num + s - 1) / s : num / s) + 1;
    if (p->ceil_mode && (o - 1) * s >= in + pa) --o;
    return o;
  };
  const int64_t OH = out_len(H, p->pt, p->pb, eh, p->sh), OW = out_len(W, p->pl, p->pr, ew, p->sw);
  char s1[128];
  if (Y->shape[0] != X->shape[0] || Y->shape[1] != X->shape[1] || Y->shape[2] != OH ||
      Y->shape[3] != OW)
    return e.fail("output Y %s, expected [%lld, %lld, %lld, %lld]", shape_str(*Y, s1, 128),
                  (long long)X->shape[0], (long long)X->shape[1], (long long)OH, (long long)OW);
  return check_no_overlap(*Y, "Y", *X, "X", false, e);
}

// Valid window taps along one axis: k in [klo, khi) with 0 <= start + k*d < in.
inline void tap_range(int64_t start, int64_t k, int64_t d, int64_t in, int64_t* klo,
                      int64_t* khi) {
  int64_t lo = start >= 0 ? 0 : (-start + d - 1) / d;
  int64_t hi = start <= in - 1 ? (in - 1 - start) / d + 1 : 0;
  *klo = std::min(lo, k);
  *khi = std::max(*klo, std::min(hi, k));
}

// Per output row / column: the first input index and the valid tap range, plus the divisor of
// count_include_pad; computed once per call (no divisions in the per-pixel loops).
struct Taps {
  std::vector<int64_t> start, lo, hi, padded;  // padded: taps inside the padded extent
  void build(int64_t out, int64_t s, int64_t pad0, int64_t pad1, int64_t k, int64_t d,
             int64_t in) {
    start.resize(out), lo.resize(out), hi.resize(out), padded.resize(out);
    for (int64_t o = 0; o < out; ++o) {
      start[o] = o * s - pad0;
      tap_range(start[o], k, d, in, &lo[o], &hi[o]);
      int64_t a0, a1;
      tap_range(start[o] + pad0, k, d, in + pad0 + pad1, &a0, &a1);
      padded[o] = a1 - a0;
    }
  }
};

template <bool MAX>
void pool_plane(const float* x, int64_t W, const PoolParams& p, const Taps& ty, const Taps& tx,
                int64_t in0, int64_t in1, float* y, int64_t OH, int64_t OW) {
  // max starts at the lowest finite float, as onnxruntime's does: a window that sees only
  // padding (dilated taps stepping over the input) or only -inf gives -FLT_MAX, not -inf
  const float init = MAX ? std::numeric_limits<float>::lowest() : 0.f;
  const RowOps& o = ops();
  for (int64_t oy0 = 0; oy0 < OH;) {
    // a run of output rows with the same vertical taps (and divisor)
    const int64_t kylo = ty.lo[oy0], kyhi = ty.hi[oy0];
    int64_t oy1 = oy0 + 1;
    while (oy1 < OH && ty.lo[oy1] == kylo && ty.hi[oy1] == kyhi &&
           ty.padded[oy1] == ty.padded[oy0])
      ++oy1;
    const int64_t rows = oy1 - oy0;
    // interior columns [in0, in1) (every horizontal tap inside): one tap at a time over the
    // whole block (independent per output, vectorizable), instead of a dependent chain each
    if (in1 > in0) {
      for (int64_t r = oy0; r < oy1; ++r)
        for (int64_t ox = in0; ox < in1; ++ox) y[r * OW + ox] = init;
      const float* xb = x + ty.start[oy0] * W + in0 * p.sw - p.pl;
      for (int64_t ky = kylo; ky < kyhi; ++ky)
        for (int64_t kx = 0; kx < p.kw; ++kx)
          o.pool_rows(xb + ky * p.dh * W + kx * p.dw, p.sh * W, p.sw, y + oy0 * OW + in0, OW,
                      in1 - in0, rows, MAX ? 0 : 1);
      if (!MAX) {
        const int64_t cnt = p.include_pad ? ty.padded[oy0] * tx.padded[in0] : (kyhi - kylo) * p.kw;
        const float inv = cnt > 0 ? 1.f / (float)cnt : 0.f;
        for (int64_t r = oy0; r < oy1; ++r)
          for (int64_t ox = in0; ox < in1; ++ox) y[r * OW + ox] = cnt > 0 ? y[r * OW + ox] * inv : 0.f;
      }
    }
    for (int64_t oy = oy0; oy < oy1; ++oy) {
      float* yr = y + oy * OW;
      const float* xrow = x + ty.start[oy] * W;
      for (int64_t ox = 0; ox < OW; ++ox) {
        if (ox == in0 && in1 > in0) ox = in1;
        if (ox >= OW) break;
        const int64_t kxlo = tx.lo[ox], kxhi = tx.hi[ox];
        const float* xc = xrow + tx.start[ox];
        float acc = init;
        for (int64_t ky = kylo; ky < kyhi; ++ky) {
          const float* xr = xc + ky * p.dh * W;
          if (MAX) {
            for (int64_t kx = kxlo; kx < kxhi; ++kx) {
              const float v = xr[kx * p.dw];
              acc = v > acc ? v : acc;
            }
          } else {
            for (int64_t kx = kxlo; kx < kxhi; ++kx) acc += xr[kx * p.dw];
          }
        }
        if (!MAX) {
          const int64_t cnt =
              p.include_pad ? ty.padded[oy] * tx.padded[ox] : (kyhi - kylo) * (kxhi - kxlo);
          acc = cnt > 0 ? acc / (float)cnt : 0.f;
        }
        yr[ox] = acc;
      }
    }
    oy0 = oy1;
  }
}

template <bool MAX>
int run_pool(const odc_kernel_args* a, Err& e, bool avg_flag) {
  PoolParams p;
  View X, Y;
  if (pool_setup(a, &p, &X, &Y, e)) return 1;
  p.include_pad = 0;
  if (avg_flag) {
    p.include_pad = a->iparams[11];
    if (p.include_pad != 0 && p.include_pad != 1)
      return e.fail("count_include_pad must be 0 or 1");
  }
  if (Y.numel == 0) return 0;
  const int64_t planes = X.shape[0] * X.shape[1], H = X.shape[2], W = X.shape[3];
  const int64_t OH = Y.shape[2], OW = Y.shape[3];
  Taps ty, tx;
  ty.build(OH, p.sh, p.pt, p.pb, p.kh, p.dh, H);
  tx.build(OW, p.sw, p.pl, p.pr, p.kw, p.dw, W);
  // interior columns: a contiguous range where every horizontal tap is inside the input, with
  // one padded-extent divisor (count_include_pad)
  int64_t in0 = 0, in1 = 0;
  while (in0 < OW && (tx.lo[in0] != 0 || tx.hi[in0] != p.kw)) ++in0;
  in1 = in0;
  while (in1 < OW && tx.lo[in1] == 0 && tx.hi[in1] == p.kw && tx.padded[in1] == tx.padded[in0])
    ++in1;
  const int T = threads_for(planes * OH * OW * p.kh * p.kw, 1 << 15, a->num_threads);
  const bool ok = parallel_run(T, [&](int tid) {
    int64_t b, en;
    split_range(planes, T, tid, &b, &en);
    for (int64_t q = b; q < en; ++q)
      pool_plane<MAX>(X.data + q * H * W, W, p, ty, tx, in0, in1, Y.data + q * OH * OW, OH, OW);
  });
  if (!ok) return e.fail("internal error in worker");
  return 0;
}

}  // namespace
}  // namespace odc_native

using namespace odc_native;

/* maxpool2d_f32
 * inputs : X [N, C, H, W];  outputs: Y [N, C, OH, OW] (no Indices output)
 * iparams: [kernel_h, kernel_w, stride_h, stride_w, pad_t, pad_l, pad_b, pad_r, dil_h, dil_w,
 *           ceil_mode]
 * fparams: []
 * OH = floor_or_ceil((H + pad_t + pad_b - ((kernel_h-1)*dil_h+1)) / stride_h) + 1, and with
 * ceil_mode the last window must start inside the input or the begin padding. Padding never wins;
 * an output is at least -FLT_MAX (onnxruntime's result for a window over padding only). */
ODC_DEFINE_KERNEL(maxpool2d_f32) {
  if (check_counts(a, 1, 1, 1, 1, 11, 0, e)) return 1;
  return run_pool<true>(a, e, false);
}

/* avgpool2d_f32
 * inputs : X [N, C, H, W];  outputs: Y [N, C, OH, OW]
 * iparams: [kernel_h, kernel_w, stride_h, stride_w, pad_t, pad_l, pad_b, pad_r, dil_h, dil_w,
 *           ceil_mode, count_include_pad]
 * fparams: []
 * Divisor: taps inside the input (count_include_pad=0) or inside the padded extent
 * (count_include_pad=1; a ceil_mode window hanging past the end padding counts only up to it). */
ODC_DEFINE_KERNEL(avgpool2d_f32) {
  if (check_counts(a, 1, 1, 1, 1, 12, 0, e)) return 1;
  return run_pool<false>(a, e, true);
}

/* global_avgpool_f32
 * inputs : X [N, C, spatial...] (rank >= 3);  outputs: Y [N, C, 1, ...] (same rank, or [N, C])
 * iparams: [];  fparams: [] */
ODC_DEFINE_KERNEL(global_avgpool_f32) {
  if (check_counts(a, 1, 1, 1, 1, 0, 0, e)) return 1;
  View X, Y;
  if (get_view(a->inputs[0], "input 0 (X)", 3, ODC_MAX_RANK, false, &X, e)) return 1;
  if (get_view(a->outputs[0], "output 0 (Y)", 2, ODC_MAX_RANK, false, &Y, e)) return 1;
  char s1[128], s2[128];
  bool ok_shape = Y.shape[0] == X.shape[0] && Y.shape[1] == X.shape[1] &&
                  (Y.ndim == 2 || Y.ndim == X.ndim);
  for (int d = 2; d < Y.ndim && ok_shape; ++d) ok_shape = Y.shape[d] == 1;
  if (!ok_shape)
    return e.fail("output Y %s does not fit X %s", shape_str(Y, s1, 128), shape_str(X, s2, 128));
  if (check_no_overlap(Y, "Y", X, "X", false, e)) return 1;
  const int64_t planes = X.shape[0] * X.shape[1];
  const int64_t hw = planes ? X.numel / planes : 0;
  if (planes == 0) return 0;
  const float inv = hw ? 1.0f / (float)hw : 0.f;
  const int T = threads_for(X.numel, 1 << 16, a->num_threads);
  const bool ok = parallel_run(T, [&](int tid) {
    int64_t b, en;
    split_range(planes, T, tid, &b, &en);
    for (int64_t q = b; q < en; ++q) {
      const float* x = X.data + q * hw;
      float s = 0.f;
#pragma omp simd reduction(+ : s)
      for (int64_t i = 0; i < hw; ++i) s += x[i];
      Y.data[q] = hw ? s * inv : std::numeric_limits<float>::quiet_NaN();
    }
  });
  if (!ok) return e.fail("internal error in worker");
  return 0;
}
