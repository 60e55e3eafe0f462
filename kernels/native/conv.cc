// Convolutions (NCHW, fp32): conv2d_f32 (implicit-im2col GEMM), depthwise_conv2d_f32 (direct),
// conv_transpose2d_f32 (GEMM + col2im). All with fused bias + residual + activation.
#include <algorithm>
#include <cstring>

#include "conv.h"

namespace odc_native {
namespace {

// B = im2col(x) for one image and one group, packed directly into GEMM panels (never
// materialized): B(k, n) with k = (c, ky, kx), n = (oy, ox).
struct Im2colB : BSource {
  const float* x;
  int64_t H, W, KH, KW, sh, sw, pt, pl, dh, dw, OH, OW;
  void pack(int64_t k0, int64_t kc, int64_t n0, int64_t nc, int nr, float* dst) const override {
    struct Run {
      int64_t j0, len, oy, ox0;
    };
    Run runs[66];
    for (int64_t p = 0; p * nr < nc; ++p) {
      const int64_t c0 = n0 + p * nr;
      const int64_t ce = std::min<int64_t>(nr, nc - p * nr);
      float* d = dst + p * kc * nr;
      int nrun = 0;
      for (int64_t j = 0; j < ce;) {
        const int64_t n = c0 + j, oy = n / OW, ox = n % OW;
        const int64_t len = std::min<int64_t>(ce - j, OW - ox);
        runs[nrun++] = Run{j, len, oy, ox};
        j += len;
      }
      int64_t c = k0 / (KH * KW), r = k0 % (KH * KW), ky = r / KW, kx = r % KW;
      for (int64_t kk = 0; kk < kc; ++kk) {
        float* dk = d + kk * nr;
        for (int q = 0; q < nrun; ++q) {
          const Run& ru = runs[q];
          float* o = dk + ru.j0;
          const int64_t iy = ru.oy * sh - pt + ky * dh;
          if (iy < 0 || iy >= H) {
            for (int64_t t = 0; t < ru.len; ++t) o[t] = 0.f;
            continue;
          }
          const float* row = x + (c * H + iy) * W;
          const int64_t ix0 = ru.ox0 * sw - pl + kx * dw;
          int64_t tlo = ix0 >= 0 ? 0 : (-ix0 + sw - 1) / sw;
          int64_t thi = ix0 <= W - 1 ? (W - 1 - ix0) / sw + 1 : 0;
          if (tlo > ru.len) tlo = ru.len;
          if (thi > ru.len) thi = ru.len;
          if (thi < tlo) thi = tlo;
          int64_t t = 0;
          for (; t < tlo; ++t) o[t] = 0.f;
          if (sw == 1) {
            const float* s = row + ix0;
            for (; t < thi; ++t) o[t] = s[t];
          } else {
            for (; t < thi; ++t) o[t] = row[ix0 + t * sw];
          }
          for (; t < ru.len; ++t) o[t] = 0.f;
        }
        for (int64_t j = ce; j < nr; ++j) dk[j] = 0.f;
        if (++kx == KW) {
          kx = 0;
          if (++ky == KH) ky = 0, ++c;
        }
      }
    }
  }
};

}  // namespace
}  // namespace odc_native

using namespace odc_native;

/* conv2d_f32: Y = act(conv(X, W) + B [+ R]) [+ R]
 * inputs : X [N, C, H, W], W [Co, C/group, KH, KW], B [Co] (optional), R [N, Co, OH, OW] (optional)
 * outputs: Y [N, Co, OH, OW], OH = (H + pad_t + pad_b - ((KH-1)*dil_h + 1)) / stride_h + 1
 * iparams: [stride_h, stride_w, pad_t, pad_l, pad_b, pad_r, dil_h, dil_w, group, act,
 *           residual_after_act]
 * fparams: [act_alpha, act_beta]
 * workspace: 0 (im2col is packed on the fly into per-thread GEMM panels; 1x1/s1/p0 skips it)
 * Y must not overlap any input. */
