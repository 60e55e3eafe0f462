"""Lowering for ``--target cuda``: every step becomes a Triton kernel compiled ahead of time.

The CPU binder (``bind.py``) still decides *what* each fusion group computes: a native entry
(``conv2d_packed_f32``, ``softmax_f32``...) with its iparams / fparams (kernels/native/params.md).
For CUDA each entry is mapped to its Triton twin (``kernels/triton``: ``plan_for(entry)``),
whose plan function turns the step's tensor descriptions and parameters into a
``TritonLaunch``; ``kernels/triton/aot.py`` compiles that into a cubin for the chosen
architecture (cached) and the step records the grid and one argument per cubin parameter
(module format version 2). There is no CPU fallback inside a CUDA module: a group without a
native entry, an entry without a Triton twin, or a plan that refuses the step is an
``UnsupportedOpError`` naming op, node, target ``cuda`` and the reason.

``--precision fp16|bf16`` stores float weights and activations in that type (kernels
accumulate in fp32); the module's inputs and outputs keep the model's types, converted by
``cast`` steps (``kernels/triton/cast.py``) after each float input and before each float output.

View copies (the native ``copy`` entry: Reshape, Flatten, Squeeze...) are dropped once every
kernel is compiled: their readers take the source buffer's pointer (``elide_views``).

A few entries also have a hand-written CUDA C++ kernel compiled with NVRTC (``kernels/cuda``:
``gather``, ``resize_nearest_f32``, ``resize_bilinear_f32``, ``global_avgpool_f32``).
``nvrtc_default`` picks it as the step's kernel where ``kernels.cuda.plans.prefer_nvrtc`` says so
(from H100 timings: a global average pool over few planes) and NVRTC is installed; the
step then records the NVRTC cubin (kernel ``backend`` ``nvrtc``) in the same format as a Triton
cubin. ``kernels.cuda.plans.nvrtc_alternatives`` gives the NVRTC launches of a step as tactic
alternatives for load-time timing.

Nothing here needs a GPU: Triton and NVRTC compile for a named architecture on any machine.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from optimizer import ir
from optimizer.errors import UsageError
from optimizer.ir import Graph, Model, Value
from optimizer.kernels.registry import KernelSpec, NodeInfo, UnsupportedOpError
from optimizer.lower.bind import Bound, node_info
from optimizer.lower.partition import SINGLE, FusionGroup, PartitionOptions
from optimizer.module.writer import KernelBinding

log = logging.getLogger(__name__)

TARGET = "cuda"
#: What ``--target`` accepts.
TARGETS = ("cpu", "cuda")
#: ``--precision`` -> the stored float type.
PRECISIONS = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
_ONNX_TYPE = {"float16": 10, "bfloat16": 16, "float32": 1}
_HINT = (
    "a CUDA module runs Triton kernels only (no CPU fallback): compile for --target cpu, "
    "or add the Triton twin of the native entry in kernels/triton/"
)


@dataclass
class CudaOptions:
    """Settings of the CUDA lowering.

    Attributes:
        arch: The architecture cubins are built for (``sm_90``).
        precision: ``fp32``, ``fp16`` or ``bf16``: how float weights and activations are stored.
        allow_tf32: Let fp32 ``tl.dot`` use TF32 (off: exact fp32 products).
        cache: Use the cubin cache (``$ODC_CACHE_DIR/cubins``).
        tune: Also compile each tunable step's alternative launches (``--tune``): the module
            carries them as ``tactics`` and the runtime times them on the GPU at load.
    """

    arch: str = "sm_90"
    precision: str = "fp32"
    allow_tf32: bool = False
    cache: bool = True
    tune: bool = False


@dataclass
class CudaLowering:
    """The schedule (cast steps added, view copies dropped) and one cubin binding per step."""

    steps: list[FusionGroup]
    bounds: list[Bound]
    # the TritonLaunch of each step (also where the step runs the NVRTC kernel: same contract,
    # so CPU tests emulate a module with the Triton twins)
    launches: list[Any] = field(default_factory=list)
    compiled: int = 0
    cached: int = 0
    elided: int = 0
    tuned: int = 0  # steps with alternative launches (--tune)
    tactic_launches: dict[int, list] = field(default_factory=dict)  # step -> its tactics' launches
    kernels: dict[str, int] = field(default_factory=dict)


def partition_options() -> PartitionOptions:
    """What the partitioner fuses for CUDA: the CPU groups plus attention (the Triton
    ``attention_f32`` kernel reads Q, K, V and writes O through strides)."""
    return PartitionOptions(attention=True)


def prepare_graph(model: Model) -> None:
    """CUDA's graph-level rewrites before partitioning: the Q, K, V projections of each
    attention as one GEMM (``fuse_attention.merge_qkv_projections``)."""
    from optimizer.lower.fuse_attention import merge_qkv_projections

    merged = merge_qkv_projections(model)
    if merged:
        log.debug("cuda: %d attention(s) get their Q, K, V from one GEMM", merged)


def check_options(options: CudaOptions) -> None:
    """Raises UsageError on an unknown architecture or precision (one line)."""
    from optimizer.kernels.triton.aot import ARCHS

    if options.arch not in ARCHS:
        raise UsageError(
            f"--arch {options.arch}: unknown CUDA architecture (use one of {', '.join(ARCHS)})"
        )
    if options.precision not in PRECISIONS:
        raise UsageError(
            f"--precision {options.precision}: unknown precision (use one of "
            f"{', '.join(PRECISIONS)})"
        )


def require_triton() -> None:
    """Raises UsageError when Triton (the ``cuda`` extra) is not installed."""
    try:
        import triton  # noqa: F401
    except ImportError:
        raise UsageError(
            "--target cuda needs Triton: pip install 'onnx-deploy-optimizer[cuda]'"
        ) from None
    from optimizer.kernels.triton import aot

    try:
        aot.check_triton_version()
    except aot.AOTError as err:
        raise UsageError(f"--target cuda: {err}") from None


def lower_cuda(
    model: Model,
    steps: Sequence[FusionGroup],
    bounds: Sequence[Bound],
    options: CudaOptions,
) -> CudaLowering:
    """Maps every bound group to a cubin kernel; see the module docstring.

    ``model``'s graph is modified for fp16 / bf16 (cast nodes, stored types), so this runs
    before memory planning.

    Raises:
        UnsupportedOpError: a group runs on the reference fallback, its native entry has no
            Triton twin, or the twin's plan refuses the step.
        UsageError: an unknown architecture or precision; Triton is missing.
    """
    check_options(options)
    require_triton()
    import optimizer.kernels.triton.all  # noqa: F401  (registers every plan function)
    from optimizer.kernels.triton import aot
    from optimizer.kernels.triton.known_tactics import target_arch
    from optimizer.kernels.triton.launch import TensorDesc, Unsupported, plan_for

    steps = list(steps)
    bindings = [b.binding for b in bounds]
    problems = []
    for group, bound in zip(steps, bounds):
        if bound.fallback:
            problems.append(_unsupported(model, group, f"native.{group.pattern}",
                                         "; ".join(bound.reasons)))  # fmt: skip
        elif plan_for(bound.binding.entry) is None:
            problems.append(_unsupported(
                model, group, f"triton.{bound.binding.entry}",
                f"no Triton kernel for native entry '{bound.binding.entry}' yet",
            ))  # fmt: skip
    _raise_first(problems)

    stored = PRECISIONS[options.precision]
    if stored != "float32":
        steps, bindings = apply_precision(model, steps, bindings, stored)

    result = CudaLowering(steps, [])
    values = _values_by_name(model, steps)
    for group, binding in zip(steps, bindings):
        ins = [
            None if n is None else _desc(values, n, TensorDesc)
            for n in _names(binding, group, True)
        ]
        outs = [_desc(values, n, TensorDesc) for n in _names(binding, group, False) if n]
        plan = plan_for(binding.entry)
        assert plan is not None
        try:
            with target_arch(options.arch):
                launch = plan(ins, outs, list(binding.iparams), list(binding.fparams))
            chosen = nvrtc_default(binding.entry, ins, outs, binding, options)
            kernel, cubin = chosen or (launch, aot.compile_launch(
                launch, ins, outs, options.arch, allow_tf32=options.allow_tf32,
                use_cache=options.cache,
            ))  # fmt: skip
        except Unsupported as err:
            problems.append(_unsupported(model, group, f"triton.{binding.entry}", str(err)))
            continue
        except aot.AOTError as err:
            problems.append(_unsupported(model, group, f"triton.{binding.entry}", str(err)))
            continue
        result.compiled += 0 if cubin.cached else 1
        result.cached += 1 if cubin.cached else 0
        result.kernels[kernel.name] = result.kernels.get(kernel.name, 0) + 1
        result.launches.append(launch)
        result.bounds.append(Bound(KernelBinding(
            name=kernel.name,
            backend=kernel.name.split(".")[0],
            kind="cubin",
            entry=cubin.entry,
            version=1,
            artifact=cubin.path,
            iparams=list(binding.iparams),
            fparams=list(binding.fparams),
            workspace=int(kernel.workspace),
            inputs=_names(binding, group, True),
            outputs=_names(binding, group, False),
            launch=cubin.launch_metadata(),
            grid=list(kernel.grid),
            args=aot.step_args(cubin, kernel),
        )))  # fmt: skip
        if options.tune:
            _add_tactics(result, binding, ins, outs, launch, options)
    _raise_first(problems)
    place_zeroed_workspaces(result.bounds, result.launches, result.tactic_launches)
    entries = [b.entry for b in bindings]
    kept = elide_views(model, steps, list(zip(result.bounds, result.launches)), entries)
    result.steps, pairs, result.elided = kept
    result.bounds = [b for b, _ in pairs]
    result.launches = [launch for _, launch in pairs]
    log.info(
        "cuda lowering: %d steps (%d view copies elided, %d with tactics), %d cubins compiled, "
        "%d from the cache (%s, %s)", len(result.steps), result.elided, result.tuned,
        result.compiled, result.cached, options.arch, options.precision,
    )  # fmt: skip
    return result


def nvrtc_default(
    entry: str, ins: list, outs: list, binding: KernelBinding, options: CudaOptions
) -> tuple[Any, Any] | None:
    """The NVRTC launch and cubin of a step whose default kernel is the hand-written CUDA C++
    one (``kernels/cuda/plans.py``: ``prefer_nvrtc``), or None for the Triton twin (also when
    NVRTC, the ``cuda`` extra, is not installed or the NVRTC plan refuses the step)."""
    from optimizer.kernels.cuda import plans as nvrtc_plans
    from optimizer.kernels.cuda.nvrtc import NvrtcError

    iparams, fparams = list(binding.iparams), list(binding.fparams)
    if not nvrtc_plans.prefer_nvrtc(entry, ins, outs, iparams, fparams):
        return None
    try:
        found = nvrtc_plans.nvrtc_alternatives(entry, ins, outs, iparams, fparams, options.arch,
                                               use_cache=options.cache)  # fmt: skip
    except NvrtcError as err:
        log.warning("%s: NVRTC kernel not built (%s); using the Triton kernel", entry, err)
        return None
    return (found[0].launch, found[0].cubin) if found else None


def place_zeroed_workspaces(
    bounds: Sequence[Bound], launches: Sequence[Any], tactic_launches: dict[int, list] | None = None
) -> int:
    """Gives the steps whose kernels keep their workspace zero (``TritonLaunch.zeroed_base``:
    split-K partial sums) a region after every other step's scratch, which may be left dirty:
    the step's ``zeroed_base`` argument gets that offset and its workspace grows to cover it
    (the module's workspace is the largest step's). They all share the one region: steps run
    one at a time and each leaves it zero. ``tactic_launches``: step index -> the launches of
    the step's tactics (``--tune``), placed the same way. Returns the region's offset."""
    tactic_launches = tactic_launches or {}
    every = [*launches, *(a for alts in tactic_launches.values() for a in alts)]
    scratch = max(
        (int(la.workspace) for la in every if not getattr(la, "zeroed_base", "")), default=0
    )
    base = -(-scratch // 256) * 256

    def place(binding: KernelBinding, launch: Any) -> None:
        index = list(launch.args).index(launch.zeroed_base)
        assert launch.args[launch.zeroed_base].kind == "i64", launch.zeroed_base
        binding.args[index] = {"i64": base}
        binding.workspace = base + int(launch.workspace)
        launch.args[launch.zeroed_base] = type(launch.args[launch.zeroed_base])("i64", base)

    for i, (bound, launch) in enumerate(zip(bounds, launches)):
        if launch.zeroed_base and bound.binding.backend == "triton":
            place(bound.binding, launch)
        for tactic, alt in zip(bound.binding.tactics or [], tactic_launches.get(i, [])):
            if getattr(alt, "zeroed_base", ""):
                place(tactic, alt)
    return base


def _add_tactics(
    result: CudaLowering, binding: KernelBinding, ins: list, outs: list, launch: Any,
    options: CudaOptions,
) -> None:  # fmt: skip
    """``--tune``: compiles the alternative launches of the last lowered step (if its entry has
    any) and records them on its binding; an alternative that does not compile is left out."""
    from optimizer.kernels.triton import aot
    from optimizer.kernels.triton.known_tactics import tactic_key, target_arch
    from optimizer.kernels.triton.launch import Unsupported, alternatives_for

    alternatives = alternatives_for(binding.entry)
    iparams, fparams = list(binding.iparams), list(binding.fparams)
    launches = []
    if alternatives is not None:
        with target_arch(options.arch):
            launches = alternatives(ins, outs, iparams, fparams)
    target = result.bounds[-1].binding
    if target.backend == "nvrtc":  # the hand-written kernel is the default: time its Triton twin
        launches = [launch]
    tactics, kept = [], []
    for alt in launches:
        try:
            cubin = aot.compile_launch(alt, ins, outs, options.arch, allow_tf32=options.allow_tf32,
                                       use_cache=options.cache)  # fmt: skip
        except (Unsupported, aot.AOTError) as err:
            log.info("step '%s': tactic %s left out: %s", target.name, alt.tactic, err)
            continue
        result.compiled += 0 if cubin.cached else 1
        result.cached += 1 if cubin.cached else 0
        tactics.append(KernelBinding(
            name=alt.name, backend="triton", kind="cubin", entry=cubin.entry, version=1,
            artifact=cubin.path, workspace=int(alt.workspace), launch=cubin.launch_metadata(),
            grid=list(alt.grid), args=aot.step_args(cubin, alt), tactic_name=alt.tactic or None,
        ))  # fmt: skip
        kept.append(alt)
    if target.backend != "nvrtc":  # the hand-written CUDA C++ twin, where there is one
        for alt in _nvrtc_candidates(binding.entry, ins, outs, iparams, fparams, options):
            tactics.append(KernelBinding(
                name=alt.launch.name, backend="nvrtc", kind="cubin", entry=alt.cubin.entry,
                version=1, artifact=alt.cubin.path, workspace=0,
                launch=alt.cubin.launch_metadata(), grid=list(alt.launch.grid),
                args=aot.step_args(alt.cubin, alt.launch), tactic_name="nvrtc",
            ))  # fmt: skip
            kept.append(alt.launch)
    if tactics:
        result.tactic_launches[len(result.bounds) - 1] = kept
        target.tactics = tactics
        target.tactic_key = tactic_key(binding.entry, ins, outs, iparams)
        target.tactic_name = launch.tactic or None
        result.tuned += 1


def _nvrtc_candidates(
    entry: str, ins: list, outs: list, iparams: list, fparams: list, options: CudaOptions
) -> list:
    """NVRTC twins of a step for its tactics; none when NVRTC (the ``cuda`` extra) is missing."""
    from optimizer.kernels.cuda import plans as nvrtc_plans
    from optimizer.kernels.cuda.nvrtc import NvrtcError

    try:
        return nvrtc_plans.nvrtc_alternatives(entry, ins, outs, iparams, fparams, options.arch,
                                              use_cache=options.cache)  # fmt: skip
    except NvrtcError as err:
        log.info("%s: no NVRTC tactic (%s)", entry, err)
        return []


def elide_views(
    model: Model, steps: list[FusionGroup], bounds: list[tuple[Bound, Any]], entries: list[str]
) -> tuple[list[FusionGroup], list[tuple[Bound, Any]], int]:
    """Drops ``copy`` steps (Reshape, Flatten, Squeeze, Unsqueeze, Identity: same bytes under
    another shape); their readers read the source value's buffer instead.

    Runs after the kernels are compiled: each reader's launch was planned with the view's shape,
    so only the pointer changes. A copy that writes a graph output stays (the caller's buffer
    must be written), and so does one that changes the element type.

    Returns:
        The remaining steps and ``bounds`` items (a bound with anything riding along), and
        how many copies were dropped.
    """
    outputs = {id(v) for v in model.graph.outputs}
    alias: dict[int, Value] = {}
    alias_name: dict[str, str] = {}
    kept_steps, kept_bounds = [], []
    for group, bound, entry in zip(steps, bounds, entries):
        binding = bound[0].binding
        group.inputs = [None if v is None else alias.get(id(v), v) for v in group.inputs]
        group.implicit_inputs = [alias.get(id(v), v) for v in group.implicit_inputs]
        binding.inputs = [alias_name.get(n, n) if n else n for n in binding.inputs or []]
        if entry == "copy" and len(binding.inputs) == 1 and len(binding.outputs or []) == 1:
            src = next((v for v in group.values_read() if v.name == binding.inputs[0]), None)
            dst = group.values_written()[0] if len(group.values_written()) == 1 else None
            if (src is not None and dst is not None and id(dst) not in outputs
                    and _dtype(src) == _dtype(dst)):  # fmt: skip
                alias[id(dst)] = src
                alias_name[dst.name] = src.name
                continue
        kept_steps.append(group)
        kept_bounds.append(bound)
    return kept_steps, kept_bounds, len(steps) - len(kept_steps)


# -- precision -----------------------------------------------------------------------------------


def apply_precision(
    model: Model,
    steps: list[FusionGroup],
    bindings: list[KernelBinding],
    stored: str,
) -> tuple[list[FusionGroup], list[KernelBinding]]:
    """Stores every float32 value but the module's inputs and outputs as ``stored``.

    Adds a ``Cast`` node and step after each float32 graph input (its readers read the cast)
    and before each float32 graph output (its producer writes a ``stored`` value the cast
    converts). Constants are converted (rounded to nearest even).

    Returns:
        The new step list and bindings (cast steps first and last).
    """
    graph = model.graph
    np_dtype = _numpy_dtype(stored)
    suffix = {"float16": "fp16", "bfloat16": "bf16"}[stored]
    rename: dict[str, str] = {}  # a graph interface value -> its stored-type twin
    head: list[tuple[FusionGroup, KernelBinding]] = []
    tail: list[tuple[FusionGroup, KernelBinding]] = []
    outputs = {id(v) for v in graph.outputs}

    for x in graph.inputs:
        if _dtype(x) != "float32" or not ir.consumers(x):
            continue
        xh = ir.make_value(graph, f"{x.name}_{suffix}", np_dtype, list(ir.static_shape(x) or ()))
        readers = list(ir.consumers(x))
        cast = ir.add_node(graph, "Cast", [x], [xh], {"to": _ONNX_TYPE[stored]},
                           name=f"{x.name}_to_{suffix}")  # fmt: skip
        for node in readers:
            _swap(node.inputs, x, xh)
        rename[x.name] = xh.name
        head.append(_cast_step(cast, x, xh))
    for y in list(graph.outputs):
        if _dtype(y) != "float32" or ir.is_graph_input(graph, y):
            continue
        producer = ir.producer(y)
        if producer is None:
            continue
        yh = ir.make_value(graph, f"{y.name}_{suffix}", np_dtype, list(ir.static_shape(y) or ()))
        readers = list(ir.consumers(y))
        _swap(producer.outputs, y, yh)
        for node in readers:
            _swap(node.inputs, y, yh)
        cast = ir.add_node(graph, "Cast", [yh], [y], {"to": _ONNX_TYPE["float32"]},
                           name=f"{y.name}_from_{suffix}")  # fmt: skip
        rename[y.name] = yh.name
        tail.append(_cast_step(cast, yh, y))

    by_name = {v.name: v for pair in head + tail for v in pair[0].inputs + pair[0].outputs if v}
    new_steps, new_bindings = [], []
    for group, binding in zip(steps, bindings):
        group.inputs = [_twin(v, rename, by_name) for v in group.inputs]
        group.outputs = [_twin(v, rename, by_name) for v in group.outputs]
        group.implicit_inputs = [_twin(v, rename, by_name) for v in group.implicit_inputs]
        binding.inputs = [rename.get(n, n) if n else n for n in _names(binding, group, True)]
        binding.outputs = [rename.get(n, n) if n else n for n in _names(binding, group, False)]
        new_steps.append(group)
        new_bindings.append(binding)

    converted = 0
    interface = {id(v) for v in graph.inputs} | outputs
    for value in _all_values(graph, new_steps):
        if id(value) in interface or _dtype(value) != "float32":
            continue
        if ir.is_constant(value):
            value.values = _narrow(np.asarray(ir.const_value(value)), np_dtype, value.name)
        else:
            value.dtype = np_dtype
        converted += 1
    for binding in new_bindings:
        if binding.entry == "pad" and binding.iparams:
            binding.iparams[-1] = _refit_bits(binding.iparams[-1], np_dtype)
    ir.toposort(graph)
    log.debug("precision %s: %d values converted, %d input and %d output casts", stored,
              converted, len(head), len(tail))  # fmt: skip
    return (
        [g for g, _ in head] + new_steps + [g for g, _ in tail],
        [b for _, b in head] + new_bindings + [b for _, b in tail],
    )


def _cast_step(cast: ir.Node, src: Value, dst: Value) -> tuple[FusionGroup, KernelBinding]:
    group = FusionGroup(nodes=[cast], inputs=[src], outputs=[dst], pattern="cast", kind=SINGLE)
    binding = KernelBinding(name="triton.cast", backend="triton", kind="cubin", entry="cast",
                            inputs=[src.name], outputs=[dst.name])  # fmt: skip
    return group, binding


def _swap(values: list[Value], old: Value, new: Value) -> None:
    for i, v in enumerate(values):
        if v is old:
            values[i] = new


def _twin(v: Value | None, rename: dict[str, str], by_name: dict[str, Value]) -> Value | None:
    if v is None or v.name not in rename:
        return v
    return by_name[rename[v.name]]


def _refit_bits(bits: int, np_dtype: np.dtype) -> int:
    """A float32 bit pattern (pad's constant) re-encoded for ``np_dtype``."""
    from optimizer.lower.bind_pad import value_bits

    value = np.array([bits & 0xFFFFFFFF], dtype=np.uint32).view(np.float32)[0]
    return value_bits(value, np_dtype)


def _narrow(array: np.ndarray, np_dtype: np.dtype, name: str) -> np.ndarray:
    """``array`` in ``np_dtype``, finite values beyond its range saturated (not turned into inf:
    masks filled with float32's lowest value must stay finite)."""
    limit = float(np.finfo(np.float16).max) if np_dtype == np.float16 else None
    if limit is not None:
        finite = np.isfinite(array)
        big = finite & (np.abs(array) > limit)
        if big.any():
            log.info("constant '%s': %d value(s) beyond float16 saturated to +-%g", name,
                     int(big.sum()), limit)  # fmt: skip
            array = np.where(big, np.sign(array) * limit, array)
    return array.astype(np_dtype)


def _numpy_dtype(name: str) -> np.dtype:
    if name == "bfloat16":
        import ml_dtypes  # shipped with onnx

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


# -- helpers -------------------------------------------------------------------------------------


def _dtype(v: Value | None) -> str | None:
    if v is None or ir.is_empty(v):
        return None
    dt = ir.numpy_dtype_of(v)
    return None if dt is None else dt.name


def _all_values(graph: Graph, steps: Sequence[FusionGroup]) -> list[Value]:
    seen: dict[int, Value] = {}
    for group in steps:
        for v in [*group.inputs, *group.outputs, *group.implicit_inputs]:
            if v is not None and not ir.is_empty(v):
                seen.setdefault(id(v), v)
        for node in group.nodes:
            for v in [*node.inputs, *node.outputs]:
                if not ir.is_empty(v):
                    seen.setdefault(id(v), v)
    return list(seen.values())


def _values_by_name(model: Model, steps: Sequence[FusionGroup]) -> dict[str, Value]:
    return {v.name: v for v in _all_values(model.graph, steps)}


def _names(binding: KernelBinding, group: FusionGroup, inputs: bool) -> list[str | None]:
    if inputs:
        names = binding.inputs
        default = [None if v is None else v.name for v in group.inputs]
    else:
        names = binding.outputs
        default = [None if v is None else v.name for v in group.outputs]
    return list(names) if names is not None else default


def _desc(values: dict[str, Value], name: str, desc_type: type) -> object:
    value = values[name]
    shape = ir.static_shape(value)
    return desc_type(tuple(shape or ()), _dtype(value) or "unknown")


def _unsupported(model: Model, group: FusionGroup, kernel: str, reason: str) -> UnsupportedOpError:
    node = group.nodes[0]
    info: NodeInfo = node_info(node, model.opset)
    backend = kernel.split(".")[0]
    spec = KernelSpec(name=kernel, op=node.op, domain=node.domain or "", backend=backend,
                      builder=_no_builder, targets=frozenset({TARGET}))  # fmt: skip
    return UnsupportedOpError(info, TARGET, [(spec, reason)], hint=_HINT)


def _no_builder(node: NodeInfo) -> None:  # pragma: no cover - names a candidate, never built
    raise RuntimeError("cubin kernels are built by kernels/triton/aot.py")


def _raise_first(problems: list[UnsupportedOpError]) -> None:
    if not problems:
        return
    first = problems[0]
    if len(problems) > 1:
        others = sorted({f"{p.node.op} '{p.node.name}'" for p in problems[1:]})
        shown = ", ".join(others[:8]) + (" ..." if len(others) > 8 else "")
        first.args = (f"{first.args[0]} (and {len(problems) - 1} more unsupported "
                      f"step(s): {shown})",)  # fmt: skip
    raise first
