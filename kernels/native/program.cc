// eltwise_program_f32: a small register machine evaluating a fused elementwise DAG.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "internal.h"

using namespace odc_native;

namespace {

enum ProgOp {
  P_ADD = 0, P_SUB = 1, P_MUL = 2, P_DIV = 3, P_MAX = 4, P_MIN = 5, P_POW = 6, P_COPY = 7,
  P_NEG = 8, P_ABS = 9, P_EXP = 10, P_LOG = 11, P_SQRT = 12, P_RECIPROCAL = 13, P_ERF = 14,
  P_TANH = 15, P_SIGMOID = 16, P_RELU = 17, P_CLIP = 18, P_COUNT = 19
};
constexpr int64_t kKindShift = 24;
constexpr int64_t kIndexMask = (int64_t(1) << kKindShift) - 1;
enum { K_REG = 0, K_INPUT = 1, K_IMM = 2 };
constexpr int64_t kBlock = 256;
constexpr int kMaxRegs = 64;
constexpr int kMaxInputs = 64;

struct Instr {
  int op, dst;
  int64_t a, b;
};

int unary_act(int op) {
  switch (op) {
    case P_COPY: return ACT_NONE;
    case P_NEG: return ACT_NEG;
    case P_ABS: return ACT_ABS;
    case P_EXP: return ACT_EXP;
    case P_SQRT: return ACT_SQRT;
    case P_RECIPROCAL: return ACT_RECIPROCAL;
    case P_ERF: return ACT_ERF;
    case P_TANH: return ACT_TANH;
    case P_SIGMOID: return ACT_SIGMOID;
    case P_RELU: return ACT_RELU;
    case P_CLIP: return ACT_CLIP;
    default: return -1;
  }
}

bool convertible(int32_t dt) {
  switch (dt) {
    case ODC_FLOAT32: case ODC_FLOAT64: case ODC_INT8: case ODC_UINT8: case ODC_INT16:
    case ODC_UINT16: case ODC_INT32: case ODC_UINT32: case ODC_INT64: case ODC_UINT64:
    case ODC_BOOL:
      return true;
    default:
      return false;
  }
}

int64_t elem_bytes(int32_t dt) {
  switch (dt) {
    case ODC_INT8: case ODC_UINT8: case ODC_BOOL: return 1;
    case ODC_INT16: case ODC_UINT16: return 2;
    case ODC_FLOAT64: case ODC_INT64: case ODC_UINT64: return 8;
    default: return 4;
  }
}

template <typename S>
void convert_n(const void* base, int64_t off, int64_t n, float* dst) {
  const S* src = static_cast<const S*>(base) + off;
  for (int64_t j = 0; j < n; ++j) dst[j] = static_cast<float>(src[j]);
}

// dst[0..n) = float32(src[off..off+n)) of an input of dtype dt (as ONNX Cast: nearest float,
// bool 0 / 1).
void to_float(int32_t dt, const void* src, int64_t off, int64_t n, float* dst) {
  switch (dt) {
    case ODC_FLOAT64: convert_n<double>(src, off, n, dst); break;
    case ODC_INT8: convert_n<int8_t>(src, off, n, dst); break;
    case ODC_UINT8: convert_n<uint8_t>(src, off, n, dst); break;
    case ODC_BOOL: {
      const uint8_t* b = static_cast<const uint8_t*>(src) + off;
      for (int64_t j = 0; j < n; ++j) dst[j] = b[j] ? 1.f : 0.f;
      break;
    }
    case ODC_INT16: convert_n<int16_t>(src, off, n, dst); break;
    case ODC_UINT16: convert_n<uint16_t>(src, off, n, dst); break;
    case ODC_INT32: convert_n<int32_t>(src, off, n, dst); break;
    case ODC_UINT32: convert_n<uint32_t>(src, off, n, dst); break;
    case ODC_INT64: convert_n<int64_t>(src, off, n, dst); break;
    case ODC_UINT64: convert_n<uint64_t>(src, off, n, dst); break;
    default: break;
  }
}

}  // namespace

/* eltwise_program_f32: Y = program(X_0, ..., X_{n-1}), see params.md for the encoding
 * inputs : X_0..X_{n-1} (n >= 1), each numpy-broadcastable to Y (rank <= Y's); float32, or
 *          float64 / (u)int8..64 / bool converted to float32 on load (a fused Cast)
 * outputs: Y
 * iparams: [num_regs, num_instr, result_reg, (op, dst, a, b) * num_instr]
 * fparams: immediates (any count) */
