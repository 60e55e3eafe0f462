"""Reference kernels: RNN, GRU and LSTM with ONNX semantics.

Directions (forward, reverse, bidirectional), initial states, ``sequence_lens`` (steps past a
batch entry's length leave its state alone and output zeros), ``layout`` (opset 14), ``clip``,
LSTM peepholes, GRU ``linear_before_reset`` and the common activation functions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from optimizer.kernels.reference._common import opt, ref, s_attr
from optimizer.kernels.registry import KernelFn, NodeInfo, Support, register

Act = Callable[[np.ndarray], np.ndarray]

# name -> (number of alpha/beta parameters it takes, builder(alpha, beta))
_ACTIVATIONS: dict[str, tuple[int, Callable[[float, float], Act]]] = {
    "Sigmoid": (0, lambda a, b: lambda x: 1 / (1 + np.exp(-x))),
    "Tanh": (0, lambda a, b: np.tanh),
    "Relu": (0, lambda a, b: lambda x: np.maximum(x, 0)),
    "Softsign": (0, lambda a, b: lambda x: x / (1 + np.abs(x))),
    "Softplus": (0, lambda a, b: lambda x: np.log1p(np.exp(x))),
    "LeakyRelu": (1, lambda a, b: lambda x: np.where(x >= 0, x, a * x)),
    "ThresholdedRelu": (1, lambda a, b: lambda x: np.where(x > a, x, 0)),
    "Elu": (1, lambda a, b: lambda x: np.where(x >= 0, x, a * np.expm1(x))),
    "HardSigmoid": (2, lambda a, b: lambda x: np.clip(a * x + b, 0, 1)),
    "Affine": (2, lambda a, b: lambda x: a * x + b),
    "ScaledTanh": (2, lambda a, b: lambda x: a * np.tanh(b * x)),
}
_DEFAULT_PARAMS = {
    "LeakyRelu": (0.01, 0),
    "ThresholdedRelu": (1.0, 0),
    "Elu": (1.0, 0),
    "HardSigmoid": (0.2, 0.5),
    "Affine": (1.0, 0),
    "ScaledTanh": (1.0, 1.0),
}
_DEFAULT_ACTS = {"RNN": ["Tanh"], "GRU": ["Sigmoid", "Tanh"], "LSTM": ["Sigmoid", "Tanh", "Tanh"]}
_GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}


def _activations(op: str, attrs: dict[str, Any], num_dirs: int) -> list[list[Act]]:
    """Per direction, the activation functions (f, g, h as the op uses them)."""
    names = [n.decode() if isinstance(n, bytes) else n for n in attrs.get("activations", [])]
    per_dir = len(_DEFAULT_ACTS[op])
    if not names:
        names = _DEFAULT_ACTS[op] * num_dirs
    alphas = list(attrs.get("activation_alpha", []))
    betas = list(attrs.get("activation_beta", []))
    acts: list[Act] = []
    for name in names:
        count, make = _ACTIVATIONS[name]
        a, b = _DEFAULT_PARAMS.get(name, (0.0, 0.0))
        if count >= 1 and alphas:
            a = alphas.pop(0)
        if count >= 2 and betas:
            b = betas.pop(0)
        acts.append(make(a, b))
    if len(acts) == per_dir:  # one set given for a bidirectional op applies to both
        acts = acts * num_dirs
    return [acts[d * per_dir : (d + 1) * per_dir] for d in range(num_dirs)]


def _cell(op: str, attrs: dict[str, Any], hidden: int, acts: list[Act]) -> Callable[..., Any]:
    clip = attrs.get("clip")
    lbr = int(attrs.get("linear_before_reset", 0))

    def clipped(v: np.ndarray) -> np.ndarray:
        return v if clip is None else np.clip(v, -clip, clip)

    def step(
        xw: np.ndarray,
        h: np.ndarray,
        c: np.ndarray | None,
        r: np.ndarray,
        rb: np.ndarray,
        p: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        if op == "RNN":
            return acts[0](clipped(xw + h @ r.T + rb)), None
        if op == "GRU":
            f, g = acts
            rz, rr, rh = np.split(r, 3)
            bz, br, bh = np.split(rb, 3)
            xz, xr, xh = np.split(xw, 3, axis=-1)
            z = f(clipped(xz + h @ rz.T + bz))
            reset = f(clipped(xr + h @ rr.T + br))
            if lbr:
                n = g(clipped(xh + reset * (h @ rh.T + bh)))
            else:
                n = g(clipped(xh + (reset * h) @ rh.T + bh))
            return (1 - z) * n + z * h, None
        f, g, hact = acts
        gates = xw + h @ r.T + rb
        gi, go, gf, gc = np.split(gates, 4, axis=-1)
        pi, po, pf = np.split(p, 3) if p is not None else (0, 0, 0)
        i = f(clipped(gi + pi * c))
        fg = f(clipped(gf + pf * c))
        c_new = fg * c + i * g(clipped(gc))
        o = f(clipped(go + po * c_new))
        return o * hact(c_new), c_new

    return step


def _recurrent(op: str) -> KernelFn:
    gates = _GATES[op]

    def kernel(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
        x = np.asarray(inputs[0])
        dtype = x.dtype
        layout = int(attrs.get("layout", 0))
        if layout:
            x = x.transpose(1, 0, 2)  # -> (seq, batch, input)
        w, r = np.asarray(inputs[1], np.float64), np.asarray(inputs[2], np.float64)
        num_dirs, hidden = w.shape[0], r.shape[-1]
        seq, batch = x.shape[:2]
        b = opt(inputs, 3)
        b = np.zeros((num_dirs, 2 * gates * hidden)) if b is None else np.asarray(b, np.float64)
        lens = opt(inputs, 4)
        lens = np.full(batch, seq) if lens is None else np.asarray(lens, np.int64)
        h0 = opt(inputs, 5)
        c0 = opt(inputs, 6) if op == "LSTM" else None
        peep = opt(inputs, 7) if op == "LSTM" else None
        if layout:
            h0 = None if h0 is None else np.asarray(h0).transpose(1, 0, 2)
            c0 = None if c0 is None else np.asarray(c0).transpose(1, 0, 2)
        direction = s_attr(attrs, "direction", "forward")
        acts = _activations(op, attrs, num_dirs)
        y = np.zeros((seq, num_dirs, batch, hidden))
        y_h = np.zeros((num_dirs, batch, hidden))
        y_c = np.zeros((num_dirs, batch, hidden))
        for d in range(num_dirs):
            step = _cell(op, attrs, hidden, acts[d])
            h = np.zeros((batch, hidden)) if h0 is None else np.asarray(h0[d], np.float64)
            c = np.zeros((batch, hidden)) if c0 is None else np.asarray(c0[d], np.float64)
            xw = x.astype(np.float64) @ w[d].T + b[d, : gates * hidden]
            rb = b[d, gates * hidden :]
            p = None if peep is None else np.asarray(peep[d], np.float64)
            reverse = direction == "reverse" or d == 1
            for t in range(seq - 1, -1, -1) if reverse else range(seq):
                live = (t < lens)[:, None]
                h_new, c_new = step(xw[t], h, c if op == "LSTM" else None, r[d], rb, p)
                h = np.where(live, h_new, h)
                if c_new is not None:
                    c = np.where(live, c_new, c)
                y[t, d] = np.where(live, h_new, 0)
            y_h[d], y_c[d] = h, c
        if layout:
            outs = [y.transpose(2, 0, 1, 3), y_h.transpose(1, 0, 2), y_c.transpose(1, 0, 2)]
        else:
            outs = [y, y_h, y_c]
        return [o.astype(dtype) for o in outs[: 3 if op == "LSTM" else 2]]

    kernel.__doc__ = f"{op} over the whole sequence; outputs Y, Y_h" + (
        ", Y_c." if op == "LSTM" else "."
    )
    return kernel


def _check(op: str) -> Callable[[NodeInfo, str], Support]:
    def check(node: NodeInfo, target: str) -> Support:
        for name in node.attrs.get("activations", []):
            name = name.decode() if isinstance(name, bytes) else name
            if name not in _ACTIVATIONS:
                return Support.no(f"activation {name!r} not implemented")
        if op == "LSTM" and node.attrs.get("input_forget", 0):
            return Support.no("input_forget=1 not implemented")
        direction = s_attr(node.attrs, "direction", "forward")
        if direction not in ("forward", "reverse", "bidirectional"):
            return Support.no(f"direction={direction!r} is not an ONNX direction")
        return Support.yes()

    return check


for _op in ("RNN", "GRU", "LSTM"):
    register(ref(_op, _recurrent(_op), since=7, check=_check(_op)))
