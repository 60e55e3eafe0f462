// Recurrent layers (fp32, ONNX semantics): lstm_f32 and gru_f32.
//
// Per direction: the input projection of every timestep is one GEMM (sgemm, both biases folded
// into its epilogue), then per step the recurrent projection h_{t-1} @ R^T (a register-tiled
// small-M GEMM over the pre-transposed R) and the fused gate activations / state update. Batch
// rows are independent over the whole sequence, so large problems split (direction, batch
// rows) over threads with one parallel region and no per-step synchronization.
//
// The per-step loops (rnn_cell.inc) are compiled once per ISA in this file, under the same
// `#pragma GCC target` discipline as isa_*.cc (headers first, then the pragma), and picked to
// match ops() (so ODC_NATIVE_ISA / force_isa apply to them too).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "internal.h"

namespace odc_native {
namespace {

struct RnnFns {
  void (*rec)(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
              int64_t ldb, float* C, int64_t ldc);
  void (*lstm_cell)(int64_t H, const float* x, const float* r, const float* p, float clip,
                    int input_forget, float* c, float* h);
  void (*gru_cell_lbr)(int64_t H, const float* x, const float* r, const float* rbh, float clip,
                       float* h);
  void (*gru_zr)(int64_t H, const float* x, float* zr, const float* h, float clip, float* rh);
  void (*gru_out)(int64_t H, const float* xh, const float* rech, const float* z, float clip,
                  float* h);
};

}  // namespace
}  // namespace odc_native

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"

// ---------------------------------------------------------------- baseline (SSE2 on x86-64)
namespace odc_native {
namespace rnn_scalar {
#include "rowops.inc"
#define ODC_RNN_VBYTES 16
#define ODC_RNN_RCP(x) ((vf)_mm_rcp_ps((__m128)(x)))
#define ODC_RNN_MB 2
#define ODC_RNN_NV 4
#define ODC_RNN_NV2 4
#include "rnn_cell.inc"
#undef ODC_RNN_VBYTES
#undef ODC_RNN_RCP
#undef ODC_RNN_MB
#undef ODC_RNN_NV
#undef ODC_RNN_NV2
}  // namespace rnn_scalar
}  // namespace odc_native

// ---------------------------------------------------------------- AVX2 + FMA
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
namespace odc_native {
namespace rnn_avx2 {
#include "rowops.inc"
#define ODC_RNN_VBYTES 32
#define ODC_RNN_RCP(x) ((vf)_mm256_rcp_ps((__m256)(x)))
#define ODC_RNN_MB 2
#define ODC_RNN_NV 4
#define ODC_RNN_NV2 4
#include "rnn_cell.inc"
#undef ODC_RNN_VBYTES
#undef ODC_RNN_RCP
#undef ODC_RNN_MB
#undef ODC_RNN_NV
#undef ODC_RNN_NV2
}  // namespace rnn_avx2
}  // namespace odc_native
#pragma GCC pop_options

// ---------------------------------------------------------------- AVX-512
#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma,f16c")
namespace odc_native {
namespace rnn_avx512 {
#include "rowops.inc"
#define ODC_RNN_VBYTES 64
#define ODC_RNN_RCP(x) ((vf)_mm512_maskz_rcp14_ps((__mmask16)0xFFFF, (__m512)(x)))
#define ODC_RNN_MB 4
#define ODC_RNN_NV 4
#define ODC_RNN_NV2 8
#include "rnn_cell.inc"
#undef ODC_RNN_VBYTES
#undef ODC_RNN_RCP
#undef ODC_RNN_MB
#undef ODC_RNN_NV
#undef ODC_RNN_NV2
}  // namespace rnn_avx512
}  // namespace odc_native
#pragma GCC pop_options

#pragma GCC diagnostic pop

