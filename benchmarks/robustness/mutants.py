"""Seeded mutants of real .tflite models and the in-process pipeline run on each.

Shared by ``run.py`` (the robustness benchmark) and ``tests/test_fuzz_pipeline.py``. A
mutant is a real model with a few of the edits that break parsers and what lies past them:
flipped bytes, truncation, splices of another model, aligned 32-bit words overwritten with
boundary integers (flatbuffer offsets, lengths, indices, dims and strides are 32-bit) or
with special float32 values (quantization scales are float32: 0, inf, nan, 3.4e38, 1e-40).

:func:`run_case` pushes one mutant through ``check`` and, when check accepts it (exit 0
for the default board), through ``emulate`` and ``codegen``, and classifies each stage by
the exit code the CLI would give: 0 ok, 1 over budget, 2 bad input, 3 crash (any other
exception, or a VerificationError), or "hang" past the time limit.
"""

from __future__ import annotations

import contextlib
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinymcu.errors import TinymcuError

BOUNDARY_WORDS = [0, 1, 2, 3, 4, 7, 8, 0x7F, 0x80, 0xFF, 0xFFFF, 0x10000, 0x7FFFFFFF,
                  0x80000000, 0xFFFFFFFE, 0xFFFFFFFF]
SPECIAL_FLOATS = [0.0, -0.0, float("inf"), float("nan"), 3.4e38, -1.0, 1e-40, 1e-30, 1e10,
                  1e30, 2.0, 0.5, 1e-6]
KINDS = ("flip", "truncate", "splice", "word", "small", "float")


def mutate(models: list[bytes], rng: np.random.Generator) -> bytes:
    """One mutant: 1-3 seeded edits of a randomly chosen model."""
    data = bytearray(models[int(rng.integers(len(models)))])
    for _ in range(int(rng.integers(1, 4))):
        n = len(data)
        if n < 16:
            break
        kind = KINDS[int(rng.integers(len(KINDS)))]
        if kind == "flip":
            for _ in range(int(rng.integers(1, 17))):
                data[int(rng.integers(n))] = int(rng.integers(256))
        elif kind == "truncate":
            del data[int(rng.integers(n)):]
        elif kind == "splice":
            other = models[int(rng.integers(len(models)))]
            start = int(rng.integers(len(other)))
            chunk = other[start:start + int(rng.integers(1, 4097))]
            at = int(rng.integers(n))
            data[at:at + (len(chunk) if rng.integers(2) else 0)] = chunk
        else:
            for _ in range(int(rng.integers(1, 5))):
                at = int(rng.integers((n - 4) // 4 + 1)) * 4  # flatbuffer fields are aligned
                if kind == "word":
                    word = (BOUNDARY_WORDS[int(rng.integers(len(BOUNDARY_WORDS)))]
                            if rng.integers(2) else int(rng.integers(2**32)))
                    raw = word.to_bytes(4, "little")
                elif kind == "small":
                    raw = int(rng.integers(-1, 9)).to_bytes(4, "little", signed=True)
                else:
                    value = SPECIAL_FLOATS[int(rng.integers(len(SPECIAL_FLOATS)))]
                    raw = np.float32(value).tobytes()
                data[at:at + 4] = raw
    return bytes(data)


class Hang(Exception):
    """Raised by the alarm when a stage runs past its time limit."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`Hang` in the main thread after ``seconds`` (SIGALRM, Unix)."""
    def fire(signum: int, frame: object) -> None:
        raise Hang(f"over {seconds:g} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@dataclass
class Stage:
    """How one stage ended: the CLI exit code it maps to, or "hang"."""

    code: int | str
    message: str = ""
    seconds: float = 0.0


@dataclass
class Case:
    seed: int
    check: Stage
    emulate: Stage | None = None
    codegen: Stage | None = None
    extra: dict = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        return self.check.code == 0

    def failures(self) -> list[str]:
        """Stages that ended other than 0/1/2: a crash (3) or a hang."""
        return [f"{name}: {st.code} {st.message}" for name, st in
                (("check", self.check), ("emulate", self.emulate), ("codegen", self.codegen))
                if st is not None and st.code not in (0, 1, 2)]


def _stage(fn, limit: float) -> tuple[Stage, object]:
    start = time.perf_counter()
    value = None
    try:
        with time_limit(limit):
            value = fn()
        st = Stage(0)
    except Hang as e:
        st = Stage("hang", str(e))
    except TinymcuError as e:
        st = Stage(e.exit_code, str(e))
        if "\n" in str(e) or not str(e):
            st = Stage(3, f"not one line: {str(e)!r}")
    except Exception as e:  # noqa: BLE001 - classifying, not handling: any of these is a bug
        st = Stage(3, f"{type(e).__name__}: {e}")
    st.seconds = time.perf_counter() - start
    return st, value


def run_case(data: bytes, seed: int, workdir: Path, limit: float = 20.0,
             deep: bool = True) -> Case:
    """``check`` the mutant (default board budget); if it fits, ``emulate`` it on a seeded
    random input and ``codegen`` it, each as the CLI's API call, each under ``limit`` s."""
    from tinymcu.boards import BOARDS, DEFAULT_BOARD
    from tinymcu.mcu_runtime.check import Budget, check_model
    from tinymcu.mcu_runtime.codegen import codegen_model
    from tinymcu.mcu_runtime.execute import execute

    path = workdir / f"m{seed}.tflite"
    path.write_bytes(data)
    board = BOARDS[DEFAULT_BOARD]
    budget = Budget(board.sram_bytes, board.flash_bytes, board.name)
    rng = np.random.default_rng(seed)
    schedule = ("layer", "patch", "auto")[int(rng.integers(3))]
    fuse = bool(rng.integers(2))

    st, _ = _stage(lambda: _fits(check_model(path, budget, schedule=schedule, fuse=fuse)),
                   limit)
    case = Case(seed, st, extra={"schedule": schedule, "fuse": fuse})
    if not (deep and case.accepted):
        path.unlink(missing_ok=True)
        return case

    def emulate() -> None:
        from tinymcu.mcu_runtime.tflite_reader import load_tflite

        g = load_tflite(path)
        xs = [rng.integers(-128, 128, g.tensors[i].shape).astype(g.tensors[i].dtype)
              for i in g.inputs]
        execute(path, xs, schedule=schedule, sram_bytes=board.sram_bytes, fuse=fuse)

    case.emulate, _ = _stage(emulate, limit)
    with tempfile.TemporaryDirectory(dir=workdir) as out:
        case.codegen, _ = _stage(lambda: codegen_model(
            path, Path(out) / "c", schedule=schedule, fuse=fuse, sram_bytes=board.sram_bytes,
            enforce_budget=True, sparse=bool(rng.integers(2))), limit)
    path.unlink(missing_ok=True)
    return case


def _fits(report) -> None:
    from tinymcu.errors import OverBudget

    if not report.fits:
        raise OverBudget(report.verdict)


def load_models(paths: list[Path]) -> list[bytes]:
    return [p.read_bytes() for p in paths]