ODC_DEFINE_KERNEL(eltwise_program_f32) {
  if (a->num_inputs < 1 || a->num_inputs > kMaxInputs)
    return e.fail("expected 1..%d inputs, got %d", kMaxInputs, a->num_inputs);
  if (a->num_iparams < 3)
    return e.fail("expected at least 3 iparams, got %d", a->num_iparams);
  if (check_counts(a, a->num_inputs, a->num_inputs, 1, 1, a->num_iparams, a->num_fparams, e))
    return 1;
  const int nin = a->num_inputs;
  const int64_t* ip = a->iparams;
  const int64_t nregs = ip[0], ninstr = ip[1], result = ip[2];
  if (nregs < 1 || nregs > kMaxRegs) return e.fail("num_regs %lld not in 1..%d", (long long)nregs, kMaxRegs);
  if (ninstr < 1 || ninstr > (a->num_iparams - 3) / 4 || 3 + 4 * ninstr != a->num_iparams)
    return e.fail("num_instr %lld does not match %d iparams (3 + 4 per instruction)",
                  (long long)ninstr, a->num_iparams);
  if (result < 0 || result >= nregs) return e.fail("result_reg %lld out of range", (long long)result);
  std::vector<float> imm((size_t)a->num_fparams);
  for (int i = 0; i < a->num_fparams; ++i) {
    const double v = a->fparams[i];
    if (std::isnan(v)) imm[(size_t)i] = NAN;
    else imm[(size_t)i] = (float)std::max(-3.4028234663852886e38, std::min(3.4028234663852886e38, v));
    if (std::isinf(v)) imm[(size_t)i] = (float)v;
  }
  std::vector<Instr> prog((size_t)ninstr);
  std::vector<char> defined((size_t)nregs, 0);
  auto check_operand = [&](int64_t x, int64_t k, const char* which, bool imm_ok) -> int {
    const int64_t kind = x >> kKindShift, idx = x & kIndexMask;
    if (x < 0) return e.fail("instruction %lld: operand %s is negative", (long long)k, which);
    if (kind == K_REG) {
      if (idx >= nregs || !defined[(size_t)idx])
        return e.fail("instruction %lld: operand %s reads register %lld before it is written",
                      (long long)k, which, (long long)idx);
    } else if (kind == K_INPUT) {
      if (idx >= nin) return e.fail("instruction %lld: operand %s input %lld out of range",
                                    (long long)k, which, (long long)idx);
    } else if (kind == K_IMM) {
      if (!imm_ok || idx >= a->num_fparams)
        return e.fail("instruction %lld: operand %s immediate %lld out of range", (long long)k,
                      which, (long long)idx);
    } else {
      return e.fail("instruction %lld: operand %s has kind %lld", (long long)k, which,
                    (long long)kind);
    }
    return 0;
  };
  for (int64_t k = 0; k < ninstr; ++k) {
    const int64_t* q = ip + 3 + 4 * k;
    Instr& in = prog[(size_t)k];
    if (q[0] < 0 || q[0] >= P_COUNT) return e.fail("instruction %lld: op %lld not in 0..%d", (long long)k, (long long)q[0], P_COUNT - 1);
    if (q[1] < 0 || q[1] >= nregs) return e.fail("instruction %lld: dst %lld out of range", (long long)k, (long long)q[1]);
    in.op = (int)q[0], in.dst = (int)q[1], in.a = q[2], in.b = q[3];
    if (check_operand(in.a, k, "a", true)) return 1;
    if (in.op <= P_POW) {
      if (check_operand(in.b, k, "b", true)) return 1;
    } else if (in.op == P_CLIP) {
      if ((in.b >> kKindShift) != K_IMM || (in.b & kIndexMask) + 1 >= a->num_fparams)
        return e.fail("instruction %lld: clip bounds must be immediates j, j+1", (long long)k);
    } else if (in.b != 0) {
      return e.fail("instruction %lld: unary op with b != 0", (long long)k);
    }
    defined[(size_t)in.dst] = 1;
  }
  if (!defined[(size_t)result]) return e.fail("result_reg %lld is never written", (long long)result);

  std::vector<View> X((size_t)nin);
  std::vector<int32_t> dtype((size_t)nin, ODC_FLOAT32);
  std::vector<int> conv_slot((size_t)nin, -1);  // block of the converted values, after the regs
  int nconv = 0;
  View Y;
  char s1[128], s2[128];
  for (int i = 0; i < nin; ++i) {
    char what[32];
    std::snprintf(what, sizeof what, "input %d", i);
    odc_tensor t = a->inputs[i];
    dtype[(size_t)i] = t.dtype;
    if (t.dtype != ODC_FLOAT32) {  // converted to float32 on load (a fused Cast)
      if (!convertible(t.dtype))
        return e.fail("%s: dtype %d cannot be converted to float32", what, t.dtype);
      t.dtype = ODC_FLOAT32;  // the shape / stride / device checks, on a float32 alias
      conv_slot[(size_t)i] = nconv++;
    }
    if (get_view(t, what, 0, ODC_MAX_RANK, false, &X[(size_t)i], e)) return 1;
  }
  if (get_view(a->outputs[0], "output 0 (Y)", 0, ODC_MAX_RANK, false, &Y, e)) return 1;
  const int r = Y.ndim;
  // per input element strides over Y's dims (0 where broadcast)
  std::vector<int64_t> st((size_t)nin * ODC_MAX_RANK, 0);
  for (int i = 0; i < nin; ++i) {
    const View& v = X[(size_t)i];
    if (v.ndim > r)
      return e.fail("input %d %s has higher rank than Y %s", i, shape_str(v, s1, 128), shape_str(Y, s2, 128));
    int64_t c = 1;
    for (int d = r - 1; d >= 0; --d) {
      const int dv = d - (r - v.ndim);
      const int64_t vd = dv >= 0 ? v.shape[dv] : 1;
      if (vd != 1 && vd != Y.shape[d])
        return e.fail("input %d %s does not broadcast to Y %s", i, shape_str(v, s1, 128), shape_str(Y, s2, 128));
      st[(size_t)i * ODC_MAX_RANK + d] = vd == 1 ? 0 : c;
      c *= vd;
    }
    char what[32];
    std::snprintf(what, sizeof what, "input %d", i);
    if (conv_slot[(size_t)i] >= 0) {  // another element size: no byte of it may be Y's
      const char* yb = reinterpret_cast<const char*>(Y.data);
      const char* xb = reinterpret_cast<const char*>(v.data);
      const int64_t xbytes = v.numel * elem_bytes(dtype[(size_t)i]);
      if (Y.numel && v.numel && xb < yb + Y.numel * 4 && yb < xb + xbytes)
        return e.fail("output Y overlaps %s (of another dtype)", what);
    } else if (check_no_overlap(Y, "Y", v, what, v.numel == Y.numel, e)) {
      return 1;
    }
  }
  if (Y.numel == 0) return 0;
  // collapse dims where every operand stays linear
  int64_t cs[ODC_MAX_RANK];
  std::vector<int64_t> cst((size_t)nin * ODC_MAX_RANK);
  int nd = 0;
  for (int d = 0; d < r; ++d) {
    if (Y.shape[d] == 1) continue;
    bool merge = nd > 0;
    for (int i = 0; i < nin && merge; ++i)
      merge = cst[(size_t)i * ODC_MAX_RANK + nd - 1] == st[(size_t)i * ODC_MAX_RANK + d] * Y.shape[d];
    if (merge) {
      cs[nd - 1] *= Y.shape[d];
      for (int i = 0; i < nin; ++i) cst[(size_t)i * ODC_MAX_RANK + nd - 1] = st[(size_t)i * ODC_MAX_RANK + d];
    } else {
      cs[nd] = Y.shape[d];
      for (int i = 0; i < nin; ++i) cst[(size_t)i * ODC_MAX_RANK + nd] = st[(size_t)i * ODC_MAX_RANK + d];
      ++nd;
    }
  }
  if (nd == 0) {
    cs[0] = 1;
    for (int i = 0; i < nin; ++i) cst[(size_t)i * ODC_MAX_RANK] = 0;
    nd = 1;
  }
  const int64_t n = cs[nd - 1];
  const int64_t rows = Y.numel / n;
  // Short inner runs (n < 64: e.g. [2, 192, 4] * [2, 192, 1]): a block holds several rows and
  // every input is first copied (broadcast-expanded) into a block-sized register of its own, so
  // the instructions still run over 256 contiguous elements instead of n.
  const bool packed = n < 64;
  const int64_t rows_per = packed ? kBlock / n : 1;
  const int64_t nch = packed ? 1 : (n + kBlock - 1) / kBlock;
  const int64_t items = packed ? (rows + rows_per - 1) / rows_per : rows * nch;
  const RowOps& o = ops();
  const int T = threads_for(Y.numel, 1 << 14, a->num_threads);
  const bool ok = parallel_run(T, [&](int tid) {
    int64_t wb, we;
    split_range(items, T, tid, &wb, &we);
    float* regs = thread_scratch(4, (nregs + (packed ? nin : 0) + nconv) * kBlock);
    float* in_regs = regs + nregs * kBlock;
    float* conv = in_regs + (packed ? nin : 0) * kBlock;
    const float* ptr[kMaxInputs];
    int64_t inner[kMaxInputs];
    for (int i = 0; i < nin; ++i) inner[i] = cst[(size_t)i * ODC_MAX_RANK + nd - 1];
    int64_t last_row = -1;
    int64_t base[kMaxInputs];
    auto row_base = [&](int64_t row) {
      if (row == last_row) return;
      for (int i = 0; i < nin; ++i) base[i] = 0;
      int64_t rem = row;
      for (int d = nd - 2; d >= 0; --d) {
        const int64_t idx = rem % cs[d];
        rem /= cs[d];
        for (int i = 0; i < nin; ++i) base[i] += idx * cst[(size_t)i * ODC_MAX_RANK + d];
      }
      last_row = row;
    };
    int64_t in_stride[kMaxInputs];
    for (int64_t w = wb; w < we; ++w) {
      int64_t out0, cn;  // first output element and element count of this block
      if (packed) {
        const int64_t r0 = w * rows_per, rn = std::min(rows_per, rows - r0);
        for (int64_t r = 0; r < rn; ++r) {
          row_base(r0 + r);
          for (int i = 0; i < nin; ++i) {
            float* dst = in_regs + i * kBlock + r * n;
            if (conv_slot[(size_t)i] >= 0) {  // a fused Cast: convert the row's values
              to_float(dtype[(size_t)i], X[(size_t)i].data, base[i], inner[i] ? n : 1, dst);
              if (inner[i] == 0)
                for (int64_t j = 1; j < n; ++j) dst[j] = dst[0];
              continue;
            }
            const float* src = X[(size_t)i].data + base[i];
            if (inner[i] == 0) {
              for (int64_t j = 0; j < n; ++j) dst[j] = src[0];
            } else {
              for (int64_t j = 0; j < n; ++j) dst[j] = src[j * inner[i]];
            }
          }
        }
        for (int i = 0; i < nin; ++i) ptr[i] = in_regs + i * kBlock, in_stride[i] = 1;
        out0 = r0 * n, cn = rn * n;
      } else {
        const int64_t row = w / nch, c0 = (w % nch) * kBlock;
        cn = std::min(kBlock, n - c0);
        row_base(row);
        for (int i = 0; i < nin; ++i) {
          const int64_t off = base[i] + c0 * inner[i];
          in_stride[i] = inner[i];
          const int slot = conv_slot[(size_t)i];
          if (slot < 0) {
            ptr[i] = X[(size_t)i].data + off;
            continue;
          }
          float* dst = conv + (int64_t)slot * kBlock;  // a fused Cast: the block's values
          to_float(dtype[(size_t)i], X[(size_t)i].data, off, inner[i] ? cn : 1, dst);
          ptr[i] = dst;
        }
        out0 = row * n + c0;
      }
      auto operand = [&](int64_t x, int64_t* s) -> const float* {
        const int64_t kind = x >> kKindShift, idx = x & kIndexMask;
        if (kind == K_REG) { *s = 1; return regs + idx * kBlock; }
        if (kind == K_INPUT) { *s = in_stride[idx]; return ptr[idx]; }
        *s = 0;
        return imm.data() + idx;
      };
      for (const Instr& in : prog) {
        float* y = regs + (int64_t)in.dst * kBlock;
        int64_t sa, sb;
        const float* pa = operand(in.a, &sa);
        if (in.op <= P_MIN) {
          const float* pb = operand(in.b, &sb);
          o.binary(pa, sa, pb, sb, y, cn, in.op);
        } else if (in.op == P_POW) {
          const float* pb = operand(in.b, &sb);
          for (int64_t j = 0; j < cn; ++j) y[j] = std::pow(pa[j * sa], pb[j * sb]);
        } else {
          if (sa == 0) {
            const float v = pa[0];
            for (int64_t j = 0; j < cn; ++j) y[j] = v;
            pa = y;
          }
          if (in.op == P_LOG) {
            for (int64_t j = 0; j < cn; ++j) y[j] = std::log(pa[j]);
          } else if (in.op == P_CLIP) {
            const int64_t bi = in.b & kIndexMask;
            o.unary(pa, y, cn, ACT_CLIP, imm[(size_t)bi], imm[(size_t)bi + 1]);
          } else if (in.op == P_COPY) {
            if (pa != y) std::copy(pa, pa + cn, y);
          } else {
            o.unary(pa, y, cn, unary_act(in.op), 0.f, 0.f);
          }
        }
      }
      std::copy(regs + result * kBlock, regs + result * kBlock + cn, Y.data + out0);
    }
  });
  if (!ok) return e.fail("internal error in worker");
  return 0;
}
