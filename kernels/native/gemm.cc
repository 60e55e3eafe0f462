// Blocked, packed GEMM (BLIS-style loops: NC -> KC -> MC -> NR -> MR) around the per-ISA
// register-tiled micro-kernel, multithreaded over a 2-D grid of C tiles, with a fused epilogue
// (alpha, bias/beta, residual, activation). Also the gemm_f32 kernel (Gemm / batched MatMul).
#include <algorithm>
#include <atomic>
#include <cstring>
#include <new>
#include <vector>

#include "internal.h"

namespace odc_native {

static inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

void BMatrix::pack(int64_t k0, int64_t kc, int64_t n0, int64_t nc, int nr, float* dst) const {
  for (int64_t p = 0; p * nr < nc; ++p) {
    const int64_t c0 = n0 + p * nr;
    const int64_t ce = std::min<int64_t>(nr, nc - p * nr);
    float* d = dst + p * kc * nr;
    if (!trans) {
      const float* src = b + k0 * ld + c0;
      if (ce == nr) {
        for (int64_t k = 0; k < kc; ++k, src += ld) std::memcpy(d + k * nr, src, nr * 4);
      } else {
        for (int64_t k = 0; k < kc; ++k, src += ld) {
          float* dk = d + k * nr;
          int64_t j = 0;
          for (; j < ce; ++j) dk[j] = src[j];
          for (; j < nr; ++j) dk[j] = 0.f;
        }
      }
    } else {
      // transpose in 8 x 8 blocks: 8 contiguous reads per source row, 8 contiguous writes
      const float* src = b + c0 * ld + k0;
      int64_t k = 0;
      for (; k + 8 <= kc; k += 8) {
        int64_t j = 0;
        for (; j + 8 <= ce; j += 8) {
          float blk[8][8];
          for (int jj = 0; jj < 8; ++jj)
            for (int kk = 0; kk < 8; ++kk) blk[kk][jj] = src[(j + jj) * ld + k + kk];
          for (int kk = 0; kk < 8; ++kk)
            for (int jj = 0; jj < 8; ++jj) d[(k + kk) * nr + j + jj] = blk[kk][jj];
        }
        for (; j < ce; ++j)
          for (int kk = 0; kk < 8; ++kk) d[(k + kk) * nr + j] = src[j * ld + k + kk];
      }
      for (; k < kc; ++k)
        for (int64_t j = 0; j < ce; ++j) d[k * nr + j] = src[j * ld + k];
      for (int64_t kk = 0; kk < kc; ++kk)
        for (int64_t j = ce; j < nr; ++j) d[kk * nr + j] = 0.f;
    }
  }
}

// A panels: dst[p][k][i] (row stride lda >= mr, a multiple of 8, zero padded) for rows
// [i0, i0+mc) and k in [k0, k0+kc). Row-major A is transposed with the ISA's gather-pack.
static void pack_a(const RowOps& o, const float* A, int64_t lda, bool trans, int64_t i0,
                   int64_t mc, int64_t k0, int64_t kc, int mr, int64_t plda, float* dst) {
  static const std::vector<int32_t> kIdentity = [] {
    std::vector<int32_t> v(4096);
    for (int i = 0; i < 4096; ++i) v[i] = i;
    return v;
  }();
  for (int64_t p = 0; p * mr < mc; ++p) {
    const int64_t r0 = i0 + p * mr;
    const int64_t re = std::min<int64_t>(mr, mc - p * mr);
    float* d = dst + p * kc * plda;
    if (!trans && kc <= 4096 && lda * re < (int64_t(1) << 31)) {
      int32_t poff[64];
      for (int64_t i = 0; i < re; ++i) poff[i] = (int32_t)(i * lda);
      o.pack_gather(A + r0 * lda + k0, kIdentity.data(), kc, poff, (int)re, d, plda);
    } else if (!trans) {
      for (int64_t i = 0; i < re; ++i) {
        const float* src = A + (r0 + i) * lda + k0;
        for (int64_t k = 0; k < kc; ++k) d[k * plda + i] = src[k];
      }
      for (int64_t i = re; i < plda; ++i)
        for (int64_t k = 0; k < kc; ++k) d[k * plda + i] = 0.f;
    } else {
      for (int64_t k = 0; k < kc; ++k) {
        const float* src = A + (k0 + k) * lda + r0;
        float* dk = d + k * plda;
        int64_t i = 0;
        for (; i < re; ++i) dk[i] = src[i];
        for (; i < plda; ++i) dk[i] = 0.f;
      }
    }
  }
}

void apply_epilogue(float* C, int64_t ldc, int64_t i0, int64_t i1, int64_t j0, int64_t j1,
                    const Epilogue& ep) {
  const bool trivial = ep.alpha == 1.f && !ep.bias && !ep.res && ep.act == ACT_NONE;
  if (trivial || j1 <= j0) return;
  const RowOps& o = ops();
  for (int64_t i = i0; i < i1; ++i) {
    const float* bias = ep.bias ? ep.bias + i * ep.bias_rs + j0 * ep.bias_cs : nullptr;
    const float* res = ep.res ? ep.res + i * ep.res_ld + j0 : nullptr;
    o.epilogue(C + i * ldc + j0, j1 - j0, ep.alpha, bias, (int)ep.bias_cs, ep.beta, res, ep.act,
               ep.act_a, ep.act_b, ep.res_after_act);
  }
}

// One thread's share: rows [m0,m1) x cols [n0,n1) of C.
static void gemm_block(const RowOps& o, int64_t m0, int64_t m1, int64_t n0, int64_t n1,
                       int64_t K, const float* A, int64_t lda, bool transA, const BSource& B,
                       float* C, int64_t ldc, const Epilogue& ep) {
  if (m1 <= m0 || n1 <= n0) return;
  const int MR = o.mr, NR = o.nr;
  const int64_t KC = o.kc, MC = o.mc, NC = o.nc;
  if (K == 0) {
    for (int64_t i = m0; i < m1; ++i) std::memset(C + i * ldc + n0, 0, (n1 - n0) * 4);
    apply_epilogue(C, ldc, m0, m1, n0, n1, ep);
    return;
  }
  const int64_t plda = (MR + 7) / 8 * 8;  // A panel row stride (pack_gather's layout)
  float* Ap = thread_scratch(0, (MC + MR - 1) / MR * plda * KC);
  float* Bp = thread_scratch(1, KC * round_up(std::min<int64_t>(NC, n1 - n0), NR));
  for (int64_t jc = n0; jc < n1; jc += NC) {
    const int64_t nc = std::min<int64_t>(NC, n1 - jc);
    for (int64_t pc = 0; pc < K; pc += KC) {
      const int64_t kc = std::min<int64_t>(KC, K - pc);
      const int acc = pc > 0;
      const bool last = pc + kc >= K;
      B.pack(pc, kc, jc, nc, NR, Bp);
      for (int64_t ic = m0; ic < m1; ic += MC) {
        const int64_t mc = std::min<int64_t>(MC, m1 - ic);
        pack_a(o, A, lda, transA, ic, mc, pc, kc, MR, plda, Ap);
        for (int64_t jr = 0; jr < nc; jr += NR) {
          const int64_t nr = std::min<int64_t>(NR, nc - jr);
          const float* bp = Bp + (jr / NR) * kc * NR;
          for (int64_t ir = 0; ir < mc; ir += MR) {
            const int64_t mr = std::min<int64_t>(MR, mc - ir);
            const float* ap = Ap + (ir / MR) * kc * plda;
            float* c = C + (ic + ir) * ldc + jc + jr;
            o.ukr_mn(kc, ap, plda, bp, NR, c, ldc, acc, (int)mr, (int)nr);
          }
        }
        if (last) apply_epilogue(C, ldc, ic, ic + mc, jc, jc + nc, ep);
      }
    }
  }
}

bool sgemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, bool transA,
           const BSource& B, float* C, int64_t ldc, const Epilogue& ep, int nthreads) {
  if (M <= 0 || N <= 0) return true;
  const RowOps& o = ops();
  const int MR = o.mr, NR = o.nr;
  // threads: ~ 64K MACs per thread minimum
  int T = threads_for(M * N * std::max<int64_t>(K, 1), 1 << 17, nthreads);
  // choose a tm x tn grid minimizing padded work + packing traffic per thread
  int best_tm = 1, best_tn = T;
  double best = 1e300;
  for (int tm = 1; tm <= T; ++tm) {
    if (T % tm) continue;
    const int tn = T / tm;
    const double mt = (double)round_up((M + tm - 1) / tm, MR);
    const double nt = (double)round_up((N + tn - 1) / tn, NR);
    if (mt * (tm - 1) >= round_up(M, MR) + MR || nt * (tn - 1) >= round_up(N, NR) + NR)
      continue;  // an empty thread
    const double cost = mt * nt + 24.0 * (mt + nt);
    if (cost < best) best = cost, best_tm = tm, best_tn = tn;
  }
  const int tm = best_tm;
  // Columns are cut finer than the thread grid (up to 4 chunks per thread, each >= 256 wide)
  // and handed out dynamically, so a thread delayed by the OS does not stall the others.
  // Each chunk repacks its A block (M_t x K), negligible next to its 2*M_t*K*N_chunk flops.
  int64_t tn = best_tn;
  if (T > 1) tn *= std::max<int64_t>(1, std::min<int64_t>(4, N / (best_tn * 256)));
  const int64_t mstep = round_up((M + tm - 1) / tm, MR);
  const int64_t nstep = round_up((N + tn - 1) / tn, NR);
  const int64_t tasks = tm * tn;
  std::atomic<int64_t> next{0};
  return parallel_run(T, [&](int) {
    for (;;) {
      const int64_t t = next.fetch_add(1, std::memory_order_relaxed);
      if (t >= tasks) break;
      const int64_t bi = t / tn, bj = t % tn;
      const int64_t m0 = std::min(M, bi * mstep), m1 = std::min(M, m0 + mstep);
      const int64_t n0 = std::min(N, bj * nstep), n1 = std::min(N, n0 + nstep);
      gemm_block(o, m0, m1, n0, n1, K, A, lda, transA, B, C, ldc, ep);
    }
  });
}

