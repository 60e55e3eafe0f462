"""Attention fusion for --target cuda (optimizer/lower/fuse_attention.py): the strided views,
the pattern and its near misses, and compiled plans run on the Triton interpreter against
onnxruntime (single patterns and the zoo's bert and vit)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from optimizer import ir
from optimizer.lower.fuse_attention import (
    AttentionMatch,
    View,
    match_attention,
    merge_qkv_projections,
)
from optimizer.lower.partition import ATTENTION, PartitionOptions, partition
from optimizer.optimize import OptimizeOptions, optimize_model
from tests.helpers import FLOAT, make_model

INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
needs_interpreter = pytest.mark.skipif(not INTERPRET, reason="runs plans on the CPU interpreter")


# -- strided views ---------------------------------------------------------------------------


def _as_strided(base: np.ndarray, view: View) -> np.ndarray:
    strides = view.strides
    assert strides is not None
    return np.lib.stride_tricks.as_strided(
        base[view.offset :], view.shape, [s * base.itemsize for s in strides]
    )


def test_views_follow_numpy_through_the_vit_key_chain() -> None:
    """[B, S, 3*H*D] -> [B, S, 3, H, D] -> permute -> k slice -> [B*H, S, D] -> ^T ->
    [B, H, D, S]: the B*H merge strides cannot express cancels with the split after it."""
    b, s, h, d = 2, 5, 3, 4
    base = np.arange(b * s * 3 * h * d)
    want = base.reshape(b, s, 3, h, d).transpose(2, 0, 3, 1, 4)[1:2]
    want = want.reshape(b * h, s, d).transpose(0, 2, 1).reshape(b, h, d, s)
    view = View.contiguous((b, s, 3 * h * d)).reshape((b, s, 3, h, d))
    view = view.transpose([2, 0, 3, 1, 4])
    view = view.slice([1, 0, 0, 0, 0], [2, b, h, s, d], [1, 1, 1, 1, 1])
    merged = view.reshape((b * h, s, d))
    assert merged is not None and merged.strides is None  # no one stride for B*H
    view = merged.transpose([0, 2, 1]).reshape((b, h, d, s))
    assert view is not None and view.strides is not None
    np.testing.assert_array_equal(_as_strided(base, view), want)


def test_views_slice_steps_transposes_and_squeezes() -> None:
    base = np.arange(4 * 6 * 5)
    want = base.reshape(4, 6, 5).transpose(2, 0, 1)[1:5:2, :, 1:6:2].reshape(2, 1, 4, 3)
    view = View.contiguous((4, 6, 5)).transpose([2, 0, 1])
    view = view.slice([1, 0, 1], [5, 4, 6], [2, 1, 2])
    assert view is not None
    view = view.reshape((2, 1, 4, 3))
    assert view is not None
    np.testing.assert_array_equal(_as_strided(base, view), want)
    # merging dims a transpose reordered has no single stride
    flat = View.contiguous((4, 6)).transpose([1, 0]).reshape((24,))
    assert flat is not None and flat.strides is None
    assert View.contiguous((4, 6)).reshape((5, 5)) is None


# -- graphs ----------------------------------------------------------------------------------


B, S, H, D = 2, 6, 2, 4
E = H * D
RNG = np.random.default_rng(5)


def _w(*shape: int) -> np.ndarray:
    return (RNG.standard_normal(shape) * 0.5).astype(np.float32)


WEIGHTS = {"wq": _w(E, E), "wk": _w(E, E), "wv": _w(E, E), "wo": _w(E, E), "bq": _w(E),
           "bk": _w(E), "bv": _w(E), "wqkv": _w(E, 3 * E), "bqkv": _w(3 * E)}  # fmt: skip


def _bert_style(
    scale: np.ndarray | None = None, axis: int = -1, extra: str = "", cross: bool = False
) -> onnx.ModelProto:
    """BERT's hand-written MHA: three projections, head split (K to [B, H, D, S]), scores / 2
    + mask, Softmax, P V, head merge, output projection.

    ``extra``: ``scores`` / ``probs`` / ``qb`` also graph outputs; ``reader``: a second reader
    of the scores (a ReduceMax that is an output). ``cross``: K and V project another input.
    """
    split = np.array([B, S, H, D], np.int64)
    nodes = []
    for n in "qkv":
        x = "x2" if cross and n != "q" else "x"
        nodes += [helper.make_node("MatMul", [x, f"w{n}"], [f"{n}m"], name=f"{n}_proj"),
                  helper.make_node("Add", [f"{n}m", f"b{n}"], [f"{n}b"], name=f"{n}_bias"),
                  helper.make_node("Reshape", [f"{n}b", "split"], [f"{n}r"], name=f"{n}_split")]  # fmt: skip
    nodes += [
        helper.make_node("Transpose", ["qr"], ["qt"], perm=[0, 2, 1, 3], name="q_heads"),
        helper.make_node("Transpose", ["kr"], ["kt"], perm=[0, 2, 3, 1], name="k_heads"),
        helper.make_node("Transpose", ["vr"], ["vt"], perm=[0, 2, 1, 3], name="v_heads"),
        helper.make_node("MatMul", ["qt", "kt"], ["scores"], name="qk"),
        helper.make_node("Div", ["scores", "c"], ["scaled"], name="scale"),
        helper.make_node("Add", ["scaled", "mask"], ["masked"], name="add_mask"),
        helper.make_node("Softmax", ["masked"], ["probs"], axis=axis, name="softmax"),
        helper.make_node("MatMul", ["probs", "vt"], ["o"], name="pv"),
        helper.make_node("Transpose", ["o"], ["ot"], perm=[0, 2, 1, 3], name="o_heads"),
        helper.make_node("Reshape", ["ot", "merge"], ["om"], name="o_merge"),
        helper.make_node("MatMul", ["om", "wo"], ["y"], name="out_proj"),
    ]
    outputs = [("y", FLOAT, [B, S, E])]
    if extra in ("scores", "probs"):
        outputs.append((extra, FLOAT, [B, H, S, S]))
    if extra == "qb":
        outputs.append((extra, FLOAT, [B, S, E]))
    if extra == "reader":
        nodes.append(helper.make_node("ReduceMax", ["scores"], ["peak"], axes=[3], name="peak"))
        outputs.append(("peak", FLOAT, [B, H, S, 1]))
    inits = {**{k: WEIGHTS[k] for k in ("wq", "wk", "wv", "wo", "bq", "bk", "bv")},
             "split": split, "merge": np.array([B, S, E], np.int64),
             "c": np.array(2.0, np.float32) if scale is None else scale}  # fmt: skip
    inputs = [("x", FLOAT, [B, S, E]), ("mask", FLOAT, [B, 1, 1, S])]
    inputs += [("x2", FLOAT, [B, S, E])] if cross else []
    return make_model(nodes, inputs, outputs, inits, opset=13)


def _vit_style() -> onnx.ModelProto:
    """torch.export's ViT attention: one qkv projection [B, S, 3*H*D] -> [B, S, 3, H, D] ->
    permute -> three slices; q and k^T (via [B*H, S, D]) each scaled by D**-0.25."""
    scale = np.array([D**-0.25], np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "wqkv"], ["qkv0"], name="qkv_proj"),
        helper.make_node("Add", ["qkv0", "bqkv"], ["qkv"], name="qkv_bias"),
        helper.make_node("Reshape", ["qkv", "split"], ["qkv5"], name="qkv_split"),
        helper.make_node("Transpose", ["qkv5"], ["perm"], perm=[2, 0, 3, 1, 4], name="permute"),
    ]
    for i, n in enumerate("qkv"):
        nodes.append(helper.make_node("Slice", ["perm", f"s{i}", f"s{i + 1}", "ax0"], [f"{n}5"],
                                      name=f"{n}_slice"))  # fmt: skip
    nodes += [
        helper.make_node("Squeeze", ["q5", "ax0"], ["q"], name="q_squeeze"),
        helper.make_node("Squeeze", ["v5", "ax0"], ["v"], name="v_squeeze"),
        helper.make_node("Reshape", ["k5", "bh"], ["k3"], name="k_merge"),
        helper.make_node("Transpose", ["k3"], ["kt3"], perm=[0, 2, 1], name="k_t"),
        helper.make_node("Reshape", ["kt3", "kshape"], ["kt"], name="k_split"),
        helper.make_node("Mul", ["q", "sc"], ["qs"], name="q_scale"),
        helper.make_node("Mul", ["kt", "sc"], ["ks"], name="k_scale"),
        helper.make_node("MatMul", ["qs", "ks"], ["scores"], name="qk"),
        helper.make_node("Softmax", ["scores"], ["probs"], axis=-1, name="softmax"),
        helper.make_node("MatMul", ["probs", "v"], ["o"], name="pv"),
        helper.make_node("Transpose", ["o"], ["ot"], perm=[0, 2, 1, 3], name="o_heads"),
        helper.make_node("Reshape", ["ot", "merge"], ["om"], name="o_merge"),
        helper.make_node("MatMul", ["om", "wo"], ["y"], name="out_proj"),
    ]
    i64 = np.int64
    inits = {"wqkv": WEIGHTS["wqkv"], "bqkv": WEIGHTS["bqkv"], "wo": WEIGHTS["wo"],
             "split": np.array([B, S, 3, H, D], i64), "ax0": np.array([0], i64),
             "s0": np.array([0], i64), "s1": np.array([1], i64), "s2": np.array([2], i64),
             "s3": np.array([3], i64), "bh": np.array([B * H, S, D], i64),
             "kshape": np.array([B, H, D, S], i64), "sc": scale,
             "merge": np.array([B, S, E], i64)}  # fmt: skip
    return make_model(nodes, [("x", FLOAT, [B, S, E])], [("y", FLOAT, [B, S, E])], inits,
                      opset=17)  # fmt: skip


def _optimized(proto: onnx.ModelProto) -> ir.Model:
    model = ir.Model.from_proto(onnx.ModelProto.FromString(proto.SerializeToString()))
    optimized, _ = optimize_model(model, OptimizeOptions(check=False))
    return optimized


def _softmax_match(proto: onnx.ModelProto) -> AttentionMatch | object:
    model = _optimized(proto)
    softmax = next(n for n in model.graph.nodes if n.op == "Softmax")
    return match_attention(model, model.graph, softmax)


def test_bert_style_attention_is_one_group_reading_the_projections() -> None:
    model = _optimized(_bert_style())
    groups = partition(model, PartitionOptions(attention=True))
    att = [g for g in groups if g.kind == ATTENTION]
    assert len(att) == 1
    (group,) = att
    # the head split / merge views and transposes are inside: no transpose group is left
    assert not any(n.op == "Transpose" for g in groups if g is not group for n in g.nodes)
    assert sorted(n.op for n in group.nodes) == sorted(
        ["Reshape"] * 4 + ["Transpose"] * 4 + ["MatMul", "Div", "Add", "Softmax", "MatMul"]
    )
    found = group.attention
    assert found is not None and found.scale == pytest.approx(0.5)
    assert [v.name for v in group.inputs] == ["qb", "kb", "vb", "mask"]
    assert [v.name for v in group.outputs] == ["om"]
    row = S * E  # [B, S, H, D] strides of a [B, S, H*D] buffer, read as [B, H, S, D]
    assert found.iparams() == [0, 0, B, H, S, S, D, D, *[0, row, D, E, 1] * 4]
    # three projections + attention + output projection
    assert len(groups) == 5
    # the CPU target keeps today's groups (no native attention kernel)
    assert not any(g.kind == ATTENTION for g in partition(model))


def test_vit_style_fused_qkv_reads_one_buffer_three_ways() -> None:
    model = _optimized(_vit_style())
    groups = partition(model, PartitionOptions(attention=True))
    (group,) = [g for g in groups if g.kind == ATTENTION]
    found = group.attention
    assert found is not None
    assert {v.name for v in group.inputs} == {"qkv"} and len(group.inputs) == 3
    assert found.scale == pytest.approx(1 / np.sqrt(D))
    row = 3 * E
    views = found.iparams()[8:]
    assert views[:5] == [0, S * row, D, row, 1]  # Q
    assert views[5:10] == [E, S * row, D, row, 1]  # K, past Q's E columns
    assert views[10:15] == [2 * E, S * row, D, row, 1]  # V
    assert len(groups) == 3  # qkv projection, attention, output projection


@pytest.mark.parametrize(
    "proto,reason",
    [
        (_bert_style(scale=np.full((1, H, 1, 1), 2.0, np.float32)), "not a scaling by a scalar"),
        (_bert_style(scale=np.array(-2.0, np.float32)), "not a scaling by a scalar"),
        (_bert_style(axis=2), "Softmax over axis 2, not the last"),
        (_bert_style(extra="reader"), "do not come from a MatMul read only here"),
        (_bert_style(extra="scores"), "do not come from a MatMul read only here"),
        (_bert_style(extra="probs"), "do not feed one MatMul(P, V) only"),
    ],
)
def test_near_misses_do_not_fuse(proto: onnx.ModelProto, reason: str) -> None:
    found = _softmax_match(proto)
    assert not isinstance(found, AttentionMatch)
    assert reason in found.reason  # type: ignore[attr-defined]
    groups = partition(_optimized(proto), PartitionOptions(attention=True))
    assert not any(g.kind == ATTENTION for g in groups)


def _plain(v_shape: list[int]) -> onnx.ModelProto:
    """softmax(Q K^T) V on graph inputs: rank 3 ([H, S, D]), no scale, no mask, Sq != Sk."""
    nodes = [helper.make_node("MatMul", ["q", "kt"], ["s"], name="qk"),
             helper.make_node("Softmax", ["s"], ["p"], axis=-1, name="softmax"),
             helper.make_node("MatMul", ["p", "v"], ["y"], name="pv")]  # fmt: skip
    inputs = [("q", FLOAT, [H, 3, D]), ("kt", FLOAT, [H, D, S]), ("v", FLOAT, v_shape)]
    return make_model(nodes, inputs, [("y", FLOAT, [*v_shape[:-2], 3, v_shape[-1]])], opset=17)


def test_plain_rank3_attention_and_a_v_with_more_batch_dims() -> None:
    found = _softmax_match(_plain([H, S, 5]))
    assert isinstance(found, AttentionMatch)
    assert found.dims == [1, H, 3, S, D, 5] and found.scale == 1.0 and found.mask is None
    assert found.k.view.strides == (0, D * S, 1, S)  # K^T read as K: d stride S
    found = _softmax_match(_plain([B, H, S, 5]))  # V broadcasts P: the output has more dims
    assert not isinstance(found, AttentionMatch)
    assert "V does not broadcast" in found.reason  # type: ignore[attr-defined]


# -- one GEMM for Q, K, V ----------------------------------------------------------------------


def test_qkv_projections_merge_into_one_gemm_read_through_strides() -> None:
    model = _optimized(_bert_style())
    assert merge_qkv_projections(model) == 1
    matmuls = [
        n for n in model.graph.nodes if n.op == "MatMul" and ir.const_value(n.inputs[1]) is not None
    ]
    weights = sorted(ir.const_value(n.inputs[1]).shape for n in matmuls)  # type: ignore[union-attr]
    assert weights == [(E, E), (E, 3 * E)]  # qkv and the output projection
    fused = next(ir.const_value(n.inputs[1]) for n in matmuls if n.name == "q_proj_qkv_matmul")
    np.testing.assert_array_equal(
        fused, np.concatenate([WEIGHTS[k] for k in ("wq", "wk", "wv")], 1)
    )
    groups = partition(model, PartitionOptions(attention=True))
    assert [g.pattern for g in groups] == ["matmul+bias", "attention", "matmul"]
    (group,) = [g for g in groups if g.kind == ATTENTION]
    assert len({id(v) for v in group.inputs[:3]}) == 1  # Q, K, V: one buffer
    views = group.attention.iparams()[8:]  # type: ignore[union-attr]
    row = S * 3 * E
    assert [views[0:5], views[5:10], views[10:15]] == [
        [i * E, row, D, 3 * E, 1] for i in range(3)]  # fmt: skip
    assert merge_qkv_projections(model) == 0  # nothing left to merge


@pytest.mark.parametrize("kw", [{"cross": True}, {"extra": "qb"}])
def test_qkv_projections_stay_apart_when_merging_would_not_pay(kw: dict) -> None:
    """K, V from another input (cross attention); Q's projection read outside too."""
    model = _optimized(_bert_style(**kw))
    assert merge_qkv_projections(model) == 0
    groups = partition(model, PartitionOptions(attention=True))
    assert sum(g.kind == ATTENTION for g in groups) == 1