namespace odc_native {
namespace {

#define ODC_RNN_FNS(ns) \
  { ns::rec_gemm, ns::lstm_cell, ns::gru_cell_lbr, ns::gru_zr, ns::gru_out }
const RnnFns kRnnScalar = ODC_RNN_FNS(rnn_scalar);
const RnnFns kRnnAvx2 = ODC_RNN_FNS(rnn_avx2);
const RnnFns kRnnAvx512 = ODC_RNN_FNS(rnn_avx512);
#undef ODC_RNN_FNS

const RnnFns& rnn_fns() {
  const RowOps* o = &ops();
  if (o == &kAvx512Ops) return kRnnAvx512;
  if (o == &kAvx2Ops) return kRnnAvx2;
  return kRnnScalar;
}

enum Cell { LSTM = 0, GRU = 1 };

struct Rnn {
  int cell;
  int64_t S, B, I, H, D, G, GH;
  int reverse_only;  // direction 1: the single direction runs backwards
  int layout;
  int input_forget = 0;
  int lbr = 0;  // GRU linear_before_reset
  float clip = 0.f;
  View X, W, R, Bias, P, H0, C0, Y, Yh, Yc;
  const int32_t* lens32 = nullptr;
  const int64_t* lens64 = nullptr;
};

// Workspace floats: XW [D, S*B, GH], bias [D, GH], rbh [D, H], then per (d, b) rows: R [GH],
// tmp [H], h [H], c [H].
int64_t workspace_floats(const Rnn& r) {
  return r.D * r.S * r.B * r.GH + r.D * (r.GH + r.H) + r.D * r.B * (r.GH + 3 * r.H);
}

int64_t seq_len(const Rnn& r, int64_t b) {
  if (r.lens32) return r.lens32[b];
  if (r.lens64) return r.lens64[b];
  return r.S;
}

// state tensors: layout 0 [D, B, H], layout 1 [B, D, H]
int64_t state_row(const Rnn& r, int64_t d, int64_t b) {
  return r.layout ? b * r.D + d : d * r.B + b;
}

// Runs direction d over batch rows [b0, b1).
void run_rows(const Rnn& r, const RnnFns& f, float* ws, int64_t d, int64_t b0, int64_t b1) {
  const int64_t S = r.S, B = r.B, H = r.H, GH = r.GH, D = r.D;
  const int64_t nb = b1 - b0;
  const float* xw = ws + d * S * B * GH;
  float* base = ws + D * S * B * GH;
  const float* rbh = base + D * GH + d * H;
  float* rows = base + D * (GH + H);
  float* rec = rows + (d * B + b0) * GH;                      // [nb, GH]
  float* tmp = rows + D * B * GH + (d * B + b0) * H;          // [nb, H]
  float* hs = rows + D * B * (GH + H) + (d * B + b0) * H;     // [nb, H]
  float* cs = rows + D * B * (GH + 2 * H) + (d * B + b0) * H;  // [nb, H]
  const float* RT = r.R.data + d * H * GH;
  const float* P = r.P.data ? r.P.data + d * 3 * H : nullptr;
  const bool reverse = r.reverse_only || d == 1;
  // initial state
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t sr = state_row(r, d, b);
    float* h = hs + (b - b0) * H;
    float* c = cs + (b - b0) * H;
    if (r.H0.data) std::memcpy(h, r.H0.data + sr * H, (size_t)H * 4);
    else std::memset(h, 0, (size_t)H * 4);
    if (r.cell == LSTM) {
      if (r.C0.data) std::memcpy(c, r.C0.data + sr * H, (size_t)H * 4);
      else std::memset(c, 0, (size_t)H * 4);
    }
  }
  for (int64_t s = 0; s < S; ++s) {
    const int64_t t = reverse ? S - 1 - s : s;
    f.rec(nb, r.cell == GRU && !r.lbr ? 2 * H : GH, H, hs, H, RT, GH, rec, GH);
    auto xrow = [&](int64_t b) { return xw + (r.layout ? b * S + t : t * B + b) * GH; };
    auto live = [&](int64_t b) { return t < seq_len(r, b); };
    if (r.cell == LSTM) {
      for (int64_t b = b0; b < b1; ++b)
        if (live(b))
          f.lstm_cell(H, xrow(b), rec + (b - b0) * GH, P, r.clip, r.input_forget,
                      cs + (b - b0) * H, hs + (b - b0) * H);
    } else if (r.lbr) {
      for (int64_t b = b0; b < b1; ++b)
        if (live(b))
          f.gru_cell_lbr(H, xrow(b), rec + (b - b0) * GH, rbh, r.clip, hs + (b - b0) * H);
    } else {
      for (int64_t b = b0; b < b1; ++b)
        f.gru_zr(H, xrow(b), rec + (b - b0) * GH, hs + (b - b0) * H, r.clip, tmp + (b - b0) * H);
      f.rec(nb, H, H, tmp, H, RT + 2 * H, GH, rec + 2 * H, GH);
      for (int64_t b = b0; b < b1; ++b)
        if (live(b))
          f.gru_out(H, xrow(b) + 2 * H, rec + (b - b0) * GH + 2 * H, rec + (b - b0) * GH,
                    r.clip, hs + (b - b0) * H);
    }
    if (r.Y.data) {
      for (int64_t b = b0; b < b1; ++b) {
        // Y: layout 0 [S, D, B, H], layout 1 [B, S, D, H]
        float* y = r.Y.data + (r.layout ? (b * S + t) * D + d : (t * D + d) * B + b) * H;
        if (live(b)) std::memcpy(y, hs + (b - b0) * H, (size_t)H * 4);
        else std::memset(y, 0, (size_t)H * 4);
      }
    }
  }
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t sr = state_row(r, d, b);
    if (r.Yh.data) std::memcpy(r.Yh.data + sr * H, hs + (b - b0) * H, (size_t)H * 4);
    if (r.Yc.data) std::memcpy(r.Yc.data + sr * H, cs + (b - b0) * H, (size_t)H * 4);
  }
}

