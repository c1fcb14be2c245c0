"""Measured memory from a GNU ld map file (and the ELF's section flags).

The map is the linker's own account: the memory regions it enforced (``Memory
Configuration``), every output section with its address, size and load address, and every
input section with the object it came from. From it we take flash (every section with
contents whose load address is in FLASH, which includes the initial values of ``.data``),
SRAM (every allocated section placed in RAM: ``.data``, ``.bss`` with the arena, the stack
reservation) and the arena symbol's own input section, which must be exactly the planner's
arena. The map prints a load address even for NOLOAD sections and lists debug sections at
address 0, so which sections occupy memory, and which have contents, comes from the ELF
section headers.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

from tinymcu.errors import TinymcuError


@dataclass(frozen=True)
class Region:
    name: str
    origin: int
    length: int

    def contains(self, address: int) -> bool:
        return self.origin <= address < self.origin + self.length


@dataclass(frozen=True)
class Section:
    """One output section: run address, size, and load address (≠ address for ``.data``)."""

    name: str
    address: int
    size: int
    load_address: int


@dataclass(frozen=True)
class InputSection:
    """One input section (``.bss.name`` from ``model.o``) placed inside an output section."""

    output: str
    name: str
    address: int
    size: int
    obj: str


@dataclass
class LinkMap:
    regions: dict[str, Region]
    sections: list[Section]
    inputs: list[InputSection] = field(default_factory=list)

    def flash_bytes(self, elf: dict[str, ElfSection]) -> int:
        """Bytes stored in FLASH: allocated sections with contents, by load address."""
        r = self.regions["FLASH"]
        return sum(s.size for s in self.sections
                   if s.name in elf and elf[s.name].alloc and not elf[s.name].nobits
                   and r.contains(s.load_address))

    def sram_bytes(self, elf: dict[str, ElfSection]) -> int:
        """Bytes occupied in RAM at run time: allocated sections by run address."""
        r = self.regions["RAM"]
        return sum(s.size for s in self.sections
                   if s.name in elf and elf[s.name].alloc and r.contains(s.address))

    def section(self, name: str) -> Section:
        for s in self.sections:
            if s.name == name:
                return s
        raise TinymcuError(f"linker map has no output section {name}")

    def symbol_section(self, pattern: str, output: str = ".bss") -> InputSection:
        """The one input section of ``output`` whose name matches ``pattern`` (a regex)."""
        found = [i for i in self.inputs if i.output == output and re.search(pattern, i.name)]
        if len(found) != 1:
            names = ", ".join(i.name for i in found) or "none"
            raise TinymcuError(f"linker map: expected one {output} input section matching "
                               f"{pattern!r}, found {names}")
        return found[0]


_REGION = re.compile(r"^(\S+)\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)(?:\s+\S+)?\s*$")
_OUT_FULL = re.compile(r"^(\.\S+|/\S+)\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)"
                       r"(?:\s+load address 0x([0-9a-fA-F]+))?\s*$")
_OUT_NAME = re.compile(r"^(\.\S+)\s*$")
_ADDR_SIZE = re.compile(r"^\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)"
                        r"(?:\s+load address 0x([0-9a-fA-F]+))?\s*$")
_IN_FULL = re.compile(r"^ (\.\S+|COMMON)\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)\s+(\S.*)$")
_IN_NAME = re.compile(r"^ (\.\S+|COMMON)\s*$")
_IN_REST = re.compile(r"^\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)\s+(\S.*)$")


def parse_map(text: str) -> LinkMap:
    """Parse ``ld -Map`` output (GNU ld 2.x). Long names wrap onto the next line; both the
    one-line and the wrapped form are read."""
    lines = text.splitlines()
    try:
        start = lines.index("Memory Configuration")
        layout = lines.index("Linker script and memory map")
    except ValueError:
        raise TinymcuError("not a GNU ld map file (no Memory Configuration)") from None
    regions = {}
    for line in lines[start + 1:layout]:
        m = _REGION.match(line)
        if m and m.group(1) != "Name":
            regions[m.group(1)] = Region(m.group(1), int(m.group(2), 16), int(m.group(3), 16))
    sections: list[Section] = []
    inputs: list[InputSection] = []
    current: str | None = None
    pending_out: str | None = None
    pending_in: str | None = None
    for line in lines[layout + 1:]:
        if pending_out is not None:
            m = _ADDR_SIZE.match(line)
            if m:
                current = _add_section(sections, pending_out, m.group(1), m.group(2), m.group(3))
            pending_out = None
            continue
        if pending_in is not None:
            m = _IN_REST.match(line)
            if m and current is not None:
                inputs.append(InputSection(current, pending_in, int(m.group(1), 16),
                                           int(m.group(2), 16), m.group(3).strip()))
            pending_in = None
            continue
        m = _OUT_FULL.match(line)
        if m:
            current = _add_section(sections, m.group(1), m.group(2), m.group(3), m.group(4))
            continue
        m = _OUT_NAME.match(line)
        if m:
            pending_out = m.group(1)
            continue
        m = _IN_FULL.match(line)
        if m and current is not None:
            inputs.append(InputSection(current, m.group(1), int(m.group(2), 16),
                                       int(m.group(3), 16), m.group(4).strip()))
            continue
        m = _IN_NAME.match(line)
        if m:
            pending_in = m.group(1)
    for name in ("FLASH", "RAM"):
        if name not in regions:
            raise TinymcuError(f"linker map has no {name} memory region")
    return LinkMap(regions, sections, inputs)


def _add_section(sections: list[Section], name: str, addr: str, size: str,
                 load: str | None) -> str:
    address = int(addr, 16)
    sections.append(Section(name, address, int(size, 16),
                            int(load, 16) if load else address))
    return name


def read_map(path: Path) -> LinkMap:
    return parse_map(Path(path).read_text(errors="replace"))


@dataclass(frozen=True)
class ElfSection:
    name: str
    address: int
    size: int
    alloc: bool
    nobits: bool


_SHF_ALLOC = 0x2
_SHT_NOBITS = 8


def elf_sections(path: Path) -> dict[str, ElfSection]:
    """Section headers of a 32-bit little-endian ELF (what arm-none-eabi-gcc links)."""
    data = Path(path).read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 1 or data[5] != 1:
        raise TinymcuError(f"{path}: not a 32-bit little-endian ELF file")
    shoff, = struct.unpack_from("<I", data, 0x20)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x2E)
    headers = [struct.unpack_from("<IIIIIIIIII", data, shoff + i * shentsize)
               for i in range(shnum)]
    strtab = headers[shstrndx][4]

    def name(offset: int) -> str:
        end = data.index(b"\0", strtab + offset)
        return data[strtab + offset:end].decode()

    out = {}
    for h in headers[1:]:
        sec = ElfSection(name(h[0]), h[3], h[5], bool(h[2] & _SHF_ALLOC), h[1] == _SHT_NOBITS)
        out[sec.name] = sec
    return out
