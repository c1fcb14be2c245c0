"""Board projects (linker scripts enforcing SRAM/flash, startup code, main) for the C runtime.

Empty until the C99 runtime and code generator land; the package exists so the layout and
the wheel's namespace are fixed from the start.
"""