int run_rnn(const odc_kernel_args* a, Rnn& r, Err& e) {
  const int64_t S = r.S, B = r.B, I = r.I, H = r.H, D = r.D, GH = r.GH;
  if (r.Y.numel == 0 && r.Yh.numel == 0 && r.Yc.numel == 0) return 0;
  const int64_t need = workspace_floats(r);
  std::vector<float> own;
  float* ws;
  if (a->workspace && a->workspace_size >= need * 4) {
    ws = static_cast<float*>(a->workspace);
  } else {
    own.resize((size_t)need);
    ws = own.data();
  }
  // biases: input projection bias (Wb + Rb, except GRU lbr=1's h gate: Wb only), rbh
  float* bias = ws + D * S * B * GH;
  float* rbh = bias + D * GH;
  for (int64_t d = 0; d < D; ++d) {
    float* bd = bias + d * GH;
    float* rd = rbh + d * H;
    if (!r.Bias.data) {
      std::memset(bd, 0, (size_t)GH * 4);
      std::memset(rd, 0, (size_t)H * 4);
      continue;
    }
    const float* wb = r.Bias.data + d * 2 * GH;
    const float* rb = wb + GH;
    for (int64_t j = 0; j < GH; ++j) bd[j] = wb[j] + rb[j];
    if (r.cell == GRU && r.lbr)
      for (int64_t j = 0; j < H; ++j) bd[2 * H + j] = wb[2 * H + j], rd[j] = rb[2 * H + j];
    else
      std::memset(rd, 0, (size_t)H * 4);
  }
  const int nt = a->num_threads;
  // input projection: XW_d [S*B, GH] = X [S*B, I] @ WT_d [I, GH] + bias_d
  const int64_t M = S * B;
  for (int64_t d = 0; d < D; ++d) {
    float* xw = ws + d * M * GH;
    if (I == 0) {
      for (int64_t i = 0; i < M; ++i) std::memcpy(xw + i * GH, bias + d * GH, (size_t)GH * 4);
      continue;
    }
    Epilogue ep;
    if (r.Bias.data) ep.bias = bias + d * GH, ep.bias_rs = 0, ep.bias_cs = 1;
    const int T = threads_for(M * GH * I, 1 << 18, nt);
    if (!sgemm(M, GH, I, r.X.data, I, false, BMatrix(r.W.data + d * I * GH, GH, false),
               xw, GH, ep, T))
      return e.fail("out of memory (packing buffers)");
  }
  // recurrence: jobs = (direction, batch chunk), no synchronization between steps
  const RnnFns& f = rnn_fns();
  const int64_t work = D * S * B * H * GH;
  // (grain ~2 M multiply-adds: a split only pays when each thread has >~ 0.1 ms of work)
  int T = threads_for(work, 1 << 21, nt);
  T = (int)std::min<int64_t>(T, D * B);
  if (T <= 1) {
    for (int64_t d = 0; d < D; ++d) run_rows(r, f, ws, d, 0, B);
    return 0;
  }
  const int64_t chunks = std::max<int64_t>(1, T / D);  // batch chunks per direction
  const int64_t jobs = D * chunks;
  const bool ok = parallel_run(T, [&](int tid) {
    for (int64_t j = tid; j < jobs; j += T) {
      const int64_t d = j / chunks, c = j % chunks;
      int64_t b0, b1;
      split_range(B, (int)chunks, (int)c, &b0, &b1);
      if (b1 > b0) run_rows(r, f, ws, d, b0, b1);
    }
  });
  if (!ok) return e.fail("internal error in worker");
  return 0;
}

