// Convolutions (NCHW, fp32): conv2d_f32 / conv2d_packed_f32 (implicit-im2col GEMM over packed
// weights) and conv_transpose2d_f32 (GEMM + col2im), with fused bias + residual + activation.
// Depthwise convolution is in dwconv.cc.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

#include "conv.h"

namespace odc_native {
namespace {

// Packed weights (conv2d_packed_f32; conv2d_f32 packs per call): 32-wide panels of output
// channels, Wp[g][q][k][j] = W[g*Mg + q*32 + j][k] (zero where q*32 + j >= Mg), with
// k = (c*KH + ky)*KW + kx. 32 is a multiple of every ISA's NR, so the layout does not depend on
// the CPU the module runs on: an NR-wide sub-panel starts at j % 32 and has row stride 32.
constexpr int64_t kPanel = 32;

struct ConvShape {
  int64_t N, C, H, W, Co, KH, KW, OH, OW, G, Cg, Mg, Kg, P, NQ;
};

ConvShape conv_shape(const View& X, int64_t Co, int64_t KH, int64_t KW, const View& Y,
                     int64_t G) {
  ConvShape s;
  s.N = X.shape[0], s.C = X.shape[1], s.H = X.shape[2], s.W = X.shape[3];
  s.Co = Co, s.KH = KH, s.KW = KW, s.OH = Y.shape[2], s.OW = Y.shape[3], s.G = G;
  s.Cg = s.C / G, s.Mg = Co / G, s.Kg = s.Cg * KH * KW, s.P = s.OH * s.OW;
  s.NQ = (s.Mg + kPanel - 1) / kPanel;
  return s;
}

void pack_weights(const ConvShape& s, const float* W, float* Wp) {
  for (int64_t g = 0; g < s.G; ++g)
    for (int64_t q = 0; q < s.NQ; ++q) {
      float* d = Wp + (g * s.NQ + q) * s.Kg * kPanel;
      const int64_t m0 = q * kPanel, mn = std::min<int64_t>(kPanel, s.Mg - m0);
      for (int64_t k = 0; k < s.Kg; ++k) {
        float* dk = d + k * kPanel;
        int64_t j = 0;
        for (; j < mn; ++j) dk[j] = W[(g * s.Mg + m0 + j) * s.Kg + k];
        for (; j < kPanel; ++j) dk[j] = 0.f;
      }
    }
}

// Y = epilogue(conv(X, W)) as C^T[P x Mg] = im2col(X)^T[P x Kg] * W^T[Kg x Mg] per image and
// group: output pixels are the micro-kernel's rows (packed MR at a time straight from X, no
// im2col buffer), output channels its columns (read from the packed weights, never repacked).
// A tile of C^T is transposed into Y's rows, where bias, residual and activation are applied.
int conv_packed(const ConvShape& s, const ConvParams& p, const float* X, const float* Wp,
                 const float* B, const float* R, float* Y, int nthreads, Err& e) {
  const RowOps& o = ops();
  const int MR = o.mr, NR = o.nr;
  const int64_t KC = o.kc, lda = (MR + 7) / 8 * 8;
  // Pointwise (1x1, stride 1, no padding) over a large map: X[n] is already the [C, P] B operand
  // of Y[n] = W[Co, C] X[n]. Output channels are the micro-kernel's rows, read straight from
  // the packed weights (rows of a 32-channel panel: lda 32), pixels its columns, packed once
  // per block and reused by every channel tile; Y is written in place (no transpose).
  const bool pointwise = s.KH == 1 && s.KW == 1 && p.sh == 1 && p.sw == 1 && !p.pt && !p.pl &&
                         !p.pb && !p.pr;
  if (pointwise && s.P >= 64) {
    const int64_t NB = 256;  // pixels per block: B block kc x 256 (256 KiB at most, L2)
    const int64_t npbk = (s.P + NB - 1) / NB, ptasks = s.N * s.G * npbk;
    const int TT = threads_for(s.N * s.Co * s.P * s.Kg, int64_t(1) << 16, nthreads);
    const int64_t tiles_per_panel = (std::min<int64_t>(kPanel, s.Mg) + MR - 1) / MR;
    const bool has_epi = B || R || p.act != ACT_NONE;
    const bool ok = parallel_run(TT, [&](int tid) {
      int64_t tb, te;
      split_range(ptasks, TT, tid, &tb, &te);
      float* Bp = thread_scratch(1, std::min(KC, s.Kg) * ((NB + NR - 1) / NR * NR));
      for (int64_t t = tb; t < te; ++t) {
        const int64_t pbi = t % npbk, ng = t / npbk, g = ng % s.G, n = ng / s.G;
        const int64_t j0 = pbi * NB, nb = std::min(NB, s.P - j0);
        const BMatrix xb(X + (n * s.C + g * s.Cg) * s.P, s.P, false);
        float* yg = Y + (n * s.Co + g * s.Mg) * s.P;
        for (int64_t k0 = 0; k0 < s.Kg; k0 += KC) {
          const int64_t kc = std::min(KC, s.Kg - k0);
          xb.pack(k0, kc, j0, nb, NR, Bp);
          for (int64_t q = 0; q < s.NQ; ++q) {
            const int64_t pc = std::min<int64_t>(kPanel, s.Mg - q * kPanel);
            const int64_t th = (pc + tiles_per_panel - 1) / tiles_per_panel;  // balanced tiles
            const float* wq = Wp + ((g * s.NQ + q) * s.Kg + k0) * kPanel;
            for (int64_t i0 = 0; i0 < pc; i0 += th) {
              const int mm = (int)std::min<int64_t>(th, pc - i0);
              float* yc = yg + (q * kPanel + i0) * s.P + j0;
              for (int64_t jp = 0; jp < nb; jp += NR)
                o.ukr_mn(kc, wq + i0, kPanel, Bp + (jp / NR) * kc * NR, NR, yc + jp, s.P, k0 > 0,
                         mm, (int)std::min<int64_t>(NR, nb - jp));
            }
          }
        }
        if (has_epi)
          for (int64_t j = 0; j < s.Mg; ++j) {
            const int64_t oc = g * s.Mg + j;
            o.epilogue(Y + (n * s.Co + oc) * s.P + j0, nb, 1.f, B ? B + oc : nullptr, 0, 1.f,
                       R ? R + (n * s.Co + oc) * s.P + j0 : nullptr, (int)p.act, p.act_a,
                       p.act_b, (int)p.rafter);
          }
      }
    });
    return ok ? 0 : e.fail("out of memory (packing buffers)");
  }
  // Implicit im2col: A(k, pixel) = Xp[koff[k] + poff[pixel]] over the zero-padded input Xp.
  // Horizontal stride 2 (dilation 1): Xp is stored column-deinterleaved, even columns then odd
  // ones (rows of W2 = ceil(Wpad / 2)), so the outputs of a row read consecutive elements again.
  const int64_t Hp = s.H + p.pt + p.pb, Wpad = s.W + p.pl + p.pr;
  const bool deint = p.sw == 2 && p.dw == 1 && s.KW > 1;  // 1x1: the copy would cost more
  const int64_t W2 = deint ? (Wpad + 1) / 2 : Wpad, half = Hp * W2;
  const int64_t plane = deint ? 2 * half : Hp * Wpad;
  if (s.Cg * plane >= (int64_t(1) << 31))
    return e.fail("input of %lld x %lld x %lld per group is too large (2^31 elements)",
                  (long long)s.Cg, (long long)Hp, (long long)Wpad);
  const bool padded = p.pt || p.pl || p.pb || p.pr;
  const int T = threads_for(s.N * s.Co * s.P * s.Kg, int64_t(1) << 16, nthreads);
  // The zero-padded (and, for stride 2, column-deinterleaved) input is built by each task for
  // the rows it reads, in a per-thread buffer of the full layout (so koff / poff stay global):
  // the copy is spread over the threads and stays in the cache of the core that reads it.
  const bool copy_input = padded || deint;
  const int64_t e0 = (p.pl + 1) / 2, e1 = std::min(W2, (s.W - 1 + p.pl) / 2 + 1);
  const int64_t o0 = p.pl / 2;
  const int64_t o1 = s.W - 2 + p.pl < 0 ? 0 : std::min(W2, (s.W - 2 + p.pl) / 2 + 1);
  // padded rows [y0, y1) of channels [c0, c1) of image n into xp
  auto pad_rows = [&](float* xp, int64_t n, int64_t c0, int64_t c1, int64_t y0, int64_t y1) {
    for (int64_t c = c0; c < c1; ++c) {
      float* d = xp + (n * s.C + c) * plane;
      for (int64_t y = y0; y < y1; ++y) {
        const int64_t iy = y - p.pt;
        const bool inside = iy >= 0 && iy < s.H;
        const float* x = X + ((n * s.C + c) * s.H + iy) * s.W;  // valid when inside
        if (deint) {
          // column 2j (+1 for odd) of the padded row reads x[2j (+1) - pl] when inside
          float* ev = d + y * W2;
          float* od = d + half + y * W2;
          std::memset(ev, 0, W2 * 4);
          std::memset(od, 0, W2 * 4);
          if (!inside) continue;
          const float* xe = x - p.pl;
          for (int64_t j = e0; j < e1; ++j) ev[j] = xe[2 * j];
          for (int64_t j = o0; j < o1; ++j) od[j] = xe[2 * j + 1];
          continue;
        }
        float* row = d + y * Wpad;
        if (!inside) {
          std::memset(row, 0, Wpad * 4);
          continue;
        }
        std::memset(row, 0, p.pl * 4);
        std::memcpy(row + p.pl, x, s.W * 4);
        std::memset(row + p.pl + s.W, 0, p.pr * 4);
      }
    }
  };
  // Rows of >= 8 outputs reading consecutive elements (stride 1, or 2 deinterleaved):
  // micro-kernel panels lie inside output rows, so A rows are read in place (ukr_ind).
  // Otherwise panels are gathered (pack_gather), and the images of the batch share the pixel
  // dimension (2x2 maps of two images: one 8-row panel, each weight read once).
  const int64_t colstep = deint ? 1 : p.sw;
  const bool rows_mode = colstep == 1 && s.OW >= 8;
  const bool fold = !rows_mode && s.N > 1 && s.N * s.C * plane < (int64_t(1) << 31);
  const int64_t NP = fold ? s.N * s.P : s.P;  // pixels per job row space
  std::vector<int32_t> koff((size_t)s.Kg), poff((size_t)NP);
  for (int64_t c = 0, k = 0; c < s.Cg; ++c)
    for (int64_t ky = 0; ky < s.KH; ++ky)
      for (int64_t kx = 0; kx < s.KW; ++kx)
        koff[k++] = (int32_t)(deint ? c * plane + (kx & 1) * half + ky * p.dh * W2 + (kx >> 1)
                                    : c * plane + ky * p.dh * Wpad + kx * p.dw);
  for (int64_t n = 0, q = 0; n < (fold ? s.N : 1); ++n)
    for (int64_t oy = 0; oy < s.OH; ++oy)
      for (int64_t ox = 0; ox < s.OW; ++ox)
        poff[q++] = (int32_t)(n * s.C * plane + oy * p.sh * W2 + ox * colstep);
  // pixel blocks of ~128: whole output rows (rows mode) or a multiple of MR, balanced
  // With T threads, aim for at least 2T blocks (when the image allows) so that small maps still
  // spread over the threads; the channel split below covers what is left.
  const int64_t images = (fold ? 1 : s.N) * s.G;
  // Few pixels and many channels (deep, small maps): the weights are most of the traffic, so
  // the threads split the channels (each reads its share of the weights) rather than the pixels.
  const bool weights_bound = s.Mg >= NP && s.Mg > 16;
  const int64_t want_blocks = T > 1 && !weights_bound ? (2 * T + images - 1) / images : 1;
  int64_t PB, npb;
  if (rows_mode) {
    int64_t rows = std::max<int64_t>(1, 128 / s.OW);
    rows = std::max<int64_t>(1, std::min(rows, s.OH / want_blocks));
    PB = rows * s.OW;
    npb = (s.OH + rows - 1) / rows;
  } else {
    const int64_t target = std::max<int64_t>(MR, (128 / MR) * MR);
    npb = std::max((NP + target - 1) / target, std::min(want_blocks, NP / MR));
    PB = ((NP + npb - 1) / npb + MR - 1) / MR * MR;
    npb = (NP + PB - 1) / PB;
  }
  const int64_t npr = (s.OW + MR - 1) / MR, hpr = (s.OW + npr - 1) / npr;  // panels per row
  const int64_t jobs = (fold ? 1 : s.N) * s.G * npb;
  // few blocks: also split the output channels (NR-aligned chunks) across threads
  const int64_t cols = (s.Mg + NR - 1) / NR;
  // Few output channels (<= 16, which would fill half a micro-kernel row or less): channels are
  // the micro-kernel's rows and the pixels of an output row its columns, read in place
  // (ukr_indb); C is Y itself, no transposition.
  const bool crows = rows_mode && s.Mg <= 16;
  int64_t ncc = 1;
  if (jobs < 2 * T && !crows) ncc = std::min<int64_t>(cols, (2 * T + jobs - 1) / jobs);
  const int64_t CW = (cols + ncc - 1) / ncc * NR;
  ncc = (s.Mg + CW - 1) / CW;
  const int64_t tasks = jobs * ncc;
  const bool has_epilogue = B || R || p.act != ACT_NONE;
  // Static, contiguous split of the tasks (image-major, then rows): consecutive layers keep
  // each image region on the same core (its input rows were written there).
  const bool ok = parallel_run(T, [&](int tid) {
    int64_t tb, te;
    split_range(tasks, T, tid, &tb, &te);
    int64_t last_n0 = -1, last_n1 = -1, last_g = -1, last_y0 = -1, last_y1 = -1;  // rows padded
    for (int64_t t = tb; t < te; ++t) {
      const int64_t cc = t % ncc, job = t / ncc;
      const int64_t pbi = job % npb, ng = job / npb, g = ng % s.G, n = ng / s.G;
      const int64_t p0 = pbi * PB, pb = std::min(PB, NP - p0);
      const int64_t j0 = cc * CW, j1 = std::min(s.Mg, j0 + CW);
      if (pb <= 0 || j0 >= j1) continue;
      const int64_t ldct = (j1 - j0 + NR - 1) / NR * NR, pbr = (pb + MR - 1) / MR * MR;
      float* Ct = thread_scratch(2, pbr * ldct);
      const float* xs = X;
      if (copy_input) {
        // the rows this block reads (gathered panels: every row of the images it touches)
        int64_t n0 = n, n1 = n + 1, y0 = 0, y1 = Hp;
        if (fold) n0 = p0 / s.P, n1 = (p0 + pb - 1) / s.P + 1;
        if (rows_mode) {
          y0 = (p0 / s.OW) * p.sh;
          y1 = std::min(Hp, ((p0 + pb - 1) / s.OW) * p.sh + (s.KH - 1) * p.dh + 1);
        }
        float* xp = thread_scratch(5, s.N * s.C * plane);
        if (n0 != last_n0 || n1 != last_n1 || g != last_g || y0 != last_y0 || y1 != last_y1) {
          for (int64_t ni = n0; ni < n1; ++ni) pad_rows(xp, ni, g * s.Cg, (g + 1) * s.Cg, y0, y1);
          last_n0 = n0, last_n1 = n1, last_g = g, last_y0 = y0, last_y1 = y1;
        }
        xs = xp;
      }
      const float* xg = xs + (n * s.C + g * s.Cg) * plane;
      if (crows) {
        const int64_t rows = pb / s.OW, P = s.P;
        const int64_t ncp = (s.Mg + MR - 1) / MR, hc = (s.Mg + ncp - 1) / ncp;
        for (int64_t k0 = 0; k0 < s.Kg; k0 += KC) {
          const int64_t kc = std::min(KC, s.Kg - k0);
          for (int64_t q = 0; q < ncp; ++q) {
            const int64_t i0 = q * hc;
            const int mm = (int)std::min<int64_t>(hc, s.Mg - i0);
            const float* ap = Wp + (g * s.NQ * s.Kg + k0) * kPanel + i0;
            float* yc = Y + (n * s.Co + g * s.Mg + i0) * P + p0;
            for (int64_t r = 0; r < rows; ++r)
              for (int64_t px = 0; px < s.OW; px += NR)
                o.ukr_indb(kc, ap, kPanel, xg + poff[p0 + r * s.OW + px], koff.data() + k0,
                           yc + r * s.OW + px, P, k0 > 0, mm,
                           (int)std::min<int64_t>(NR, s.OW - px));
          }
        }
        if (has_epilogue)
          for (int64_t j = 0; j < s.Mg; ++j) {
            const int64_t oc = g * s.Mg + j;
            o.epilogue(Y + (n * s.Co + oc) * P + p0, pb, 1.f, B ? B + oc : nullptr, 0, 1.f,
                       R ? R + (n * s.Co + oc) * P + p0 : nullptr, (int)p.act, p.act_a, p.act_b,
                       (int)p.rafter);
          }
        continue;
      }
      if (rows_mode) {
        const int64_t rows = pb / s.OW;
        for (int64_t k0 = 0; k0 < s.Kg; k0 += KC) {
          const int64_t kc = std::min(KC, s.Kg - k0);
          for (int64_t j = j0; j < j1; j += NR) {
            const int nn = (int)std::min<int64_t>(NR, j1 - j);
            const float* bp = Wp + ((g * s.NQ + j / kPanel) * s.Kg + k0) * kPanel + j % kPanel;
            for (int64_t r = 0; r < rows; ++r)
              for (int64_t q = 0; q < npr; ++q) {
                const int64_t px = r * s.OW + q * hpr;
                o.ukr_ind(kc, xg + poff[p0 + px], koff.data() + k0, bp, kPanel,
                          Ct + px * ldct + (j - j0), ldct, k0 > 0,
                          (int)std::min<int64_t>(hpr, s.OW - q * hpr), nn);
              }
          }
        }
      } else {
        // pixel panels of balanced height (16 pixels: 8 + 8, not 14 + 2)
        const int64_t npan = pbr / MR, hp = (pb + npan - 1) / npan;
        // K blocks keep a weight panel slice (kc x 32) in L1 across the pixel panels; with a
        // single pixel panel there is no reuse to protect: one block
        const int64_t KB = pbr == MR ? s.Kg : KC;
        float* Ap = thread_scratch(0, pbr / MR * lda * std::min(KB, s.Kg));
        for (int64_t k0 = 0; k0 < s.Kg; k0 += KB) {
          const int64_t kc = std::min(KB, s.Kg - k0);
          for (int64_t q = 0; q < npan; ++q)
            o.pack_gather(xg, koff.data() + k0, kc, poff.data() + p0 + q * hp,
                          (int)std::min<int64_t>(hp, pb - q * hp), Ap + q * kc * lda, lda);
          for (int64_t j = j0; j < j1; j += NR) {
            const int nn = (int)std::min<int64_t>(NR, j1 - j);
            const float* bp = Wp + ((g * s.NQ + j / kPanel) * s.Kg + k0) * kPanel + j % kPanel;
            for (int64_t q = 0; q < npan; ++q) {
              const int mm = (int)std::min<int64_t>(hp, pb - q * hp);
              o.ukr_mn(kc, Ap + q * kc * lda, lda, bp, kPanel, Ct + q * hp * ldct + (j - j0),
                       ldct, k0 > 0, mm, nn);
            }
          }
        }
      }
      // C^T tile -> Y rows (a strided read of Ct, which is in L1/L2; contiguous writes), then
      // the epilogue on the row while it is hot; a folded block is cut at image boundaries
      for (int64_t q0 = p0; q0 < p0 + pb;) {
        const int64_t img = fold ? q0 / s.P : n, lp = fold ? q0 - img * s.P : q0;
        const int64_t len = std::min(p0 + pb - q0, s.P - lp);
        for (int64_t j = j0; j < j1; ++j) {
          const int64_t oc = g * s.Mg + j;
          float* y = Y + (img * s.Co + oc) * s.P + lp;
          const float* ct = Ct + (q0 - p0) * ldct + (j - j0);
          for (int64_t i = 0; i < len; ++i) y[i] = ct[i * ldct];
          if (has_epilogue)
            o.epilogue(y, len, 1.f, B ? B + oc : nullptr, 0, 1.f,
                       R ? R + (img * s.Co + oc) * s.P + lp : nullptr, (int)p.act, p.act_a,
                       p.act_b, (int)p.rafter);
        }
        q0 += len;
      }
    }
  });
  return ok ? 0 : e.fail("out of memory (packing buffers)");
}

}  // namespace
}  // namespace odc_native

