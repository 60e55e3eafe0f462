// Resize (NCHW fp32, spatial dims only): resize_nearest_f32, resize_bilinear_f32.
#include <algorithm>
#include <cmath>
#include <vector>

#include "internal.h"

namespace odc_native {
namespace {

enum Coord { HALF_PIXEL = 0, ALIGN_CORNERS = 1, ASYMMETRIC = 2, PYTORCH_HALF_PIXEL = 3 };
enum Nearest { ROUND_PREFER_FLOOR = 0, ROUND_PREFER_CEIL = 1, FLOOR = 2, CEIL = 3 };

// ONNX coordinate transformation: output coordinate -> input coordinate.
double to_input(int64_t xo, int64_t in, int64_t out, double scale, int mode) {
  switch (mode) {
    case HALF_PIXEL: return (xo + 0.5) / scale - 0.5;
    case PYTORCH_HALF_PIXEL: return out > 1 ? (xo + 0.5) / scale - 0.5 : 0.0;
    case ALIGN_CORNERS: return out == 1 ? 0.0 : (double)xo * (double)(in - 1) / (double)(out - 1);
    default: return xo / scale;
  }
}

int resize_setup(const odc_kernel_args* a, int n_ip, View* X, View* Y, double* sh, double* sw,
                 Err& e) {
  if (check_counts(a, 1, 1, 1, 1, n_ip, 2, e)) return 1;
  if (get_view(a->inputs[0], "input 0 (X)", 4, 4, false, X, e)) return 1;
  if (get_view(a->outputs[0], "output 0 (Y)", 4, 4, false, Y, e)) return 1;
  char s1[128], s2[128];
  if (Y->shape[0] != X->shape[0] || Y->shape[1] != X->shape[1])
    return e.fail("output Y %s must keep X's %s batch and channel dims", shape_str(*Y, s1, 128),
                  shape_str(*X, s2, 128));
  if (Y->numel > 0 && (X->shape[2] == 0 || X->shape[3] == 0))
    return e.fail("cannot resize an empty input to a non-empty output");
  const int64_t cm = a->iparams[0];
  if (cm < 0 || cm > 3) return e.fail("coordinate mode %lld not in 0..3", (long long)cm);
  *sh = a->fparams[0] > 0 ? a->fparams[0] : (double)Y->shape[2] / (double)std::max<int64_t>(1, X->shape[2]);
  *sw = a->fparams[1] > 0 ? a->fparams[1] : (double)Y->shape[3] / (double)std::max<int64_t>(1, X->shape[3]);
  if (!std::isfinite(*sh) || !std::isfinite(*sw)) return e.fail("scales must be finite");
  return check_no_overlap(*Y, "Y", *X, "X", false, e);
}

// Nearest picks an index, so a coordinate on a tie (exactly n or n + 0.5 in exact arithmetic)
// must round as onnxruntime's does: in float, scale = float(out) / float(in), its formulas
// (double gave index 3 where onnxruntime gives 2 for 7 -> 1 rows, half_pixel, floor).
float to_input_f(int64_t xo, int64_t in, int64_t out, float scale, int mode) {
  const float x = (float)xo;
  switch (mode) {
    case HALF_PIXEL: return (x + 0.5f) / scale - 0.5f;
    case PYTORCH_HALF_PIXEL: return out > 1 ? (x + 0.5f) / scale - 0.5f : 0.0f;
    case ALIGN_CORNERS: return out == 1 ? 0.0f : x * (float)(in - 1) / (float)(out - 1);
    default: return x / scale;
  }
}
int64_t nearest_index(double x, int64_t in, int mode) {
  double f = std::floor(x);
  double r;
  switch (mode) {
    case ROUND_PREFER_FLOOR: r = (x - f == 0.5) ? f : std::round(x); break;
    case ROUND_PREFER_CEIL: r = (x - f == 0.5) ? f + 1 : std::round(x); break;
    case FLOOR: r = f; break;
    default: r = std::ceil(x); break;
  }
  if (r < 0) r = 0;
  if (r > (double)(in - 1)) r = (double)(in - 1);
  return (int64_t)r;
}

}  // namespace
}  // namespace odc_native

using namespace odc_native;

/* resize_nearest_f32
 * inputs : X [N, C, H, W];  outputs: Y [N, C, OH, OW]
 * iparams: [coordinate_mode (0 half_pixel, 1 align_corners, 2 asymmetric, 3 pytorch_half_pixel),
 *           nearest_mode (0 round_prefer_floor, 1 round_prefer_ceil, 2 floor, 3 ceil)]
 * fparams: [scale_h, scale_w]  (<= 0: use OH/H, OW/W) */
