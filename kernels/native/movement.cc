// Data-movement kernels (any element type, moved by element size): copy, transpose, concat,
// split, slice, gather. They never interpret the bytes, so one kernel serves every dtype of
// abi.h (1, 2, 4 or 8 bytes per element); inputs and outputs must share the dtype.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <vector>

#include "internal.h"

using namespace odc_native;

namespace {

int elem_size(int32_t dtype) {
  switch (dtype) {
    case ODC_UINT8: case ODC_INT8: case ODC_BOOL: return 1;
    case ODC_UINT16: case ODC_INT16: case ODC_FLOAT16: case ODC_BFLOAT16: return 2;
    case ODC_FLOAT32: case ODC_INT32: case ODC_UINT32: return 4;
    case ODC_INT64: case ODC_FLOAT64: case ODC_UINT64: return 8;
    default: return 0;
  }
}

struct BView {  // a checked, C-contiguous CPU tensor of any fixed-size dtype
  char* data = nullptr;
  int32_t dtype = 0;
  int esize = 0;
  int ndim = 0;
  int64_t shape[ODC_MAX_RANK] = {0};
  int64_t numel = 0;
  int64_t bytes() const { return numel * esize; }
};

int get_bview(const odc_tensor& t, const char* what, BView* out, Err& e) {
  *out = BView();
  const int es = elem_size(t.dtype);
  if (!es) return e.fail("%s: dtype %d is not supported", what, t.dtype);
  // reuse the float32 checks (device, rank, shape, strides, NULL data) on a float32 alias
  odc_tensor f = t;
  f.dtype = ODC_FLOAT32;
  View v;
  if (get_view(f, what, 0, ODC_MAX_RANK, false, &v, e)) return 1;
  out->data = static_cast<char*>(t.data);
  out->dtype = t.dtype;
  out->esize = es;
  out->ndim = v.ndim;
  out->numel = v.numel;
  std::copy(v.shape, v.shape + v.ndim, out->shape);
  return 0;
}

const char* bshape_str(const BView& v, char* buf, size_t n) {
  View f;
  f.ndim = v.ndim;
  std::copy(v.shape, v.shape + v.ndim, f.shape);
  return shape_str(f, buf, n);
}

int overlap(const BView& a, const char* an, const BView& b, const char* bn, Err& e) {
  if (!a.data || !b.data || a.numel == 0 || b.numel == 0) return 0;
  if (a.data < b.data + b.bytes() && b.data < a.data + a.bytes())
    return e.fail("%s and %s overlap in memory", an, bn);
  return 0;
}

int same_dtype(const BView& x, const BView& y, const char* yn, Err& e) {
  if (x.dtype != y.dtype) return e.fail("%s: dtype %d differs from the input's %d", yn, y.dtype, x.dtype);
  return 0;
}

int counts(const odc_kernel_args* a, int min_in, int max_in, int min_out, int max_out, Err& e) {
  if (a->num_inputs < min_in || a->num_inputs > max_in)
    return e.fail("expected %d..%d inputs, got %d", min_in, max_in, a->num_inputs);
  if (a->num_outputs < min_out || a->num_outputs > max_out)
    return e.fail("expected %d..%d outputs, got %d", min_out, max_out, a->num_outputs);
  if (a->num_inputs > 0 && !a->inputs) return e.fail("inputs is NULL");
  if (a->num_outputs > 0 && !a->outputs) return e.fail("outputs is NULL");
  if (a->num_iparams > 0 && !a->iparams) return e.fail("iparams is NULL");
  if (a->num_fparams != 0) return e.fail("expected 0 fparams, got %d", a->num_fparams);
  if (a->num_threads < 1) return e.fail("num_threads must be >= 1, got %d", a->num_threads);
  return 0;
}

int get_axis(int64_t axis, int rank, Err& e) {
  if (axis < 0 || axis >= rank)
    return e.fail("axis %lld not in 0..%d", (long long)axis, rank - 1);
  return 0;
}

// Parallel memcpy of `bytes` bytes (non-overlapping).
bool par_memcpy(char* dst, const char* src, int64_t bytes, int max_threads) {
  const int T = threads_for(bytes, 1 << 20, max_threads);
  if (T == 1) {
    std::memcpy(dst, src, (size_t)bytes);
    return true;
  }
  return parallel_run(T, [&](int tid) {
    int64_t b, en;
    split_range(bytes, T, tid, &b, &en);
    if (en > b) std::memcpy(dst + b, src + b, (size_t)(en - b));
  });
}

// Strided gather of a collapsed index space: Y (contiguous, shape shp[nd]) = X at strides xs[nd]
// (elements). Rows of the last output dim are parallelized.
template <class U>
bool strided_copy(const U* x, U* y, int nd, const int64_t* shp, const int64_t* xs, int64_t numel,
                  int max_threads) {
  const int64_t n = shp[nd - 1], sx = xs[nd - 1];
  const int64_t rows = numel / n;
  const int T = threads_for(numel, 1 << 16, max_threads);
  return parallel_run(T, [&](int tid) {
    int64_t b, en;
    split_range(rows, T, tid, &b, &en);
    for (int64_t r = b; r < en; ++r) {
      int64_t rem = r, off = 0;
      for (int d = nd - 2; d >= 0; --d) {
        off += (rem % shp[d]) * xs[d];
        rem /= shp[d];
      }
      const U* xp = x + off;
      U* yp = y + r * n;
      if (sx == 1) {
        std::memcpy(yp, xp, (size_t)n * sizeof(U));
      } else {
        for (int64_t j = 0; j < n; ++j) yp[j] = xp[j * sx];
      }
    }
  });
}

bool strided_copy_any(int esize, const char* x, char* y, int nd, const int64_t* shp,
                      const int64_t* xs, int64_t numel, int max_threads) {
  switch (esize) {
    case 1: return strided_copy((const uint8_t*)x, (uint8_t*)y, nd, shp, xs, numel, max_threads);
    case 2: return strided_copy((const uint16_t*)x, (uint16_t*)y, nd, shp, xs, numel, max_threads);
    case 4: return strided_copy((const uint32_t*)x, (uint32_t*)y, nd, shp, xs, numel, max_threads);
    default: return strided_copy((const uint64_t*)x, (uint64_t*)y, nd, shp, xs, numel, max_threads);
  }
}

// Drops size-1 dims and merges dims that are contiguous in X (xs[d] == xs[d+1]*shp[d+1]).
int collapse(int nd, const int64_t* shp, const int64_t* xs, int64_t* cs, int64_t* cx) {
  int m = 0;
  for (int d = 0; d < nd; ++d) {
    if (shp[d] == 1) continue;
    if (m > 0 && cx[m - 1] == xs[d] * shp[d]) {
      cs[m - 1] *= shp[d];
      cx[m - 1] = xs[d];
    } else {
      cs[m] = shp[d], cx[m] = xs[d];
      ++m;
    }
  }
  if (m == 0) cs[0] = 1, cx[0] = 1, m = 1;
  return m;
}

}  // namespace