// Small M (GEMV-like, memory bound): no packing of B; parallel over N.
static bool small_m_gemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                         bool transA, const float* B, int64_t ldb, bool transB, float* C,
                         int64_t ldc, const Epilogue& ep, int nthreads) {
  const RowOps& o = ops();
  std::vector<float> at;
  if (transA) {  // make A' rows contiguous
    at.resize((size_t)(M * K));
    for (int64_t i = 0; i < M; ++i)
      for (int64_t k = 0; k < K; ++k) at[i * K + k] = A[k * lda + i];
    A = at.data();
    lda = K;
  }
  const int T = threads_for(M * N * std::max<int64_t>(K, 1), 1 << 16, nthreads);
  return parallel_run(T, [&](int tid) {
    int64_t nb, ne;
    split_range(N, T, tid, &nb, &ne);
    if (transB) {
      for (int64_t n = nb; n < ne; ++n)
        for (int64_t i = 0; i < M; ++i) C[i * ldc + n] = o.dot(A + i * lda, B + n * ldb, K);
    } else {
      const int64_t CH = 512;
      for (int64_t c0 = nb; c0 < ne; c0 += CH) {
        const int64_t cn = std::min(CH, ne - c0);
        for (int64_t i = 0; i < M; ++i) std::memset(C + i * ldc + c0, 0, cn * 4);
        for (int64_t k = 0; k < K; ++k)
          for (int64_t i = 0; i < M; ++i)
            o.axpy(A[i * lda + k], B + k * ldb + c0, C + i * ldc + c0, cn);
      }
    }
    apply_epilogue(C, ldc, 0, M, nb, ne, ep);
  });
}

}  // namespace odc_native

