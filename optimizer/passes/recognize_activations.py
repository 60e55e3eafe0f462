"""Decomposed activations -> HardSigmoid, HardSwish and Gelu ops."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from optimizer import ir
from optimizer.ir import Graph, Model, Value
from optimizer.passes.rewrite import (
    OK,
    Match,
    OpPattern,
    Pattern,
    RewritePass,
    Rule,
    const,
    op,
    var,
)

# First opset defining each produced op. Gated in the checks (not ``Rule.min_opset``, which
# drops a rule silently) so that ``--explain`` says which ``--target-opset`` would help.
MIN_OPSET = {"HardSigmoid": 6, "HardSwish": 14, "Gelu": 20}
# Input types of those ops at their first opset (bfloat16 only from later opsets).
_FLOAT_TYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))

SQRT2 = math.sqrt(2.0)
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
GELU_KAPPA = 0.044715

Params = dict[str, float]
# A form's evaluator: the constants it matched -> the op's attributes, or a failed Match.
FormFn = Callable[[Model, Match], "Params | Match"]


# -- constant helpers ---------------------------------------------------------------------------


def _tolerance(dtype: np.dtype) -> float:
    """Relative tolerance on constants: exporters round 1/6, sqrt(2), ... to the dtype."""
    return max(1e-6, 4 * float(np.finfo(dtype).eps))


def _close(value: float, target: float, dtype: np.dtype) -> bool:
    return abs(value - target) <= _tolerance(dtype) * max(abs(target), 1e-30)


def _scalar(m: Match, name: str) -> float | None:
    """A bound size-1 constant that cannot broadcast ``x`` to a higher rank, as a float."""
    array = ir.const_value(m.values.get(name))
    if array is None or array.size != 1:
        return None
    r = ir.rank(m["x"])
    if array.ndim > 0 and (r is None or array.ndim > r):
        return None
    return float(array.reshape(()))


def _scalars(m: Match, *names: str) -> list[float] | Match:
    values = []
    for name in names:
        v = _scalar(m, name)
        if v is None:
            return Match.fail(f"'{name}' is not a scalar constant")
        values.append(v)
    return values


def _expect(m: Match, dtype: np.dtype, expected: dict[str, float]) -> Match:
    """Checks that each named constant is a scalar close to its expected value."""
    for name, target in expected.items():
        v = _scalar(m, name)
        if v is None:
            return Match.fail(f"'{name}' is not a scalar constant")
        if not _close(v, target, dtype):
            return Match.fail(f"constant '{name}' is {v:g}, expected {target:g}")
    return OK


def _clip_bounds(model: Model, m: Match) -> tuple[float, float] | Match:
    """Clip's (min, max): attributes before opset 11, constant inputs from 11 on."""
    clip = m["clip"]
    if model.opset < 11:
        lo = ir.attr_float(clip, "min", -math.inf)
        hi = ir.attr_float(clip, "max", math.inf)
        return float(lo), float(hi)
    bounds = []
    for name, default in (("lo", -math.inf), ("hi", math.inf)):
        value = m.values.get(name)
        if value is None:
            bounds.append(default)
            continue
        array = ir.const_value(value)
        if array is None or array.size != 1:
            return Match.fail(f"Clip bound '{name}' is not a scalar constant", clip)
        bounds.append(float(array.reshape(())))
    return bounds[0], bounds[1]


def _input_dtype(model: Model, m: Match, op_type: str) -> np.dtype | Match:
    if model.opset < MIN_OPSET[op_type]:
        need = MIN_OPSET[op_type]
        return Match.fail(
            f"{op_type} needs opset >= {need} (model has {model.opset}); use --target-opset {need}"
        )
    dtype = ir.numpy_dtype_of(m["x"])
    if dtype not in _FLOAT_TYPES:
        return Match.fail(f"{op_type} does not take {dtype} inputs")
    return dtype


# -- hard-sigmoid forms -------------------------------------------------------------------------
# Each form is a pattern over ``x`` plus a function giving HardSigmoid's alpha and beta.


def _clip(inner: Pattern) -> OpPattern:
    return op("Clip", inner, const("lo", optional=True), const("hi", optional=True), name="clip")


def _affine_clip_params(model: Model, m: Match) -> Params | Match:
    """clip(a*x + b, 0, 1)."""
    bounds = _clip_bounds(model, m)
    if isinstance(bounds, Match):
        return bounds
    if bounds != (0.0, 1.0):
        return Match.fail(f"Clip bounds are {bounds}, expected (0, 1)", m["clip"])
    ab = _scalars(m, "a", "b")
    return ab if isinstance(ab, Match) else {"alpha": ab[0], "beta": ab[1]}