/* copy: Y = X reinterpreted (Reshape / Flatten / Squeeze / Unsqueeze / Identity)
 * inputs : X [...] (any dtype);  outputs: Y [...] (X's dtype and element count; may be X itself,
 *          then nothing is copied)
 * iparams: -   fparams: - */
ODC_DEFINE_KERNEL(copy) {
  if (check_counts(a, 1, 1, 1, 1, 0, 0, e)) return 1;
  BView X, Y;
  if (get_bview(a->inputs[0], "input 0 (X)", &X, e)) return 1;
  if (get_bview(a->outputs[0], "output 0 (Y)", &Y, e)) return 1;
  if (same_dtype(X, Y, "output 0 (Y)", e)) return 1;
  char s1[128], s2[128];
  if (X.numel != Y.numel)
    return e.fail("Y %s must have as many elements as X %s", bshape_str(Y, s1, 128),
                  bshape_str(X, s2, 128));
  if (X.data == Y.data || X.numel == 0) return 0;  // an aliased view: nothing to do
  if (overlap(Y, "Y", X, "X", e)) return 1;
  if (!par_memcpy(Y.data, X.data, X.bytes(), a->num_threads))
    return e.fail("internal error in worker");
  return 0;
}

/* transpose: Y = X.transpose(perm)
 * inputs : X [...] (any dtype, rank r >= 1);  outputs: Y [X.shape[perm[i]]...] (X's dtype)
 * iparams: perm (r entries, a permutation of 0..r-1)   fparams: - */