ODC_DEFINE_KERNEL(conv2d_f32) {
  if (check_counts(a, 2, 4, 1, 1, 11, 2, e)) return 1;
  ConvParams p;
  if (parse_conv_params(a, &p, e) || parse_epilogue_params(a, 9, &p, e)) return 1;
  View X, Wt, B, R, Y;
  if (conv_views(a, p, &X, &Wt, &B, &R, &Y, e)) return 1;
  if (Y.numel == 0) return 0;
  const int64_t N = X.shape[0], C = X.shape[1], H = X.shape[2], W = X.shape[3];
  const int64_t Co = Wt.shape[0], KH = Wt.shape[2], KW = Wt.shape[3];
  const int64_t OH = Y.shape[2], OW = Y.shape[3], G = p.group;
  const int64_t Cg = C / G, Mg = Co / G, Kg = Cg * KH * KW, OHW = OH * OW;
  const bool pointwise = KH == 1 && KW == 1 && p.sh == 1 && p.sw == 1 && p.pt == 0 &&
                         p.pl == 0 && p.pb == 0 && p.pr == 0;
  const int nt = a->num_threads;
  const int64_t jobs = N * G;
  const int64_t per_job = Mg * OHW * Kg;
  // Many small GEMMs (grouped convs, batches of small images): one thread per GEMM.
  const bool outer = jobs >= nt && nt > 1 && (per_job < (int64_t(1) << 22) || jobs >= 4 * nt);
  auto run_job = [&](int64_t job, int threads) -> bool {
    const int64_t n = job / G, g = job % G;
    const float* xg = X.data + (n * C + g * Cg) * H * W;
    Epilogue ep;
    ep.act = (int)p.act, ep.act_a = p.act_a, ep.act_b = p.act_b, ep.res_after_act = (int)p.rafter;
    if (B.data) ep.bias = B.data + g * Mg, ep.bias_rs = 1, ep.bias_cs = 0;
    if (R.data) ep.res = R.data + (n * Co + g * Mg) * OHW, ep.res_ld = OHW;
    float* yg = Y.data + (n * Co + g * Mg) * OHW;
    const float* wg = Wt.data + g * Mg * Kg;
    if (pointwise) return sgemm(Mg, OHW, Kg, wg, Kg, false, BMatrix(xg, H * W, false), yg, OHW,
                                ep, threads);
    Im2colB src;
    src.x = xg, src.H = H, src.W = W, src.KH = KH, src.KW = KW, src.sh = p.sh, src.sw = p.sw;
    src.pt = p.pt, src.pl = p.pl, src.dh = p.dh, src.dw = p.dw, src.OH = OH, src.OW = OW;
    return sgemm(Mg, OHW, Kg, wg, Kg, false, src, yg, OHW, ep, threads);
  };
  bool ok = true;
  if (outer) {
    ok = parallel_run(nt, [&](int tid) {
      int64_t b, en;
      split_range(jobs, nt, tid, &b, &en);
      for (int64_t j = b; j < en; ++j)
        if (!run_job(j, 1)) throw std::bad_alloc();
    });
  } else {
    for (int64_t j = 0; j < jobs && ok; ++j) ok = run_job(j, nt);
  }
  if (!ok) return e.fail("out of memory (packing buffers)");
  return 0;
}

/* conv_transpose2d_f32: Y = act(conv_transpose(X, W) + B [+ R]) [+ R]
 * inputs : X [N, C, H, W], W [C, Co/group, KH, KW], B [Co] (optional), R [N, Co, OH, OW] (optional)
 * outputs: Y [N, Co, OH, OW],
 *          OH = (H-1)*stride_h - pad_t - pad_b + (KH-1)*dil_h + 1 + out_pad_h
 * iparams: [stride_h, stride_w, pad_t, pad_l, pad_b, pad_r, dil_h, dil_w, group,
 *           out_pad_h, out_pad_w, act, residual_after_act]
 * fparams: [act_alpha, act_beta]
 * workspace: (Co/group)*KH*KW*H*W*4 bytes for the column buffer (used when the plan provides at
 *            least that much, else per-thread scratch kept by the library).
 * Y must not overlap any input. */
