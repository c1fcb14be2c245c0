"""`tinymcu demo`: the main job on built-in data (digits), end to end."""

from __future__ import annotations

from pathlib import Path

import click

from tinymcu.errors import VerificationError


@click.command("demo")
@click.option("--out", type=click.Path(path_type=Path), default=Path("demo_out"),
              show_default=True, help="Output directory (replaced atomically).")
@click.option("--clients", default=10, show_default=True, help="Simulated Flower clients.")
@click.option("--rounds", default=15, show_default=True, help="Federated rounds.")
@click.option("--density", default=0.1, show_default=True, help="Target weight density.")
@click.option("--seed", default=0, show_default=True)
def command(out: Path, clients: int, rounds: int, density: float, seed: int) -> None:
    """Federated pruning → int8 export → memory check → bit-exact emulation, on digits.

    Example: tinymcu demo --out demo_out
    """
    from tinymcu import inputs
    from tinymcu.demo import DemoConfig, run_demo

    inputs.out_dir(out)

    summary = run_demo(DemoConfig(out=out, clients=clients, rounds=rounds, density=density,
                                  seed=seed))
    emu = summary["emulation"]
    if any(emu[k]["bit_exact"] != emu["samples"] for k in ("layer", "patch")):
        raise VerificationError("the emulator's outputs differ from TFLM's (see the table)")
