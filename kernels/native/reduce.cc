// reduce_f32: ONNX ReduceSum / Mean / Max / Min / Prod / SumSquare / L1 / L2 / LogSum /
// LogSumExp over any set of axes.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "internal.h"

using namespace odc_native;

namespace {

enum Kind { K_SUM = 0, K_SUMSQ, K_ABS, K_PROD, K_MAX, K_MIN, K_EXP };
enum Op { R_SUM = 0, R_MEAN, R_MAX, R_MIN, R_PROD, R_SUMSQ, R_L1, R_L2, R_LOGSUM, R_LSE, R_COUNT };

namespace red_scalar {
#include "reduce_loops.inc"
}  // namespace red_scalar

}  // namespace

#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace {
namespace red_avx2 {
#include "reduce_loops.inc"
}  // namespace red_avx2
}  // namespace
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx2,fma")
namespace {
namespace red_avx512 {
#include "reduce_loops.inc"
}  // namespace red_avx512
}  // namespace
#pragma GCC pop_options

namespace {

struct Loops {
  double (*row)(int, const float*, int64_t, double, float);
  void (*col)(int, const float*, int64_t, double*, const float*);
};

Loops loops() {  // follows ops(): the ISA chosen by cpuid (or forced for tests)
  const char* isa = ops().isa;
  if (!std::strcmp(isa, "avx512")) return {red_avx512::row_fold, red_avx512::col_fold};
  if (!std::strcmp(isa, "avx2")) return {red_avx2::row_fold, red_avx2::col_fold};
  return {red_scalar::row_fold, red_scalar::col_fold};
}

int kind_of(int op) {
  switch (op) {
    case R_MAX: return K_MAX;
    case R_MIN: return K_MIN;
    case R_PROD: return K_PROD;
    case R_SUMSQ: case R_L2: return K_SUMSQ;
    case R_L1: return K_ABS;
    case R_LSE: return K_MAX;  // first pass
    default: return K_SUM;
  }
}

float init_of(int kind) {
  if (kind == K_MAX) return -std::numeric_limits<float>::infinity();
  if (kind == K_MIN) return std::numeric_limits<float>::infinity();
  if (kind == K_PROD) return 1.f;
  return 0.f;
}

// The result from the folded value (LSE: acc = sum exp(x - m), m the maximum).
inline float finish(int op, double acc, int64_t count, float m) {
  switch (op) {
    case R_MEAN: return (float)(acc / (double)count);
    case R_L2: return (float)std::sqrt(acc);
    case R_LOGSUM: return (float)std::log(acc);
    case R_LSE: return std::isinf(m) ? m : (float)(std::log(acc) + (double)m);
    default: return (float)acc;
  }
}

}  // namespace

/* reduce_f32 (ONNX Reduce*: the binder resolves axes, keepdims and noop_with_empty_axes)
 * inputs : X [...] (rank r >= 0)
 * outputs: Y (any shape holding prod of X's kept dims elements: keepdims or not)
 * iparams: [op, reduced_0, ..., reduced_{r-1}]  (reduced_d 1: axis d is reduced, else 0)
 *          op: 0 sum, 1 mean, 2 max, 3 min, 4 prod, 5 sum_square, 6 l1, 7 l2, 8 log_sum,
 *              9 log_sum_exp
 * fparams: []
 * Adjacent dims of the same kind are merged; a contiguous reduced block is folded as rows
 * (vectorized horizontally), a contiguous kept block as columns (vectorized across outputs).
 * Sums: float32 vector partial sums over chunks of 256 (rows) accumulated in double; column
 * folds accumulate in double. No axis reduced: the elementwise part alone (sum_square squares).
 * An empty reduction gives sum 0, mean NaN, max -inf, min +inf, prod 1, l1/l2/sum_square 0,
 * log_sum / log_sum_exp -inf. Max / min do not propagate NaN. */