def _relu6_params(divide: bool) -> FormFn:
    """clip(x + b, 0, h) / h, or * k with k = 1/h: HardSigmoid(alpha=1/h, beta=b/h)."""

    def params(model: Model, m: Match) -> Params | Match:
        bounds = _clip_bounds(model, m)
        if isinstance(bounds, Match):
            return bounds
        lo, hi = bounds
        if lo != 0.0 or not 0.0 < hi < math.inf:
            return Match.fail(f"Clip bounds are {bounds}, expected (0, h)", m["clip"])
        bk = _scalars(m, "b", "k")
        if isinstance(bk, Match):
            return bk
        b, k = bk
        scale = 1.0 / k if divide and k != 0.0 else k
        if not _close(scale * hi, 1.0, ir.numpy_dtype_of(m["x"])):
            how = "divided by" if divide else "multiplied by"
            return Match.fail(f"Clip(., 0, {hi:g}) {how} {k:g} does not span [0, 1]")
        return {"alpha": scale, "beta": b * scale}

    return params


def _hard_sigmoid_op_params(model: Model, m: Match) -> Params | Match:
    node = m["hard_sigmoid"]
    return {
        "alpha": float(ir.attr_float(node, "alpha", 0.2)),
        "beta": float(ir.attr_float(node, "beta", 0.5)),
    }


def _clip_affine_form() -> OpPattern:
    return _clip(op("Add", op("Mul", var("x"), const("a")), const("b")))


def _relu6(x: Pattern) -> OpPattern:
    return _clip(op("Add", x, const("b")))


HARD_SIGMOID_FORMS: list[tuple[OpPattern, FormFn]] = [
    (_clip_affine_form(), _affine_clip_params),
    (op("Div", _relu6(var("x")), const("k"), name="root"), _relu6_params(divide=True)),
    (op("Mul", _relu6(var("x")), const("k"), name="root"), _relu6_params(divide=False)),
]


def _is_hard_swish_gate(params: Params, dtype: np.dtype) -> bool:
    return _close(params["alpha"], 1.0 / 6.0, dtype) and _close(params["beta"], 0.5, dtype)


def _feeds_hard_swish(model: Model, graph: Graph, root_out: Value, x: Value) -> bool:
    """True when ``x * root_out`` follows: a HardSwish rule takes the whole thing."""
    if model.opset < MIN_OPSET["HardSwish"]:
        return False
    user = ir.single_consumer(graph, root_out)
    return user is not None and user.op == "Mul" and any(v is x for v in user.inputs)


def _hard_sigmoid_check(form: FormFn) -> Callable[[Model, Graph, Match], Match]:
    def check(model: Model, graph: Graph, m: Match) -> Match:
        dtype = _input_dtype(model, m, "HardSigmoid")
        if isinstance(dtype, Match):
            return dtype
        params = form(model, m)
        if isinstance(params, Match):
            return params
        root_out = _root(m).outputs[0]
        if _is_hard_swish_gate(params, dtype) and _feeds_hard_swish(model, graph, root_out, m["x"]):
            return Match.fail("x * HardSigmoid(x) follows: left to the HardSwish rule")
        return OK

    return check


# -- hard-swish forms ---------------------------------------------------------------------------


def _hard_swish_check(form: FormFn) -> Callable[[Model, Graph, Match], Match]:
    def check(model: Model, graph: Graph, m: Match) -> Match:
        dtype = _input_dtype(model, m, "HardSwish")
        if isinstance(dtype, Match):
            return dtype
        params = form(model, m)
        if isinstance(params, Match):
            return params
        if not _is_hard_swish_gate(params, dtype):
            return Match.fail(
                f"gate is HardSigmoid(alpha={params['alpha']:g}, beta={params['beta']:g}), "
                "HardSwish needs alpha=1/6, beta=0.5"
            )
        return OK

    return check


def _hard_swish_rules() -> list[Rule]:
    gates: list[tuple[OpPattern, FormFn]] = [
        *HARD_SIGMOID_FORMS,
        (op("HardSigmoid", var("x"), name="hard_sigmoid"), _hard_sigmoid_op_params),
    ]
    rules = []
    # x * gate(x)
    for gate, form in gates:
        pattern = op("Mul", var("x"), _unnamed(gate), name="root")
        rules.append(_rule("HardSwish", pattern, _hard_swish_check(form)))
    # (x * clip(x + b, 0, h)) / h and (x * clip(x + b, 0, h)) * (1/h)
    swish = op("Mul", var("x"), _relu6(var("x")))
    for op_type, divide in (("Div", True), ("Mul", False)):
        pattern = op(op_type, swish, const("k"), name="root")
        rules.append(_rule("HardSwish", pattern, _hard_swish_check(_relu6_params(divide))))
    return rules


def _unnamed(pattern: OpPattern) -> OpPattern:
    """The pattern without the ``root`` name (it becomes an inner node)."""
    if pattern.name != "root":
        return pattern
    return op(pattern.op, *pattern.inputs, domain=pattern.domain, shared=pattern.shared)


# -- gelu ---------------------------------------------------------------------------------------


def _gelu_outer(gate: Pattern) -> list[OpPattern]:
    """The association orders of ``0.5 * x * gate``."""
    half = const("half")
    return [
        op("Mul", op("Mul", var("x"), half), gate, name="root"),
        op("Mul", var("x"), op("Mul", gate, half), name="root"),
        op("Mul", op("Mul", var("x"), gate), half, name="root"),
    ]


