// Depthwise convolution (NCHW, fp32, group == C): depthwise_conv2d_f32, direct, with fused
// bias + residual + activation.
#include "conv.h"

using namespace odc_native;

/* depthwise_conv2d_f32: direct depthwise conv (group == C, Co = C * multiplier)
 * inputs : X [N, C, H, W], W [Co, 1, KH, KW], B [Co] (optional), R [N, Co, OH, OW] (optional)
 * outputs: Y [N, Co, OH, OW]
 * iparams: [stride_h, stride_w, pad_t, pad_l, pad_b, pad_r, dil_h, dil_w, group, act,
 *           residual_after_act]   (group must equal C)
 * fparams: [act_alpha, act_beta]
 * workspace: 0. Fast paths: 3x3 and 5x5 with stride 1, dilation 1 (vectorized interior).
 * Y must not overlap any input. */
ODC_DEFINE_KERNEL(depthwise_conv2d_f32) {
  if (check_counts(a, 2, 4, 1, 1, 11, 2, e)) return 1;
  ConvParams p;
  if (parse_conv_params(a, &p, e) || parse_epilogue_params(a, 9, &p, e)) return 1;
  View X, Wt, B, R, Y;
  if (conv_views(a, p, &X, &Wt, &B, &R, &Y, e)) return 1;
  const int64_t N = X.shape[0], C = X.shape[1], H = X.shape[2], W = X.shape[3];
  if (p.group != C || Wt.shape[1] != 1)
    return e.fail("depthwise needs group == C (group=%lld, C=%lld)", (long long)p.group,
                  (long long)C);
  if (Y.numel == 0) return 0;
  const int64_t Co = Wt.shape[0], KH = Wt.shape[2], KW = Wt.shape[3], mult = Co / C;
  const int64_t OH = Y.shape[2], OW = Y.shape[3], OHW = OH * OW;
  if (KH > (1 << 20) || KW > (1 << 20)) return e.fail("kernel too large");
  const RowOps& o = ops();
  const int64_t planes = N * Co;
  const int T = threads_for(planes * OHW * KH * KW, 1 << 15, a->num_threads);
  const bool ok = parallel_run(T, [&](int tid) {
    int64_t b, en;
    split_range(planes, T, tid, &b, &en);
    for (int64_t q = b; q < en; ++q) {
      const int64_t n = q / Co, oc = q % Co, ic = oc / mult;
      float* y = Y.data + q * OHW;
      o.dw_plane(X.data + (n * C + ic) * H * W, H, W, Wt.data + oc * KH * KW, (int)KH, (int)KW,
                 (int)p.sh, (int)p.sw, (int)p.pt, (int)p.pl, (int)p.dh, (int)p.dw, y, OH, OW);
      if (B.data || R.data || p.act != ACT_NONE)
        o.epilogue(y, OHW, 1.f, B.data ? B.data + oc : nullptr, 0, 1.f,
                   R.data ? R.data + q * OHW : nullptr, (int)p.act, p.act_a, p.act_b,
                   (int)p.rafter);
    }
  });
  if (!ok) return e.fail("internal error in worker");
  return 0;
}
