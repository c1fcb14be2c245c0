"""On-target validation: N real inputs through the firmware, every output compared.

The counterpart of ST's ``validate`` for tinymcu. Two transports:

- ``semihosting`` (QEMU boards, the default there): the model is built once
  (``validate.c.j2``); the image reads each input from the host over semihosting file I/O
  and appends each output to a file, so one image serves any N and the flash holds only
  the model.
- ``console`` (any board; the default on real ones, whose console only prints): the
  inputs are compiled into the image in batches as large as the flash left beside the
  model holds (``validate_batch.c.j2``); each batch image is flashed (or run on QEMU) and
  prints every output on the board's console, read back over its serial port.

 The run's outputs are compared byte for byte with our emulator (same graph and plan)
and with the TFLM interpreter, and optionally their top-1 class with a float model's and
with labels. Ticks are SysTick counts per inference, measured on the target.

Inputs (``load_samples``): ``digits`` (scikit-learn's 8x8 digits, as ``tinymcu prune``
uses them), or a ``.npz``/``.npy`` whose array holds N inputs in the model's shape (an
``x`` array, else the first one; labels from ``y`` or ``labels``). int8 data is used as
is, float data is quantized with the model's input scale and zero point.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from tinymcu.errors import TinymcuError, VerificationError
from tinymcu.firmware_templates.build import FirmwareResult, build_firmware
from tinymcu.firmware_templates.qemu import NS_PER_TICK, parse_run, run_qemu
from tinymcu.firmware_templates.serial_console import BAUD
from tinymcu.firmware_templates.targets import TARGETS, Target, get_target
from tinymcu.mcu_runtime.ir import Graph
from tinymcu.outputs import atomic_dir

_LABEL_KEYS = ("y", "labels", "label")
QEMU_MACHINES = {t.qemu_machine for t in TARGETS.values() if t.runnable}
TRANSPORTS = ("semihosting", "console")
#: flash bytes left free beside a batch (alignment, the batch array's own padding)
BATCH_MARGIN = 1024


@dataclass
class Samples:
    """The int8 inputs the target runs, their float values (for a float model) and labels."""

    x: np.ndarray
    x_float: np.ndarray
    labels: np.ndarray | None
    source: str


@dataclass
class ValidateReport:
    model: Path
    board: str
    schedule: str
    source: str
    firmware: FirmwareResult
    #: target outputs, one row per sample (int8; several outputs concatenated in order)
    outputs: np.ndarray
    emulator: np.ndarray
    tflm: np.ndarray
    ticks: list[int]
    stack_used: int
    machine: str
    transport: str = "semihosting"
    float_model: Path | None = None
    float_top1: np.ndarray | None = None
    labels: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    #: bytes of each output in a row (one entry: a single output)
    output_sizes: tuple[int, ...] = ()

    @property
    def samples(self) -> int:
        return int(self.outputs.shape[0])

    def _top1(self, rows: np.ndarray) -> np.ndarray:
        """Top-1 class of each row, read from the first output (a classifier's scores)."""
        first = self.output_sizes[0] if self.output_sizes else rows.shape[1]
        return np.argmax(rows[:, :first], axis=1)

    def _agree(self, other: np.ndarray) -> int:
        return int(np.sum(np.all(self.outputs == other, axis=1)))

    def _max_delta(self, other: np.ndarray) -> int:
        return int(np.max(np.abs(self.outputs.astype(np.int16) - other.astype(np.int16))))

    def to_dict(self) -> dict[str, object]:
        n = self.samples
        top1 = self._top1(self.outputs)
        fw = self.firmware
        d: dict[str, object] = {
            "model": str(self.model), "board": self.board, "qemu_machine": self.machine,
            "schedule": self.schedule, "data": self.source, "samples": n,
            "transport": self.transport,
            "emulator_agreement": self._agree(self.emulator) / n,
            "emulator_max_abs_diff": self._max_delta(self.emulator),
            "tflm_agreement": self._agree(self.tflm) / n,
            "tflm_max_abs_diff": self._max_delta(self.tflm),
            "outputs": len(self.output_sizes) or 1,
            "top1_agreement_tflm": float(np.mean(top1 == self._top1(self.tflm))),
            "ticks_per_inference_mean": float(np.mean(self.ticks)),
            "ticks_per_inference_min": int(min(self.ticks)),
            "ticks_per_inference_max": int(max(self.ticks)),
            "stack_used_bytes": self.stack_used, "stack_reserved_bytes": fw.stack_bytes,
            "arena_bytes": fw.arena_symbol_bytes, "sram_bytes": fw.sram_bytes,
            "flash_bytes": fw.flash_bytes,
        }
        ns = NS_PER_TICK.get(self.machine)
        if ns is not None:
            d["instructions_per_inference_mean"] = float(np.mean(self.ticks)) * ns
        if self.float_top1 is not None:
            d["float_model"] = str(self.float_model)
            d["top1_agreement_float"] = float(np.mean(top1 == self.float_top1))
        if self.labels is not None:
            d["top1_accuracy_labels"] = float(np.mean(top1 == self.labels))
        return d

    def markdown(self) -> str:
        d = self.to_dict()

        def pct(key: str) -> str:
            value = d[key]
            assert isinstance(value, float)
            return f"{100 * value:.1f} %"

        rows = [("samples", f"{d['samples']} ({d['data']})"),
                ("bit-exact vs emulator", f"{pct('emulator_agreement')} "
                                          f"(max abs diff {d['emulator_max_abs_diff']})"),
                ("bit-exact vs TFLM", f"{pct('tflm_agreement')} "
                                      f"(max abs diff {d['tflm_max_abs_diff']})"),
                ("top-1 vs TFLM" + (" (output 0)" if d["outputs"] != 1 else ""),
                 pct("top1_agreement_tflm"))]
        if "top1_agreement_float" in d:
            rows.append(("top-1 vs float model", pct("top1_agreement_float")))
        if "top1_accuracy_labels" in d:
            rows.append(("top-1 accuracy (labels)", pct("top1_accuracy_labels")))
        rows += [("SysTick ticks / inference",
                  f"{d['ticks_per_inference_mean']:,.0f} (min {d['ticks_per_inference_min']:,},"
                  f" max {d['ticks_per_inference_max']:,})"),
                 ("stack used / reserved", f"{d['stack_used_bytes']:,} / "
                                           f"{d['stack_reserved_bytes']:,} B"),
                 ("arena / SRAM / flash", f"{d['arena_bytes']:,} / {d['sram_bytes']:,} / "
                                          f"{d['flash_bytes']:,} B")]
        where = (f"QEMU `{self.machine}` (-icount shift=0: ticks count executed "
                 f"instructions, not a real chip's cycles)"
                 if self.machine in QEMU_MACHINES else "the board (SysTick at its reset clock)")
        lines = [f"# tinymcu validate: {self.model.name} on {self.board}", "",
                 f"{self.schedule} schedule, {self.transport} transport, on {where}.", "",
                 "| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows), ""]
        return "\n".join(lines + [f"- {n}" for n in self.notes])

    def verify(self) -> None:
        """Any output that differs from the emulator or TFLM is a failure (exit 3)."""
        for name, ref in (("emulator", self.emulator), ("TFLM", self.tflm)):
            bad = self.samples - self._agree(ref)
            if bad:
                raise VerificationError(f"{self.board}: {bad} of {self.samples} outputs differ "
                                        f"from {name} (max abs diff {self._max_delta(ref)})")


def _input_tensor(graph: Graph) -> tuple[tuple[int, ...], float, int]:
    if len(graph.inputs) != 1:
        raise TinymcuError(f"validate feeds one input tensor; the model has "
                           f"{len(graph.inputs)}")
    t = graph.tensors[graph.inputs[0]]
    if t.dtype != "int8" or t.quant is None:
        raise TinymcuError(f"validate needs an int8 input; the model's is {t.dtype}")
    return tuple(t.shape), float(t.quant.scale[0]), int(t.quant.zero_point[0])


def _read_arrays(source: str) -> tuple[np.ndarray, np.ndarray | None]:
    if source == "digits":
        from tinymcu.prune.data import load

        ds = load("digits")
        return ds.x, ds.y
    path = Path(source)
    if not path.is_file():
        raise TinymcuError(f"--data {source}: no such file (give 'digits', a .npz or a .npy)")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise TinymcuError(f"--data {source}: not a .npy/.npz file ({e})") from None
    if isinstance(data, np.ndarray):
        return data, None
    keys = list(data.files)
    xkey = "x" if "x" in keys else next((k for k in keys if k not in _LABEL_KEYS), None)
    if xkey is None:
        raise TinymcuError(f"--data {source}: no input array (keys: {', '.join(keys)})")
    ykey = next((k for k in _LABEL_KEYS if k in keys), None)
    return data[xkey], (data[ykey] if ykey else None)


def load_samples(source: str, graph: Graph, samples: int | None) -> Samples:
    """The first ``samples`` inputs of ``source`` in the model's shape (see the module doc)."""
    shape, scale, zero = _input_tensor(graph)
    x, labels = _read_arrays(source)
    per = shape[1:] if shape[0] == 1 else shape
    if x.ndim == len(shape) + 1 and x.shape[1] == 1:
        x = x[:, 0]  # (N, 1, ...) : one batch-1 input per sample
    if x.shape[1:] != per and x.ndim == 4 and len(per) == 3 \
            and x.shape[1:] == (per[2], per[0], per[1]):
        x = x.transpose(0, 2, 3, 1)  # NCHW data (digits, PyTorch) for an NHWC model
    if x.shape[1:] != per:
        raise TinymcuError(f"--data {source}: samples of shape {list(x.shape[1:])}, the model "
                           f"wants {list(per)}")
    if x.shape[0] == 0:
        raise TinymcuError(f"--data {source}: no samples")
    n = x.shape[0] if samples is None else samples
    if not 0 < n <= x.shape[0]:
        raise TinymcuError(f"--samples {n}: {source} has {x.shape[0]} samples")
    x = x[:n]
    if x.dtype == np.int8:
        q = x
        xf = (x.astype(np.float32) - zero) * scale
    elif np.issubdtype(x.dtype, np.floating):
        xf = x.astype(np.float32)
        q = np.clip(np.round(xf / scale) + zero, -128, 127).astype(np.int8)
    else:
        raise TinymcuError(f"--data {source}: dtype {x.dtype}; give int8 (quantized) or float "
                           f"inputs")
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)[:n].astype(np.int64)
        if labels.size != n:
            raise TinymcuError(f"--data {source}: {labels.size} labels for {n} samples")
    full = (n, *shape) if shape[0] == 1 else (n, *shape[1:])
    return Samples(np.ascontiguousarray(q.reshape(full)), xf.reshape(full), labels, source)


def _parse(text: str, n: int) -> tuple[list[int], int]:
    status: list[int] = []
    ticks: list[int] = []
    values: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.strip().split(" ")
        if len(parts) != 2 or not parts[0].startswith("TINYMCU_") or not parts[1].isdigit():
            continue
        key, value = parts[0], int(parts[1])
        if key == "TINYMCU_STATUS":
            status.append(value)
        elif key == "TINYMCU_TICKS":
            ticks.append(value)
        values[key] = value
    if "TINYMCU_IO_ERROR" in values:
        raise TinymcuError(f"validation firmware: semihosting file I/O failed (step "
                           f"{values['TINYMCU_IO_ERROR']})")
    if "TINYMCU_END" not in values or len(status) != n or len(ticks) != n:
        raise TinymcuError(f"validation firmware output incomplete ({len(status)} of {n} "
                           f"samples reported)")
    if any(status):
        i = next(i for i, s in enumerate(status) if s)
        raise TinymcuError(f"tinymcu_run() returned {status[i]} on sample {i}")
    return ticks, values["TINYMCU_STACK"]


def _tflm_arena(model: Path, arena_bytes: int) -> int:
    """An interpreter arena that holds the activations (the wrapper's default of 10 x the
    file size does not for activation-heavy models) and its persistent buffers."""
    return max(10 * model.stat().st_size, 2 * arena_bytes + 64 * 1024)


@dataclass
class Console:
    """How the console transport reaches a board: its serial port and how to flash it."""

    port: str | None = None
    probe: str | None = None
    bootloader_port: str | None = None
    probe_id: str | None = None
    baud: int = BAUD


def parse_batch(text: str, n: int, out_bytes: int) -> tuple[np.ndarray, list[int], int]:
    """Outputs, ticks and stack of a batch image's report (``validate_batch.c.j2``)."""
    blocks = text.split("TINYMCU_STATUS ")[1:]
    if len(blocks) != n or "TINYMCU_END" not in text:
        raise TinymcuError(f"validation firmware output incomplete ({len(blocks)} of {n} "
                           f"samples reported)")
    outputs, ticks = [], []
    for i, block in enumerate(blocks):
        tail = "TINYMCU_STACK 0\nTINYMCU_END 0\n" if i < n - 1 else ""
        run = parse_run("TINYMCU_STATUS " + block + tail)
        if run.status != 0:
            raise TinymcuError(f"tinymcu_run() returned {run.status} on sample {i}")
        if run.output.size != out_bytes:
            raise TinymcuError(f"sample {i}: {run.output.size} output bytes, expected "
                               f"{out_bytes}")
        outputs.append(run.output)
        ticks.append(run.ticks)
    return np.stack(outputs), ticks, parse_run("TINYMCU_STATUS " + blocks[-1]).stack_used


def _run_console(model_dir: Path, target: Target, x: np.ndarray, out: Path,
                 console: Console, batch_size: int | None, timeout: float
                 ) -> tuple[FirmwareResult, np.ndarray, list[int], int]:
    """Batch images with the inputs compiled in, each run and read over the console."""
    from tinymcu.firmware_templates.flash import flash_and_read

    n = x.shape[0]
    rows = x.reshape(n, -1)
    if batch_size is None:  # as many inputs as the flash left beside the model holds
        base = build_firmware(model_dir, target.board, out / "batch-size", batch=rows[:1])
        free = target.flash_bytes - base.flash_bytes - BATCH_MARGIN
        batch_size = max(1, min(n, 1 + free // rows.shape[1]))
    outputs, ticks, stack, first = [], [], 0, None
    for k, start in enumerate(range(0, n, batch_size)):
        fw = build_firmware(model_dir, target.board, out / f"batch-{k}",
                            batch=rows[start:start + batch_size])
        m = min(batch_size, n - start)
        if target.runnable:
            text = run_qemu(fw.elf, timeout=timeout, machine=target.qemu_machine or "",
                            serial=target.qemu_serial)
        else:
            if console.port is None:
                raise TinymcuError(f"validate on {target.board} reads the board's console: "
                                   f"give --port (its serial port, e.g. /dev/ttyACM0)")
            _, text = flash_and_read(fw.elf, target.board, console.port, console.probe,
                                     console.bootloader_port, console.probe_id,
                                     console.baud, timeout)
        o, t, s = parse_batch(text, m, fw.header.output_bytes)
        outputs.append(o)
        ticks += t
        stack = max(stack, s)
        first = first or fw
    assert first is not None
    return first, np.concatenate(outputs), ticks, stack


def validate_model(model: Path, board: str, data: str, out_dir: Path,
                   samples: int | None = None, schedule: str = "layer", fuse: bool = False,
                   float_model: Path | None = None, timeout: float | None = None,
                   transport: str | None = None, console: Console | None = None,
                   batch_size: int | None = None) -> ValidateReport:
    """Build ``model`` for ``board``, run the samples on it, compare, and write the report
    (``validate.json``, ``validate.md``, ``outputs.npy``, the firmware) into ``out_dir``.

    ``transport``: ``semihosting`` (QEMU boards; default there) or ``console`` (default on
    real boards, which need ``console.port``); ``batch_size`` overrides the console
    transport's inputs per image."""
    from tinymcu.mcu_runtime.codegen import codegen_model
    from tinymcu.mcu_runtime.emulator import emulate
    from tinymcu.mcu_runtime.oracle import ref_invoke_batch, tflm_invoke_batch

    model = Path(model)
    target = get_target(board)
    transport = transport or ("semihosting" if target.runnable else "console")
    if transport not in TRANSPORTS:
        raise TinymcuError(f"unknown transport {transport!r}; choose from {', '.join(TRANSPORTS)}")
    if transport == "semihosting" and not target.runnable:
        raise TinymcuError(f"semihosting file I/O runs on the QEMU boards; {board} is a real "
                           f"board: use the console transport (--port)")
    if transport == "console" and not target.runnable and (console is None or
                                                           console.port is None):
        raise TinymcuError(f"validate on {board} reads the board's console: give --port (its "
                           f"serial port, e.g. /dev/ttyACM0)")
    if batch_size is not None and batch_size < 1:
        raise TinymcuError(f"--batch {batch_size}: must be at least 1")
    if float_model is not None and not Path(float_model).is_file():
        raise TinymcuError(f"--float-model {float_model}: no such file")
    with tempfile.TemporaryDirectory(prefix="tinymcu-validate-") as tmp, \
            atomic_dir(Path(out_dir)) as out:
        model_dir = Path(tmp) / model.stem
        cg = codegen_model(model, model_dir, schedule=schedule, fuse=fuse,
                           sram_bytes=target.ram_bytes)
        s = load_samples(data, cg.graph, samples)
        n = s.x.shape[0]
        if transport == "console":
            fw, outputs, ticks, stack = _run_console(
                model_dir, target, s.x, Path(tmp), console or Console(), batch_size,
                timeout or 60.0 + 20.0 * n)
            shutil.copytree(fw.out_dir, out / "firmware")
        else:
            fw = build_firmware(model_dir, board, out / "firmware", samples=n)
            outputs, ticks, stack = _run_file_io(fw, target, s.x, out / "run",
                                                 timeout or 60.0 + 20.0 * n)
        emu = np.stack([_row(emulate(cg.graph, cg.plan, [x]).outputs) for x in s.x])
        tflm = np.stack([_row(o) for o in tflm_invoke_batch(
            model, [[x] for x in s.x], arena_size=_tflm_arena(model, cg.plan.arena_bytes))])
        report = ValidateReport(model, board, cg.plan.schedule.kind, s.source, fw, outputs,
                                emu, tflm, ticks, stack, target.qemu_machine or board,
                                transport=transport, labels=s.labels,
                                output_sizes=fw.header.outputs)
        if float_model is not None:
            ref = ref_invoke_batch(float_model, [[x.astype(np.float32)] for x in s.x_float])
            report.float_model = Path(float_model)
            report.float_top1 = np.array([int(np.argmax(o[0])) for o in ref])
        np.save(out / "outputs.npy", outputs)
        (out / "validate.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
        (out / "validate.md").write_text(report.markdown())
    final = Path(out_dir) / "firmware"
    report.firmware = replace(fw, out_dir=final, elf=final / "app.elf",
                              map_path=final / "app.map")
    return report


def _row(outputs: list[np.ndarray]) -> np.ndarray:
    """A sample's outputs as the firmware reports them: every output's bytes, in order."""
    return np.concatenate([np.asarray(o).reshape(-1) for o in outputs])


def _run_file_io(fw: FirmwareResult, target: Target, x: np.ndarray, run: Path,
                 timeout: float) -> tuple[np.ndarray, list[int], int]:
    """One image, the inputs read and the outputs written over semihosting in ``run``."""
    n = x.shape[0]
    run.mkdir()
    (run / "inputs.bin").write_bytes(x.tobytes())
    text = run_qemu(fw.elf, timeout=timeout, machine=target.qemu_machine or "",
                    serial=target.qemu_serial, cwd=run)
    ticks, stack = _parse(text, n)
    raw = (run / "outputs.bin").read_bytes()
    out_bytes = fw.header.output_bytes
    if len(raw) != n * out_bytes:
        raise TinymcuError(f"validation firmware wrote {len(raw)} output bytes, expected "
                           f"{n * out_bytes}")
    return np.frombuffer(raw, np.int8).reshape(n, out_bytes), ticks, stack
