"""Build a firmware image from a generated model directory, and measure it from the map.

``build_firmware`` renders the board project (linker script, start-up code, ``main.c`` with
the test input embedded, a Makefile with the same flags for rebuilding by hand), compiles
it with arm-none-eabi-gcc and reads the linker map: flash, SRAM and the arena symbol's
size are measured, not predicted. The linker script's FLASH/RAM lengths are the board's
budget, so a model that does not fit fails here with :class:`~tinymcu.errors.OverBudget`.
Everything is built in a temporary directory and renamed into ``out_dir`` when complete.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from jinja2 import Environment, PackageLoader, StrictUndefined

from ..errors import OverBudget, TinymcuError
from ..outputs import atomic_dir
from .linkmap import ElfSection, LinkMap, elf_sections, read_map
from .stack import stack_bound
from .targets import Target, get_target

CC = "arm-none-eabi-gcc"
#: compile flags shared by every board (the CPU flag is added per target)
CFLAGS = ("-mthumb", "-Os", "-std=c99", "-Wall", "-Wextra", "-Werror",
          "-ffunction-sections", "-fdata-sections")
#: newlib-nano for memcpy/memset; no start files (ours set up .data/.bss), no syscalls used
LDFLAGS = ("-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs", "-Wl,--gc-sections")
#: the arena's input section: a static array whose name says it is the arena
ARENA_SECTION = r"^\.bss\..*arena"
#: seconds any single compiler/linker call may take
TOOL_TIMEOUT = 300

_ENV = Environment(loader=PackageLoader("tinymcu.firmware_templates", "templates"),
                   undefined=StrictUndefined, keep_trailing_newline=True,
                   trim_blocks=True, lstrip_blocks=True, autoescape=False)
_DEFINE = re.compile(r"^\s*#define\s+(TINYMCU_\w+_BYTES)\s+\(?(\d+)u?\)?", re.MULTILINE)
_OVERFLOW = re.compile(r"region `(\w+)' overflowed by (\d+) bytes")


@dataclass(frozen=True)
class ModelHeader:
    """The sizes a generated ``model.h`` declares."""

    arena_bytes: int
    input_bytes: int
    output_bytes: int


@dataclass
class FirmwareResult:
    """A linked image and what it measurably occupies (all sizes from the linker map)."""

    board: str
    target: Target
    out_dir: Path
    elf: Path
    map_path: Path
    header: ModelHeader
    input: np.ndarray
    flash_bytes: int
    sram_bytes: int
    arena_symbol: str
    arena_symbol_bytes: int
    stack_bytes: int
    #: worst-case stack depth from the call graph (the reservation is this, 8-byte aligned)
    stack_bound: int
    text_bytes: int
    rodata_bytes: int
    data_bytes: int
    bss_bytes: int
    #: constants of the generated model (weights, biases, multipliers) placed in flash:
    #: the .rodata input sections of model.o in the map
    model_rodata_bytes: int


def read_header(model_dir: Path) -> ModelHeader:
    """The arena/input/output sizes from ``model_dir/model.h`` (the codegen contract)."""
    header = Path(model_dir) / "model.h"
    if not header.is_file():
        raise TinymcuError(f"{model_dir}: no model.h (not a tinymcu codegen directory)")
    found = {m.group(1): int(m.group(2)) for m in _DEFINE.finditer(header.read_text())}
    try:
        return ModelHeader(found["TINYMCU_ARENA_BYTES"], found["TINYMCU_INPUT_BYTES"],
                           found["TINYMCU_OUTPUT_BYTES"])
    except KeyError as e:
        raise TinymcuError(f"{header}: missing #define {e.args[0]}") from None


def compile_flags(target: Target) -> list[str]:
    return [f"-mcpu={target.cpu}", *CFLAGS]


def _input_rows(data: np.ndarray, per_row: int = 16) -> list[str]:
    flat = [str(int(v)) for v in data.reshape(-1)]
    return [", ".join(flat[i:i + per_row]) for i in range(0, len(flat), per_row)]


def render_project(target: Target, model_name: str, data: np.ndarray,
                   semihosting: bool | None = None) -> dict[str, str]:
    """The board project's source files (name → text) for ``target`` and test input.

    ``semihosting`` (default: only for boards QEMU emulates) makes ``main.c`` report over
    semihosting and exit; without it the results stay in memory for a debugger."""
    if semihosting is None:
        semihosting = target.runnable
    ctx = {"target": target, "model_name": model_name, "semihosting": semihosting,
           "input_rows": _input_rows(data)}
    files = {name: _ENV.get_template(f"{name}.j2").render(**ctx)
             for name in ("link.ld", "startup.c", "main.c")}
    files["Makefile"] = _ENV.get_template("Makefile.j2").render(
        cc=CC, cflags=" ".join(compile_flags(target)), ldflags=" ".join(LDFLAGS))
    return files


def _check_input(data: np.ndarray | None, header: ModelHeader) -> np.ndarray:
    if data is None:
        rng = np.random.default_rng(0)
        return rng.integers(-128, 128, header.input_bytes, dtype=np.int64).astype(np.int8)
    data = np.asarray(data)
    if data.dtype != np.int8:
        raise TinymcuError(f"firmware input: dtype {data.dtype}, the model wants int8")
    if data.size != header.input_bytes:
        raise TinymcuError(f"firmware input: {data.size} values, the model wants "
                           f"{header.input_bytes}")
    return np.ascontiguousarray(data)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise TinymcuError(f"{name} not found: install the Arm GNU toolchain "
                           f"(Debian: apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi)")
    return path


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                              timeout=TOOL_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise TinymcuError(f"{Path(cmd[0]).name} timed out after {TOOL_TIMEOUT} s") from None


def _first_error(stderr: str) -> str:
    for line in stderr.splitlines():
        if "error" in line.lower():
            return line.strip()
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    return lines[0] if lines else "no message"


def _link_failure(stderr: str, target: Target, header: ModelHeader) -> TinymcuError:
    """A region overflow is the model not fitting (exit 1); anything else is an error."""
    over = {m.group(1): int(m.group(2)) for m in _OVERFLOW.finditer(stderr)}
    if not over:
        return TinymcuError(f"link failed: {_first_error(stderr)}")
    parts = []
    if "RAM" in over:
        parts.append(f"SRAM overflowed by {over['RAM']:,} B (arena {header.arena_bytes:,} B + "
                     f"stack {target.stack_bytes:,} B + data > RAM {target.ram_bytes:,} B)")
    if "FLASH" in over:
        parts.append(f"flash overflowed by {over['FLASH']:,} B (> {target.flash_bytes:,} B)")
    return OverBudget(f"{target.board}: does not fit: " + "; ".join(parts))


def build_firmware(model_dir: Path, board: str, out_dir: Path,
                   input: np.ndarray | None = None, sram_bytes: int | None = None,
                   stack_bytes: int | None = None,
                   semihosting: bool | None = None) -> FirmwareResult:
    """Compile ``model_dir`` (codegen output) into ``out_dir/app.elf`` for ``board``.

    ``input``: the int8 test input embedded in ``main.c`` (default: seeded random bytes).
    ``sram_bytes`` shrinks the board's RAM region, like ``tinymcu check --sram``.
    ``stack_bytes`` overrides the stack reservation, which is otherwise the call graph's
    proven worst case (:mod:`.stack`). ``semihosting`` forces the reporting ``main.c`` on
    (e.g. to boot a real board's project on a QEMU machine with the same memory map).
    Raises :class:`OverBudget` when the image or the RAM it needs (stack included) does
    not fit the board.
    """
    model_dir = Path(model_dir)
    target = get_target(board, sram_bytes)
    header = read_header(model_dir)
    data = _check_input(input, header)
    cc = _tool(CC)
    sources = sorted(model_dir.glob("*.c"))
    if not any(p.name == "model.c" for p in sources):
        raise TinymcuError(f"{model_dir}: no model.c (not a tinymcu codegen directory)")
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        shutil.copytree(model_dir, tmp / "model")
        for name, text in render_project(target, model_dir.name, data, semihosting).items():
            if name != "link.ld":  # written once the stack bound is known
                (tmp / name).write_text(text)
        np.save(tmp / "input.npy", data)
        (tmp / "build").mkdir()
        objects = []
        for src in ["main.c", "startup.c", *(f"model/{p.name}" for p in sources)]:
            obj = f"build/{Path(src).stem}.o"
            res = _run([cc, *compile_flags(target), "-fcallgraph-info=su", "-Imodel", "-c",
                        src, "-o", obj], tmp)
            if res.returncode != 0:
                raise TinymcuError(f"compiling {src} for {board} failed: "
                                   f"{_first_error(res.stderr)}")
            objects.append(obj)
        bound = stack_bound(sorted((tmp / "build").glob("*.ci")))
        target = replace(target, stack_bytes=stack_bytes or -(-bound // 8) * 8)
        (tmp / "link.ld").write_text(
            render_project(target, model_dir.name, data, semihosting)["link.ld"])
        res = _run([cc, *compile_flags(target), "-Tlink.ld", *LDFLAGS,
                    "-Wl,-Map=app.map", *objects, "-o", "app.elf"], tmp)
        if res.returncode != 0:
            raise _link_failure(res.stderr, target, header)
        result = _measure(read_map(tmp / "app.map"), elf_sections(tmp / "app.elf"), target,
                          header, data, out_dir, bound)
    return result


def _measure(link: LinkMap, elf: dict[str, ElfSection], target: Target, header: ModelHeader,
             data: np.ndarray, out_dir: Path, bound: int) -> FirmwareResult:
    arena = link.symbol_section(ARENA_SECTION)
    return FirmwareResult(
        board=target.board, target=target, out_dir=out_dir, elf=out_dir / "app.elf",
        map_path=out_dir / "app.map", header=header, input=data,
        flash_bytes=link.flash_bytes(elf), sram_bytes=link.sram_bytes(elf),
        arena_symbol=arena.name.removeprefix(".bss."), arena_symbol_bytes=arena.size,
        stack_bytes=link.section(".stack").size, stack_bound=bound,
        text_bytes=link.section(".text").size + link.section(".isr_vector").size,
        rodata_bytes=link.section(".rodata").size, data_bytes=link.section(".data").size,
        bss_bytes=link.section(".bss").size,
        model_rodata_bytes=sum(i.size for i in link.inputs
                               if i.output == ".rodata" and i.obj.endswith("build/model.o")))