// Shared argument parsing. Inputs: X, WT, RT, B?, sequence_lens?, initial_h?, [initial_c?, P?]
int parse_rnn(const odc_kernel_args* a, int cell, Rnn* out, Err& e) {
  Rnn& r = *out;
  r.cell = cell;
  r.G = cell == LSTM ? 4 : 3;
  const int64_t dir = a->iparams[0], layout = a->iparams[1], flag = a->iparams[2];
  if (dir < 0 || dir > 2) return e.fail("direction %lld must be 0, 1 or 2", (long long)dir);
  if (layout != 0 && layout != 1) return e.fail("layout %lld must be 0 or 1", (long long)layout);
  if (flag != 0 && flag != 1)
    return e.fail("%s %lld must be 0 or 1", cell == LSTM ? "input_forget" : "linear_before_reset",
                  (long long)flag);
  const double clip = a->fparams[0];
  if (!(clip >= 0.0) || !std::isfinite(clip))
    return e.fail("clip %g must be finite and >= 0 (0: no clipping)", clip);
  r.layout = (int)layout;
  r.reverse_only = dir == 1;
  if (cell == LSTM) r.input_forget = (int)flag;
  else r.lbr = (int)flag;
  r.clip = (float)clip;
  if (get_view(a->inputs[0], "input 0 (X)", 3, 3, false, &r.X, e)) return 1;
  if (get_view(a->inputs[1], "input 1 (W, transposed)", 3, 3, false, &r.W, e)) return 1;
  if (get_view(a->inputs[2], "input 2 (R, transposed)", 3, 3, false, &r.R, e)) return 1;
  if (a->num_inputs > 3 && get_view(a->inputs[3], "input 3 (B)", 2, 2, true, &r.Bias, e))
    return 1;
  if (a->num_inputs > 5 && get_view(a->inputs[5], "input 5 (initial_h)", 3, 3, true, &r.H0, e))
    return 1;
  if (cell == LSTM) {
    if (a->num_inputs > 6 && get_view(a->inputs[6], "input 6 (initial_c)", 3, 3, true, &r.C0, e))
      return 1;
    if (a->num_inputs > 7 && get_view(a->inputs[7], "input 7 (P)", 2, 2, true, &r.P, e))
      return 1;
  }
  const char* names[3] = {"output 0 (Y)", "output 1 (Y_h)", "output 2 (Y_c)"};
  View* outs[3] = {&r.Y, &r.Yh, &r.Yc};
  for (int i = 0; i < a->num_outputs; ++i)
    if (get_view(a->outputs[i], names[i], i ? 3 : 4, i ? 3 : 4, true, outs[i], e)) return 1;
  char s1[128], s2[128];
  r.S = r.X.shape[layout ? 1 : 0];
  r.B = r.X.shape[layout ? 0 : 1];
  r.I = r.X.shape[2];
  r.D = r.W.shape[0];
  r.GH = r.W.shape[2];
  r.H = r.R.shape[1];
  const int64_t D = r.D, H = r.H, GH = r.GH, S = r.S, B = r.B;
  if (D != (dir == 2 ? 2 : 1))
    return e.fail("W %s: %lld directions, direction=%lld needs %d", shape_str(r.W, s1, 128),
                  (long long)D, (long long)dir, dir == 2 ? 2 : 1);
  if (r.W.shape[1] != r.I || GH != r.G * H)
    return e.fail("W (transposed) %s, expected [%lld, %lld, %lld] for X %s", shape_str(r.W, s1, 128),
                  (long long)D, (long long)r.I, (long long)(r.G * H), shape_str(r.X, s2, 128));
  if (r.R.shape[0] != D || r.R.shape[2] != GH)
    return e.fail("R (transposed) %s, expected [%lld, %lld, %lld]", shape_str(r.R, s1, 128),
                  (long long)D, (long long)H, (long long)GH);
  if (r.Bias.data && (r.Bias.shape[0] != D || r.Bias.shape[1] != 2 * GH))
    return e.fail("B %s, expected [%lld, %lld]", shape_str(r.Bias, s1, 128), (long long)D,
                  (long long)(2 * GH));
  if (r.P.data && (r.P.shape[0] != D || r.P.shape[1] != 3 * H))
    return e.fail("P %s, expected [%lld, %lld]", shape_str(r.P, s1, 128), (long long)D,
                  (long long)(3 * H));
  const int64_t st0 = layout ? B : D, st1 = layout ? D : B;
  const View* states[4] = {&r.H0, &r.C0, &r.Yh, &r.Yc};
  const char* snames[4] = {"initial_h", "initial_c", "Y_h", "Y_c"};
  for (int i = 0; i < 4; ++i) {
    const View& v = *states[i];
    if (v.data && (v.shape[0] != st0 || v.shape[1] != st1 || v.shape[2] != H))
      return e.fail("%s %s, expected [%lld, %lld, %lld]", snames[i], shape_str(v, s1, 128),
                    (long long)st0, (long long)st1, (long long)H);
  }
  if (r.Y.data) {
    const int64_t want[4] = {layout ? B : S, layout ? S : D, layout ? D : B, H};
    if (!std::equal(want, want + 4, r.Y.shape))
      return e.fail("Y %s, expected [%lld, %lld, %lld, %lld]", shape_str(r.Y, s1, 128),
                    (long long)want[0], (long long)want[1], (long long)want[2],
                    (long long)want[3]);
  }
  // sequence_lens: int32 or int64 [B], each in [0, S]
  if (a->num_inputs > 4 && a->inputs[4].data) {
    const odc_tensor& t = a->inputs[4];
    if (t.dtype != ODC_INT32 && t.dtype != ODC_INT64)
      return e.fail("input 4 (sequence_lens): dtype %d is not int32 or int64", t.dtype);
    if (t.device_type != ODC_DEVICE_CPU) return e.fail("input 4 (sequence_lens): not on the CPU");
    if (t.ndim != 1 || !t.shape || t.shape[0] != B)
      return e.fail("input 4 (sequence_lens): expected shape [%lld]", (long long)B);
    for (int64_t b = 0; b < B; ++b) {
      const int64_t v = t.dtype == ODC_INT32 ? ((const int32_t*)t.data)[b]
                                             : ((const int64_t*)t.data)[b];
      if (v < 0 || v > S)
        return e.fail("sequence_lens[%lld] = %lld is outside [0, %lld]", (long long)b,
                      (long long)v, (long long)S);
    }
    if (t.dtype == ODC_INT32) r.lens32 = (const int32_t*)t.data;
    else r.lens64 = (const int64_t*)t.data;
  }
  // outputs must not overlap inputs or each other
  const View* ins[7] = {&r.X, &r.W, &r.R, &r.Bias, &r.H0, &r.C0, &r.P};
  const char* inames[7] = {"X", "W", "R", "B", "initial_h", "initial_c", "P"};
  const char* onames[3] = {"Y", "Y_h", "Y_c"};
  for (int o = 0; o < 3; ++o) {
    for (int i = 0; i < 7; ++i)
      if (check_no_overlap(*outs[o], onames[o], *ins[i], inames[i], false, e)) return 1;
    for (int p = o + 1; p < 3; ++p)
      if (check_no_overlap(*outs[o], onames[o], *outs[p], onames[p], false, e)) return 1;
  }
  return 0;
}

}  // namespace
}  // namespace odc_native

