"""Worst-case stack depth from GCC's call-graph info, so the stack reservation is proven.

The stack is SRAM like the arena: a fixed guess either wastes budget or overflows into
``.bss`` and corrupts the arena silently. Each object is compiled with
``-fcallgraph-info=su``, which writes ``<object>.ci``: every function's frame size (static,
or dynamic with a bound) and every call edge. The bound is the deepest path from
``Reset_Handler`` plus, for the one interrupt the firmware enables (SysTick), the
exception frame the core pushes (8 words, plus 4 bytes of alignment) and the handler's own
deepest path. Recursion, indirect calls and unbounded dynamic frames (VLAs, alloca) make
the depth unprovable and are refused. The C library routines the code calls (memcpy,
memset, strlen: newlib's leaf assembly; libgcc's division and 64-bit helpers on
Cortex-M0, its soft-float routines everywhere) are charged a fixed allowance, since their
objects carry no call-graph info. The QEMU run checks the bound against the painted
stack's real high-water mark.

GCC's frame sizes leave out a function's *pretend arguments*: a struct passed partly in
r0-r3 and partly on the stack (a kernel's box by value) makes the callee store its
register part next to the stacked part first (``sub sp, #N`` before the push), N bytes
the ``.ci`` does not count. :func:`pretend_args` reads them from the objects' disassembly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from tinymcu.errors import TinymcuError

#: libgcc's soft-float routines (hand-written Thumb-2 leaves in ieee754-df.S / ieee754-sf.S,
#: each pushing at most {r4-r6, lr}): the firmware is built soft-float, so a model with
#: float32 ends (QUANTIZE/DEQUANTIZE) and the generated quantize/dequantize helpers call them
SOFT_FLOAT = tuple(f"__aeabi_{n}" for n in (
    "i2d", "ui2d", "f2d", "d2f", "dmul", "ddiv", "dadd", "dsub", "drsub", "d2iz", "d2uiz",
    "dcmpeq", "dcmplt", "dcmple", "dcmpge", "dcmpgt", "dcmpun", "cdcmple", "cdrcmple",
    "cdcmpeq", "i2f", "ui2f", "fmul", "fdiv", "fadd", "fsub", "frsub", "f2iz", "f2uiz",
    "fcmpeq", "fcmplt", "fcmple", "fcmpge", "fcmpgt", "fcmpun", "cfcmple", "cfrcmple",
    "cfcmpeq"))
#: bytes charged for each leaf routine of the C library and of libgcc (more than any of
#: them pushes): Cortex-M0 has no divide instruction and no 32x32->64 multiply, so GCC
#: calls libgcc's helpers there; the 64-bit divisions push 28 B and call __udivmoddi4
#: (36 B frame + 12 B locals), hence their larger allowance
LIBC_LEAVES = {"memcpy": 64, "memset": 64, "memmove": 64, "strlen": 64,
               **dict.fromkeys(("__aeabi_uidiv", "__aeabi_uidivmod", "__aeabi_idiv",
                                "__aeabi_idivmod", "__aeabi_lmul", "__aeabi_llsl",
                                "__aeabi_llsr", "__aeabi_lasr"), 64),
               "__aeabi_ldivmod": 128, "__aeabi_uldivmod": 128,
               **dict.fromkeys(SOFT_FLOAT, 64)}
#: the core's exception frame: r0-r3, r12, lr, pc, xPSR, plus 4 bytes of 8-byte alignment
#: (no floating-point context: the firmware is built soft-float)
EXCEPTION_FRAME = 8 * 4 + 4
#: interrupt handlers the firmware enables, each may nest once on top of the deepest path
INTERRUPTS = ("SysTick_Handler",)
ROOT = "Reset_Handler"

_NODE = re.compile(r'^node: \{ title: "([^"]+)" label: "([^"]*)"')
_EDGE = re.compile(r'^edge: \{ sourcename: "([^"]+)" targetname: "([^"]+)"')
_FRAME = re.compile(r"\\n(\d+) bytes \(([a-z, ]+)\)$")


@dataclass
class CallGraph:
    #: function → (frame bytes, kind) for functions with a body in the objects
    frames: dict[str, tuple[int, str]] = field(default_factory=dict)
    calls: dict[str, set[str]] = field(default_factory=dict)

    def add(self, text: str) -> None:
        """Merge one ``.ci`` file (VCG text as GCC 12 writes it)."""
        for line in text.splitlines():
            m = _NODE.match(line)
            if m:
                f = _FRAME.search(m.group(2))
                if f:
                    self.frames[m.group(1)] = (int(f.group(1)), f.group(2))
                continue
            m = _EDGE.match(line)
            if m:
                self.calls.setdefault(m.group(1), set()).add(m.group(2))

    #: the only functions an indirect call can reach (titles), when the caller knows them
    indirect: tuple[str, ...] = ()

    def depth(self, fn: str, path: tuple[str, ...] = ()) -> int:
        """Deepest stack use starting at ``fn`` (its frame plus its deepest callee); an
        indirect call costs the deepest of :attr:`indirect`."""
        if _name(fn) == "__indirect_call":
            return max(self.depth(t, path) for t in self.indirect)
        if fn in path:
            raise TinymcuError(f"stack depth unprovable: recursion through {fn}")
        if fn not in self.frames:
            if fn in LIBC_LEAVES:
                return LIBC_LEAVES[fn]
            raise TinymcuError(f"stack depth unprovable: no call-graph info for {fn}")
        size, kind = self.frames[fn]
        if kind == "dynamic":
            raise TinymcuError(f"stack depth unprovable: {fn} has an unbounded dynamic frame")
        callees = self.calls.get(fn, set())
        return size + max((self.depth(c, (*path, fn)) for c in callees), default=0)


def _name(title: str) -> str:
    return title.rsplit(":", 1)[-1]


_FUNC = re.compile(r"^[0-9a-f]+ <([^>]+)>:$")
_INSN = re.compile(r"^\s*[0-9a-f]+:\s+(\S+)\s*(.*)$")


def pretend_args(disassembly: str) -> dict[str, int]:
    """Function name → bytes of pretend arguments, from ``objdump -d --no-show-raw-insn``
    of an object: a function whose first instruction is ``sub sp, #N`` and whose second
    pushes registers (``push`` / ``stmdb sp!``) stored N bytes of its arguments there."""
    out: dict[str, int] = {}
    name: str | None = None
    insns: list[tuple[str, str]] = []
    for line in disassembly.splitlines():
        m = _FUNC.match(line)
        if m:
            name, insns = m.group(1), []
            continue
        m = _INSN.match(line)
        if name is None or not m or len(insns) >= 2:
            continue
        insns.append((m.group(1), m.group(2).split("@")[0].strip()))
        if len(insns) == 2:
            (op0, arg0), (op1, arg1) = insns
            sub = re.fullmatch(r"sp, #(\d+)", arg0) if op0 in ("sub", "sub.w") else None
            if sub and (op1.startswith("push") or (op1.startswith("stmdb") and
                                                   arg1.startswith("sp!"))):
                out[name] = int(sub.group(1))
    return out


def stack_bound(ci_files: list[Path], indirect_targets: tuple[str, ...] = (),
                pretend: dict[str, int] | None = None) -> int:
    """Bytes of stack the firmware can ever use (see the module docstring).

    ``indirect_targets``: names of the only functions the image calls through a pointer
    (a streamed model's read function: ``main.c``'s provider and the model's own
    ``tm_read_image``); each indirect call is charged the deepest of them. Without them
    an indirect call makes the depth unprovable. ``pretend``: each function's pretend
    arguments (:func:`pretend_args`), added to its frame."""
    graph = CallGraph()
    for p in ci_files:
        graph.add(Path(p).read_text(errors="replace"))
    for title, (size, kind) in graph.frames.items():
        graph.frames[title] = (size + (pretend or {}).get(_name(title), 0), kind)
    titles = tuple(t for t in graph.frames if _name(t).split(".")[0] in indirect_targets)
    missing = set(indirect_targets) - {_name(t).split(".")[0] for t in titles}
    for caller, callees in graph.calls.items():
        if any(_name(c) == "__indirect_call" for c in callees) and (not titles or missing):
            raise TinymcuError(f"stack depth unprovable: {_name(caller)} makes an indirect call")
    graph.indirect = titles
    if ROOT not in graph.frames:
        raise TinymcuError(f"stack depth: no {ROOT} in the call graph")
    isr = max((EXCEPTION_FRAME + graph.depth(h) for h in INTERRUPTS if h in graph.frames),
              default=0)
    return graph.depth(ROOT) + isr