ODC_DEFINE_KERNEL(transpose) {
  if (counts(a, 1, 1, 1, 1, e)) return 1;
  BView X, Y;
  if (get_bview(a->inputs[0], "input 0 (X)", &X, e)) return 1;
  if (get_bview(a->outputs[0], "output 0 (Y)", &Y, e)) return 1;
  if (same_dtype(X, Y, "output 0 (Y)", e)) return 1;
  const int r = X.ndim;
  if (a->num_iparams != r) return e.fail("expected %d iparams (perm), got %d", r, a->num_iparams);
  char s1[128], s2[128];
  if (Y.ndim != r) return e.fail("Y rank %d != X rank %d", Y.ndim, r);
  int64_t xstr[ODC_MAX_RANK], ys[ODC_MAX_RANK];
  {
    int64_t s = 1;
    for (int d = r - 1; d >= 0; --d) xstr[d] = s, s *= X.shape[d];
  }
  bool seen[ODC_MAX_RANK] = {false};
  for (int i = 0; i < r; ++i) {
    const int64_t p = a->iparams[i];
    if (p < 0 || p >= r || seen[p]) return e.fail("iparams is not a permutation of 0..%d", r - 1);
    seen[p] = true;
    if (Y.shape[i] != X.shape[p])
      return e.fail("Y %s is not X %s permuted", bshape_str(Y, s1, 128), bshape_str(X, s2, 128));
    ys[i] = xstr[p];
  }
  if (Y.numel == 0) return 0;
  if (overlap(Y, "Y", X, "X", e)) return 1;
  int64_t cs[ODC_MAX_RANK], cx[ODC_MAX_RANK];
  const int nd = collapse(r, Y.shape, ys, cs, cx);
  if (!strided_copy_any(X.esize, X.data, Y.data, nd, cs, cx, Y.numel, a->num_threads))
    return e.fail("internal error in worker");
  return 0;
}

/* slice: Y = X[start_0:end_0:step_0, ...] (static, normalized)
 * inputs : X [...] (any dtype);  outputs: Y (X's dtype and rank)
 * iparams: starts (r); ends (r); steps (r) with, per axis, step != 0,
 *          Y.shape[d] == max(0, ceil((end - start) / step)) and every taken index in [0, X.shape[d])
 * fparams: - */