using namespace odc_native;

/* gemm_f32: Y = act(alpha * A' @ B' + beta * C [+ R]) [+ R]   (Gemm and batched MatMul)
 * inputs : A [..., M, K] ([..., K, M] if transA), B [..., K, N] ([..., N, K] if transB),
 *          C (optional bias) broadcastable to [M, N]: [], [1], [N], [1,N], [M,1], [M,N],
 *          R (optional residual) with Y's shape. Batch dims of A and B broadcast (numpy).
 * outputs: Y [batch..., M, N]
 * iparams: [trans_a, trans_b, act, residual_after_act]
 * fparams: [alpha, beta, act_alpha, act_beta]
 * workspace: 0 (packing buffers are per-thread scratch kept by the library)
 * Y must not overlap any input. */
ODC_DEFINE_KERNEL(gemm_f32) {
  if (check_counts(a, 2, 4, 1, 1, 4, 4, e)) return 1;
  View A, B, Cb, R, Y;
  if (get_view(a->inputs[0], "input 0 (A)", 2, ODC_MAX_RANK, false, &A, e)) return 1;
  if (get_view(a->inputs[1], "input 1 (B)", 2, ODC_MAX_RANK, false, &B, e)) return 1;
  if (a->num_inputs > 2 && get_view(a->inputs[2], "input 2 (C)", 0, 2, true, &Cb, e)) return 1;
  if (a->num_inputs > 3 && get_view(a->inputs[3], "input 3 (R)", 0, ODC_MAX_RANK, true, &R, e))
    return 1;
  if (get_view(a->outputs[0], "output 0 (Y)", 2, ODC_MAX_RANK, false, &Y, e)) return 1;
  const int64_t ta = a->iparams[0], tb = a->iparams[1], act = a->iparams[2],
                rafter = a->iparams[3];
  if ((ta != 0 && ta != 1) || (tb != 0 && tb != 1) || (rafter != 0 && rafter != 1))
    return e.fail("trans_a, trans_b and residual_after_act must be 0 or 1");
  if (parse_act(act, "iparams[2]", e)) return 1;
  const int64_t M = ta ? A.shape[A.ndim - 1] : A.shape[A.ndim - 2];
  const int64_t K = ta ? A.shape[A.ndim - 2] : A.shape[A.ndim - 1];
  const int64_t Kb = tb ? B.shape[B.ndim - 1] : B.shape[B.ndim - 2];
  const int64_t N = tb ? B.shape[B.ndim - 2] : B.shape[B.ndim - 1];
  char s1[128], s2[128], s3[128];
  if (K != Kb)
    return e.fail("inner dimensions differ: A %s (trans_a=%lld), B %s (trans_b=%lld)",
                  shape_str(A, s1, 128), (long long)ta, shape_str(B, s2, 128), (long long)tb);
  // output batch dims = broadcast of A and B batch dims
  const int yb = Y.ndim - 2, ab = A.ndim - 2, bb = B.ndim - 2;
  if (Y.shape[Y.ndim - 2] != M || Y.shape[Y.ndim - 1] != N || ab > yb || bb > yb)
    return e.fail("output Y %s does not match A %s @ B %s", shape_str(Y, s1, 128),
                  shape_str(A, s2, 128), shape_str(B, s3, 128));
  int64_t astr[ODC_MAX_RANK] = {0}, bstr[ODC_MAX_RANK] = {0};
  {
    int64_t sa = M * K, sb = K * N;
    for (int d = yb - 1; d >= 0; --d) {
      const int da = d - (yb - ab), db = d - (yb - bb);
      const int64_t ad = da >= 0 ? A.shape[da] : 1, bd = db >= 0 ? B.shape[db] : 1;
      if ((ad != 1 && ad != Y.shape[d]) || (bd != 1 && bd != Y.shape[d]))
        return e.fail("batch dimensions do not broadcast: A %s, B %s -> Y %s",
                      shape_str(A, s1, 128), shape_str(B, s2, 128), shape_str(Y, s3, 128));
      astr[d] = ad == 1 ? 0 : sa;
      bstr[d] = bd == 1 ? 0 : sb;
      sa *= ad;
      sb *= bd;
    }
  }
  Epilogue ep;
  ep.alpha = (float)a->fparams[0];
  ep.beta = (float)a->fparams[1];
  ep.act = (int)act;
  ep.act_a = (float)a->fparams[2];
  ep.act_b = (float)a->fparams[3];
  ep.res_after_act = (int)rafter;
  if (Cb.data && Cb.numel > 0) {
    int64_t c0 = Cb.ndim == 2 ? Cb.shape[0] : 1;
    int64_t c1 = Cb.ndim >= 1 ? Cb.shape[Cb.ndim - 1] : 1;
    if ((c0 != 1 && c0 != M) || (c1 != 1 && c1 != N))
      return e.fail("bias C %s is not broadcastable to [%lld, %lld]", shape_str(Cb, s1, 128),
                    (long long)M, (long long)N);
    ep.bias = Cb.data;
    ep.bias_rs = c0 == 1 ? 0 : c1;
    ep.bias_cs = c1 == 1 ? 0 : 1;
  } else if (Cb.data && Cb.numel == 0 && M * N > 0) {
    return e.fail("bias C is empty");
  }
  if (R.data) {
    if (R.numel != Y.numel || R.ndim != Y.ndim ||
        !std::equal(R.shape, R.shape + R.ndim, Y.shape))
      return e.fail("residual R %s must have Y's shape %s", shape_str(R, s1, 128),
                    shape_str(Y, s2, 128));
    ep.res_ld = N;
  }
  if (check_no_overlap(Y, "Y", A, "A", false, e) || check_no_overlap(Y, "Y", B, "B", false, e) ||
      check_no_overlap(Y, "Y", Cb, "C", false, e) || check_no_overlap(Y, "Y", R, "R", false, e))
    return 1;
  int64_t batch = 1;
  for (int d = 0; d < yb; ++d) batch *= Y.shape[d];
  if (Y.numel == 0) return 0;
  const int nt = a->num_threads;
  const int64_t lda = ta ? M : K, ldb = tb ? K : N;
  // Fold the batch into M when B is shared and A is a plain stack of row-major matrices.
  bool b_shared = true, a_full = true;
  for (int d = 0; d < yb; ++d) {
    if (bstr[d] != 0) b_shared = false;
    if (astr[d] == 0 && Y.shape[d] != 1) a_full = false;
  }
  int64_t Mf = M, nb = batch;
  if (batch > 1 && b_shared && a_full && !ta && ep.bias_rs == 0) Mf = M * batch, nb = 1;
  auto run_one = [&](int64_t bi, int threads) -> bool {
    int64_t aoff = 0, boff = 0, rem = bi;
    for (int d = yb - 1; d >= 0; --d) {
      const int64_t idx = rem % Y.shape[d];
      rem /= Y.shape[d];
      aoff += idx * astr[d];
      boff += idx * bstr[d];
    }
    Epilogue epb = ep;
    if (R.data) epb.res = R.data + bi * M * N;
    float* Yp = Y.data + bi * M * N;
    if (Mf <= 6)
      return small_m_gemm(Mf, N, K, A.data + aoff, lda, ta, B.data + boff, ldb, tb, Yp, N, epb,
                          threads);
    return sgemm(Mf, N, K, A.data + aoff, lda, ta, BMatrix(B.data + boff, ldb, tb), Yp, N, epb,
                 threads);
  };
  // Many small products (attention heads): one thread per product, products handed out
  // dynamically; large ones: each product uses every thread.
  const int64_t per = Mf * N * std::max<int64_t>(K, 1);
  if (nb > 1 && nt > 1 && per < (int64_t(1) << 20)) {
    const int T = threads_for(nb * per, int64_t(1) << 16, nt);
    std::atomic<int64_t> next{0};
    const bool ok = parallel_run(T, [&](int) {
      for (int64_t bi; (bi = next.fetch_add(1, std::memory_order_relaxed)) < nb;)
        if (!run_one(bi, 1)) throw std::bad_alloc();
    });
    if (!ok) return e.fail("out of memory (packing buffers)");
  } else {
    for (int64_t bi = 0; bi < nb; ++bi)
      if (!run_one(bi, nt)) return e.fail("out of memory (packing buffers)");
  }
  return 0;
}