using namespace odc_native;

/* conv2d_f32: Y = act(conv(X, W) + B [+ R]) [+ R]
 * inputs : X [N, C, H, W], W [Co, C/group, KH, KW], B [Co] (optional), R [N, Co, OH, OW] (optional)
 * outputs: Y [N, Co, OH, OW], OH = (H + pad_t + pad_b - ((KH-1)*dil_h + 1)) / stride_h + 1
 * iparams: [stride_h, stride_w, pad_t, pad_l, pad_b, pad_r, dil_h, dil_w, group, act,
 *           residual_after_act]
 * fparams: [act_alpha, act_beta]
 * workspace: 0 (W is packed per call into a per-thread buffer; constant weights should use
 *            conv2d_packed_f32, packed once at compile time)
 * Y must not overlap any input. */
ODC_DEFINE_KERNEL(conv2d_f32) {
  if (check_counts(a, 2, 4, 1, 1, 11, 2, e)) return 1;
  ConvParams p;
  if (parse_conv_params(a, &p, e) || parse_epilogue_params(a, 9, &p, e)) return 1;
  View X, Wt, B, R, Y;
  if (conv_views(a, p, &X, &Wt, &B, &R, &Y, e)) return 1;
  if (Y.numel == 0) return 0;
  const ConvShape s = conv_shape(X, Wt.shape[0], Wt.shape[2], Wt.shape[3], Y, p.group);
  float* Wp = thread_scratch(3, s.G * s.NQ * s.Kg * kPanel);
  pack_weights(s, Wt.data, Wp);
  return conv_packed(s, p, X.data, Wp, B.data, R.data, Y.data, a->num_threads, e);
}