ODC_DEFINE_KERNEL(conv_transpose2d_f32) {
  if (check_counts(a, 2, 4, 1, 1, 13, 2, e)) return 1;
  ConvParams p;
  if (parse_conv_params(a, &p, e) || parse_epilogue_params(a, 11, &p, e)) return 1;
  const int64_t oph = a->iparams[9], opw = a->iparams[10];
  if (oph < 0 || opw < 0 || oph >= std::max(p.sh, p.dh) || opw >= std::max(p.sw, p.dw))
    return e.fail("output_padding [%lld, %lld] must be >= 0 and < max(stride, dilation)",
                  (long long)oph, (long long)opw);
  View X, Wt, B, R, Y;
  if (get_view(a->inputs[0], "input 0 (X)", 4, 4, false, &X, e)) return 1;
  if (get_view(a->inputs[1], "input 1 (W)", 4, 4, false, &Wt, e)) return 1;
  if (a->num_inputs > 2 && get_view(a->inputs[2], "input 2 (B)", 1, 1, true, &B, e)) return 1;
  if (a->num_inputs > 3 && get_view(a->inputs[3], "input 3 (R)", 4, 4, true, &R, e)) return 1;
  if (get_view(a->outputs[0], "output 0 (Y)", 4, 4, false, &Y, e)) return 1;
  char s1[128], s2[128];
  const int64_t N = X.shape[0], C = X.shape[1], H = X.shape[2], W = X.shape[3];
  const int64_t G = p.group, KH = Wt.shape[2], KW = Wt.shape[3];
  if (Wt.shape[0] != C || C % G)
    return e.fail("X %s and W %s do not fit group=%lld", shape_str(X, s1, 128),
                  shape_str(Wt, s2, 128), (long long)G);
  const int64_t Cog = Wt.shape[1], Co = Cog * G, Cg = C / G;
  const int64_t OH = (H - 1) * p.sh - p.pt - p.pb + (KH - 1) * p.dh + 1 + oph;
  const int64_t OW = (W - 1) * p.sw - p.pl - p.pr + (KW - 1) * p.dw + 1 + opw;
  if (KH < 1 || KW < 1 || H < 1 || W < 1 || OH < 1 || OW < 1)
    return e.fail("empty input/kernel or non-positive output size");
  if (Y.shape[0] != N || Y.shape[1] != Co || Y.shape[2] != OH || Y.shape[3] != OW)
    return e.fail("output Y %s, expected [%lld, %lld, %lld, %lld]", shape_str(Y, s1, 128),
                  (long long)N, (long long)Co, (long long)OH, (long long)OW);
  if (B.data && B.shape[0] != Co)
    return e.fail("bias B %s, expected [%lld]", shape_str(B, s1, 128), (long long)Co);
  if (R.data && !std::equal(R.shape, R.shape + 4, Y.shape))
    return e.fail("residual R %s must have Y's shape %s", shape_str(R, s1, 128),
                  shape_str(Y, s2, 128));
  if (check_no_overlap(Y, "Y", X, "X", false, e) || check_no_overlap(Y, "Y", Wt, "W", false, e) ||
      check_no_overlap(Y, "Y", B, "B", false, e) || check_no_overlap(Y, "Y", R, "R", false, e))
    return 1;
  if (Y.numel == 0) return 0;
  const int64_t M = Cog * KH * KW, HW = H * W, OHW = OH * OW;
  float* col = (a->workspace && a->workspace_size >= M * HW * 4)
                   ? static_cast<float*>(a->workspace)
                   : thread_scratch(2, M * HW);
  const RowOps& o = ops();
  const int nt = a->num_threads;
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t g = 0; g < G; ++g) {
      // col[M, HW] = W_g^T [M, Cg] @ X_g [Cg, HW]
      Epilogue none;
      if (!sgemm(M, HW, Cg, Wt.data + g * Cg * M, M, true,
                 BMatrix(X.data + (n * C + g * Cg) * HW, HW, false), col, HW, none, nt))
        return e.fail("out of memory (packing buffers)");
      const int T = threads_for(Cog * OHW * KH * KW, 1 << 15, nt);
      const bool ok = parallel_run(T, [&](int tid) {
        int64_t cb, ce;
        split_range(Cog, T, tid, &cb, &ce);
        for (int64_t co = cb; co < ce; ++co) {
          const int64_t oc = g * Cog + co;
          float* y = Y.data + (n * Co + oc) * OHW;
          std::memset(y, 0, OHW * 4);
          for (int64_t ky = 0; ky < KH; ++ky)
            for (int64_t kx = 0; kx < KW; ++kx) {
              const float* cr = col + ((co * KH + ky) * KW + kx) * HW;
              // ox = ix*sw - pl + kx*dw in [0, OW)
              const int64_t off = kx * p.dw - p.pl;
              int64_t ixlo = off >= 0 ? 0 : (-off + p.sw - 1) / p.sw;
              int64_t ixhi = OW - 1 - off >= 0 ? (OW - 1 - off) / p.sw + 1 : 0;
              ixhi = std::min(ixhi, W);
              if (ixhi <= ixlo) continue;
              for (int64_t iy = 0; iy < H; ++iy) {
                const int64_t oy = iy * p.sh - p.pt + ky * p.dh;
                if (oy < 0 || oy >= OH) continue;
                float* yr = y + oy * OW + off;
                const float* cx = cr + iy * W;
                if (p.sw == 1)
                  o.axpy(1.f, cx + ixlo, yr + ixlo, ixhi - ixlo);
                else
                  for (int64_t ix = ixlo; ix < ixhi; ++ix) yr[ix * p.sw] += cx[ix];
              }
            }
          if (B.data || R.data || p.act != ACT_NONE)
            o.epilogue(y, OHW, 1.f, B.data ? B.data + oc : nullptr, 0, 1.f,
                       R.data ? R.data + (n * Co + oc) * OHW : nullptr, (int)p.act, p.act_a,
                       p.act_b, (int)p.rafter);
        }
      });
      if (!ok) return e.fail("internal error in worker");
    }
  }
  return 0;
}
