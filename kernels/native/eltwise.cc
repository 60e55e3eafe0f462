// binary_f32 (add/sub/mul/div/max/min with numpy broadcasting + fused activation) and unary_f32.
#include <algorithm>

#include "internal.h"

using namespace odc_native;

namespace {
// Short broadcast rows (SE blocks: [1, C, 2, 2] * [1, C, 1, 1]): y rows [r0, r1) of n elements,
// operand rows at ra / rb floats apart, element strides ia / ib (0 or 1), in one loop instead of
// one row call per row.
template <int OP>
inline float bin_op(float x, float y) {
  if (OP == BIN_ADD) return x + y;
  if (OP == BIN_SUB) return x - y;
  if (OP == BIN_MUL) return x * y;
  if (OP == BIN_DIV) return x / y;
  if (OP == BIN_MAX) return x > y ? x : y;
  return x < y ? x : y;
}
template <int OP>
void short_rows(const float* a, int64_t ra, int64_t ia, const float* b, int64_t rb, int64_t ib,
                float* y, int64_t n, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* pa = a + r * ra;
    const float* pb = b + r * rb;
    float* py = y + r * n;
    if (ia && !ib) {
      const float v = pb[0];
      for (int64_t j = 0; j < n; ++j) py[j] = bin_op<OP>(pa[j], v);
    } else if (!ia && ib) {
      const float v = pa[0];
      for (int64_t j = 0; j < n; ++j) py[j] = bin_op<OP>(v, pb[j]);
    } else {
      for (int64_t j = 0; j < n; ++j) py[j] = bin_op<OP>(pa[j * ia], pb[j * ib]);
    }
  }
}
void short_rows_any(int op, const float* a, int64_t ra, int64_t ia, const float* b, int64_t rb,
                    int64_t ib, float* y, int64_t n, int64_t r0, int64_t r1) {
  switch (op) {
    case BIN_ADD: short_rows<BIN_ADD>(a, ra, ia, b, rb, ib, y, n, r0, r1); break;
    case BIN_SUB: short_rows<BIN_SUB>(a, ra, ia, b, rb, ib, y, n, r0, r1); break;
    case BIN_MUL: short_rows<BIN_MUL>(a, ra, ia, b, rb, ib, y, n, r0, r1); break;
    case BIN_DIV: short_rows<BIN_DIV>(a, ra, ia, b, rb, ib, y, n, r0, r1); break;
    case BIN_MAX: short_rows<BIN_MAX>(a, ra, ia, b, rb, ib, y, n, r0, r1); break;
    default: short_rows<BIN_MIN>(a, ra, ia, b, rb, ib, y, n, r0, r1); break;
  }
}
}  // namespace

/* binary_f32: Y = act(op(A, B)), numpy broadcasting
 * inputs : A [...], B [...];  outputs: Y [broadcast(A, B)] (may be A or B itself when that input
 *          already has Y's shape: in place)
 * iparams: [op (0 add, 1 sub, 2 mul, 3 div, 4 max, 5 min), act]
 * fparams: [act_alpha, act_beta] */
