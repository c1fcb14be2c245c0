"""`tinymcu validate`: run N real inputs on the target and compare every output."""

from __future__ import annotations

from pathlib import Path

import click

from tinymcu.boards import DEFAULT_BOARD
from tinymcu.firmware_templates.flash import PROBES
from tinymcu.firmware_templates.validate import TRANSPORTS


@click.command("validate")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--board", default=DEFAULT_BOARD, show_default=True,
              help="A QEMU board (qemu-mps2-an386[-4m], qemu-netduinoplus2, qemu-microbit), or a "
                   "real one with --port.")
@click.option("--data", required=True,
              help="'digits', or a .npz/.npy with N inputs in the model's shape (int8, or float "
                   "quantized with the input's scale; labels from 'y'/'labels').")
@click.option("--samples", type=click.IntRange(min=1), help="Use the first N samples "
              "(default: all).")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Directory for validate.json, validate.md, outputs.npy and the firmware.")
@click.option("--schedule", type=click.Choice(["layer", "patch", "auto"]), default="layer",
              show_default=True)
@click.option("--fuse", is_flag=True, help="Fuse stride-2 1x1-expand + depthwise pairs.")
@click.option("--float-model", type=click.Path(path_type=Path),
              help="Float .tflite of the same network: report top-1 agreement with it.")
@click.option("--transport", type=click.Choice(TRANSPORTS),
              help="semihosting: inputs/outputs as host files (QEMU boards, their default); "
                   "console: inputs compiled in per batch, outputs read from the console "
                   "(real boards).")
@click.option("--port", help="Real board: its console's serial port (e.g. /dev/ttyACM0).")
@click.option("--probe", type=click.Choice(PROBES), help="Real board: flashing tool.")
@click.option("--probe-id", help="pyOCD: the probe's unique ID.")
@click.option("--bootloader-port", help="bossac: the Arduino bootloader's serial port.")
@click.option("--batch", "batch_size", type=click.IntRange(min=1),
              help="console transport: inputs per image (default: as many as the flash holds).")
@click.option("--timeout", type=float,
              help="Seconds one run may take (default 60 + 20 per sample).")
def command(model: Path, board: str, data: str, samples: int | None, out_dir: Path,
            schedule: str, fuse: bool, float_model: Path | None, transport: str | None,
            port: str | None, probe: str | None, probe_id: str | None,
            bootloader_port: str | None, batch_size: int | None,
            timeout: float | None) -> None:
    """Build MODEL once for --board, run --data on it, compare with the emulator and TFLM.

    Exit 3 if any output differs. Example:
    tinymcu validate kws_ref_model.tflite --data kws.npz --out val
    """
    from tinymcu.firmware_templates.validate import Console, validate_model

    report = validate_model(model, board, data, out_dir, samples=samples, schedule=schedule,
                            fuse=fuse, float_model=float_model, timeout=timeout,
                            transport=transport,
                            console=Console(port, probe, bootloader_port, probe_id),
                            batch_size=batch_size)
    click.echo(report.markdown())
    click.echo(f"report: {out_dir / 'validate.json'}, {out_dir / 'validate.md'}")
    report.verify()
