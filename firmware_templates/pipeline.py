"""Model → C code → firmware image → (QEMU run), with every number checked against another.

``make_firmware`` is the API behind ``tinymcu firmware``: it generates the C runtime code
for a .tflite (``mcu_runtime.codegen``), builds the board project, and checks that the
arena the linker placed (the arena array's input section in the map) is exactly the
planner's arena. With ``run`` it executes the image on QEMU and compares the output
tensor with our emulator running the same graph and plan, bit for bit.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinymcu.errors import TinymcuError, VerificationError
from tinymcu.firmware_templates.build import FirmwareResult, build_firmware
from tinymcu.firmware_templates.qemu import QemuRun, parse_run, run_qemu
from tinymcu.firmware_templates.targets import TARGETS, get_target
from tinymcu.mcu_runtime.ir import Graph
from tinymcu.mcu_runtime.passes import FUSED_KIND


@dataclass
class FirmwareReport:
    """One model built (and run) for one board: the planner's numbers next to the map's,
    and QEMU's output next to the emulator's (``firmware.json`` is ``to_dict()``)."""

    model: Path
    schedule: str
    planner_arena_bytes: int
    firmware: FirmwareResult
    #: the model input embedded in the image, in the model's shape
    input: np.ndarray
    #: bytes of constant arrays the code generator says it emitted
    codegen_const_bytes: int
    #: fused 1x1-expand + depthwise pairs (EXPAND_DEPTHWISE ops) in the generated code
    fused_ops: int = 0
    qemu: QemuRun | None = None
    #: the kernels' scratch trade-off the code was generated for ("speed" | "memory")
    optimize: str = "speed"
    expected: np.ndarray | None = None
    #: the input is streamed (``--stream``): never resident in the arena
    streamed: bool = False

    def verify(self) -> None:
        """Raise :class:`VerificationError` if the firmware disagrees with the host: arena
        sizes (map vs model.h vs planner), the run's status, or its output bytes."""
        fw = self.firmware
        if not fw.arena_symbol_bytes == fw.header.arena_bytes == self.planner_arena_bytes:
            raise VerificationError(
                f"arena sizes disagree: map {fw.arena_symbol} {fw.arena_symbol_bytes:,} B, "
                f"model.h {fw.header.arena_bytes:,} B, planner {self.planner_arena_bytes:,} B")
        if self.qemu is not None and self.qemu.status != 0:
            raise VerificationError(f"tinymcu_run() returned {self.qemu.status} on {fw.board}")
        if self.bit_exact is False and self.qemu is not None:
            diff = int(np.count_nonzero(self.qemu.output != self._expected_bytes()))
            raise VerificationError(f"{fw.board} output differs from the emulator in {diff} "
                                    f"of {self.qemu.output.size} bytes")

    @property
    def bit_exact(self) -> bool | None:
        if self.qemu is None or self.expected is None:
            return None
        return bool(np.array_equal(self.qemu.output, self._expected_bytes()))

    def _expected_bytes(self) -> np.ndarray:
        """The emulator's output as the bytes the firmware prints (any tensor dtype)."""
        assert self.expected is not None
        return np.ascontiguousarray(self.expected).reshape(-1).view(np.int8)

    def to_dict(self) -> dict[str, object]:
        fw = self.firmware
        d: dict[str, object] = {
            "model": str(self.model), "board": fw.board, "schedule": self.schedule,
            "optimize": self.optimize,
            "fused_ops": self.fused_ops, "streamed_input": self.streamed,
            "planner_arena_bytes": self.planner_arena_bytes,
            "map_arena_symbol": fw.arena_symbol, "map_arena_bytes": fw.arena_symbol_bytes,
            "flash_bytes": fw.flash_bytes, "flash_budget_bytes": fw.target.flash_bytes,
            "sram_bytes": fw.sram_bytes, "sram_budget_bytes": fw.target.ram_bytes,
            "stack_reserved_bytes": fw.stack_bytes, "stack_bound_bytes": fw.stack_bound,
            "text_bytes": fw.text_bytes,
            "rodata_bytes": fw.rodata_bytes, "data_bytes": fw.data_bytes,
            "bss_bytes": fw.bss_bytes, "codegen_const_bytes": self.codegen_const_bytes,
            "map_model_rodata_bytes": fw.model_rodata_bytes,
        }
        if self.expected is not None:
            d["expected_output"] = [int(v) for v in self._expected_bytes()]
        if self.qemu is not None:
            d.update({"qemu_machine": self.qemu.machine, "systick_ticks": self.qemu.ticks,
                      "instructions": self.qemu.instructions,
                      "stack_used_bytes": self.qemu.stack_used,
                      "output": [int(v) for v in self.qemu.output],
                      "bit_exact": self.bit_exact})
        return d


