// ONNX Pad (any fixed-size dtype; modes constant / reflect / edge / wrap; negative pads crop).
// Like the movement kernels it never interprets the bytes: elements move by size, the constant
// is passed as its bit pattern.
#include <algorithm>
#include <cstring>

#include "internal.h"

using namespace odc_native;

namespace {

enum PadMode { PAD_CONSTANT = 0, PAD_REFLECT = 1, PAD_EDGE = 2, PAD_WRAP = 3 };

int pad_elem_size(int32_t dtype) {
  switch (dtype) {
    case ODC_UINT8: case ODC_INT8: case ODC_BOOL: return 1;
    case ODC_UINT16: case ODC_INT16: case ODC_FLOAT16: case ODC_BFLOAT16: return 2;
    case ODC_FLOAT32: case ODC_INT32: case ODC_UINT32: return 4;
    case ODC_INT64: case ODC_FLOAT64: case ODC_UINT64: return 8;
    default: return 0;
  }
}

// Checks a tensor of any fixed-size dtype through get_view's float32 checks.
int pad_view(const odc_tensor& t, const char* what, View* v, int* esize, Err& e) {
  *esize = pad_elem_size(t.dtype);
  if (!*esize) return e.fail("%s: dtype %d is not supported", what, t.dtype);
  odc_tensor f = t;
  f.dtype = ODC_FLOAT32;
  return get_view(f, what, 1, ODC_MAX_RANK, false, v, e);
}

// Per axis: output index o -> input index, or -1 (the constant). The input is first cropped to
// [lo, lo + n) (negative pads), then padded by `before` on the left.
struct AxisMap {
  int64_t lo, n, before;
};
inline int64_t map_index(int64_t o, const AxisMap& m, int mode) {
  int64_t i = o - m.before;
  if (i >= 0 && i < m.n) return m.lo + i;
  switch (mode) {
    case PAD_CONSTANT: return -1;
    case PAD_EDGE: i = i < 0 ? 0 : m.n - 1; break;
    case PAD_WRAP: i %= m.n; if (i < 0) i += m.n; break;
    default: {  // reflect (numpy 'reflect': the edge is not repeated; repeats if pads > n - 1)
      if (m.n == 1) { i = 0; break; }
      const int64_t period = 2 * (m.n - 1);
      i %= period;
      if (i < 0) i += period;
      if (i >= m.n) i = period - i;
    }
  }
  return m.lo + i;
}

template <class U>
bool pad_rows(const U* x, U* y, int r, const int64_t* xs, const int64_t* ys, const AxisMap* m,
              int mode, U value, int max_threads) {
  const int64_t n = ys[r - 1], rows = [&] {
    int64_t p = 1;
    for (int d = 0; d < r - 1; ++d) p *= ys[d];
    return p;
  }();
  int64_t xstr[ODC_MAX_RANK];
  {
    int64_t s = 1;
    for (int d = r - 1; d >= 0; --d) xstr[d] = s, s *= xs[d];
  }
  const AxisMap& ml = m[r - 1];
  // last axis: [0, c0) padded, [c0, c1) copied from the input, [c1, n) padded
  const int64_t c0 = std::min(n, ml.before), c1 = std::min(n, ml.before + ml.n);
  const int T = threads_for(rows * n, 1 << 16, max_threads);
  return parallel_run(T, [&](int tid) {
    int64_t b, en;
    split_range(rows, T, tid, &b, &en);
    int64_t idx[ODC_MAX_RANK] = {0};  // output index of row b over the outer axes (odometer)
    for (int64_t d = r - 2, rem = b; d >= 0; --d) {
      idx[d] = rem % ys[d];
      rem /= ys[d];
    }
    for (int64_t row = b; row < en; ++row) {
      if (row > b)
        for (int d = r - 2; d >= 0 && ++idx[d] == ys[d]; --d) idx[d] = 0;
      U* yp = y + row * n;
      int64_t off = 0;
      bool fill = false;
      for (int d = r - 2; d >= 0; --d) {
        const int64_t i = map_index(idx[d], m[d], mode);
        if (i < 0) {
          fill = true;
          break;
        }
        off += i * xstr[d];
      }
      if (fill) {
        std::fill(yp, yp + n, value);
        continue;
      }
      const U* xp = x + off;
      if (c1 > c0) std::memcpy(yp + c0, xp + ml.lo + (c0 - ml.before), (size_t)(c1 - c0) * sizeof(U));
      if (mode == PAD_CONSTANT) {
        std::fill(yp, yp + c0, value);
        std::fill(yp + c1, yp + n, value);
      } else {
        for (int64_t j = 0; j < c0; ++j) yp[j] = xp[map_index(j, ml, mode)];
        for (int64_t j = c1; j < n; ++j) yp[j] = xp[map_index(j, ml, mode)];
      }
    }
  });
}

}  // namespace