using namespace odc_native;

/* lstm_f32: ONNX LSTM (default activations sigmoid / tanh / tanh), gates ordered i, o, f, c.
 * inputs : X [S, B, I] (layout 0) or [B, S, I] (layout 1);
 *          WT [D, I, 4H] (W transposed per direction); RT [D, H, 4H] (R transposed);
 *          B? [D, 8H] (ONNX: Wb then Rb); sequence_lens? [B] int32/int64, each in [0, S];
 *          initial_h? / initial_c? [D, B, H] (layout 0) or [B, D, H] (layout 1);
 *          P? [D, 3H] peepholes (i, o, f)
 * outputs: Y? [S, D, B, H] (layout 0) or [B, S, D, H]; Y_h?, Y_c? (initial_h's shape).
 *          Any output may be omitted (data NULL); steps at or past a batch entry's length leave
 *          its state alone and write zeros to Y.
 * iparams: [direction (0 forward, 1 reverse, 2 bidirectional: D = 2), layout, input_forget]
 * fparams: [clip] (> 0: gate pre-activations clipped to [-clip, clip]; 0: none)
 * workspace: 4 * (D*S*B*4H + D*5H + D*B*7H) bytes (XW, biases, per-row state); allocated per
 *            call when the plan provides less.
 * Outputs must not overlap the inputs or each other. */
