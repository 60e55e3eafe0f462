// Shared parameter parsing and argument checks of the convolution kernels (not part of the ABI).
#ifndef ODC_NATIVE_CONV_H_
#define ODC_NATIVE_CONV_H_

#include "internal.h"

namespace odc_native {

struct ConvParams {
  int64_t sh, sw, pt, pl, pb, pr, dh, dw, group, act, rafter;
  float act_a, act_b;
};

// iparams[0..8]: strides, pads (t, l, b, r), dilations, group.
int parse_conv_params(const odc_kernel_args* a, ConvParams* p, Err& e);
// iparams[act_idx], iparams[act_idx + 1], fparams[0..1]: the fused epilogue.
int parse_epilogue_params(const odc_kernel_args* a, int act_idx, ConvParams* p, Err& e);
// Shared checks for conv2d/depthwise: X [N,C,H,W], W [Co, C/g, KH, KW], B [Co], R = Y shape.
int conv_views(const odc_kernel_args* a, const ConvParams& p, View* X, View* Wt, View* B, View* R,
               View* Y, Err& e);
// conv_views after X and W: reads B, R, Y and checks them against X and (logical) W.
int conv_check(const odc_kernel_args* a, const ConvParams& p, const View& X, const View& W,
               View* B, View* R, View* Y, Err& e);

}  // namespace odc_native

#endif  // ODC_NATIVE_CONV_H_