ODC_DEFINE_KERNEL(slice) {
  if (counts(a, 1, 1, 1, 1, e)) return 1;
  BView X, Y;
  if (get_bview(a->inputs[0], "input 0 (X)", &X, e)) return 1;
  if (get_bview(a->outputs[0], "output 0 (Y)", &Y, e)) return 1;
  if (same_dtype(X, Y, "output 0 (Y)", e)) return 1;
  const int r = X.ndim;
  if (Y.ndim != r) return e.fail("Y rank %d != X rank %d", Y.ndim, r);
  if (r == 0) return e.fail("X must have rank >= 1");
  if (a->num_iparams != 3 * r)
    return e.fail("expected %d iparams (starts; ends; steps), got %d", 3 * r, a->num_iparams);
  const int64_t *st = a->iparams, *en = a->iparams + r, *sp = a->iparams + 2 * r;
  int64_t xstr[ODC_MAX_RANK], ys[ODC_MAX_RANK];
  {
    int64_t s = 1;
    for (int d = r - 1; d >= 0; --d) xstr[d] = s, s *= X.shape[d];
  }
  int64_t off = 0;
  for (int d = 0; d < r; ++d) {
    const int64_t s = st[d], t = en[d], k = sp[d];
    if (k == 0) return e.fail("axis %d: step 0", d);
    const int64_t cnt = k > 0 ? (t > s ? (t - s + k - 1) / k : 0) : (s > t ? (s - t - k - 1) / -k : 0);
    if (cnt != Y.shape[d])
      return e.fail("axis %d: Y has %lld entries, the slice %lld:%lld:%lld takes %lld", d,
                    (long long)Y.shape[d], (long long)s, (long long)t, (long long)k, (long long)cnt);
    if (cnt > 0) {
      const int64_t last = s + (cnt - 1) * k;
      if (s < 0 || s >= X.shape[d] || last < 0 || last >= X.shape[d])
        return e.fail("axis %d: slice %lld:%lld:%lld outside [0, %lld)", d, (long long)s,
                      (long long)t, (long long)k, (long long)X.shape[d]);
    }
    off += s * xstr[d];
    ys[d] = k * xstr[d];
  }
  if (Y.numel == 0) return 0;
  if (overlap(Y, "Y", X, "X", e)) return 1;
  int64_t cs[ODC_MAX_RANK], cx[ODC_MAX_RANK];
  const int nd = collapse(r, Y.shape, ys, cs, cx);
  if (!strided_copy_any(X.esize, X.data + off * X.esize, Y.data, nd, cs, cx, Y.numel,
                        a->num_threads))
    return e.fail("internal error in worker");
  return 0;
}

/* concat: Y = concatenate(X_0, ..., X_{n-1}, axis)
 * inputs : X_i [...] (n >= 1, one dtype and rank, equal except along axis);
 * outputs: Y (sum of the inputs' sizes along axis)
 * iparams: axis (0 <= axis < rank)   fparams: - */
ODC_DEFINE_KERNEL(concat) {
  if (counts(a, 1, 1 << 16, 1, 1, e)) return 1;
  if (a->num_iparams != 1) return e.fail("expected 1 iparams, got %d", a->num_iparams);
  BView Y;
  if (get_bview(a->outputs[0], "output 0 (Y)", &Y, e)) return 1;
  const int r = Y.ndim;
  if (r == 0) return e.fail("Y must have rank >= 1");
  const int64_t axis = a->iparams[0];
  if (get_axis(axis, r, e)) return 1;
  const int n = a->num_inputs;
  std::vector<BView> X((size_t)n);
  int64_t total = 0;
  char s1[128], s2[128], what[32];
  for (int i = 0; i < n; ++i) {
    std::snprintf(what, sizeof what, "input %d", i);
    if (get_bview(a->inputs[i], what, &X[i], e)) return 1;
    if (same_dtype(X[i], Y, "output 0 (Y)", e)) return 1;
    bool ok = X[i].ndim == r;
    for (int d = 0; ok && d < r; ++d) ok = d == axis || X[i].shape[d] == Y.shape[d];
    if (!ok)
      return e.fail("input %d %s does not concatenate into Y %s along axis %lld", i,
                    bshape_str(X[i], s1, 128), bshape_str(Y, s2, 128), (long long)axis);
    total += X[i].shape[axis];
    if (overlap(Y, "Y", X[i], what, e)) return 1;
  }
  if (total != Y.shape[axis])
    return e.fail("inputs sum to %lld along axis %lld, Y has %lld", (long long)total,
                  (long long)axis, (long long)Y.shape[axis]);
  if (Y.numel == 0) return 0;
  int64_t outer = 1, inner = Y.esize;
  for (int d = 0; d < axis; ++d) outer *= Y.shape[d];
  for (int d = (int)axis + 1; d < r; ++d) inner *= Y.shape[d];
  const int64_t yrow = Y.shape[axis] * inner;
  // work items: (outer row, input) pairs
  std::vector<int64_t> yoff((size_t)n);
  for (int64_t i = 0, o = 0; i < n; ++i) yoff[i] = o * inner, o += X[i].shape[axis];
  const int64_t items = outer * n;
  const int T = threads_for(Y.bytes(), 1 << 18, a->num_threads);
  const bool ok = parallel_run(T, [&](int tid) {
    int64_t b, en;
    split_range(items, T, tid, &b, &en);
    for (int64_t w = b; w < en; ++w) {
      const int64_t o = w / n;
      const int i = (int)(w % n);
      const int64_t len = X[i].shape[axis] * inner;
      if (len) std::memcpy(Y.data + o * yrow + yoff[i], X[i].data + o * len, (size_t)len);
    }
  });
  if (!ok) return e.fail("internal error in worker");
  return 0;
}