# -- compiled for cuda, run on the interpreter ------------------------------------------------


def _compile_and_run(proto: onnx.ModelProto, out: Path, precision: str,
                     feeds: dict[str, np.ndarray], shapes: dict | None = None) -> tuple:  # fmt: skip
    from optimizer.lower.compile import CompileOptions, compile_model
    from tests.lower.test_target_cuda import emulate_module

    model = ir.Model.from_proto(onnx.ModelProto.FromString(proto.SerializeToString()))
    options = CompileOptions(OptimizeOptions(check=False, input_shapes=shapes or {}),
                             target="cuda", precision=precision)  # fmt: skip
    report = compile_model(model, out, options)
    return report, emulate_module(out, report.cuda.launches, feeds)


def _ort(proto: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))


@needs_interpreter
@pytest.mark.parametrize("style", ["bert", "vit"])
@pytest.mark.parametrize("precision,tol", [("fp32", 2e-5), ("fp16", 1e-2)])
def test_fused_plans_match_onnxruntime(tmp_path: Path, style: str, precision: str,
                                       tol: float) -> None:  # fmt: skip
    pytest.importorskip("triton")
    proto = _bert_style() if style == "bert" else _vit_style()
    rng = np.random.default_rng(1)
    feeds = {"x": rng.standard_normal((B, S, E)).astype(np.float32)}
    if style == "bert":
        keep = rng.random((B, 1, 1, S)) < 0.7
        keep[..., 0] = True
        feeds["mask"] = np.where(keep, 0.0, -10000.0).astype(np.float32)
    report, got = _compile_and_run(proto, tmp_path / "m", precision, feeds)
    assert report.cuda.kernels.get("triton.attention") == 1
    assert "triton.transpose" not in report.cuda.kernels
    # one qkv projection, attention, the output projection (+ fp16: a cast after each input
    # and before the output)
    casts = len(feeds) + 1 if precision == "fp16" else 0
    assert len(report.steps) == 3 + casts
    np.testing.assert_allclose(got["y"], _ort(proto, feeds)["y"], rtol=tol, atol=tol)