/* conv2d_packed_f32: conv2d_f32 with the weights packed at compile time
 * inputs : X [N, C, H, W], Wp [group, ceil(Mg/32), Cg*KH*KW, 32] with Cg = C/group,
 *          Mg = Co/group: Wp[g][q][k][j] = W[g*Mg + q*32 + j][k] for q*32 + j < Mg, else 0,
 *          k = (c*KH + ky)*KW + kx; B [Co] (optional), R [N, Co, OH, OW] (optional)
 * outputs: Y [N, Co, OH, OW]
 * iparams: [stride_h, stride_w, pad_t, pad_l, pad_b, pad_r, dil_h, dil_w, group, act,
 *           residual_after_act, Co, KH, KW]
 * fparams: [act_alpha, act_beta]
 * workspace: 0. Y must not overlap any input. */
ODC_DEFINE_KERNEL(conv2d_packed_f32) {
  if (check_counts(a, 2, 4, 1, 1, 14, 2, e)) return 1;
  ConvParams p;
  if (parse_conv_params(a, &p, e) || parse_epilogue_params(a, 9, &p, e)) return 1;
  const int64_t Co = a->iparams[11], KH = a->iparams[12], KW = a->iparams[13];
  const int64_t lim = int64_t(1) << 30;
  if (Co < 1 || KH < 1 || KW < 1 || Co > lim || KH > lim || KW > lim)
    return e.fail("Co, KH, KW must be >= 1, got %lld, %lld, %lld", (long long)Co, (long long)KH,
                  (long long)KW);
  View X, Wp, B, R, Y;
  if (get_view(a->inputs[0], "input 0 (X)", 4, 4, false, &X, e)) return 1;
  if (get_view(a->inputs[1], "input 1 (Wp)", 4, 4, false, &Wp, e)) return 1;
  const int64_t G = p.group, C = X.shape[1];
  if (C % G || Co % G)
    return e.fail("C=%lld and Co=%lld must be multiples of group=%lld", (long long)C,
                  (long long)Co, (long long)G);
  const int64_t Kg = C / G * KH * KW, NQ = (Co / G + kPanel - 1) / kPanel;
  char s1[128];
  if (Wp.shape[0] != G || Wp.shape[1] != NQ || Wp.shape[2] != Kg || Wp.shape[3] != kPanel)
    return e.fail("packed weights Wp %s, expected [%lld, %lld, %lld, 32]",
                  shape_str(Wp, s1, 128), (long long)G, (long long)NQ, (long long)Kg);
  // the shared checks, against the logical weight shape
  View Wl = Wp;
  Wl.shape[0] = Co, Wl.shape[1] = C / G, Wl.shape[2] = KH, Wl.shape[3] = KW;
  if (conv_check(a, p, X, Wl, &B, &R, &Y, e)) return 1;
  if (check_no_overlap(Y, "Y", Wp, "Wp", false, e)) return 1;
  if (Y.numel == 0) return 0;
  const ConvShape s = conv_shape(X, Co, KH, KW, Y, G);
  return conv_packed(s, p, X.data, Wp.data, B.data, R.data, Y.data, a->num_threads, e);
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