/* pad: ONNX Pad with static pads
 * inputs : X [...] (any fixed-size dtype, rank r >= 1)
 * outputs: Y [X.shape[d] + pad_begin[d] + pad_end[d]] (X's dtype)
 * iparams: mode (0 constant, 1 reflect, 2 edge, 3 wrap); pad_begin (r); pad_end (r);
 *          value (the constant's bit pattern, little-endian, in the low esize bytes)
 * fparams: -
 * Negative pads crop (as onnxruntime: the input is cropped first, then padded, so reflect /
 * edge / wrap refer to the cropped input). reflect repeats for pads >= the axis size (numpy).
 * reflect / edge / wrap need every cropped axis that is padded to be non-empty.
 * Y must not overlap X. */
ODC_DEFINE_KERNEL(pad) {
  if (a->num_inputs != 1 || a->num_outputs != 1)
    return e.fail("expected 1 input and 1 output, got %d and %d", a->num_inputs, a->num_outputs);
  if (!a->inputs || !a->outputs) return e.fail("inputs or outputs is NULL");
  if (a->num_fparams != 0) return e.fail("expected 0 fparams, got %d", a->num_fparams);
  if (a->num_iparams > 0 && !a->iparams) return e.fail("iparams is NULL");
  if (a->num_threads < 1) return e.fail("num_threads must be >= 1, got %d", a->num_threads);
  View X, Y;
  int xe = 0, ye = 0;
  if (pad_view(a->inputs[0], "input 0 (X)", &X, &xe, e)) return 1;
  if (pad_view(a->outputs[0], "output 0 (Y)", &Y, &ye, e)) return 1;
  if (a->inputs[0].dtype != a->outputs[0].dtype)
    return e.fail("output 0 (Y): dtype %d differs from the input's %d", a->outputs[0].dtype,
                  a->inputs[0].dtype);
  const int r = X.ndim;
  if (Y.ndim != r) return e.fail("Y rank %d != X rank %d", Y.ndim, r);
  if (a->num_iparams != 2 * r + 2)
    return e.fail("expected %d iparams (mode; pads; value), got %d", 2 * r + 2, a->num_iparams);
  const int64_t mode = a->iparams[0];
  if (mode < 0 || mode > 3) return e.fail("mode %lld not in 0..3", (long long)mode);
  const int64_t *pb = a->iparams + 1, *pe = a->iparams + 1 + r;
  AxisMap m[ODC_MAX_RANK];
  for (int d = 0; d < r; ++d) {
    if (pb[d] < -X.shape[d] || pe[d] < -X.shape[d] || pb[d] > (int64_t(1) << 40) ||
        pe[d] > (int64_t(1) << 40))
      return e.fail("axis %d: pads %lld, %lld out of range for size %lld", d, (long long)pb[d],
                    (long long)pe[d], (long long)X.shape[d]);
    const int64_t out = X.shape[d] + pb[d] + pe[d];
    if (out != Y.shape[d])
      return e.fail("axis %d: Y has %lld entries, X %lld padded by %lld, %lld gives %lld", d,
                    (long long)Y.shape[d], (long long)X.shape[d], (long long)pb[d],
                    (long long)pe[d], (long long)out);
    m[d].lo = pb[d] < 0 ? -pb[d] : 0;
    m[d].n = X.shape[d] - m[d].lo - (pe[d] < 0 ? -pe[d] : 0);
    m[d].before = pb[d] > 0 ? pb[d] : 0;
    if (m[d].n < 0) return e.fail("axis %d: the negative pads crop more than %lld entries", d,
                                  (long long)X.shape[d]);
    if (mode != PAD_CONSTANT && m[d].n == 0 && out > 0)
      return e.fail("axis %d: cannot %s-pad an empty axis", d,
                    mode == PAD_REFLECT ? "reflect" : mode == PAD_EDGE ? "edge" : "wrap");
  }
  if (Y.numel == 0) return 0;
  const char* xb = static_cast<const char*>(a->inputs[0].data);
  char* yb = static_cast<char*>(a->outputs[0].data);
  if (X.numel > 0 && xb < yb + Y.numel * ye && yb < xb + X.numel * xe)
    return e.fail("Y and X overlap in memory");
  const uint64_t bits = (uint64_t)a->iparams[2 * r + 1];
  bool ok;
  switch (xe) {
    case 1:
      ok = pad_rows((const uint8_t*)xb, (uint8_t*)yb, r, X.shape, Y.shape, m, (int)mode,
                    (uint8_t)bits, a->num_threads);
      break;
    case 2:
      ok = pad_rows((const uint16_t*)xb, (uint16_t*)yb, r, X.shape, Y.shape, m, (int)mode,
                    (uint16_t)bits, a->num_threads);
      break;
    case 4:
      ok = pad_rows((const uint32_t*)xb, (uint32_t*)yb, r, X.shape, Y.shape, m, (int)mode,
                    (uint32_t)bits, a->num_threads);
      break;
    default:
      ok = pad_rows((const uint64_t*)xb, (uint64_t*)yb, r, X.shape, Y.shape, m, (int)mode,
                    (uint64_t)bits, a->num_threads);
  }
  if (!ok) return e.fail("internal error in worker");
  return 0;
}
