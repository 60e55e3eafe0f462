// softmax_f32 and layer_norm_f32.
#include <algorithm>
#include <cmath>
#include <limits>

#include "internal.h"

using namespace odc_native;

static int norm_axis(int64_t axis, int ndim, Err& e) {
  if (axis < -ndim || axis >= ndim)
    return e.fail("axis %lld out of range for rank %d", (long long)axis, ndim), -1;
  return (int)(axis < 0 ? axis + ndim : axis);
}

/* softmax_f32 (ONNX Softmax / LogSoftmax, opset >= 13 semantics: one axis)
 * inputs : X [...];  outputs: Y (X's shape; may be X itself: in place)
 * iparams: [axis, log]   (log = 1: LogSoftmax)
 * fparams: []
 * Numerically stable (max subtracted). The last axis is the fast path. */
ODC_DEFINE_KERNEL(softmax_f32) {
  if (check_counts(a, 1, 1, 1, 1, 2, 0, e)) return 1;
  View X, Y;
  if (get_view(a->inputs[0], "input 0 (X)", 1, ODC_MAX_RANK, false, &X, e)) return 1;
  if (get_view(a->outputs[0], "output 0 (Y)", 1, ODC_MAX_RANK, false, &Y, e)) return 1;
  char s1[128], s2[128];
  if (X.ndim != Y.ndim || !std::equal(X.shape, X.shape + X.ndim, Y.shape))
    return e.fail("output Y %s must have X's shape %s", shape_str(Y, s1, 128),
                  shape_str(X, s2, 128));
  if (check_no_overlap(Y, "Y", X, "X", true, e)) return 1;
  const int ax = norm_axis(a->iparams[0], X.ndim, e);
  if (ax < 0) return 1;
  const int64_t lg = a->iparams[1];
  if (lg != 0 && lg != 1) return e.fail("log must be 0 or 1");
  if (X.numel == 0) return 0;
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < ax; ++d) outer *= X.shape[d];
  for (int d = ax + 1; d < X.ndim; ++d) inner *= X.shape[d];
  const int64_t n = X.shape[ax];
  const RowOps& o = ops();
  const int T = threads_for(X.numel, 1 << 14, a->num_threads);
  const bool ok = parallel_run(T, [&](int tid) {
    int64_t b, en;
    split_range(outer, T, tid, &b, &en);
    if (inner == 1 && n < 32) {
      // short rows (detection heads: n = 4..16): per-row max and sum are a few scalar ops, the
      // exponentials of a block of rows one vectorized pass
      constexpr int64_t kRows = 128;
      float* ex = thread_scratch(3, kRows * n + kRows);
      float* mx = ex + kRows * n;
      for (int64_t r0 = b; r0 < en; r0 += kRows) {
        const int64_t rn = std::min(kRows, en - r0);
        const float* x = X.data + r0 * n;
        float* y = Y.data + r0 * n;
        for (int64_t r = 0; r < rn; ++r) {
          float m = -std::numeric_limits<float>::infinity();
          for (int64_t j = 0; j < n; ++j) m = std::max(m, x[r * n + j]);
          if (std::isinf(m) && m < 0) m = 0;
          mx[r] = m;
          for (int64_t j = 0; j < n; ++j) ex[r * n + j] = x[r * n + j] - m;
        }
        o.unary(ex, ex, rn * n, ACT_EXP, 0.f, 0.f);
        for (int64_t r = 0; r < rn; ++r) {
          float sum = 0.f;
          for (int64_t j = 0; j < n; ++j) sum += ex[r * n + j];
          if (lg) {
            const float ls = mx[r] + std::log(sum);
            for (int64_t j = 0; j < n; ++j) y[r * n + j] = x[r * n + j] - ls;
          } else {
            const float inv = 1.0f / sum;
            for (int64_t j = 0; j < n; ++j) y[r * n + j] = ex[r * n + j] * inv;
          }
        }
      }
      return;
    }
    if (inner == 1) {
      for (int64_t r = b; r < en; ++r) o.softmax(X.data + r * n, Y.data + r * n, n, (int)lg);
      return;
    }
    float* m = thread_scratch(3, 2 * inner);
    float* s = m + inner;
    for (int64_t r = b; r < en; ++r) {
      const float* x = X.data + r * n * inner;
      float* y = Y.data + r * n * inner;
      for (int64_t i = 0; i < inner; ++i) m[i] = -std::numeric_limits<float>::infinity(), s[i] = 0;
      for (int64_t k = 0; k < n; ++k)
        for (int64_t i = 0; i < inner; ++i) m[i] = std::max(m[i], x[k * inner + i]);
      for (int64_t i = 0; i < inner; ++i)
        if (std::isinf(m[i]) && m[i] < 0) m[i] = 0;
      for (int64_t k = 0; k < n; ++k) {
        for (int64_t i = 0; i < inner; ++i) y[k * inner + i] = x[k * inner + i] - m[i];
        o.unary(y + k * inner, y + k * inner, inner, ACT_EXP, 0.f, 0.f);
        for (int64_t i = 0; i < inner; ++i) s[i] += y[k * inner + i];
      }
      if (lg) {
        for (int64_t i = 0; i < inner; ++i) s[i] = std::log(s[i]);
        for (int64_t k = 0; k < n; ++k)
          for (int64_t i = 0; i < inner; ++i) y[k * inner + i] = x[k * inner + i] - m[i] - s[i];
      } else {
        for (int64_t i = 0; i < inner; ++i) s[i] = 1.0f / s[i];
        for (int64_t k = 0; k < n; ++k)
          for (int64_t i = 0; i < inner; ++i) y[k * inner + i] *= s[i];
      }
    }
  });
  if (!ok) return e.fail("internal error in worker");
  return 0;
}

