"""Per-output error statistics of a fuzz run, accumulated one input set at a time.

An element is within tolerance when ``|ours - ref| <= atol + rtol * |ref|`` (NumPy's allclose
rule, as the optimizer's own check). The *tolerance ratio* of an input set is the largest
``|ours - ref| / (atol + rtol * |ref|)`` over the output; a NaN or infinity on one side only, a
shape or dtype difference, or a failed run count as an infinite ratio.

Two correct fp32 implementations of a deep network disagree by more than 1e-4 / 1e-3 on
inputs of large magnitude (rounding differences amplified by cancellation: onnxruntime with
its graph optimizations on against itself with them off reaches 30x the tolerance on a
MobileNetV3 with inputs of scale 10). So each input set is also run through onnxruntime with
its optimizations on (a second, differently rounded implementation); its tolerance ratio
against the reference is the *noise floor* of that input set, and an input set fails only
when ours exceeds ``max(1, noise_factor * floor)``; ``noise_factor = 0`` judges by the plain
tolerance. The input set with the largest ``ratio / max(1, noise_factor * floor)`` is the
output's worst case. The relative error is reported over the elements where ``|ref| > atol``
(next to zero the absolute error is the meaningful one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

#: Default tolerances per output dtype (``--atol`` / ``--rtol`` override them all).
DEFAULT_TOLERANCES: dict[str, tuple[float, float]] = {
    "float32": (1e-4, 1e-3),
    "float64": (1e-7, 1e-6),
    "float16": (1e-2, 1e-2),
}
#: Default ``noise_factor``.
NOISE_FACTOR = 10.0


def tolerance_for(dtype: np.dtype, atol: float | None, rtol: float | None) -> tuple[float, float]:
    default = DEFAULT_TOLERANCES.get(np.dtype(dtype).name, (1e-4, 1e-3))
    return (default[0] if atol is None else atol, default[1] if rtol is None else rtol)


@dataclass
class Measure:
    """One output of one input set, ours (or the second implementation) against the reference."""

    ratio: float = 0.0
    detail: str = ""
    max_abs: float = 0.0
    max_rel: float = 0.0
    nan: tuple[int, int] = (0, 0)  # elements: reference, ours
    inf: tuple[int, int] = (0, 0)


def measure(want: np.ndarray, got: np.ndarray, atol: float, rtol: float) -> Measure:
    """Errors of ``got`` against ``want`` (see the module docstring)."""
    want, got = np.asarray(want), np.asarray(got)
    if want.shape != got.shape or want.dtype != got.dtype:
        return Measure(
            math.inf,
            f"shape/dtype {list(got.shape)}/{got.dtype} != reference's "
            f"{list(want.shape)}/{want.dtype}",
        )
    if want.size == 0:
        return Measure()
    if not (np.issubdtype(want.dtype, np.number) or want.dtype == np.bool_):
        return Measure() if np.array_equal(want, got) else Measure(math.inf, "values differ")
    w, g = want.astype(np.float64), got.astype(np.float64)
    nan_w, nan_g = np.isnan(w), np.isnan(g)
    inf_w, inf_g = np.isinf(w), np.isinf(g)
    m = Measure(nan=(int(nan_w.sum()), int(nan_g.sum())), inf=(int(inf_w.sum()), int(inf_g.sum())))
    finite = ~(nan_w | nan_g | inf_w | inf_g)
    if finite.any():
        err = np.abs(g[finite] - w[finite])
        ref = np.abs(w[finite])
        m.max_abs = float(err.max())
        big = ref > atol
        if big.any():
            m.max_rel = float((err[big] / ref[big]).max())
        tol = atol + rtol * ref
        # a zero tolerance (--atol 0 --rtol 0): any difference is infinitely out of it
        ratios = np.where(
            tol > 0, err / np.where(tol > 0, tol, 1.0), np.where(err > 0, np.inf, 0.0)
        )
        i = int(np.argmax(ratios))
        m.ratio = float(ratios[i])
        if m.ratio > 1.0:
            index = [int(k) for k in np.argwhere(finite)[i]]
            m.detail = (
                f"{_g(float(g[finite][i]))} != reference {_g(float(w[finite][i]))} at "
                f"{index} (abs error {_g(float(err[i]))})"
            )
    for mask, text in (
        (nan_g & ~nan_w, "NaN where the reference has a number"),
        (nan_w & ~nan_g, "a number where the reference has NaN"),
        (~nan_w & ~nan_g & (inf_w | inf_g) & (w != g), "infinities differ from the reference"),
    ):
        if mask.any():
            index = [int(k) for k in np.argwhere(mask)[0]]
            m.ratio = math.inf
            m.detail = (
                f"{text} ({int(mask.sum())} elements, first at {index}: ours "
                f"{_g(float(g[tuple(index)]))}, reference {_g(float(w[tuple(index)]))})"
            )
            break
    return m


@dataclass
class Worst:
    """The input set that gave an output its largest (noise-floor scaled) tolerance ratio."""

    iteration: int
    distribution: str
    ratio: float
    floor: float
    feeds: dict[str, np.ndarray] = field(repr=False)
    expected: np.ndarray | None = field(default=None, repr=False)
    actual: np.ndarray | None = field(default=None, repr=False)
    detail: str = ""
    saved: str | None = None
    score: float = 0.0


@dataclass
class OutputStats:
    """Everything seen on one output of one target."""

    target: str
    name: str
    atol: float
    rtol: float
    noise_factor: float = NOISE_FACTOR
    runs: int = 0
    failures: int = 0  # input sets out of tolerance
    max_abs: float = 0.0
    max_rel: float = 0.0
    max_ratio: float = 0.0
    max_floor: float = 0.0  # the second implementation's largest tolerance ratio
    nan_ref: int = 0  # elements, summed over input sets
    nan_ours: int = 0
    inf_ref: int = 0
    inf_ours: int = 0
    first_detail: str = ""
    worst: Worst | None = None

    @property
    def ok(self) -> bool:
        return self.failures == 0

    def add(
        self,
        iteration: int,
        distribution: str,
        feeds: dict[str, np.ndarray],
        want: np.ndarray,
        got: np.ndarray | None,
        error: str = "",
        alt: np.ndarray | None = None,
    ) -> None:
        """Compares one input set's output (``error``: our side failed to run; ``alt``: the
        second implementation's output, for the noise floor)."""
        self.runs += 1
        if error or got is None:
            m = Measure(math.inf, error or "no output")
        else:
            m = measure(want, got, self.atol, self.rtol)
            self.max_abs = max(self.max_abs, m.max_abs)
            self.max_rel = max(self.max_rel, m.max_rel)
            self.nan_ref += m.nan[0]
            self.nan_ours += m.nan[1]
            self.inf_ref += m.inf[0]
            self.inf_ours += m.inf[1]
        self.max_ratio = max(self.max_ratio, m.ratio)
        floor = 0.0
        if alt is not None and not error and self.noise_factor > 0:
            floor = measure(want, alt, self.atol, self.rtol).ratio
            self.max_floor = max(self.max_floor, floor)
        allowed = max(1.0, self.noise_factor * floor)
        score = 0.0 if m.ratio == 0 else (1.0 if math.isinf(allowed) else m.ratio / allowed)
        if score > 1.0:
            self.failures += 1
            self.first_detail = self.first_detail or m.detail
        if self.worst is None or score > self.worst.score:
            self.worst = Worst(
                iteration, distribution, m.ratio, floor, feeds, want, got, m.detail, score=score
            )


def _g(x: float) -> str:
    return f"{x:.6g}"