def _model_input(graph: Graph, data: np.ndarray | None) -> np.ndarray:
    from tinymcu.mcu_runtime.execute import validate_inputs

    if len(graph.inputs) != 1:
        raise TinymcuError(f"firmware embeds one test input; the model has "
                           f"{len(graph.inputs)} inputs")
    t = graph.tensors[graph.inputs[0]]
    if data is None:
        rng = np.random.default_rng(0)
        data = rng.integers(-128, 128, t.shape, dtype=np.int64).astype(t.dtype)
    return validate_inputs([(t.shape, t.dtype)], [data])[0]


def make_firmware(model: Path, board: str, out_dir: Path, schedule: str = "layer",
                  fuse: bool = False, sparse: bool = False, data: np.ndarray | None = None,
                  sram_bytes: int | None = None, run: bool = False,
                  timeout: float = 120.0, stream: bool = False,
                  optimize: str | None = None) -> FirmwareReport:
    """Generate, build and (with ``run``) execute ``model`` for ``board`` into ``out_dir``.

    ``sparse`` stores the filters as bitmask + non-zero values (``codegen --sparse``);
    ``stream`` streams the input (``codegen --stream``): ``main.c`` hands the model the
    rows of the test input, a const array in flash, through its read function;
    ``optimize`` as ``codegen_model``'s (default: speed when it fits the board).
    Raises :class:`OverBudget` when it does not link within the board's memory. The
    comparisons (map arena vs planner, QEMU vs emulator) are in the report;
    :meth:`FirmwareReport.verify` turns a disagreement into :class:`VerificationError`.
    """
    model = Path(model)
    target = get_target(board, sram_bytes)
    if run and not target.runnable:
        runnable = ", ".join(t.board for t in TARGETS.values() if t.runnable)
        raise TinymcuError(f"--run needs a board QEMU emulates ({runnable}); "
                           f"{board} is build-only")
    from tinymcu.mcu_runtime.codegen import codegen_model
    from tinymcu.mcu_runtime.emulator import emulate

    with tempfile.TemporaryDirectory(prefix="tinymcu-codegen-") as tmp:
        model_dir = Path(tmp) / model.stem
        cg = codegen_model(model, model_dir, schedule=schedule, fuse=fuse,
                           sram_bytes=target.ram_bytes, sparse=sparse, stream=stream,
                           optimize=optimize)
        x = _model_input(cg.graph, data)
        fw = build_firmware(model_dir, board, out_dir, x, sram_bytes)
    report = FirmwareReport(model, cg.plan.schedule.kind, cg.plan.arena_bytes, fw, x,
                            cg.const_bytes, sum(op.kind == FUSED_KIND for op in cg.graph.ops),
                            streamed=stream, optimize=cg.optimize)
    # the emulator's output for the embedded input: what QEMU, or a real board read over
    # its console (`tinymcu flash --monitor`), must print: every output's bytes, in order
    outs = emulate(cg.graph, cg.plan, [x]).outputs
    report.expected = outs[0] if len(outs) == 1 else np.concatenate(
        [np.ascontiguousarray(o).reshape(-1).view(np.int8) for o in outs])
    if run and target.qemu_machine is not None:
        text = run_qemu(fw.elf, timeout=timeout, machine=target.qemu_machine,
                        serial=target.qemu_serial)
        report.qemu = parse_run(text, target.qemu_machine)
    return report