ODC_DEFINE_KERNEL(binary_f32) {
  if (check_counts(a, 2, 2, 1, 1, 2, 2, e)) return 1;
  View A, B, Y;
  if (get_view(a->inputs[0], "input 0 (A)", 0, ODC_MAX_RANK, false, &A, e)) return 1;
  if (get_view(a->inputs[1], "input 1 (B)", 0, ODC_MAX_RANK, false, &B, e)) return 1;
  if (get_view(a->outputs[0], "output 0 (Y)", 0, ODC_MAX_RANK, false, &Y, e)) return 1;
  const int64_t op = a->iparams[0], act = a->iparams[1];
  if (op < 0 || op >= BIN_COUNT) return e.fail("op %lld not in 0..%d", (long long)op, BIN_COUNT - 1);
  if (parse_act(act, "iparams[1]", e)) return 1;
  const float fa = (float)a->fparams[0], fb = (float)a->fparams[1];
  char s1[128], s2[128], s3[128];
  const int r = Y.ndim;
  if (A.ndim > r || B.ndim > r)
    return e.fail("Y %s has lower rank than A %s / B %s", shape_str(Y, s1, 128),
                  shape_str(A, s2, 128), shape_str(B, s3, 128));
  // aligned shapes and element strides (0 where broadcast)
  int64_t shp[ODC_MAX_RANK], sa[ODC_MAX_RANK], sb[ODC_MAX_RANK];
  {
    int64_t ca = 1, cb = 1;
    for (int d = r - 1; d >= 0; --d) {
      const int da = d - (r - A.ndim), db = d - (r - B.ndim);
      const int64_t ad = da >= 0 ? A.shape[da] : 1, bd = db >= 0 ? B.shape[db] : 1;
      const int64_t yd = Y.shape[d];
      const int64_t want = ad == 1 ? bd : ad;
      if ((ad != 1 && bd != 1 && ad != bd) || yd != want)
        return e.fail("shapes do not broadcast: A %s, B %s -> Y %s", shape_str(A, s1, 128),
                      shape_str(B, s2, 128), shape_str(Y, s3, 128));
      shp[d] = yd;
      sa[d] = (ad == 1) ? 0 : ca;
      sb[d] = (bd == 1) ? 0 : cb;
      ca *= ad;
      cb *= bd;
    }
  }
  const bool a_same = A.numel == Y.numel && A.ndim <= r, b_same = B.numel == Y.numel && B.ndim <= r;
  if (check_no_overlap(Y, "Y", A, "A", a_same, e) || check_no_overlap(Y, "Y", B, "B", b_same, e))
    return 1;
  if (Y.numel == 0) return 0;
  // collapse dims: merge d into d+1 when both operands stay linear
  int64_t cs[ODC_MAX_RANK + 1], ca_[ODC_MAX_RANK + 1], cb_[ODC_MAX_RANK + 1];
  int nd = 0;
  for (int d = 0; d < r; ++d) {
    if (shp[d] == 1) continue;
    if (nd > 0 && ca_[nd - 1] == sa[d] * shp[d] && cb_[nd - 1] == sb[d] * shp[d]) {
      cs[nd - 1] *= shp[d];
      ca_[nd - 1] = sa[d];
      cb_[nd - 1] = sb[d];
    } else {
      cs[nd] = shp[d], ca_[nd] = sa[d], cb_[nd] = sb[d];
      ++nd;
    }
  }
  if (nd == 0) cs[0] = 1, ca_[0] = 1, cb_[0] = 1, nd = 1;
  const int64_t n = cs[nd - 1], ia = ca_[nd - 1], ib = cb_[nd - 1];  // inner: strides 0 or 1
  const int64_t rows = Y.numel / n;
  const RowOps& o = ops();
  // split long rows into chunks so that small outer counts still parallelize
  const int64_t chunk = std::max<int64_t>(4096, (n + 3) / 4);
  const int64_t nch = (n + chunk - 1) / chunk;
  const int T = threads_for(Y.numel, 1 << 15, a->num_threads);
  if (nd <= 2 && n < 32) {  // short rows, one outer dim: no per-row index math or row calls
    const int64_t ra = nd == 2 ? ca_[0] : 0, rb = nd == 2 ? cb_[0] : 0;
    const bool ok = parallel_run(T, [&](int tid) {
      int64_t b, en;
      split_range(rows, T, tid, &b, &en);
      short_rows_any((int)op, A.data, ra, ia, B.data, rb, ib, Y.data, n, b, en);
      if (act != ACT_NONE && en > b)
        o.unary(Y.data + b * n, Y.data + b * n, (en - b) * n, (int)act, fa, fb);
    });
    if (!ok) return e.fail("internal error in worker");
    return 0;
  }
  const bool ok = parallel_run(T, [&](int tid) {
    int64_t b, en;
    split_range(rows * nch, T, tid, &b, &en);
    int64_t idx[ODC_MAX_RANK + 1];
    for (int64_t w = b; w < en; ++w) {
      const int64_t row = w / nch, c0 = (w % nch) * chunk, cn = std::min(chunk, n - c0);
      int64_t rem = row, oa = 0, ob = 0;
      for (int d = nd - 2; d >= 0; --d) {
        idx[d] = rem % cs[d];
        rem /= cs[d];
        oa += idx[d] * ca_[d];
        ob += idx[d] * cb_[d];
      }
      float* y = Y.data + row * n + c0;
      o.binary(A.data + oa + c0 * ia, ia, B.data + ob + c0 * ib, ib, y, cn, (int)op);
      if (act != ACT_NONE) o.unary(y, y, cn, (int)act, fa, fb);
    }
  });
  if (!ok) return e.fail("internal error in worker");
  return 0;
}

/* unary_f32: Y = act(X)
 * inputs : X [...];  outputs: Y (X's shape; may be X itself)
 * iparams: [act] (0 none/copy, 1 relu, 2 clip(alpha=min, beta=max), 3 sigmoid, 4 silu,
 *          5 hardswish, 6 gelu_erf, 7 gelu_tanh, 8 leaky_relu(alpha), 9 tanh,
 *          10 hardsigmoid(alpha, beta), 11 exp, 12 abs, 13 neg, 14 sqrt, 15 reciprocal, 16 erf,
 *          17 elu(alpha))
 * fparams: [act_alpha, act_beta] */
ODC_DEFINE_KERNEL(unary_f32) {
  if (check_counts(a, 1, 1, 1, 1, 1, 2, e)) return 1;
  View X, Y;
  if (get_view(a->inputs[0], "input 0 (X)", 0, ODC_MAX_RANK, false, &X, e)) return 1;
  if (get_view(a->outputs[0], "output 0 (Y)", 0, ODC_MAX_RANK, false, &Y, e)) return 1;
  char s1[128], s2[128];
  if (X.ndim != Y.ndim || !std::equal(X.shape, X.shape + X.ndim, Y.shape))
    return e.fail("output Y %s must have X's shape %s", shape_str(Y, s1, 128),
                  shape_str(X, s2, 128));
  if (parse_act(a->iparams[0], "iparams[0]", e)) return 1;
  if (check_no_overlap(Y, "Y", X, "X", true, e)) return 1;
  const int act = (int)a->iparams[0];
  const float fa = (float)a->fparams[0], fb = (float)a->fparams[1];
  const RowOps& o = ops();
  const int64_t n = X.numel;
  const int T = threads_for(n, 1 << 15, a->num_threads);
  const bool ok = parallel_run(T, [&](int tid) {
    int64_t b, en;
    split_range(n, T, tid, &b, &en);
    if (en > b) o.unary(X.data + b, Y.data + b, en - b, act, fa, fb);
  });
  if (!ok) return e.fail("internal error in worker");
  return 0;
}
