"""Board projects that turn the generated C model into a firmware image, and the QEMU board.

``targets.py`` holds each board's memory map (sizes from :mod:`tinymcu.boards`, so the
linker script enforces the same budget ``tinymcu check`` gates); ``templates/`` the named
Jinja2 templates of the project (linker script, start-up code, ``main.c``, Makefile);
``build.py`` compiles and links with arm-none-eabi-gcc and measures the image from the
linker map (``linkmap.py``), reserving the stack the call graph proves it needs
(``stack.py``); ``qemu.py`` runs it on QEMU's mps2-an386 (Cortex-M4);
``pipeline.py`` chains codegen → build → run → comparison with the emulator.
"""