def _gelu_check(expected: dict[str, float]) -> Callable[[Model, Graph, Match], Match]:
    def check(model: Model, graph: Graph, m: Match) -> Match:
        dtype = _input_dtype(model, m, "Gelu")
        if isinstance(dtype, Match):
            return dtype
        checked = _expect(m, dtype, {"half": 0.5, "one": 1.0, **expected})
        return checked

    return check


def _gelu_rules() -> list[Rule]:
    rules = []
    x = var("x")
    erf_args = [
        (op("Div", x, const("s")), {"s": SQRT2}),
        (op("Mul", x, const("s")), {"s": 1.0 / SQRT2}),
    ]
    for arg, expected in erf_args:
        gate = op("Add", op("Erf", arg), const("one"))
        for pattern in _gelu_outer(gate):
            rules.append(_rule("Gelu", pattern, _gelu_check(expected)))
    # Mul is matched in both input orders, so Mul(x, Mul(x, x)) also covers Mul(Mul(x, x), x).
    cubes = [
        (op("Pow", x, const("three")), {"three": 3.0}),
        (op("Mul", x, op("Mul", x, x)), {}),
    ]
    for cube, expected in cubes:
        inner = op("Mul", op("Add", x, op("Mul", cube, const("kappa"))), const("scale"))
        gate = op("Add", op("Tanh", inner), const("one"))
        consts = {"kappa": GELU_KAPPA, "scale": SQRT_2_OVER_PI, **expected}
        for pattern in _gelu_outer(gate):
            rule = _rule("Gelu(tanh)", pattern, _gelu_check(consts), attrs={"approximate": "tanh"})
            rules.append(rule)
    return rules


# -- rules --------------------------------------------------------------------------------------


def _root(m: Match) -> ir.Node:
    return m.nodes["root"] if "root" in m.nodes else m.nodes["clip"]


def _rule(
    name: str,
    pattern: OpPattern,
    check: Callable[[Model, Graph, Match], Match],
    attrs: dict | FormFn | None = None,
) -> Rule:
    """A rule replacing the pattern's root by ``op(x)``; ``attrs`` may be the form function
    computing them (it is only called once ``check`` accepted the match)."""
    op_type = name.split("(")[0]

    def rewrite(model: Model, graph: Graph, m: Match) -> None:
        old = _root(m).outputs[0]
        node_attrs = attrs(model, m) if callable(attrs) else dict(attrs or {})
        assert isinstance(node_attrs, dict)
        out = ir.make_value(
            graph, f"{old.name}_{op_type.lower()}", dtype=old.dtype, shape=old.shape
        )
        ir.add_node(graph, op_type, [m["x"]], [out], attrs=node_attrs, name=op_type)
        ir.replace_all_uses(graph, old, out)

    return Rule(name, pattern, check, rewrite)


RULES: list[Rule] = [
    *(
        _rule("HardSigmoid", pat, _hard_sigmoid_check(form), attrs=form)
        for pat, form in HARD_SIGMOID_FORMS
    ),
    *_hard_swish_rules(),
    *_gelu_rules(),
]


class RecognizeActivations(RewritePass):
    """Replaces decomposed activations by the single ONNX op.

    Rewrites (stats per produced op: "HardSigmoid", "HardSwish", "Gelu", "Gelu(tanh)"):
        * HardSigmoid (opset >= 6): ``Clip(x*a + b, 0, 1)``; ``Clip(x + b, 0, h) / h`` and
          ``Clip(x + b, 0, h) * (1/h)`` (Relu6(x + 3) / 6 as exported by torch; Clip bounds
          are attributes before opset 11 and constant inputs after).
        * HardSwish (opset >= 14): ``x * g(x)`` where g is HardSigmoid(alpha=1/6, beta=0.5)
          (the op, as torch exports hardswish at opset <= 13, or any form above), and
          ``x * Clip(x + 3, 0, 6) / 6`` in both associations.
        * Gelu (opset >= 20): ``0.5 * x * (1 + Erf(x / sqrt 2))`` (or ``x * 0.7071``) and
          ``0.5 * x * (1 + Tanh(sqrt(2/pi) * (x + 0.044715 x^3)))`` -> approximate="tanh",
          with the cube as Pow(x, 3) or x*x*x, in the usual association orders.

    Constants must be scalars within a relative tolerance of the exact value (max(1e-6,
    4 eps of the dtype)), inputs float16/32/64. Refuses: opsets before the op exists (the
    reason names the ``--target-opset`` to use), other constants (0.4 for 0.5), non-constant
    or non-scalar constants, intermediate values with other consumers or that are graph
    outputs. A HardSigmoid form multiplied by its own input is left to the HardSwish rule.
    """

    name = "recognize_activations"
    summary = "fuse decomposed HardSigmoid / HardSwish / Gelu into the ONNX ops"
    rules = RULES
