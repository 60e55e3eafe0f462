"""``CompiledModule``: a loaded module, run with NumPy arrays."""

from __future__ import annotations

import logging
import os
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from optimizer.runtime.errors import ModuleError

logger = logging.getLogger(__name__)

_NUMPY_DTYPES = {
    "float32": np.float32,
    "float16": np.float16,
    "float64": np.float64,
    "int8": np.int8,
    "int16": np.int16,
    "int32": np.int32,
    "int64": np.int64,
    "uint8": np.uint8,
    "uint16": np.uint16,
    "uint32": np.uint32,
    "uint64": np.uint64,
    "bool": np.bool_,
}


def numpy_dtype(name: str) -> np.dtype:
    """The NumPy dtype of a module-format dtype name (bfloat16 needs ``ml_dtypes``)."""
    if name == "bfloat16":
        try:
            import ml_dtypes
        except ImportError as err:
            raise ModuleError("bfloat16 tensors need the ml_dtypes package") from err
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(_NUMPY_DTYPES[name])


@dataclass(frozen=True)
class TensorInfo:
    """One entry of a module's signature."""

    name: str
    dtype: str
    shape: tuple[int, ...]

    def __str__(self) -> str:
        return f"{self.name}: {self.dtype}{list(self.shape)}"


@dataclass(frozen=True)
class StepTime:
    """One step's time in a profile (median over the profiled runs)."""

    index: int
    kernel: str
    node: str
    seconds: float


@dataclass(frozen=True)
class StepTactics:
    """How one step's launch was chosen among its alternatives (cuda modules with tactics).

    Attributes:
        step: The step's index.
        kernel: The step's kernel name.
        node: The ONNX node the step came from.
        names: Each candidate's configuration name (0: the step's own launch).
        chosen: The candidate every run launches.
        seconds: Each candidate's device time per launch (None: not timed in this load or
            the cache).
        source: ``"tuned"`` (timed at this load), ``"cache"`` (an earlier tuning on this GPU)
            or ``"default"``.
        key: The step's known-tactics table key.
    """

    step: int
    kernel: str
    node: str
    names: tuple[str, ...]
    chosen: int
    seconds: tuple[float | None, ...]
    source: str
    key: str

    def __str__(self) -> str:
        parts = []
        for i, (name, sec) in enumerate(zip(self.names, self.seconds)):
            mark = "*" if i == self.chosen else ""
            parts.append(f"{mark}{name or '?'} " + ("-" if sec is None else f"{sec * 1e6:.1f}us"))
        return f"step {self.step} {self.kernel} ({self.node}), {self.source}: " + ", ".join(parts)


def _native():
    try:
        from optimizer import _runtime
    except ImportError as err:  # pragma: no cover - a broken install
        raise ModuleError(
            f"the C++ runtime (optimizer._runtime) is not built: {err}; "
            "reinstall with `pip install -e . --no-build-isolation`"
        ) from err
    return _runtime


