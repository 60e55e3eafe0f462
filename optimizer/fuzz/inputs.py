"""What ``optimize fuzz`` feeds a model: shapes, value ranges, distributions, user samples.

Shapes: pinned (``--input-shape``, named dimensions shared between inputs), else taken from the
user's samples, else the declared fixed dimensions with every remaining symbolic dimension set
to the first of 2, 1, 4, 8... that the original model runs with.

Shape operands (an input that sets a Reshape shape, Slice bounds, reduction axes...) are held
at the first sample's value when there is one. Other integer inputs get values the model can
use: an input (possibly through Cast / Reshape / Unsqueeze...) that indexes a Gather,
GatherElements, GatherND, OneHot or Scatter* gets ``[0, n - 1]`` for the axis it indexes (the
declared dimension); an input whose name contains ``mask`` gets ``[0, 1]``; any other integer
input ``[0, 9]``. ``--range NAME=LOW:HIGH`` overrides (inclusive, for any dtype).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from optimizer import ir
from optimizer.check import _ORT_TYPES, Session, _first_line
from optimizer.errors import UsageError
from optimizer.ir import Model

#: Value distributions, in the order iterations cycle through them.
DISTRIBUTIONS = ("normal", "uniform", "large", "zeros")
#: Sizes tried for symbolic dimensions nobody pinned (2 first: size 1 hides broadcasting bugs).
DIM_TRIALS = (2, 1, 4, 8, 16, 32, 64)
#: Standard deviation of the ``large`` distribution for floating inputs without a range.
LARGE_SCALE = 1e3

# Ops whose input 0 passes integer values through unchanged (indices keep their meaning).
_PASS_THROUGH = {
    "Cast", "Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Expand",
    "Slice", "Tile", "Concat", "Split", "Gather", "GatherElements",
}  # fmt: skip
# op -> input positions whose values set an output shape (or the axes that do).
_SHAPE_OPERANDS = {
    "Reshape": (1,), "Expand": (1,), "Tile": (1,), "Unsqueeze": (1,), "Squeeze": (1,),
    "Slice": (1, 2, 3, 4), "Pad": (1, 3), "TopK": (1,), "Resize": (1, 2, 3), "Upsample": (1,),
    "ConstantOfShape": (0,), "Range": (0, 1, 2), "OneHot": (1,), "Split": (1,),
    "CenterCropPad": (1, 2), "CumSum": (1,),
}  # fmt: skip
# op -> input positions that hold indices into input 0 (along ``axis``).
_INDEX_INPUTS = {"Gather": 1, "GatherElements": 1, "GatherND": 1, "ScatterElements": 1,
                 "ScatterND": 1, "Scatter": 1}  # fmt: skip


@dataclass
class InputSpec:
    """One model input as the fuzzer fills it.

    Attributes:
        name, dtype, shape: what is fed (shape fully resolved).
        low, high: inclusive value range (None: the distribution's own for floats).
        why: where the range comes from, for the report.
    """

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    low: float | None = None
    high: float | None = None
    why: str = ""
    held: np.ndarray | None = None  # a shape operand: the first sample's value, in every set

    @property
    def is_float(self) -> bool:
        return bool(np.issubdtype(self.dtype, np.floating))

    def describe(self) -> str:
        dims = "x".join(map(str, self.shape)) or "scalar"
        text = f"{self.name} {self.dtype.name}[{dims}]"
        if self.held is not None:
            text += " held at the sample's value"
        elif self.low is not None:
            text += f" in [{_num(self.low)}, {_num(self.high)}]"
        return text + (f" ({self.why})" if self.why else "")

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "dtype": self.dtype.name,
            "shape": list(self.shape),
            "range": None if self.low is None else [self.low, self.high],
            "range_from": self.why,
            "held": None if self.held is None else self.held.tolist(),
        }


# -- command-line specs ---------------------------------------------------------------------------


def parse_range(spec: str) -> tuple[str, float, float]:
    """``NAME=LOW:HIGH`` (inclusive) -> (name, low, high)."""
    name, sep, rng = spec.rpartition("=")
    low_text, colon, high_text = rng.partition(":")
    if not sep or not name or not colon:
        raise UsageError(f"--range '{spec}': expected NAME=LOW:HIGH, e.g. input_ids=0:999")
    try:
        low, high = float(low_text), float(high_text)
    except ValueError:
        raise UsageError(f"--range '{spec}': LOW and HIGH must be numbers") from None
    if not (np.isfinite(low) and np.isfinite(high)) or low > high:
        raise UsageError(f"--range '{spec}': need finite LOW <= HIGH")
    return name, low, high


def parse_distributions(text: str) -> list[str]:
    names = [d.strip() for d in text.split(",") if d.strip()]
    bad = [d for d in names if d not in DISTRIBUTIONS]
    if bad or not names:
        raise UsageError(
            f"--distributions '{text}': unknown {', '.join(bad) or 'empty list'} "
            f"(choose from {', '.join(DISTRIBUTIONS)})"
        )
    return names


def load_samples(specs: Sequence[str], input_names: Sequence[str]) -> list[dict[str, np.ndarray]]:
    """The user's input sets from ``--inputs NAME=FILE.npy`` (one set) and ``--inputs DIR``.

    Under a directory, every folder (the directory itself included, any depth, in sorted order)
    holding ``<input>.npy`` files is one input set; other files are ignored, so the folders that
    ``--save-worst`` writes can be fed back.
    """
    single: dict[str, np.ndarray] = {}
    sets: list[dict[str, np.ndarray]] = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep and Path(spec).is_dir():
            sets.extend(_load_dir(Path(spec), input_names))
            continue
        if not sep or not name or not path:
            if not sep and not Path(spec).exists():
                raise UsageError(f"--inputs {spec}: no such directory (or give NAME=FILE.npy)")
            raise UsageError(f"--inputs '{spec}': expected NAME=FILE.npy or a directory")
        if name not in input_names:
            raise UsageError(
                f"--inputs {name}: the model has no input of that name "
                f"(inputs: {', '.join(input_names)})"
            )
        single[name] = _load_npy(Path(path), f"--inputs {name}")
    if single:
        missing = [n for n in input_names if n not in single]
        if missing:
            raise UsageError(f"--inputs: missing arrays for inputs {', '.join(missing)}")
        sets.insert(0, single)
    return sets


def _load_dir(root: Path, input_names: Sequence[str]) -> list[dict[str, np.ndarray]]:
    sets = []
    for folder, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        have = set(files)
        found = [n for n in input_names if f"{safe_name(n)}.npy" in have]
        if not found:
            continue
        missing = [n for n in input_names if n not in found]
        if missing:
            raise UsageError(
                f"--inputs {folder}: no {safe_name(missing[0])}.npy (every input needs one)"
            )
        sets.append(
            {n: _load_npy(Path(folder) / f"{safe_name(n)}.npy", "--inputs") for n in input_names}
        )
    if not sets:
        raise UsageError(
            f"--inputs {root}: no input set found (expected files named after the inputs: "
            f"{', '.join(f'{safe_name(n)}.npy' for n in input_names)})"
        )
    return sets


def _load_npy(path: Path, flag: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise UsageError(f"{flag}: {path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{flag}: {path}: not a readable .npy file ({_first_line(exc)})") from None


# -- resolution -----------------------------------------------------------------------------------


@dataclass
class InputPlan:
    """Resolved inputs of one fuzz run, plus the user's samples (cast to the input dtypes)."""

    specs: list[InputSpec]
    samples: list[dict[str, np.ndarray]] = field(default_factory=list)
    dims: dict[str, int] = field(default_factory=dict)  # symbolic dimension -> size

    @property
    def shapes(self) -> dict[str, list[int]]:
        return {s.name: list(s.shape) for s in self.specs}


def plan_inputs(
    model: Model,
    reference: Session,
    pinned: Mapping[str, Sequence[int]],
    samples: Sequence[Mapping[str, np.ndarray]],
    ranges: Mapping[str, tuple[float, float]],
    fixed: Mapping[str, Sequence[int]] | None = None,
) -> InputPlan:
    """Resolves shapes and value ranges of every input (``fixed``: a module's signature)."""
    declared = {i.name: i for i in reference.inputs}
    for name in ranges:
        if name not in declared:
            raise UsageError(
                f"--range {name}: the model has no input of that name (inputs: {', '.join(declared)})"
            )
    for k, sample in enumerate(samples):
        unknown = [n for n in sample if n not in declared]
        missing = [n for n in declared if n not in sample]
        if unknown or missing:
            raise UsageError(
                f"input set {k + 1}: "
                + (f"unknown input {unknown[0]}" if unknown else f"no array for {missing[0]}")
                + f" (inputs: {', '.join(declared)})"
            )
    symbols = ir.pin_input_shapes(model.copy(), pinned) if pinned else {}
    shapes: dict[str, list[int | str | None]] = {}
    dtypes: dict[str, np.dtype] = {}
    for name, inp in declared.items():
        dtype = _ORT_TYPES.get(inp.type)
        if dtype is None:
            raise UsageError(
                f"input '{name}' has type {inp.type}: the fuzzer cannot make data for it"
            )
        dtypes[name] = np.dtype(dtype)
        shape = list(fixed[name]) if fixed and name in fixed else list(pinned.get(name, inp.shape))
        if samples and name not in pinned and not fixed:
            shape = list(samples[0][name].shape)
            for d, size in zip(inp.shape, shape):
                if isinstance(d, str) and d:
                    symbols.setdefault(d, size)
        shapes[name] = shape
    resolved = {n: [_dim(d, symbols) for d in s] for n, s in shapes.items()}
    int_ranges = index_ranges(model)
    operands = shape_operands(model)
    samples = [_cast_sample(s, dtypes, resolved if fixed else None) for s in samples]

    # Open dimensions: one key per symbol name (shared between inputs), else per input axis.
    keys = {
        (name, axis): (d if isinstance(d, str) and d else f"{name}[{axis}]")
        for name, inp in declared.items()
        for axis, (d, r) in enumerate(zip(list(inp.shape) + [None] * 64, resolved[name]))
        if r is None
    }

    def specs_for(sizes: Mapping[str, int]) -> list[InputSpec]:
        out = []
        for name in declared:
            shape = tuple(
                sizes[keys[(name, axis)]] if d is None else d
                for axis, d in enumerate(resolved[name])
            )
            spec = InputSpec(name, dtypes[name], shape)
            if name in ranges:
                spec.low, spec.high = ranges[name]
                spec.why = "--range"
            elif name in operands and samples:
                spec.held, spec.why = samples[0][name], operands[name]
            elif not spec.is_float:
                spec.low, spec.high, spec.why = _int_range(name, spec.dtype, int_ranges)
            out.append(spec)
        return out

    if not keys:
        return InputPlan(specs_for({}), samples, symbols)
    rng = np.random.default_rng(0)
    errors: list[str] = []

    def runs(sizes: Mapping[str, int]) -> bool:
        try:
            reference.run(generate(specs_for(sizes), "normal", rng))
            return True
        except Exception as exc:  # onnxruntime's own exception types
            errors.append(_first_line(exc))
            return False

    # The first size the model runs with for every open dimension at once, then each
    # dimension as small as it can be (yolo: batch 2 while height and width need 32).
    names = list(dict.fromkeys(keys.values()))
    for dim in DIM_TRIALS:
        sizes = dict.fromkeys(names, dim)
        if not runs(sizes):
            continue
        for key in names:
            for smaller in (v for v in DIM_TRIALS if 1 < v < sizes[key]):
                if runs({**sizes, key: smaller}):
                    sizes[key] = smaller
                    break
        free = {k: v for k, v in sizes.items() if "[" not in k}
        return InputPlan(specs_for(sizes), samples, {**symbols, **free})
    raise UsageError(
        "the original model does not run on random inputs of the declared shapes "
        f"({errors[0]}); pin them with --input-shape NAME:DIMS, give samples with "
        "--inputs NAME=FILE.npy, or value ranges with --range NAME=LOW:HIGH"
    )


def _dim(d: int | str | None, symbols: Mapping[str, int]) -> int | None:
    if isinstance(d, (int, np.integer)) and d >= 0:  # 0: a zero-size dimension, not an open one
        return int(d)
    if isinstance(d, str) and d in symbols:
        return symbols[d]
    return None


def _cast_sample(
    sample: Mapping[str, np.ndarray],
    dtypes: Mapping[str, np.dtype],
    shapes: Mapping[str, list[int | None]] | None,
) -> dict[str, np.ndarray]:
    out = {}
    for name, array in sample.items():
        want = dtypes[name]
        if array.dtype != want:
            if not np.can_cast(array.dtype, want, casting="same_kind"):
                raise UsageError(
                    f"--inputs {name}: dtype {array.dtype} does not fit the input's {want.name}"
                )
            array = array.astype(want)
        if shapes is not None and list(array.shape) != shapes[name]:
            raise UsageError(
                f"--inputs {name}: shape {list(array.shape)} != {shapes[name]} (the module's)"
            )
        out[name] = array
    return out


def _int_range(
    name: str, dtype: np.dtype, index_bounds: Mapping[str, tuple[int, str]]
) -> tuple[float, float, str]:
    if dtype == np.bool_:
        return 0, 1, "bool"
    info = np.iinfo(dtype)
    if name in index_bounds:
        size, why = index_bounds[name]
        return 0, min(size - 1, info.max), why
    if "mask" in name.lower():
        return 0, 1, "name contains 'mask'"
    return max(0, info.min), min(9, info.max), "default for integer inputs"


def shape_operands(model: Model) -> dict[str, str]:
    """Graph inputs that (through Cast, Concat...) set a shape: Reshape's shape, Expand, Tile,
    Slice, Pad, TopK's k, Resize sizes, reduction and (Un)Squeeze axes... -> which node.

    With a sample these are held at its value: a compiled module fixes every shape at compile
    time, and random values there mostly make shapes the original model rejects.
    """
    out: dict[str, str] = {}
    for value in model.graph.inputs:
        todo, seen = [value], {id(value)}
        while todo and value.name not in out:
            current = todo.pop()
            for node in ir.consumers(current):
                for pos, v in enumerate(node.inputs):
                    if v is not current:
                        continue
                    if pos in _SHAPE_OPERANDS.get(node.op, ()) or (
                        node.op.startswith("Reduce") and pos == 1
                    ):
                        where = f"{node.op} '{node.name}'" if node.name else node.op
                        out[value.name] = f"shape operand {pos} of {where}"
                    elif node.op in ("Cast", "Identity", "Concat", "Unsqueeze", "Squeeze") and (
                        pos == 0 or node.op == "Concat"
                    ):
                        todo.extend(o for o in node.outputs if id(o) not in seen)
                        seen.update(id(o) for o in node.outputs)
    return out


def index_ranges(model: Model) -> dict[str, tuple[int, str]]:
    """Graph input -> (size of the axis it indexes, which node says so), for index inputs."""
    out: dict[str, tuple[int, str]] = {}
    for value in model.graph.inputs:
        if ir.numpy_dtype_of(value) is None or not np.issubdtype(
            ir.numpy_dtype_of(value), np.integer
        ):
            continue
        bound = _trace_index_bound(value)
        if bound is not None:
            out[value.name] = bound
    return out


def _trace_index_bound(start: ir.Value) -> tuple[int, str] | None:
    best: tuple[int, str] | None = None
    todo, seen = [start], {id(start)}
    while todo:
        value = todo.pop()
        for node in ir.consumers(value):
            positions = [i for i, v in enumerate(node.inputs) if v is value]
            for pos in positions:
                bound = _node_bound(node, pos)
                if bound is not None and (best is None or bound[0] < best[0]):
                    best = bound
                passes = node.op in _PASS_THROUGH and (pos == 0 or node.op == "Concat")
                if passes:
                    for out in node.outputs:
                        if id(out) not in seen:
                            seen.add(id(out))
                            todo.append(out)
    return best


def _node_bound(node: ir.Node, pos: int) -> tuple[int, str] | None:
    where = f"{node.op} '{node.name}'" if node.name else node.op
    if node.op == "OneHot" and pos == 0 and len(node.inputs) > 1:
        depth = ir.const_value(node.inputs[1])
        if depth is not None and depth.size == 1 and int(depth.reshape(-1)[0]) > 0:
            return int(depth.reshape(-1)[0]), f"{where} depth"
        return None
    if _INDEX_INPUTS.get(node.op) != pos:
        return None
    data = node.inputs[0]
    shape = ir.static_shape(data) or (list(data.shape) if data.shape is not None else None)
    if not shape:
        return None
    if node.op == "GatherND":
        sizes = [d for d in shape if isinstance(d, (int, np.integer)) and d > 0]
        if not sizes:
            return None
        return int(min(sizes)), f"{where} data dims"
    axis = ir.attr_int(node, "axis", 0) or 0
    if not -len(shape) <= axis < len(shape):
        return None
    size = shape[axis]
    if not isinstance(size, (int, np.integer)) or size <= 0:
        return None
    return int(size), f"{where} axis {axis}"


# -- generation -----------------------------------------------------------------------------------


def generate(
    specs: Sequence[InputSpec],
    distribution: str,
    rng: np.random.Generator,
    large_scale: float = LARGE_SCALE,
) -> dict[str, np.ndarray]:
    """One random input set of ``distribution`` for every input."""
    return {s.name: _array(s, distribution, rng, large_scale) for s in specs}


def _array(
    spec: InputSpec, distribution: str, rng: np.random.Generator, large_scale: float
) -> np.ndarray:
    if spec.held is not None:
        return spec.held.copy()
    shape, dtype = spec.shape, spec.dtype
    if spec.is_float:
        if spec.low is None:
            data = {
                "normal": lambda: rng.standard_normal(shape),
                "uniform": lambda: rng.uniform(-1.0, 1.0, shape),
                "large": lambda: rng.standard_normal(shape) * large_scale,
                "zeros": lambda: np.zeros(shape),
            }[distribution]()
        else:
            lo, hi = float(spec.low), float(spec.high)
            data = {
                "normal": lambda: np.clip(
                    rng.normal((lo + hi) / 2, (hi - lo) / 6 or 1.0, shape), lo, hi
                ),
                "uniform": lambda: rng.uniform(lo, hi, shape),
                "large": lambda: np.where(rng.random(shape) < 0.5, lo, hi),
                "zeros": lambda: np.full(shape, np.clip(0.0, lo, hi)),
            }[distribution]()
        with np.errstate(over="ignore"):  # large values may saturate fp16: that is the point
            return np.asarray(data).astype(dtype)  # asarray: 0-d results are NumPy scalars
    lo, hi = int(spec.low), int(spec.high)
    if distribution == "large":
        data = np.where(rng.random(shape) < 0.5, lo, hi)
    elif distribution == "zeros":
        data = np.full(shape, min(max(0, lo), hi))
    else:
        data = rng.integers(lo, hi, size=shape, endpoint=True)
    return np.asarray(data).astype(dtype)


def _num(x: float | None) -> str:
    if x is None:
        return "?"
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def safe_name(name: str) -> str:
    """A value name as a file name (``/``, ``:`` and the like replaced)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "_"
