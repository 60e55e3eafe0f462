"""Per-head attention as one fusion group, run by one ``attention_f32`` step (CUDA target).

Matches what exporters write for scaled dot-product attention::

    S = MatMul(Q', K')              Q' [.., Sq, D] and K' [.., D, Sk] (K transposed)
    S = S / c  or  S * c            any number of positive scalar constants (optional)
    S = S + mask                    a tensor broadcastable to S (optional)
    P = Softmax(S, last axis)
    O = MatMul(P, V')               V' [.., Sk, Dv]
    O' = Transpose / Reshape (O)    head merge [B, H, Sq, Dv] -> [B, Sq, H*Dv] (optional)

``Q'``, ``K'`` and ``V'`` are traced back through *views* (Reshape, Transpose, Slice,
Squeeze, Unsqueeze, Flatten, Identity) and, for Q and K, scalar ``Mul`` / ``Div`` (folded into
the softmax scale) to the tensors that hold their data: the projection outputs
(``[B, S, H*D]``, or one fused ``[B, S, 3*H*D]`` qkv output sliced three ways as ViT exports
it). Each operand becomes a strided view (:class:`View`: element offset and strides) of its
source buffer, and the output chain a strided view of the value it ends at, which is what the
strided form of ``attention_f32`` takes (``kernels/triton/attention.py``). So the head
split/merge transposes and the score, softmax and probability tensors never reach memory.

The view ops join the group when the group reads all they compute (vit's shared ``permute``
feeds the three slices of one attention); one with another reader stays its own step and the
group reads around it. Every intermediate from the first ``MatMul`` on is read only inside the
pattern and is no graph output. A view the strides cannot express (a Reshape merging dims a
Transpose made non-contiguous) ends the trace there: the group then reads that value.

No match is a ``Match.fail`` with the reason. The partitioner forms these groups only for
targets with an attention kernel (``PartitionOptions.attention``: cuda).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from optimizer import ir
from optimizer.ir import Graph, Model, Node, Value
from optimizer.passes.rewrite import Match

#: Ops that only re-address their input: a Reshape to the output's (static) shape.
RESHAPES = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"})
#: Head dims the attention kernel takes.
MAX_HEAD_DIM = 256


Factor = tuple[int, int]  # (size, stride) of one row-major piece of a view dim


@dataclass(frozen=True)
class View:
    """A strided view of a buffer: element ``[i0, i1, ..]`` at ``offset + sum(i_k * stride_k)``.

    Each dim is kept as row-major *factors* ``(size, stride)`` (outer first; size-1 factors
    dropped), so a Reshape that merges dims strides cannot merge (batch and head after a
    Transpose) and a later Reshape that splits them again cancel out. A dim has a stride once
    its factors merge into one (:attr:`strides`).
    """

    offset: int
    dims: tuple[tuple[Factor, ...], ...]

    @staticmethod
    def strided(offset: int, shape: tuple[int, ...], strides: tuple[int, ...]) -> View:
        return View(offset, tuple(((n, s),) if n != 1 else () for n, s in zip(shape, strides)))

    @staticmethod
    def contiguous(shape: tuple[int, ...]) -> View:
        strides, s = [0] * len(shape), 1
        for d in range(len(shape) - 1, -1, -1):
            strides[d] = s
            s *= shape[d]
        return View.strided(0, tuple(shape), tuple(strides))

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(math.prod(n for n, _ in dim) for dim in self.dims)

    @property
    def strides(self) -> tuple[int, ...] | None:
        """One stride per dim (0 for size 1), or None when a dim's factors do not merge."""
        out = []
        for dim in self.dims:
            merged = _merge_factors(dim)
            if len(merged) > 1:
                return None
            out.append(merged[0][1] if merged else 0)
        return tuple(out)

    def transpose(self, perm: list[int]) -> View:
        return View(self.offset, tuple(self.dims[p] for p in perm))

    def slice(self, starts: list[int], ends: list[int], steps: list[int]) -> View | None:
        """``x[starts:ends:steps]`` per axis (normalized, as ``bind._slice_params``)."""
        offset, dims = self.offset, []
        for dim, n, s, e, k in zip(self.dims, self.shape, starts, ends, steps):
            if (s, e, k) == (0, n, 1):
                dims.append(dim)
                continue
            merged = _merge_factors(dim)
            count = max(0, -(-(e - s) // k)) if k > 0 else 0
            if count == 0 or len(merged) != 1:
                return None  # empty, reversed, or a dim without one stride
            stride = merged[0][1]
            offset += s * stride
            dims.append(((count, stride * k),) if count != 1 else ())
        return View(offset, tuple(dims))

    def reshape(self, shape: tuple[int, ...]) -> View | None:
        """The view of ``shape`` over the same elements in row-major order, or None when a new
        dim boundary falls inside a factor it does not divide."""
        if math.prod(shape) != math.prod(self.shape):
            return None
        factors = list(_merge_factors([f for dim in self.dims for f in dim]))
        dims: list[tuple[Factor, ...]] = []
        i = 0
        for n in shape:
            need, taken = n, []
            while need > 1:
                size, stride = factors[i]
                if size <= need:
                    if need % size:
                        return None
                    taken.append((size, stride))
                    need //= size
                    i += 1
                else:  # the new dim takes the outer part of the factor
                    if size % need:
                        return None
                    taken.append((need, stride * (size // need)))
                    factors[i] = (size // need, stride)
                    need = 1
            dims.append(tuple(taken))
        return View(self.offset, tuple(dims))

    def params(self) -> list[int]:
        """``[offset, strides...]`` (the strides must exist)."""
        strides = self.strides
        assert strides is not None
        return [self.offset, *strides]


def _merge_factors(factors: tuple[Factor, ...] | list[Factor]) -> tuple[Factor, ...]:
    """Adjacent factors joined where the outer one steps over the whole inner one."""
    out: list[Factor] = []
    for size, stride in factors:
        if size == 1:
            continue
        if out and out[-1][1] == size * stride:
            out[-1] = (out[-1][0] * size, stride)
        else:
            out.append((size, stride))
    return tuple(out)


@dataclass
class Operand:
    """A MatMul operand traced to its source: the operand is ``scale * view(source)``."""

    source: Value
    view: View
    scale: float
    nodes: list[Node] = field(default_factory=list)  # the traced ops, operand's producer first


@dataclass
class AttentionMatch:
    """Roles of a matched attention, and the strided form of its ``attention_f32`` step.

    Attributes:
        core: MatMul, scale ops, mask Add, Softmax, MatMul, output views (graph order).
        q, k, v: The operands (``k`` already as ``[.., Sk, D]``).
        mask: The added mask (None: none).
        output: The value the group writes; ``out_view`` addresses ``O [B, H, Sq, Dv]`` in it.
        dims: ``[B, H, Sq, Sk, D, Dv]``.
        scale: The softmax scale (every scalar factor on the way, positive).
    """

    core: list[Node]
    q: Operand
    k: Operand
    v: Operand
    mask: Value | None
    output: Value
    out_view: View
    dims: list[int]
    scale: float

    def nodes(self, graph: Graph) -> list[Node]:
        """The group's members: the core plus the traced ops only the group reads, in graph
        order."""
        members = {id(n): n for n in self.core}
        read = {id(v) for v in self.inputs()}  # what the group reads must still be computed
        traced = {id(n): n for op in (self.q, self.k, self.v) for n in op.nodes
                  if not any(id(out) in read for out in n.outputs)}  # fmt: skip
        changed = True
        while changed:  # drop traced ops read outside the group, until none is
            changed = False
            for key, node in list(traced.items()):
                inside = {**members, **traced}
                for out in node.outputs:
                    if ir.is_graph_output(graph, out) or any(
                        id(u) not in inside for u in ir.consumers(out)
                    ):
                        del traced[key]
                        changed = True
                        break
        position = {id(n): i for i, n in enumerate(graph.nodes)}
        return sorted([*members.values(), *traced.values()], key=lambda n: position[id(n)])

    def inputs(self) -> list[Value]:
        return [self.q.source, self.k.source, self.v.source,
                *([self.mask] if self.mask is not None else [])]  # fmt: skip

    def iparams(self) -> list[int]:
        """The strided form of ``attention_f32``: ``[causal, allow_tf32, B, H, Sq, Sk, D, Dv,
        Q, K, V, O views]``."""
        views = [self.q.view, self.k.view, self.v.view, self.out_view]
        return [0, 0, *self.dims, *[x for view in views for x in view.params()]]


def match_attention(model: Model, graph: Graph, softmax: Node) -> AttentionMatch | Match:
    """The attention around ``softmax``, or a failed Match saying why not."""
    if softmax.op != "Softmax" or len(softmax.inputs) != 1 or len(softmax.outputs) != 1:
        return Match.fail("not a one-output Softmax", softmax)
    scores = softmax.inputs[0]
    shape = ir.static_shape(scores)
    if shape is None or not 2 <= len(shape) <= 4:
        return Match.fail("scores of rank 2..4 with a static shape expected", softmax)
    rank = len(shape)
    axis = ir.attr_int(softmax, "axis", -1 if model.opset >= 13 else 1)
    if axis + (rank if axis < 0 else 0) != rank - 1:
        return Match.fail(f"Softmax over axis {axis}, not the last", softmax)
    if ir.numpy_dtype_of(scores) != np.dtype(np.float32):
        return Match.fail("only float32 graphs are lowered", softmax)

    # backwards from the Softmax: [Add mask] <- [scalar Mul / Div]* <- MatMul
    core = [softmax]
    mask: Value | None = None
    scale = 1.0
    value = scores
    node = _private_producer(graph, value)
    if node is not None and node.op == "Add" and len(node.inputs) == 2:
        pick = _mask_operand(graph, node, shape)
        if isinstance(pick, Match):
            return pick
        value, mask = pick
        core.append(node)
        node = _private_producer(graph, value)
    while node is not None and node.op in ("Mul", "Div"):
        factor = _scalar_factor(node, value)
        if factor is None:
            return Match.fail(f"{node.op} '{node.name}' is not a scaling by a scalar", node)
        scale *= factor
        core.append(node)
        value = node.inputs[0] if node.inputs[1] is _scalar_side(node) else node.inputs[1]
        node = _private_producer(graph, value)
    if node is None or node.op != "MatMul":
        return Match.fail("the scores do not come from a MatMul read only here", softmax)
    qk = node
    core.append(qk)
    # forwards from the Softmax: MatMul(P, V) and the head-merging views
    probs = softmax.outputs[0]
    pv = ir.single_consumer(graph, probs)
    if pv is None or pv.op != "MatMul" or pv.inputs[0] is not probs or pv.inputs[1] is probs:
        return Match.fail("the probabilities do not feed one MatMul(P, V) only", softmax)
    core.append(pv)
    out_nodes, output, out_view = _output_chain(graph, pv)
    core.extend(out_nodes)

    q = _trace(graph, model.opset, qk.inputs[0], scaling=True)
    kt = _trace(graph, model.opset, qk.inputs[1], scaling=True)
    v = _trace(graph, model.opset, pv.inputs[1], scaling=False)
    batch = shape[:-2]
    sq, sk = shape[-2:]
    views = []
    for what, operand in (("Q", q), ("K", kt), ("V", v)):
        view = _batched(operand.view, batch)
        if view is None:
            return Match.fail(f"{what} does not broadcast to the scores' batch dims", qk)
        views.append(view)
    qv, ktv, vv = views
    d, dv = qv.shape[-1], vv.shape[-1]
    if ktv.shape[-2:] != (d, sk) or qv.shape[-2] != sq or vv.shape[-2] != sk:
        return Match.fail("Q, K, V sizes do not agree with the scores", qk)
    if not 1 <= max(d, dv) <= MAX_HEAD_DIM:
        return Match.fail(f"head dims {d}, {dv} beyond {MAX_HEAD_DIM}", qk)
    scale *= q.scale * kt.scale
    if not (math.isfinite(scale) and scale > 0):
        return Match.fail(f"softmax scale {scale} is not positive and finite", qk)
    kv = ktv.transpose([0, 1, 3, 2])  # K^T [.., D, Sk] -> K [.., Sk, D]
    q.view, kt.view, v.view = qv, kv, vv
    o = _batched(out_view, batch)
    if o is None or o.shape != (*qv.shape[:2], sq, dv):
        return Match.fail("the output does not have the scores' batch dims", pv)
    core_sorted = _in_graph_order(graph, core)
    return AttentionMatch(core=core_sorted, q=q, k=kt, v=v, mask=mask, output=output,
                          out_view=o, dims=[*qv.shape[:2], sq, sk, d, dv], scale=scale)  # fmt: skip


# -- helpers ---------------------------------------------------------------------------------------


def _private_producer(graph: Graph, value: Value) -> Node | None:
    """The producer of ``value`` when ``value`` is read once and is no graph output."""
    if ir.single_consumer(graph, value) is None:
        return None
    return ir.producer(value)


def _mask_operand(graph: Graph, add: Node, shape: tuple[int, ...]) -> tuple[Value, Value] | Match:
    """(scores side, mask) of the mask ``Add``: the scores side comes from the MatMul."""
    a, b = add.inputs
    for scores, mask in ((a, b), (b, a)):
        if scores is mask or ir.static_shape(scores) != shape:
            continue
        producer = _private_producer(graph, scores)
        if producer is None or producer.op not in ("MatMul", "Mul", "Div"):
            continue
        mshape = ir.static_shape(mask)
        if mshape is None or len(mshape) > len(shape):
            return Match.fail("the mask has a higher rank than the scores", add)
        if any(m not in (1, s) for m, s in zip(mshape[::-1], shape[::-1])):
            return Match.fail(f"mask {list(mshape)} does not broadcast to {list(shape)}", add)
        if ir.numpy_dtype_of(mask) != ir.numpy_dtype_of(scores):
            return Match.fail("the mask's dtype differs from the scores'", add)
        return scores, mask
    return Match.fail("neither side of the Add comes from the scores MatMul", add)


def _scalar_side(node: Node) -> Value | None:
    """The constant single-element operand of a binary Mul / Div (None: none)."""
    if len(node.inputs) != 2:
        return None
    sides = [node.inputs[1]] if node.op == "Div" else [node.inputs[1], node.inputs[0]]
    for side in sides:
        array = ir.const_value(side)
        if array is not None and array.size == 1:
            return side
    return None


def _scalar_factor(node: Node, value: Value) -> float | None:
    """The factor ``node`` multiplies its other operand by (``value`` is its output), when it
    is a Mul / Div by a positive finite scalar constant keeping the operand's shape."""
    side = _scalar_side(node)
    if side is None:
        return None
    other = node.inputs[0] if node.inputs[1] is side else node.inputs[1]
    if ir.static_shape(other) != ir.static_shape(value):
        return None
    c = float(np.asarray(ir.const_value(side)).reshape(-1)[0])
    if not math.isfinite(c) or c <= 0:
        return None
    return 1.0 / c if node.op == "Div" else c


def _trace(graph: Graph, opset: int, value: Value, scaling: bool) -> Operand:
    """``value`` as a view (times a scale) of the deepest source strides can reach."""
    chain: list[Node] = []  # producers walking back from ``value``
    cur = value
    while True:
        node = ir.producer(cur)
        if node is None or len(node.outputs) != 1 or not node.inputs:
            break
        if node.op in RESHAPES or node.op in ("Transpose", "Slice"):
            chain.append(node)
            cur = node.inputs[0]
        elif scaling and node.op in ("Mul", "Div") and _scalar_factor(node, cur) is not None:
            chain.append(node)
            side = _scalar_side(node)
            cur = node.inputs[0] if node.inputs[1] is side else node.inputs[1]
        else:
            break
    # replay from the deepest source; where a step cannot be expressed, start after it
    for start in range(len(chain), -1, -1):
        steps = chain[:start]
        source = value if not steps else _operand_of(steps[-1])
        shape = ir.static_shape(source)
        if shape is None:
            continue
        view: View | None = View.contiguous(shape)
        scale = 1.0
        for node in reversed(steps):
            view, factor = _apply(node, view, opset)
            scale *= factor
            if view is None:
                break
        if view is not None and view.strides is not None:
            return Operand(source, view, scale, steps)
    raise AssertionError("the identity view always applies")  # pragma: no cover


def _operand_of(node: Node) -> Value:
    """The traced input of a view / scaling node."""
    if node.op in ("Mul", "Div"):
        side = _scalar_side(node)
        return node.inputs[0] if node.inputs[1] is side else node.inputs[1]
    return node.inputs[0]


def _apply(node: Node, view: View | None, opset: int) -> tuple[View | None, float]:
    """``view`` after ``node`` (None: strides cannot express it) and the factor it scales by."""
    from optimizer.lower.bind import _slice_params  # bind imports the partitioner

    if view is None:
        return None, 1.0
    out = node.outputs[0]
    shape = ir.static_shape(out)
    if shape is None:
        return None, 1.0
    if node.op in ("Mul", "Div"):
        factor = _scalar_factor(node, out)
        return view, 1.0 if factor is None else factor
    if node.op in RESHAPES:
        return view.reshape(tuple(shape)), 1.0
    if node.op == "Transpose":
        rank = len(view.shape)
        perm = ir.attr_ints(node, "perm", list(range(rank - 1, -1, -1)))
        perm = [p + rank if p < 0 else p for p in perm]
        if sorted(perm) != list(range(rank)):
            return None, 1.0
        result = view.transpose(perm)
    else:  # Slice
        params = _slice_params(node, opset, view.shape)
        if params is None:
            return None, 1.0
        rank = len(view.shape)
        result = view.slice(params[:rank], params[rank : 2 * rank], params[2 * rank :])
    if result is None or result.shape != tuple(shape):
        return None, 1.0
    return result, 1.0


def _output_chain(graph: Graph, pv: Node) -> tuple[list[Node], Value, View]:
    """The views after ``MatMul(P, V)`` read only by each other, the value they end at, and
    the MatMul's output as a strided view of it (the longest chain strides can express)."""
    chain: list[Node] = []
    value = pv.outputs[0]
    while True:
        user = ir.single_consumer(graph, value)
        if user is None or user.op not in (*RESHAPES, "Transpose") or len(user.outputs) != 1:
            break
        if user.inputs[0] is not value or ir.static_shape(user.outputs[0]) is None:
            break
        chain.append(user)
        value = user.outputs[0]
    while chain:
        view = _invert(chain)
        if view is not None:
            return chain, chain[-1].outputs[0], view
        chain.pop()
    out = pv.outputs[0]
    return [], out, View.contiguous(tuple(ir.static_shape(out) or ()))


def _invert(chain: list[Node]) -> View | None:
    """The chain's first input as a view of the chain's last value: undo each step, last first."""
    last = chain[-1].outputs[0]
    view: View | None = View.contiguous(tuple(ir.static_shape(last) or ()))
    for node in reversed(chain):
        assert view is not None
        before = tuple(ir.static_shape(node.inputs[0]) or ())
        if node.op == "Transpose":
            rank = len(before)
            perm = ir.attr_ints(node, "perm", list(range(rank - 1, -1, -1)))
            perm = [p + rank if p < 0 else p for p in perm]
            if sorted(perm) != list(range(rank)):
                return None
            inverse = [0] * rank
            for i, p in enumerate(perm):
                inverse[p] = i
            view = view.transpose(inverse)
        else:
            view = view.reshape(before)
        if view is None or view.shape != before:
            return None
    return view if view is not None and view.strides is not None else None


def _batched(view: View, batch: tuple[int, ...]) -> View | None:
    """``view`` ([.., R, C]) broadcast to ``[*batch, R, C]`` and padded to rank 4 (leading dims
    of size 1, stride 0), or None when it does not broadcast or a dim has no single stride."""
    strides = view.strides
    lead = len(view.shape) - 2
    if strides is None or lead < 0 or lead > len(batch):
        return None
    pad = len(batch) - lead
    shape = [1] * pad + list(view.shape[:lead])
    lead_strides = [0] * pad + list(strides[:lead])
    for i, (n, want) in enumerate(zip(shape, batch)):
        if n == want:
            continue
        if n != 1:
            return None
        shape[i], lead_strides[i] = want, 0  # broadcast
    rank4 = 4 - len(batch) - 2
    return View.strided(
        view.offset,
        tuple([1] * rank4 + shape + list(view.shape[-2:])),
        tuple([0] * rank4 + lead_strides + list(strides[-2:])),
    )


def _in_graph_order(graph: Graph, nodes: list[Node]) -> list[Node]:
    position = {id(n): i for i, n in enumerate(graph.nodes)}
    return sorted(nodes, key=lambda n: position[id(n)])


# -- one GEMM for the Q, K, V projections ------------------------------------------------------


@dataclass
class _Projection:
    """``out = MatMul(x, W) [+ b]`` with constant ``W [E, n]`` and ``b [n]``."""

    nodes: list[Node]
    x: Value
    weight: np.ndarray
    bias: np.ndarray | None


def merge_qkv_projections(model: Model) -> int:
    """Computes the Q, K and V projections of each attention with one GEMM.

    Where the three sources of a matched attention are ``MatMul(x, W_i) [+ b_i]`` of one ``x``
    (constant ``W_i``, ``b_i``) read only by the attention, they become one
    ``MatMul(x, [W_q | W_k | W_v]) + [b_q | b_k | b_v]`` and three ``Slice`` s of its last axis,
    which the attention group then reads through (one strided buffer, as ViT's fused qkv).
    Each output column is the same dot product as before: the numbers do not change.

    Runs on the optimized graph before partitioning (target cuda). Returns how many
    attentions were merged.
    """
    graph = model.graph
    if model.opset < 10:  # Slice takes its bounds as inputs from opset 10
        return 0
    merged = 0
    for softmax in [n for n in graph.nodes if n.op == "Softmax"]:
        found = match_attention(model, graph, softmax)
        if not isinstance(found, AttentionMatch):
            continue
        sources = [found.q.source, found.k.source, found.v.source]
        if len({id(s) for s in sources}) != 3:
            continue
        inside = {id(n) for n in found.nodes(graph)}
        if any(
            ir.is_graph_output(graph, s) or any(id(u) not in inside for u in ir.consumers(s))
            for s in sources
        ):
            continue
        projections = [_projection(graph, s) for s in sources]
        if any(p is None for p in projections):
            continue
        parts = [p for p in projections if p is not None]
        if len({id(p.x) for p in parts}) != 1 or len({p.weight.shape[0] for p in parts}) != 1:
            continue
        _merge_projections(graph, parts, sources)
        merged += 1
    if merged:
        ir.toposort(graph)
    return merged


def _projection(graph: Graph, value: Value) -> _Projection | None:
    node = ir.producer(value)
    bias = None
    nodes: list[Node] = []
    if node is not None and node.op == "Add" and len(node.inputs) == 2:
        for mm_out, b in (node.inputs, node.inputs[::-1]):
            array = ir.const_value(b)
            mm = ir.producer(mm_out) if ir.single_consumer(graph, mm_out) is node else None
            if array is not None and mm is not None and mm.op == "MatMul":
                bias, nodes, node = array, [node], mm
                break
        else:
            return None
    if node is None or node.op != "MatMul" or len(node.inputs) != 2:
        return None
    x, w = node.inputs
    weight = ir.const_value(w)
    shape = ir.static_shape(x)
    if weight is None or weight.ndim != 2 or shape is None or len(shape) < 2:
        return None
    if ir.numpy_dtype_of(x) != np.dtype(np.float32) or weight.dtype != np.float32:
        return None
    n = weight.shape[1]
    if bias is not None:
        if bias.dtype != np.float32 or bias.size != n or (bias.ndim and bias.shape[-1] != n):
            return None
        bias = bias.reshape(n)
    if ir.static_shape(value) != (*shape[:-1], n):
        return None
    return _Projection([node, *nodes], x, weight, bias)


def _merge_projections(graph: Graph, parts: list[_Projection], sources: list[Value]) -> None:
    """Rewrites the three projections as one MatMul (+ Add) and three Slices writing the
    original source values (their readers do not change)."""
    x = parts[0].x
    name = parts[0].nodes[0].name
    weight = np.concatenate([p.weight for p in parts], axis=1)
    widths = [p.weight.shape[1] for p in parts]
    shape = [*ir.static_shape(x)[:-1], sum(widths)]  # type: ignore[index]
    dtype = sources[0].dtype
    for p in parts:
        for node in p.nodes:
            ir.remove_node(graph, node)
    out = ir.make_value(graph, f"{name}_qkv", dtype, shape)
    w = ir.make_constant(graph, weight, f"{name}_qkv_weight")
    if all(p.bias is None for p in parts):
        ir.add_node(graph, "MatMul", [x, w], [out], name=f"{name}_qkv_matmul")
    else:
        bias = np.concatenate(
            [
                p.bias if p.bias is not None else np.zeros(n, np.float32)
                for p, n in zip(parts, widths)
            ]
        )
        mm = ir.make_value(graph, f"{name}_qkv_mm", dtype, shape)
        ir.add_node(graph, "MatMul", [x, w], [mm], name=f"{name}_qkv_matmul")
        b = ir.make_constant(graph, bias, f"{name}_qkv_bias")
        ir.add_node(graph, "Add", [mm, b], [out], name=f"{name}_qkv_add")
    start = 0
    axes = ir.make_constant(graph, np.array([-1], np.int64), f"{name}_qkv_axes")
    for value, n in zip(sources, widths):
        bounds = [ir.make_constant(graph, np.array([v], np.int64), f"{name}_qkv_{k}")
                  for k, v in (("start", start), ("end", start + n))]  # fmt: skip
        ir.add_node(graph, "Slice", [out, *bounds, axes], [value], name=f"{value.name}_slice")
        start += n