/* layer_norm_f32 (ONNX LayerNormalization)
 * inputs : X [...], Scale (optional), B (optional) -- each with prod(X.shape[axis:]) elements
 * outputs: Y (X's shape; may be X itself), Mean (optional), InvStdDev (optional) -- each with
 *          prod(X.shape[:axis]) elements
 * iparams: [axis]
 * fparams: [epsilon]
 * Y = (X - mean) / sqrt(var + epsilon) * Scale + B over the trailing dims from axis. */
ODC_DEFINE_KERNEL(layer_norm_f32) {
  if (check_counts(a, 1, 3, 1, 3, 1, 1, e)) return 1;
  View X, S, B, Y, Mn, Is;
  if (get_view(a->inputs[0], "input 0 (X)", 1, ODC_MAX_RANK, false, &X, e)) return 1;
  if (a->num_inputs > 1 && get_view(a->inputs[1], "input 1 (Scale)", 0, ODC_MAX_RANK, true, &S, e))
    return 1;
  if (a->num_inputs > 2 && get_view(a->inputs[2], "input 2 (B)", 0, ODC_MAX_RANK, true, &B, e))
    return 1;
  if (get_view(a->outputs[0], "output 0 (Y)", 1, ODC_MAX_RANK, false, &Y, e)) return 1;
  if (a->num_outputs > 1 &&
      get_view(a->outputs[1], "output 1 (Mean)", 0, ODC_MAX_RANK, true, &Mn, e))
    return 1;
  if (a->num_outputs > 2 &&
      get_view(a->outputs[2], "output 2 (InvStdDev)", 0, ODC_MAX_RANK, true, &Is, e))
    return 1;
  char s1[128], s2[128];
  if (X.ndim != Y.ndim || !std::equal(X.shape, X.shape + X.ndim, Y.shape))
    return e.fail("output Y %s must have X's shape %s", shape_str(Y, s1, 128),
                  shape_str(X, s2, 128));
  const int ax = norm_axis(a->iparams[0], X.ndim, e);
  if (ax < 0) return 1;
  const float eps = (float)a->fparams[0];
  if (!(eps >= 0.f)) return e.fail("epsilon must be >= 0");
  int64_t outer = 1, n = 1;
  for (int d = 0; d < ax; ++d) outer *= X.shape[d];
  for (int d = ax; d < X.ndim; ++d) n *= X.shape[d];
  if (S.data && S.numel != n)
    return e.fail("Scale %s must have %lld elements", shape_str(S, s1, 128), (long long)n);
  if (B.data && B.numel != n)
    return e.fail("B %s must have %lld elements", shape_str(B, s1, 128), (long long)n);
  if (B.data && !S.data) return e.fail("B given without Scale");
  if (Mn.data && Mn.numel != outer)
    return e.fail("Mean %s must have %lld elements", shape_str(Mn, s1, 128), (long long)outer);
  if (Is.data && Is.numel != outer)
    return e.fail("InvStdDev %s must have %lld elements", shape_str(Is, s1, 128),
                  (long long)outer);
  if (check_no_overlap(Y, "Y", X, "X", true, e) || check_no_overlap(Y, "Y", S, "Scale", false, e) ||
      check_no_overlap(Y, "Y", B, "B", false, e) || check_no_overlap(Mn, "Mean", X, "X", false, e) ||
      check_no_overlap(Is, "InvStdDev", X, "X", false, e) ||
      check_no_overlap(Mn, "Mean", Y, "Y", false, e) ||
      check_no_overlap(Is, "InvStdDev", Y, "Y", false, e))
    return 1;
  if (X.numel == 0) return 0;
  const RowOps& o = ops();
  const int T = threads_for(X.numel, 1 << 14, a->num_threads);
  const bool ok = parallel_run(T, [&](int tid) {
    int64_t b, en;
    split_range(outer, T, tid, &b, &en);
    for (int64_t r = b; r < en; ++r)
      o.layernorm(X.data + r * n, Y.data + r * n, n, S.data, B.data, eps,
                  Mn.data ? Mn.data + r : nullptr, Is.data ? Is.data + r : nullptr);
  });
  if (!ok) return e.fail("internal error in worker");
  return 0;
}