class CompiledModule:
    """A compiled module directory loaded into the C++ runtime.

    Attributes:
        path: the module directory.
        inputs / outputs: the signature, in order.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        verify_checksums: bool = True,
        cuda_graphs: bool = True,
        target: str = "auto",
        tune: bool = False,
    ) -> None:
        self.path = os.fspath(path)
        if target not in ("auto", "cpu", "cuda"):
            raise ModuleError(f"target must be 'auto', 'cpu' or 'cuda', got {target!r}")
        self._module = _native().Module(
            self.path, verify_checksums, cuda_graphs, target, bool(tune)
        )
        if self._module.target_note:  # auto skipped cuda: say why, once
            logger.info("%s: %s; running on %s", self.path, self._module.target_note, self.device)
        note = self._module.tactics_note
        if note:
            logger.warning("%s", note)
        self.inputs = [TensorInfo(n, d, tuple(s)) for n, d, s in self._module.inputs]
        self.outputs = [TensorInfo(n, d, tuple(s)) for n, d, s in self._module.outputs]

    def __repr__(self) -> str:
        ins = ", ".join(map(str, self.inputs))
        outs = ", ".join(map(str, self.outputs))
        return (f"CompiledModule({self.path!r}, device={self.device!r}, inputs=[{ins}], "
                f"outputs=[{outs}])")  # fmt: skip

    @property
    def num_threads(self) -> int:
        return self._module.num_threads

    def set_num_threads(self, n: int) -> None:
        """Threads each kernel may use (default: the machine's hardware concurrency)."""
        if isinstance(n, bool) or not isinstance(n, int):
            raise ModuleError(f"num_threads must be an int, got {type(n).__name__}")
        self._module.num_threads = n

    @property
    def arena_size(self) -> int:
        """Bytes of the activation arena (peak activation memory)."""
        return self._module.arena_size

    @property
    def steps(self) -> list[tuple[str, str]]:
        """(kernel name, node) per step, in run order."""
        return [tuple(s) for s in self._module.steps]

    def tactics(self) -> list[StepTactics]:
        """Each step with alternative launches (``optimize --target cuda --tune``): the
        candidates, their times and the one chosen at load; empty for other modules."""
        steps = self.steps
        return [
            StepTactics(
                i, steps[i][0], steps[i][1], tuple(names), chosen, tuple(seconds), source, key
            )
            for i, names, chosen, seconds, source, key in self._module.tactics
        ]

    @property
    def device(self) -> str:
        """Where the module runs: ``"cpu"`` or ``"cuda"`` (the target loading picked)."""
        return self._module.device

    @property
    def targets(self) -> tuple[str, ...]:
        """The targets the module directory carries (``("cpu", "cuda")`` for ``--target
        cpu,cuda``)."""
        return tuple(self._module.targets.split(","))

    @property
    def target_note(self) -> str:
        """Why loading skipped a target, e.g. ``"cuda skipped: NVIDIA driver not found
        (libcuda.so.1)"``; ``""`` when nothing was skipped."""
        return self._module.target_note

    def _device_input(
        self, info: TensorInfo, value: Any, what: str = "input", stream: int | None = None
    ) -> Any | None:
        """A DLPack capsule for an input (or output) on a CUDA device, else None (host).
        ``stream``: the caller's stream the run is enqueued on (no synchronization asked of
        the producer: the caller orders its tensors on that stream)."""
        device_of = getattr(value, "__dlpack_device__", None)
        if device_of is None or isinstance(value, np.ndarray):
            return None
        device_type, _device_id = device_of()
        if int(device_type) not in _DLPACK_CUDA:
            return None
        if self.device != "cuda":
            raise ModuleError(
                f"{what} {info.name!r} is on a CUDA device but the module targets cpu "
                "(pass a NumPy array)"
            )
        if stream is not None:
            return value.__dlpack__(stream=-1)  # DLPack: -1 asks for no synchronization
        # The producer makes our stream wait for its pending work on the tensor (DLPack's
        # stream contract), so no device-wide synchronization is needed.
        return value.__dlpack__(stream=self._module.cuda_stream or None)

    def _prepare(
        self, feeds: Mapping[str, np.ndarray], stream: int | None = None
    ) -> tuple[list, list]:
        if not isinstance(feeds, Mapping):
            raise ModuleError(f"feeds must be a dict of name -> array, got {type(feeds).__name__}")
        expected = {info.name for info in self.inputs}
        unknown = sorted(set(feeds) - expected)
        if unknown:
            raise ModuleError(
                f"unknown input {unknown[0]!r}; the module's inputs are "
                + ", ".join(map(str, self.inputs))
            )
        arrays = []
        for info in self.inputs:
            if info.name not in feeds:
                raise ModuleError(f"missing input {info.name!r} ({info.dtype}{list(info.shape)})")
            capsule = self._device_input(info, feeds[info.name], stream=stream)
            if capsule is not None:  # checked (dtype, shape, layout) by the runtime
                arrays.append(capsule)
                continue
            array = np.asarray(feeds[info.name])
            want = numpy_dtype(info.dtype)
            if array.dtype != want:
                raise ModuleError(
                    f"input {info.name!r}: dtype {array.dtype} != {info.dtype} "
                    f"(convert with .astype(np.{want.name}))"
                )
            if tuple(array.shape) != info.shape:
                raise ModuleError(
                    f"input {info.name!r}: shape {list(array.shape)} != {list(info.shape)}"
                )
            arrays.append(np.require(array, requirements="C"))  # ascontiguousarray: 0-d -> 1-d
        outputs = [np.empty(info.shape, dtype=numpy_dtype(info.dtype)) for info in self.outputs]
        return arrays, outputs

    def run(
        self,
        feeds: Mapping[str, Any],
        *,
        device_outputs: bool = False,
        out: Mapping[str, Any] | None = None,
        stream: Any = None,
    ) -> dict[str, Any]:
        """Runs the module once; returns ``{output name: array}`` in signature order.

        Inputs are NumPy arrays or, for a module that targets cuda, tensors on the CUDA device
        that expose ``__dlpack__`` (torch.cuda, CuPy): those are copied device-to-device into
        the module's input buffers, with no host round trip.

        Args:
            feeds: ``{input name: array or CUDA tensor}``.
            device_outputs: cuda modules: return each output as a ``DeviceTensor`` on the
                device (``torch.from_dlpack(out)`` / ``cupy.from_dlpack(out)`` view it without a
                copy; it owns its memory) instead of a NumPy array.
            out: ``{output name: buffer}`` to write outputs into instead of allocating: NumPy
                arrays (C-contiguous, writeable, the output's dtype and shape) or, for a cuda
                module, CUDA tensors with ``__dlpack__`` (e.g. ``torch.empty(..., device="cuda")``)
                or ``DeviceTensor``s of an earlier run: no allocation per run. Returned as given.
            stream: cuda modules: a CUDA stream to enqueue the run on, as TensorRT's
                ``enqueue`` does: ``torch.cuda.Stream`` / ``torch.cuda.current_stream()``, a CuPy
                stream, or a raw ``cudaStream_t`` handle (int; 0 is the legacy default stream).
                The caller's CUDA tensors are taken as ready in that stream's order (no
                DLPack synchronization, which costs ~18 us per tensor in torch), and when every
                input and output is on the device the call returns without waiting: the
                outputs are ready in the stream's order, like any kernel's output. Without it
                the module runs on its own stream and returns when the outputs are written.
        """
        handle = self._stream_handle(stream)
        inputs, outputs = self._prepare(feeds, handle)
        if device_outputs:
            if self.device != "cuda":
                raise ModuleError("device_outputs=True needs a module that targets cuda")
            outputs = [self._module.device_output(i) for i in range(len(self.outputs))]
        given = list(outputs)
        if out is not None:
            given, outputs = self._given_outputs(out, outputs, handle)
        if handle is not None:
            self._module.run_any(inputs, outputs, False, handle)
        elif any(not isinstance(x, np.ndarray) for x in [*inputs, *outputs]):
            self._module.run_any(inputs, outputs, False)
        else:
            self._module.run(inputs, outputs, False)
        return {info.name: array for info, array in zip(self.outputs, given)}

    def _stream_handle(self, stream: Any) -> int | None:
        """The CUstream handle of ``run``'s ``stream`` argument (None: the module's own)."""
        if stream is None:
            return None
        if self.device != "cuda":
            raise ModuleError("stream= needs a module that targets cuda")
        handle = getattr(stream, "cuda_stream", None)  # torch.cuda.Stream
        if handle is None:
            handle = getattr(stream, "ptr", stream)  # cupy.cuda.Stream, or a raw handle
        if isinstance(handle, bool) or not isinstance(handle, int) or handle < 0:
            raise ModuleError(
                f"stream: expected a CUDA stream (torch / CuPy) or a non-negative handle, got "
                f"{type(stream).__name__}"
            )
        # 0 is the legacy default stream's handle; the runtime reads 0 as "the module's own",
        # so it is passed as CU_STREAM_LEGACY (0x1), the driver's name for the same stream.
        return handle or 1

    def _given_outputs(
        self, out: Mapping[str, Any], outputs: list, stream: int | None = None
    ) -> tuple[list, list]:
        """(what run returns, what the runtime writes) with the caller's ``out`` buffers."""
        if not isinstance(out, Mapping):
            raise ModuleError(f"out must be a dict of name -> buffer, got {type(out).__name__}")
        names = {info.name for info in self.outputs}
        unknown = sorted(set(out) - names)
        if unknown:
            raise ModuleError(
                f"out: unknown output {unknown[0]!r}; the module's outputs are "
                + ", ".join(map(str, self.outputs))
            )
        given, written = list(outputs), list(outputs)
        for i, info in enumerate(self.outputs):
            if info.name not in out:
                continue
            value = out[info.name]
            given[i] = value
            if type(value).__name__ == "DeviceTensor":
                written[i] = value
                continue
            capsule = self._device_input(info, value, "output", stream)
            if capsule is not None:  # dtype, shape and layout are checked by the runtime
                written[i] = capsule
                continue
            if not isinstance(value, np.ndarray):
                raise ModuleError(
                    f"out {info.name!r}: expected a NumPy array or a CUDA tensor, got "
                    f"{type(value).__name__}"
                )
            want = numpy_dtype(info.dtype)
            if value.dtype != want or tuple(value.shape) != info.shape:
                raise ModuleError(
                    f"out {info.name!r}: {value.dtype}{list(value.shape)} != "
                    f"{info.dtype}{list(info.shape)}"
                )
            if not (value.flags.c_contiguous and value.flags.writeable):
                raise ModuleError(f"out {info.name!r}: must be C-contiguous and writeable")
            written[i] = value
        return given, written

    __call__ = run

    def profile(self, feeds: Mapping[str, np.ndarray], iterations: int = 1) -> list[StepTime]:
        """Runs ``iterations`` times and returns each step's median time: wall time on the CPU,
        device time between CUDA events for a cuda module (launched one by one, no graph)."""
        if iterations < 1:
            raise ModuleError(f"iterations must be >= 1, got {iterations}")
        inputs, outputs = self._prepare(feeds)
        run = self._module.run
        if any(not isinstance(x, np.ndarray) for x in inputs):
            run = self._module.run_any
        runs = [run(inputs, outputs, True) for _ in range(iterations)]
        return [
            StepTime(i, kernel, node, statistics.median(run[i] for run in runs))
            for i, (kernel, node) in enumerate(self.steps)
        ]


#: DLPack device types of CUDA memory (kDLCUDA, kDLCUDAHost is host memory: not here,
#: kDLCUDAManaged).
_DLPACK_CUDA = (2, 13)


def load(
    path: str | os.PathLike,
    *,
    verify_checksums: bool = True,
    cuda_graphs: bool = True,
    target: str = "auto",
    tune: bool = False,
) -> CompiledModule:
    """Loads a compiled module directory (docs/module-format.md) into the C++ runtime.

    Args:
        path: the module directory.
        verify_checksums: check every file's SHA-256 against the manifest (sizes are always
            checked); turn off only for trusted modules when load time matters.
        cuda_graphs: cuda modules: capture the plan into a CUDA graph on the first run and
            replay it after (the default); False launches every step on each run, for
            debugging (as does the environment variable ``ODC_CUDA_GRAPHS=0``).
        target: which plan of a module compiled for several targets (``--target cpu,cuda``)
            to run: ``"auto"`` (cuda when the NVIDIA driver is found and GPU 0 can run the
            module's cubins, else cpu; ``target_note`` says why cuda was skipped), ``"cpu"`` or
            ``"cuda"`` (forcing cuda without a driver fails). A single-target module loads as
            it is; forcing another target fails.
        tune: cuda modules compiled with ``--tune``: time each step's alternative launches on
            the GPU now (before the first run), keep the fastest and cache the choice in
            ``$ODC_CACHE_DIR/cuda_tactics.json`` (as does ``ODC_CUDA_TUNE=1``); without it,
            cached choices are reused, else each step's default launch runs. See
            :meth:`CompiledModule.tactics`.

    Raises:
        ModuleError: the module is missing, damaged, of another format version, or needs a
            kernel this runtime cannot provide; the message names what and where.
    """
    return CompiledModule(
        path, verify_checksums=verify_checksums, cuda_graphs=cuda_graphs, target=target,
        tune=tune,
    )