ODC_DEFINE_KERNEL(resize_nearest_f32) {
  View X, Y;
  double sh, sw;
  if (resize_setup(a, 2, &X, &Y, &sh, &sw, e)) return 1;
  const int cm = (int)a->iparams[0];
  const int64_t nm = a->iparams[1];
  if (nm < 0 || nm > 3) return e.fail("nearest mode %lld not in 0..3", (long long)nm);
  if (Y.numel == 0) return 0;
  const int64_t H = X.shape[2], W = X.shape[3], OH = Y.shape[2], OW = Y.shape[3];
  std::vector<int64_t> iy(OH), ix(OW);
  const float fh = a->fparams[0] > 0 ? (float)a->fparams[0] : (float)OH / (float)H;
  const float fw = a->fparams[1] > 0 ? (float)a->fparams[1] : (float)OW / (float)W;
  (void)sh, (void)sw;
  for (int64_t o = 0; o < OH; ++o) iy[o] = nearest_index(to_input_f(o, H, OH, fh, cm), H, (int)nm);
  for (int64_t o = 0; o < OW; ++o) ix[o] = nearest_index(to_input_f(o, W, OW, fw, cm), W, (int)nm);
  const int64_t planes = X.shape[0] * X.shape[1];
  const int T = threads_for(Y.numel, 1 << 16, a->num_threads);
  const bool ok = parallel_run(T, [&](int tid) {
    int64_t b, en;
    split_range(planes, T, tid, &b, &en);
    for (int64_t q = b; q < en; ++q)
      for (int64_t oy = 0; oy < OH; ++oy) {
        const float* xr = X.data + (q * H + iy[oy]) * W;
        float* yr = Y.data + (q * OH + oy) * OW;
        for (int64_t ox = 0; ox < OW; ++ox) yr[ox] = xr[ix[ox]];
      }
  });
  if (!ok) return e.fail("internal error in worker");
  return 0;
}

/* resize_bilinear_f32 (ONNX Resize mode=linear on H, W)
 * inputs : X [N, C, H, W];  outputs: Y [N, C, OH, OW]
 * iparams: [coordinate_mode (0 half_pixel, 1 align_corners, 2 asymmetric, 3 pytorch_half_pixel)]
 * fparams: [scale_h, scale_w]  (<= 0: use OH/H, OW/W)
 * Source coordinates are clamped to [0, in-1]. */
ODC_DEFINE_KERNEL(resize_bilinear_f32) {
  View X, Y;
  double sh, sw;
  if (resize_setup(a, 1, &X, &Y, &sh, &sw, e)) return 1;
  const int cm = (int)a->iparams[0];
  if (Y.numel == 0) return 0;
  const int64_t H = X.shape[2], W = X.shape[3], OH = Y.shape[2], OW = Y.shape[3];
  struct Tap {
    int64_t i0, i1;
    float w1;
  };
  auto taps = [&](int64_t in, int64_t out, double scale) {
    std::vector<Tap> t((size_t)out);
    for (int64_t o = 0; o < out; ++o) {
      double x = to_input(o, in, out, scale, cm);
      x = std::min(std::max(x, 0.0), (double)(in - 1));
      int64_t i0 = (int64_t)std::floor(x);
      t[o] = Tap{i0, std::min(i0 + 1, in - 1), (float)(x - (double)i0)};
    }
    return t;
  };
  const std::vector<Tap> ty = taps(H, OH, sh), tx = taps(W, OW, sw);
  const int64_t planes = X.shape[0] * X.shape[1];
  const int T = threads_for(Y.numel, 1 << 15, a->num_threads);
  // input rows that some output row reads (upsampling: every row, once)
  std::vector<char> used((size_t)H, 0);
  for (int64_t oy = 0; oy < OH; ++oy) used[(size_t)ty[oy].i0] = used[(size_t)ty[oy].i1] = 1;
  const bool ok = parallel_run(T, [&](int tid) {
    int64_t b, en;
    split_range(planes, T, tid, &b, &en);
    float* hrows = thread_scratch(3, H * OW);  // each used input row, interpolated along W
    for (int64_t q = b; q < en; ++q) {
      const float* xp = X.data + q * H * W;
      for (int64_t iy = 0; iy < H; ++iy) {
        if (!used[(size_t)iy]) continue;
        const float* xr = xp + iy * W;
        float* hr = hrows + iy * OW;
        for (int64_t ox = 0; ox < OW; ++ox) {
          const Tap& t = tx[ox];
          hr[ox] = xr[t.i0] + (xr[t.i1] - xr[t.i0]) * t.w1;
        }
      }
      for (int64_t oy = 0; oy < OH; ++oy) {
        const float* r0 = hrows + ty[oy].i0 * OW;
        const float* r1 = hrows + ty[oy].i1 * OW;
        const float wy = ty[oy].w1;
        float* yr = Y.data + (q * OH + oy) * OW;
        for (int64_t ox = 0; ox < OW; ++ox) yr[ox] = r0[ox] + (r1[ox] - r0[ox]) * wy;
      }
    }
  });
  if (!ok) return e.fail("internal error in worker");
  return 0;
}
