// Depthwise convolution (NCHW, fp32, group == C): depthwise_conv2d_f32, direct, with fused
// bias + residual + activation.
#include "conv.h"

#include <algorithm>

using namespace odc_native;

namespace {
// multiply-adds per thread worth waking a second thread for (blocked path)
constexpr int64_t kDwGrain = 1 << 17;

// Channel-blocked path (RowOps::dw_block) or one plane at a time (RowOps::dw_plane).
bool use_blocked(int64_t KH, int64_t KW, int64_t sw, int64_t OW) {
  // The blocked path transposes every input and output element (16x16 shuffles), the per-plane
  // path vectorizes along the row: with few taps, stride 1 and wide rows the per-plane path wins
  // (3x3 on 56x56, 144 channels: 270 vs 359 us, 1 thread), otherwise the blocked one (stride 2
  // 3x3 on 112x112, 64 channels: 280 vs 356 us; 5x5 on 28x28: 180 vs 2846 us; MobileNetV3's
  // 2x2..16x16 planes: 15x).
  return !(KH * KW <= 9 && sw == 1 && OW >= 24);
}
}  // namespace

/* depthwise_conv2d_f32: direct depthwise conv (group == C, Co = C * multiplier)
 * inputs : X [N, C, H, W], W [Co, 1, KH, KW], B [Co] (optional), R [N, Co, OH, OW] (optional)
 * outputs: Y [N, Co, OH, OW]
 * iparams: [stride_h, stride_w, pad_t, pad_l, pad_b, pad_r, dil_h, dil_w, group, act,
 *           residual_after_act]   (group must equal C)
 * fparams: [act_alpha, act_beta]
 * workspace: 0. Two paths: channel-blocked (RowOps::dw_block: 16 channels per vector, any
 * kernel / stride / dilation / plane size, one task per 16 channels x band of rows, bias +
 * residual + activation applied while the block is in cache) for small planes and larger
 * kernels; one plane at a time (RowOps::dw_plane, vectorized along the row, then the epilogue)
 * for few taps on wide rows.
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
  const int64_t work = N * Co * OHW * KH * KW;  // multiply-adds
  if (use_blocked(KH, KW, p.sw, OW)) {
    // channel-blocked: tasks = (batch, 16 channels, band of output rows)
    const int64_t nb = (Co + 15) / 16;
    const int64_t Wp = (OW - 1) * p.sw + (KW - 1) * p.dw + 1, kr = (KH - 1) * p.dh + 1;
    // bands of rows whose padded input block stays within ~64 KiB
    int64_t rc = OH;
    while (rc > 1 && ((rc - 1) * p.sh + kr) * Wp * 16 > 16384) rc = (rc + 1) / 2;
    int64_t nch = (OH + rc - 1) / rc;
    const int T = threads_for(work, kDwGrain, a->num_threads);
    if (N * nb * nch < T) {  // too few tasks for the threads: thinner bands
      nch = std::min<int64_t>(OH, (T + N * nb - 1) / (N * nb));
      rc = (OH + nch - 1) / nch;
      nch = (OH + rc - 1) / rc;
    }
    const int64_t tasks = N * nb * nch;
    const bool ok = parallel_run(T, [&](int tid) {
      int64_t b, en;
      split_range(tasks, T, tid, &b, &en);
      for (int64_t q = b; q < en; ++q) {
        const int64_t n = q / (nb * nch), blk = (q / nch) % nb, band = q % nch;
        DwArgs d;
        d.x = X.data + n * C * H * W;
        d.w = Wt.data;
        d.bias = B.data;
        d.res = R.data ? R.data + n * Co * OHW : nullptr;
        d.y = Y.data + n * Co * OHW;
        d.H = H, d.W = W, d.OH = OH, d.OW = OW, d.mult = mult;
        d.KH = (int)KH, d.KW = (int)KW, d.sh = (int)p.sh, d.sw = (int)p.sw;
        d.pt = (int)p.pt, d.pl = (int)p.pl, d.dh = (int)p.dh, d.dw = (int)p.dw;
        d.act = (int)p.act, d.res_after_act = (int)p.rafter;
        d.act_a = p.act_a, d.act_b = p.act_b;
        const int64_t c0 = blk * 16, oy0 = band * rc;
        o.dw_block(d, c0, (int)std::min<int64_t>(16, Co - c0), oy0, std::min(OH, oy0 + rc));
      }
    });
    if (!ok) return e.fail("internal error in worker");
    return 0;
  }
  const int64_t planes = N * Co;
  const int T = threads_for(work, 1 << 15, a->num_threads);
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
