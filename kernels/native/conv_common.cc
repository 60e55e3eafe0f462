// Parameter parsing and argument checks shared by the convolution kernels (conv.h).
#include <algorithm>

#include "conv.h"

namespace odc_native {

int parse_conv_params(const odc_kernel_args* a, ConvParams* p, Err& e) {
  const int64_t* ip = a->iparams;
  p->sh = ip[0], p->sw = ip[1], p->pt = ip[2], p->pl = ip[3], p->pb = ip[4], p->pr = ip[5];
  p->dh = ip[6], p->dw = ip[7], p->group = ip[8];
  const int64_t lim = int64_t(1) << 30;
  if (p->sh < 1 || p->sw < 1 || p->sh > lim || p->sw > lim)
    return e.fail("strides must be >= 1, got [%lld, %lld]", (long long)p->sh, (long long)p->sw);
  if (p->dh < 1 || p->dw < 1 || p->dh > lim || p->dw > lim)
    return e.fail("dilations must be >= 1, got [%lld, %lld]", (long long)p->dh, (long long)p->dw);
  for (int i = 2; i < 6; ++i)
    if (ip[i] < 0 || ip[i] > lim) return e.fail("pads must be >= 0, got %lld", (long long)ip[i]);
  if (p->group < 1) return e.fail("group must be >= 1, got %lld", (long long)p->group);
  return 0;
}

int parse_epilogue_params(const odc_kernel_args* a, int act_idx, ConvParams* p, Err& e) {
  p->act = a->iparams[act_idx];
  p->rafter = a->iparams[act_idx + 1];
  if (parse_act(p->act, "activation", e)) return 1;
  if (p->rafter != 0 && p->rafter != 1) return e.fail("residual_after_act must be 0 or 1");
  p->act_a = (float)a->fparams[0];
  p->act_b = (float)a->fparams[1];
  return 0;
}

int conv_views(const odc_kernel_args* a, const ConvParams& p, View* X, View* Wt, View* B, View* R,
               View* Y, Err& e) {
  if (get_view(a->inputs[0], "input 0 (X)", 4, 4, false, X, e)) return 1;
  if (get_view(a->inputs[1], "input 1 (W)", 4, 4, false, Wt, e)) return 1;
  return conv_check(a, p, *X, *Wt, B, R, Y, e);
}

int conv_check(const odc_kernel_args* a, const ConvParams& p, const View& Xv, const View& Wv,
               View* B, View* R, View* Y, Err& e) {
  const View* X = &Xv;
  const View* Wt = &Wv;
  if (a->num_inputs > 2 && get_view(a->inputs[2], "input 2 (B)", 1, 1, true, B, e)) return 1;
  if (a->num_inputs > 3 && get_view(a->inputs[3], "input 3 (R)", 4, 4, true, R, e)) return 1;
  if (get_view(a->outputs[0], "output 0 (Y)", 4, 4, false, Y, e)) return 1;
  char s1[128], s2[128];
  const int64_t C = X->shape[1], Co = Wt->shape[0];
  if (C % p.group || Co % p.group || Wt->shape[1] * p.group != C)
    return e.fail("X %s and W %s do not fit group=%lld", shape_str(*X, s1, 128),
                  shape_str(*Wt, s2, 128), (long long)p.group);
  const int64_t H = X->shape[2], Wd = X->shape[3], KH = Wt->shape[2], KW = Wt->shape[3];
  const int64_t eh = (KH - 1) * p.dh + 1, ew = (KW - 1) * p.dw + 1;
  if (KH < 1 || KW < 1) return e.fail("empty kernel W %s", shape_str(*Wt, s1, 128));
  if (H + p.pt + p.pb < eh || Wd + p.pl + p.pr < ew)
    return e.fail("kernel (dilated %lldx%lld) larger than padded input %s", (long long)eh,
                  (long long)ew, shape_str(*X, s1, 128));
  const int64_t OH = (H + p.pt + p.pb - eh) / p.sh + 1, OW = (Wd + p.pl + p.pr - ew) / p.sw + 1;
  if (Y->shape[0] != X->shape[0] || Y->shape[1] != Co || Y->shape[2] != OH || Y->shape[3] != OW)
    return e.fail("output Y %s, expected [%lld, %lld, %lld, %lld]", shape_str(*Y, s1, 128),
                  (long long)X->shape[0], (long long)Co, (long long)OH, (long long)OW);
  if (B->data && B->shape[0] != Co)
    return e.fail("bias B %s, expected [%lld]", shape_str(*B, s1, 128), (long long)Co);
  if (R->data && !std::equal(R->shape, R->shape + 4, Y->shape))
    return e.fail("residual R %s must have Y's shape %s", shape_str(*R, s1, 128),
                  shape_str(*Y, s2, 128));
  if (check_no_overlap(*Y, "Y", *X, "X", false, e) ||
      check_no_overlap(*Y, "Y", *Wt, "W", false, e) ||
      check_no_overlap(*Y, "Y", *B, "B", false, e) || check_no_overlap(*Y, "Y", *R, "R", false, e))
    return 1;
  return 0;
}

}  // namespace odc_native