@needs_interpreter
def test_plain_attention_plan_matches(tmp_path: Path) -> None:
    pytest.importorskip("triton")
    proto = _plain([H, S, 5])
    rng = np.random.default_rng(3)
    feeds = {k: rng.standard_normal(shape).astype(np.float32)
             for k, shape in (("q", (H, 3, D)), ("kt", (H, D, S)), ("v", (H, S, 5)))}  # fmt: skip
    report, got = _compile_and_run(proto, tmp_path / "m", "fp32", feeds)
    assert [r.kernel for r in report.steps] == ["triton.attention"]
    np.testing.assert_allclose(got["y"], _ort(proto, feeds)["y"], rtol=2e-5, atol=2e-5)


@needs_interpreter
def test_a_near_miss_still_compiles_and_matches(tmp_path: Path) -> None:
    """Softmax over another axis: the unfused steps run instead."""
    pytest.importorskip("triton")
    proto = _bert_style(axis=2)
    rng = np.random.default_rng(2)
    feeds = {"x": rng.standard_normal((B, S, E)).astype(np.float32),
             "mask": np.zeros((B, 1, 1, S), np.float32)}  # fmt: skip
    report, got = _compile_and_run(proto, tmp_path / "m", "fp32", feeds)
    assert "triton.attention" not in report.cuda.kernels
    np.testing.assert_allclose(got["y"], _ort(proto, feeds)["y"], rtol=2e-5, atol=2e-5)


