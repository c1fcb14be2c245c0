"""`tinymcu package`: wrap `tinymcu codegen` output as a CMake library or an Arduino library."""

from __future__ import annotations

from pathlib import Path

import click

from tinymcu.firmware_templates.package import FORMATS, package_arduino, package_cmake


@click.command("package")
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMATS), required=True,
              help="cmake: add_subdirectory() + target_link_libraries(app NAME); arduino: a "
                   "library folder (library.properties, src/, examples/).")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path))
@click.option("--name", default="tinymcu_model", show_default=True,
              help="CMake target / Arduino library name.")
@click.option("--cpu", default="cortex-m4", show_default=True,
              help="CMake: default -mcpu of the arm-none-eabi toolchain file.")
def command(model_dir: Path, fmt: str, out_dir: Path, name: str, cpu: str) -> None:
    """Package MODEL_DIR (the output of `tinymcu codegen`) for another firmware project.

    Example: tinymcu package kws_c --format cmake --out firmware/model
    """
    if fmt == "cmake":
        package_cmake(model_dir, out_dir, name, cpu)
        click.echo(f"{out_dir}: add_subdirectory({out_dir.name}) and "
                   f"target_link_libraries(app PRIVATE {name})")
    else:
        package_arduino(model_dir, out_dir, name)
        click.echo(f"{out_dir}: Arduino library {name} (copy into your libraries folder, or "
                   f"zip it and use Sketch > Include Library > Add .ZIP Library)")
