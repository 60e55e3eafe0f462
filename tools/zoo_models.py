"""Small, architecturally faithful torch models for the model zoo (see tools/zoo.py).

Every class here mirrors the structure of a well-known architecture (torchvision ResNet and
MobileNetV3, Ultralytics YOLOv8, HuggingFace BERT, timm ViT, a classic UNet) at a toy width so
that the exported ONNX graphs contain the same operator patterns as the real models while
staying a few MB in size. The modules are importable on their own so that benchmarks can
reuse them (e.g. to time torch eager against onnxruntime).

Weights are random; call :func:`seeded` before constructing a model for determinism and
:func:`randomize_norms` / :func:`calibrate_batchnorm` afterwards so that normalisation layers
carry non-trivial parameters (freshly constructed BatchNorm/LayerNorm layers are identities,
which would make e.g. BN folding untestable).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn


def seeded(seed: int) -> None:
    """Seed torch's global RNG (used by nn.Module initialisers)."""
    torch.manual_seed(seed)


@torch.no_grad()
def randomize_norms(model: nn.Module, scale: float = 0.1) -> nn.Module:
    """Give BatchNorm / LayerNorm affine parameters non-trivial values (deterministic under
    the global torch seed)."""
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)) and m.weight is not None:
            m.weight.copy_(1.0 + scale * torch.randn_like(m.weight))
            m.bias.copy_(scale * torch.randn_like(m.bias))
    return model


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, *inputs: torch.Tensor) -> nn.Module:
    """Set BatchNorm running statistics to the batch statistics of ``inputs`` so that
    activations stay well scaled through deep random networks; returns the model in eval mode."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    saved = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the calibration pass
    model.train()
    model(*inputs)
    for bn, momentum in zip(bns, saved, strict=True):
        bn.momentum = momentum
    return model.eval()


# --------------------------------------------------------------------------- ResNet (torchvision)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != out:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, out, 1, stride, bias=False), nn.BatchNorm2d(out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """torchvision-style ResNet: 7x7/2 stem + maxpool, four stages, global avgpool, fc; the
    classifier flattens with ``x.view(x.size(0), -1)`` as most user-written ResNets do."""

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: Sequence[int],
        widths: Sequence[int],
        num_classes: int,
    ) -> None:
        super().__init__()
        self.inplanes = widths[0]
        self.conv1 = nn.Conv2d(3, widths[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        stages = []
        for i, (n, w) in enumerate(zip(layers, widths, strict=True)):
            blocks = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(block(self.inplanes, w, stride))
                self.inplanes = w * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(self.inplanes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.avgpool(x)
        # the flatten idiom of countless cifar/imagenet repos (rather than torch.flatten):
        # under a dynamic batch it exports as Shape->Gather->Unsqueeze->Concat->Reshape
        x = x.view(x.size(0), -1)
        return self.fc(x)


def resnet_small(num_classes: int = 100) -> ResNet:
    """ResNet-18 layout ([2, 2, 2, 2] basic blocks) at 1/4 width (~0.7M params)."""
    return ResNet(BasicBlock, [2, 2, 2, 2], [16, 32, 64, 128], num_classes)


def resnet50(num_classes: int = 1000) -> ResNet:
    """Full-size ResNet-50 (~25.6M params)."""
    return ResNet(Bottleneck, [3, 4, 6, 3], [64, 128, 256, 512], num_classes)


# ------------------------------------------------------------------ MobileNetV3 (torchvision)


class ConvBNAct(nn.Sequential):
    def __init__(
        self,
        cin: int,
        cout: int,
        k: int = 1,
        stride: int = 1,
        groups: int = 1,
        act: Callable[[], nn.Module] | None = nn.ReLU,
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if act is not None:
            layers.append(act())
        super().__init__(*layers)


class h_sigmoid(nn.Module):  # lower-case name as in the reference implementations
    """Hard sigmoid written by hand as ``relu6(x + 3) / 6`` (d-li14/mobilenetv3.pytorch and
    most other third-party MobileNetV3 code); exports as Add -> Clip -> Div."""

    def __init__(self, inplace: bool = True) -> None:
        super().__init__()
        self.relu = nn.ReLU6(inplace=inplace)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(x + 3) / 6


class SELayer(nn.Module):
    """Squeeze-and-excitation the classic way (Hu et al. reference code, d-li14's MobileNetV3):
    pool, ``view`` to [b, c], two Linear layers, ``view`` back to [b, c, 1, 1], scale. Under a
    dynamic batch the two views export as Shape/Gather/Unsqueeze/Concat/Reshape chains."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Linear(channels, squeeze),
            nn.ReLU(inplace=True),
            nn.Linear(squeeze, channels),
            h_sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, _, _ = x.size()
        y = self.avg_pool(x).view(b, c)
        y = self.fc(y).view(b, c, 1, 1)
        return x * y


def _make_divisible(v: float, divisor: int = 8) -> int:
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


class InvertedResidual(nn.Module):
    def __init__(
        self, cin: int, k: int, expanded: int, cout: int, use_se: bool, hs: bool, stride: int
    ) -> None:
        super().__init__()
        act = nn.Hardswish if hs else nn.ReLU
        self.use_res = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expanded != cin:
            layers.append(ConvBNAct(cin, expanded, 1, act=act))
        layers.append(ConvBNAct(expanded, expanded, k, stride, groups=expanded, act=act))
        if use_se:
            layers.append(SELayer(expanded, _make_divisible(expanded // 4)))
        layers.append(ConvBNAct(expanded, cout, 1, act=None))
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.use_res else y


class MobileNetV3(nn.Module):
    """MobileNetV3-Small block configuration with a slimmer head (~0.6M params), written in the
    style of common third-party implementations: classic SE blocks (:class:`SELayer`) and a
    ``x.view(x.size(0), -1)`` flatten before the classifier (Linear, Hardswish, Dropout, Linear)."""

    # cin, kernel, expanded, cout, use_se, hardswish, stride
    CONFIG = (
        (16, 3, 16, 16, True, False, 2),
        (16, 3, 72, 24, False, False, 2),
        (24, 3, 88, 24, False, False, 1),
        (24, 5, 96, 40, True, True, 2),
        (40, 5, 240, 40, True, True, 1),
        (40, 5, 120, 48, True, True, 1),
        (48, 5, 144, 48, True, True, 1),
        (48, 5, 288, 96, True, True, 2),
        (96, 5, 576, 96, True, True, 1),
    )

    def __init__(self, num_classes: int = 100, last_channel: int = 256) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvBNAct(3, 16, 3, 2, act=nn.Hardswish)]
        layers += [InvertedResidual(*cfg) for cfg in self.CONFIG]
        layers.append(ConvBNAct(96, 288, 1, act=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Sequential(
            nn.Linear(288, last_channel),
            nn.Hardswish(),
            nn.Dropout(0.2),
            nn.Linear(last_channel, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        x = x.view(x.size(0), -1)
        return self.classifier(x)


# --------------------------------------------------------------------- YOLO (Ultralytics v8)


class Conv(nn.Module):
    """Conv2d + BatchNorm + SiLU, as in ultralytics.nn.modules.Conv."""

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(c2)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class YoloBottleneck(nn.Module):
    def __init__(self, c: int, shortcut: bool = True) -> None:
        super().__init__()
        self.cv1 = Conv(c, c, 3)
        self.cv2 = Conv(c, c, 3)
        self.add = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    """CSP bottleneck with 2 convolutions: Conv -> Split -> n bottlenecks -> Concat -> Conv.

    ``use_split`` selects Ultralytics' ``forward_split`` variant (``Tensor.split`` with static
    sizes -> ONNX Split) instead of ``chunk`` (which the legacy exporter turns into
    Shape/Gather/Div/Slice when spatial dims are dynamic)."""

    def __init__(
        self, c1: int, c2: int, n: int = 1, shortcut: bool = False, use_split: bool = False
    ):
        super().__init__()
        self.c = c2 // 2
        self.cv1 = Conv(c1, 2 * self.c, 1)
        self.cv2 = Conv((2 + n) * self.c, c2, 1)
        self.m = nn.ModuleList(YoloBottleneck(self.c, shortcut) for _ in range(n))
        self.use_split = use_split

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv1(x)
        y = list(y.split((self.c, self.c), 1) if self.use_split else y.chunk(2, 1))
        y.extend(m(y[-1]) for m in self.m)
        return self.cv2(torch.cat(y, 1))


class SPPF(nn.Module):
    def __init__(self, c1: int, c2: int, k: int = 5) -> None:
        super().__init__()
        c_ = c1 // 2
        self.cv1 = Conv(c1, c_, 1)
        self.cv2 = Conv(c_ * 4, c2, 1)
        self.m = nn.MaxPool2d(k, 1, k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.cv1(x)]
        y.extend(self.m(y[-1]) for _ in range(3))
        return self.cv2(torch.cat(y, 1))


class DFL(nn.Module):
    """Distribution focal loss integral: softmax over bins, then a fixed 1x1 conv (arange)."""

    def __init__(self, c1: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c1, 1, 1, bias=False).requires_grad_(False)
        self.conv.weight.data[:] = torch.arange(c1, dtype=torch.float32).view(1, c1, 1, 1)
        self.c1 = c1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, a = x.shape
        return self.conv(x.view(b, 4, self.c1, a).transpose(2, 1).softmax(1)).view(b, 4, a)


def make_anchors(
    feats: Sequence[torch.Tensor], strides: Sequence[float], offset: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Anchor points built at runtime from each feature map's shape (Shape/Range/Expand)."""
    anchor_points, stride_tensor = [], []
    for feat, stride in zip(feats, strides, strict=True):
        _, _, h, w = feat.shape
        sx = torch.arange(w, dtype=feat.dtype, device=feat.device) + offset
        sy = torch.arange(h, dtype=feat.dtype, device=feat.device) + offset
        sy, sx = torch.meshgrid(sy, sx, indexing="ij")
        anchor_points.append(torch.stack((sx, sy), -1).view(-1, 2))
        stride_tensor.append(torch.full((h * w, 1), stride, dtype=feat.dtype, device=feat.device))
    return torch.cat(anchor_points), torch.cat(stride_tensor)


class Detect(nn.Module):
    """YOLOv8 anchor-free decoupled head with DFL box decoding (inference path)."""

    def __init__(self, nc: int, ch: Sequence[int], strides: Sequence[float], reg_max: int = 8):
        super().__init__()
        self.nc, self.reg_max, self.strides = nc, reg_max, tuple(strides)
        self.no = nc + 4 * reg_max
        c2, c3 = max(16, ch[0] // 4, 4 * reg_max), max(ch[0], nc)
        self.cv2 = nn.ModuleList(
            nn.Sequential(Conv(c, c2, 3), Conv(c2, c2, 3), nn.Conv2d(c2, 4 * reg_max, 1))
            for c in ch
        )
        self.cv3 = nn.ModuleList(
            nn.Sequential(Conv(c, c3, 3), Conv(c3, c3, 3), nn.Conv2d(c3, nc, 1)) for c in ch
        )
        self.dfl = DFL(reg_max)

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        feats = [torch.cat((self.cv2[i](x), self.cv3[i](x)), 1) for i, x in enumerate(xs)]
        b = feats[0].shape[0]
        anchors, strides = (t.transpose(0, 1) for t in make_anchors(feats, self.strides))
        x_cat = torch.cat([f.view(b, self.no, -1) for f in feats], 2)
        box, cls = x_cat.split((4 * self.reg_max, self.nc), 1)
        lt, rb = self.dfl(box).chunk(2, 1)
        x1y1 = anchors.unsqueeze(0) - lt
        x2y2 = anchors.unsqueeze(0) + rb
        dbox = torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), 1) * strides
        return torch.cat((dbox, cls.sigmoid()), 1)


class YoloV8(nn.Module):
    """YOLOv8-style detector: CSP backbone + SPPF, PAN-FPN neck (nearest Upsample + Concat),
    3-level decoupled head with runtime anchor generation. Input H, W must be multiples of 32.
    Output: [batch, 4 + nc, anchors] with boxes as (cx, cy, w, h) in pixels."""

    def __init__(self, nc: int = 10, w: Sequence[int] = (16, 32, 64, 128)) -> None:
        super().__init__()
        c0, c1, c2, c3 = w
        self.stem = Conv(3, c0, 3, 2)
        # backbone C2f blocks use Split, neck C2f blocks use chunk (both patterns in one graph)
        self.stage1 = nn.Sequential(Conv(c0, c1, 3, 2), C2f(c1, c1, 1, True, True))
        self.stage2 = nn.Sequential(Conv(c1, c2, 3, 2), C2f(c2, c2, 1, True, True))  # P3/8
        self.stage3 = nn.Sequential(Conv(c2, c3, 3, 2), C2f(c3, c3, 1, True, True))  # P4/16
        self.stage4 = nn.Sequential(Conv(c3, c3, 3, 2), C2f(c3, c3, 1, True, True), SPPF(c3, c3))
        self.up = nn.Upsample(scale_factor=2.0, mode="nearest")
        self.td4 = C2f(c3 + c3, c2)
        self.td3 = C2f(c2 + c2, c1)
        self.down3 = Conv(c1, c1, 3, 2)
        self.bu4 = C2f(c1 + c2, c2)
        self.down4 = Conv(c2, c2, 3, 2)
        self.bu5 = C2f(c2 + c3, c3)
        self.detect = Detect(nc, (c1, c2, c3), (8.0, 16.0, 32.0))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        p3 = self.stage2(self.stage1(self.stem(images)))
        p4 = self.stage3(p3)
        p5 = self.stage4(p4)
        n4 = self.td4(torch.cat((self.up(p5), p4), 1))
        o3 = self.td3(torch.cat((self.up(n4), p3), 1))
        o4 = self.bu4(torch.cat((self.down3(o3), n4), 1))
        o5 = self.bu5(torch.cat((self.down4(o4), p5), 1))
        return self.detect([o3, o4, o5])


# --------------------------------------------------------------------------- BERT (HuggingFace)


class BertSelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, hidden // heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.dropout = nn.Dropout(0.1)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        new_shape = x.size()[:-1] + (self.heads, self.head_dim)  # noqa: RUF005 (HF style)
        return x.view(new_shape).permute(0, 2, 1, 3)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        q = self._split_heads(self.query(x))
        k = self._split_heads(self.key(x))
        v = self._split_heads(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        probs = self.dropout(torch.softmax(scores + mask, dim=-1))
        ctx = torch.matmul(probs, v).permute(0, 2, 1, 3).contiguous()
        return ctx.view(ctx.size()[:-2] + (self.heads * self.head_dim,))  # noqa: RUF005


class BertLayer(nn.Module):
    def __init__(self, hidden: int, heads: int, intermediate: int) -> None:
        super().__init__()
        self.attention = BertSelfAttention(hidden, heads)
        self.attn_out = nn.Linear(hidden, hidden)
        self.attn_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.intermediate = nn.Linear(hidden, intermediate)
        self.act = nn.GELU()  # exact (erf) form
        self.output = nn.Linear(intermediate, hidden)
        self.out_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.dropout = nn.Dropout(0.1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.attn_norm(x + self.dropout(self.attn_out(self.attention(x, mask))))
        return self.out_norm(x + self.dropout(self.output(self.act(self.intermediate(x)))))


class Bert(nn.Module):
    """BERT encoder with HF-style embeddings (word + position buffer slice + token type),
    additive extended attention mask, hand-written multi-head attention and a tanh pooler."""

    def __init__(
        self,
        vocab: int = 1000,
        hidden: int = 64,
        layers: int = 2,
        heads: int = 4,
        intermediate: int = 256,
        max_positions: int = 128,
    ) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, hidden, padding_idx=0)
        self.position_embeddings = nn.Embedding(max_positions, hidden)
        self.token_type_embeddings = nn.Embedding(2, hidden)
        self.emb_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.emb_dropout = nn.Dropout(0.1)
        self.register_buffer(
            "position_ids", torch.arange(max_positions).unsqueeze(0), persistent=False
        )
        self.register_buffer(
            "token_type_ids", torch.zeros(1, max_positions, dtype=torch.long), persistent=False
        )
        self.layers = nn.ModuleList(BertLayer(hidden, heads, intermediate) for _ in range(layers))
        self.pooler = nn.Linear(hidden, hidden)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        seq_len = input_ids.size(1)
        position_ids = self.position_ids[:, :seq_len]
        token_type_ids = self.token_type_ids[:, :seq_len].expand_as(input_ids)
        x = (
            self.word_embeddings(input_ids)
            + self.token_type_embeddings(token_type_ids)
            + self.position_embeddings(position_ids)
        )
        x = self.emb_dropout(self.emb_norm(x))
        ext = attention_mask[:, None, None, :].to(x.dtype)
        ext = (1.0 - ext) * torch.finfo(x.dtype).min
        for layer in self.layers:
            x = layer(x, ext)
        pooled = torch.tanh(self.pooler(x[:, 0]))
        return x, pooled


# ------------------------------------------------------------------------------- ViT (timm)


class VitAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class VitBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = VitAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    """timm-style ViT: conv patch embedding, cls token, learned pos embedding, pre-norm blocks
    with fused qkv + scaled_dot_product_attention, final norm, cls-token head."""

    def __init__(
        self,
        img_size: int = 32,
        patch: int = 4,
        dim: int = 64,
        depth: int = 2,
        heads: int = 4,
        num_classes: int = 100,
    ) -> None:
        super().__init__()
        n = (img_size // patch) ** 2
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(0.02 * torch.randn(1, 1, dim))
        self.pos_embed = nn.Parameter(0.02 * torch.randn(1, n + 1, dim))
        self.blocks = nn.Sequential(*(VitBlock(dim, heads) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(pixel_values).flatten(2).transpose(1, 2)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


# ---------------------------------------------------------------------------------- RNN


class RnnTagger(nn.Module):
    """Embedding -> 1-layer LSTM -> 1-layer GRU -> Linear per time step (sequence tagger)."""

    def __init__(self, vocab: int = 1000, emb: int = 32, hidden: int = 64, num_tags: int = 10):
        super().__init__()
        self.embedding = nn.Embedding(vocab, emb)
        self.lstm = nn.LSTM(emb, hidden, batch_first=True)
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.head = nn.Linear(hidden, num_tags)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, _ = self.lstm(self.embedding(tokens))
        x, h = self.gru(x)
        return self.head(x), h[-1]


# ---------------------------------------------------------------------------------- UNet


class DoubleConv(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


class UNet(nn.Module):
    """Classic UNet: 3 maxpool downsamplings; the decoder mixes learned upsampling
    (ConvTranspose2d) and bilinear interpolation (align_corners=True) + 1x1 conv."""

    def __init__(self, in_ch: int = 3, num_classes: int = 2, w: Sequence[int] = (16, 32, 64, 128)):
        super().__init__()
        c0, c1, c2, c3 = w
        self.inc = DoubleConv(in_ch, c0)
        self.down1 = DoubleConv(c0, c1)
        self.down2 = DoubleConv(c1, c2)
        self.down3 = DoubleConv(c2, c3)
        self.pool = nn.MaxPool2d(2)
        self.up1 = nn.ConvTranspose2d(c3, c2, 2, 2)
        self.dec1 = DoubleConv(c2 * 2, c2)
        self.up2_proj = nn.Conv2d(c2, c1, 1)
        self.dec2 = DoubleConv(c1 * 2, c1)
        self.up3 = nn.ConvTranspose2d(c1, c0, 2, 2)
        self.dec3 = DoubleConv(c0 * 2, c0)
        self.outc = nn.Conv2d(c0, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.inc(x)
        x2 = self.down1(self.pool(x1))
        x3 = self.down2(self.pool(x2))
        x4 = self.down3(self.pool(x3))
        y = self.dec1(torch.cat((x3, self.up1(x4)), 1))
        y = F.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=True)
        y = self.dec2(torch.cat((x2, self.up2_proj(y)), 1))
        y = self.dec3(torch.cat((x1, self.up3(y)), 1))
        return self.outc(y)