ODC_DEFINE_KERNEL(reduce_f32) {
  if (a->num_iparams < 1) return e.fail("expected at least 1 iparam (op), got %d", a->num_iparams);
  if (a->num_inputs != 1) return e.fail("expected 1 input, got %d", a->num_inputs);
  View X, Y;
  if (get_view(a->inputs[0], "input 0 (X)", 0, ODC_MAX_RANK, false, &X, e)) return 1;
  if (check_counts(a, 1, 1, 1, 1, 1 + X.ndim, 0, e)) return 1;
  if (get_view(a->outputs[0], "output 0 (Y)", 0, ODC_MAX_RANK, false, &Y, e)) return 1;
  const int64_t op = a->iparams[0];
  if (op < 0 || op >= R_COUNT) return e.fail("op %lld not in 0..%d", (long long)op, R_COUNT - 1);
  int64_t sz[ODC_MAX_RANK];
  int red[ODC_MAX_RANK];
  int nd = 0;
  int64_t kept = 1, count = 1;
  for (int d = 0; d < X.ndim; ++d) {
    const int64_t f = a->iparams[1 + d];
    if (f != 0 && f != 1) return e.fail("reduced_%d must be 0 or 1, got %lld", d, (long long)f);
    (f ? count : kept) *= X.shape[d];
    if (X.shape[d] == 1) continue;
    if (nd > 0 && red[nd - 1] == (int)f) {
      sz[nd - 1] *= X.shape[d];
    } else {
      sz[nd] = X.shape[d], red[nd] = (int)f;
      ++nd;
    }
  }
  char s1[128], s2[128];
  if (Y.numel != kept)
    return e.fail("output Y %s must hold %lld elements (X %s without the reduced axes)",
                  shape_str(Y, s1, 128), (long long)kept, shape_str(X, s2, 128));
  if (check_no_overlap(Y, "Y", X, "X", false, e)) return 1;
  if (Y.numel == 0) return 0;
  const int kind = kind_of((int)op);
  if (count == 0) {  // empty reduction
    const float v = op == R_LSE ? -std::numeric_limits<float>::infinity()
                                : finish((int)op, init_of(kind), 0, 0.f);
    for (int64_t i = 0; i < Y.numel; ++i) Y.data[i] = v;
    return 0;
  }
  if (nd == 0) sz[0] = 1, red[0] = 0, nd = 1;
  // strides of the merged dims; offsets of every reduced position outside the last dim
  int64_t st[ODC_MAX_RANK];
  st[nd - 1] = 1;
  for (int d = nd - 2; d >= 0; --d) st[d] = st[d + 1] * sz[d + 1];
  const bool rows = red[nd - 1] == 1;  // the last (contiguous) block is reduced
  const int64_t block = sz[nd - 1];
  std::vector<int64_t> roffs(1, 0);
  int kd[ODC_MAX_RANK], nk = 0;
  for (int d = 0; d < nd - 1; ++d) {
    if (!red[d]) {
      kd[nk++] = d;
      continue;
    }
    const size_t n0 = roffs.size();
    roffs.resize(n0 * (size_t)sz[d]);
    for (int64_t i = sz[d] - 1; i >= 0; --i)
      for (size_t j = 0; j < n0; ++j) roffs[(size_t)i * n0 + j] = roffs[j] + i * st[d];
  }
  int64_t groups = 1;
  for (int k = 0; k < nk; ++k) groups *= sz[kd[k]];
  auto base_of = [&](int64_t g) {
    int64_t b = 0;
    for (int k = nk - 1; k >= 0; --k) {
      b += (g % sz[kd[k]]) * st[kd[k]];
      g /= sz[kd[k]];
    }
    return b;
  };
  const Loops L = loops();
  const float init = init_of(kind);
  const int64_t nr = (int64_t)roffs.size();
  constexpr int64_t kChunk = 512;  // columns per work unit
  const int64_t chunks = rows ? 1 : (block + kChunk - 1) / kChunk;
  const int64_t units = groups * chunks;
  int T = threads_for(X.numel, 1 << 15, a->num_threads);
  if (T > units) T = (int)units;
  const bool ok = parallel_run(T, [&](int tid) {
    int64_t ub, ue;
    split_range(units, T, tid, &ub, &ue);
    std::vector<double> acc(rows ? 0 : (size_t)std::min(kChunk, block));
    std::vector<double> sums;
    std::vector<float> shift;
    for (int64_t u = ub; u < ue; ++u) {
      const int64_t g = u / chunks;
      const float* x = X.data + base_of(g);
      if (rows) {
        double v = init;
        for (int64_t r = 0; r < nr; ++r) v = L.row(kind, x + roffs[(size_t)r], block, v, 0.f);
        float m = 0.f;
        if (op == R_LSE) {
          m = (float)v;
          v = 0.0;
          if (!std::isinf(m))
            for (int64_t r = 0; r < nr; ++r) v = L.row(K_EXP, x + roffs[(size_t)r], block, v, m);
        }
        Y.data[g] = finish((int)op, v, count, m);
        continue;
      }
      const int64_t c0 = (u % chunks) * kChunk, cn = std::min(kChunk, block - c0);
      float* y = Y.data + g * block + c0;
      x += c0;
      for (int64_t j = 0; j < cn; ++j) acc[(size_t)j] = init;
      for (int64_t r = 0; r < nr; ++r) L.col(kind, x + roffs[(size_t)r], cn, acc.data(), nullptr);
      if (op == R_LSE) {
        sums.assign((size_t)cn, 0.0);
        shift.resize((size_t)cn);
        for (int64_t j = 0; j < cn; ++j) {
          const float m = (float)acc[(size_t)j];
          shift[(size_t)j] = std::isinf(m) ? 0.f : m;
        }
        for (int64_t r = 0; r < nr; ++r)
          L.col(K_EXP, x + roffs[(size_t)r], cn, sums.data(), shift.data());
        for (int64_t j = 0; j < cn; ++j)
          y[j] = finish((int)op, sums[(size_t)j], count, (float)acc[(size_t)j]);
      } else {
        for (int64_t j = 0; j < cn; ++j) y[j] = finish((int)op, acc[(size_t)j], count, 0.f);
      }
    }
  });
  if (!ok) return e.fail("internal error in worker");
  return 0;
}