# -- the zoo ---------------------------------------------------------------------------------

# (model, precision, batch) -> the most steps the cuda module may have. Before attention
# fusion, GELU / Tanh epilogues and the qkv merge: bert fp16 b1 43 steps, vit fp16 b1 45.
ZOO_CASES = [("bert", "fp16", 1, 22), ("bert", "fp32", 2, 21), ("vit", "fp16", 1, 23),
             ("vit", "fp32", 2, 21)]  # fmt: skip


@needs_interpreter
@pytest.mark.parametrize("name,precision,batch,max_steps", ZOO_CASES)
def test_zoo_transformers_compile_fused_and_match(
    tmp_path: Path, name: str, precision: str, batch: int, max_steps: int
) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("triton")
    from tools import zoo

    root = zoo.zoo_dir([name])
    entry = next(e for e in zoo.load_index(root) if e["name"] == name)
    feeds = zoo.sample_inputs(entry, rng=batch, dims={"batch": batch})
    proto = onnx.load(root / entry["file"])
    shapes = {k: list(v.shape) for k, v in feeds.items()}
    report, got = _compile_and_run(proto, tmp_path / "m", precision, feeds, shapes)
    assert report.cuda.kernels.get("triton.attention") == 2  # one per layer
    assert len(report.steps) <= max_steps
    tol = 2e-5 if precision == "fp32" else 1.5e-2
    for key, want in _ort(proto, feeds).items():
        np.testing.assert_allclose(got[key], want, rtol=tol, atol=tol, err_msg=key)