/* split: Y_0, ..., Y_{n-1} = split(X, axis) (the outputs' sizes along axis give the split)
 * inputs : X [...] (any dtype);  outputs: Y_i (n >= 1; X's dtype and rank, X's shape except
 *          along axis, sizes summing to X's)
 * iparams: axis (0 <= axis < rank)   fparams: - */
ODC_DEFINE_KERNEL(split) {
  if (counts(a, 1, 1, 1, 1 << 16, e)) return 1;
  if (a->num_iparams != 1) return e.fail("expected 1 iparams, got %d", a->num_iparams);
  BView X;
  if (get_bview(a->inputs[0], "input 0 (X)", &X, e)) return 1;
  const int r = X.ndim;
  if (r == 0) return e.fail("X must have rank >= 1");
  const int64_t axis = a->iparams[0];
  if (get_axis(axis, r, e)) return 1;
  const int n = a->num_outputs;
  std::vector<BView> Y((size_t)n);
  int64_t total = 0;
  char s1[128], s2[128], what[32];
  for (int i = 0; i < n; ++i) {
    std::snprintf(what, sizeof what, "output %d", i);
    if (get_bview(a->outputs[i], what, &Y[i], e)) return 1;
    if (same_dtype(X, Y[i], what, e)) return 1;
    bool ok = Y[i].ndim == r;
    for (int d = 0; ok && d < r; ++d) ok = d == axis || X.shape[d] == Y[i].shape[d];
    if (!ok)
      return e.fail("output %d %s is not a piece of X %s along axis %lld", i,
                    bshape_str(Y[i], s1, 128), bshape_str(X, s2, 128), (long long)axis);
    total += Y[i].shape[axis];
    if (overlap(Y[i], what, X, "X", e)) return 1;
    for (int j = 0; j < i; ++j)
      if (overlap(Y[i], what, Y[j], "another output", e)) return 1;
  }
  if (total != X.shape[axis])
    return e.fail("outputs sum to %lld along axis %lld, X has %lld", (long long)total,
                  (long long)axis, (long long)X.shape[axis]);
  if (X.numel == 0) return 0;
  int64_t outer = 1, inner = X.esize;
  for (int d = 0; d < axis; ++d) outer *= X.shape[d];
  for (int d = (int)axis + 1; d < r; ++d) inner *= X.shape[d];
  const int64_t xrow = X.shape[axis] * inner;
  std::vector<int64_t> xoff((size_t)n);
  for (int64_t i = 0, o = 0; i < n; ++i) xoff[i] = o * inner, o += Y[i].shape[axis];
  const int64_t items = outer * n;
  const int T = threads_for(X.bytes(), 1 << 18, a->num_threads);
  const bool ok = parallel_run(T, [&](int tid) {
    int64_t b, en;
    split_range(items, T, tid, &b, &en);
    for (int64_t w = b; w < en; ++w) {
      const int64_t o = w / n;
      const int i = (int)(w % n);
      const int64_t len = Y[i].shape[axis] * inner;
      if (len) std::memcpy(Y[i].data + o * len, X.data + o * xrow + xoff[i], (size_t)len);
    }
  });
  if (!ok) return e.fail("internal error in worker");
  return 0;
}