ODC_DEFINE_KERNEL(lstm_f32) {
  if (check_counts(a, 3, 8, 1, 3, 3, 1, e)) return 1;
  Rnn r;
  if (parse_rnn(a, LSTM, &r, e)) return 1;
  return run_rnn(a, r, e);
}

/* gru_f32: ONNX GRU (default activations sigmoid / tanh), gates ordered z, r, h.
 * inputs : X [S, B, I] (layout 0) or [B, S, I] (layout 1);
 *          WT [D, I, 3H] (W transposed per direction); RT [D, H, 3H] (R transposed);
 *          B? [D, 6H] (ONNX: Wb then Rb); sequence_lens? [B] int32/int64, each in [0, S];
 *          initial_h? [D, B, H] (layout 0) or [B, D, H] (layout 1)
 * outputs: Y? [S, D, B, H] (layout 0) or [B, S, D, H]; Y_h? (initial_h's shape); either may be
 *          omitted (data NULL).
 * iparams: [direction (0 forward, 1 reverse, 2 bidirectional: D = 2), layout,
 *           linear_before_reset]
 * fparams: [clip] (> 0: gate pre-activations clipped to [-clip, clip]; 0: none)
 * workspace: 4 * (D*S*B*3H + D*4H + D*B*6H) bytes; allocated per call when the plan provides
 *            less.
 * Outputs must not overlap the inputs or each other. */
ODC_DEFINE_KERNEL(gru_f32) {
  if (check_counts(a, 3, 6, 1, 2, 3, 1, e)) return 1;
  Rnn r;
  if (parse_rnn(a, GRU, &r, e)) return 1;
  return run_rnn(a, r, e);
}