/* gather: Y = take(Data, Indices, axis) (ONNX Gather; negative indices count from the end)
 * inputs : Data [...] (any dtype, rank >= 1); Indices [...] (int64 or int32)
 * outputs: Y [Data.shape[:axis] + Indices.shape + Data.shape[axis+1:]] (Data's dtype)
 * iparams: axis (0 <= axis < rank(Data))   fparams: -
 * An index outside [-dim, dim) fails the call. */
ODC_DEFINE_KERNEL(gather) {
  if (counts(a, 2, 2, 1, 1, e)) return 1;
  if (a->num_iparams != 1) return e.fail("expected 1 iparams, got %d", a->num_iparams);
  BView D, I, Y;
  if (get_bview(a->inputs[0], "input 0 (Data)", &D, e)) return 1;
  if (get_bview(a->inputs[1], "input 1 (Indices)", &I, e)) return 1;
  if (get_bview(a->outputs[0], "output 0 (Y)", &Y, e)) return 1;
  if (same_dtype(D, Y, "output 0 (Y)", e)) return 1;
  if (I.dtype != ODC_INT64 && I.dtype != ODC_INT32)
    return e.fail("Indices: dtype %d is not int64 (7) or int32 (6)", I.dtype);
  const int r = D.ndim;
  if (r == 0) return e.fail("Data must have rank >= 1");
  const int64_t axis = a->iparams[0];
  if (get_axis(axis, r, e)) return 1;
  char s1[128], s2[128], s3[128];
  bool shape_ok = Y.ndim == r - 1 + I.ndim;
  for (int d = 0; shape_ok && d < Y.ndim; ++d) {
    int64_t want;
    if (d < axis) want = D.shape[d];
    else if (d < axis + I.ndim) want = I.shape[d - axis];
    else want = D.shape[d - I.ndim + 1];
    shape_ok = Y.shape[d] == want;
  }
  if (!shape_ok)
    return e.fail("Y %s is not the gather of Data %s by Indices %s on axis %lld",
                  bshape_str(Y, s1, 128), bshape_str(D, s2, 128), bshape_str(I, s3, 128),
                  (long long)axis);
  if (overlap(Y, "Y", D, "Data", e) || overlap(Y, "Y", I, "Indices", e)) return 1;
  const int64_t dim = D.shape[axis];
  const int64_t ni = I.numel;
  for (int64_t k = 0; k < ni; ++k) {
    const int64_t v = I.dtype == ODC_INT64 ? ((const int64_t*)I.data)[k]
                                           : (int64_t)((const int32_t*)I.data)[k];
    if (v < -dim || v >= dim)
      return e.fail("index %lld out of range [-%lld, %lld)", (long long)v, (long long)dim,
                    (long long)dim);
  }
  if (Y.numel == 0) return 0;
  int64_t outer = 1, inner = D.esize;
  for (int d = 0; d < axis; ++d) outer *= D.shape[d];
  for (int d = (int)axis + 1; d < r; ++d) inner *= D.shape[d];
  const int64_t items = outer * ni;
  const int T = threads_for(Y.bytes(), 1 << 18, a->num_threads);
  const bool ok = parallel_run(T, [&](int tid) {
    int64_t b, en;
    split_range(items, T, tid, &b, &en);
    for (int64_t w = b; w < en; ++w) {
      const int64_t o = w / ni, k = w % ni;
      int64_t v = I.dtype == ODC_INT64 ? ((const int64_t*)I.data)[k]
                                       : (int64_t)((const int32_t*)I.data)[k];
      if (v < 0) v += dim;
      std::memcpy(Y.data + w * inner, D.data + (o * dim + v) * inner, (size_t)inner);
    }
  });
  if (!ok) return e.fail("internal error in worker");
  return 0;
}
