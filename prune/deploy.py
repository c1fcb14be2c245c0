"""Run the same pruning job on real Flower infrastructure (SuperLink + SuperNodes).

``write_app(dir, cfg)`` writes a Flower app directory — just a ``pyproject.toml`` whose
components point at ``tinymcu.prune.apps:server_app`` / ``:client_app`` and whose run config is
``cfg`` — for ``flwr run``. Every machine needs tinymcu installed (``pip install
'tinymcu[federated]'``); only the tiny app bundle travels. On one machine (loopback)::

    flower-superlink --insecure --host 127.0.0.1 --port 8000 \\
        --disable-runtime-dependency-installation
    flower-supernode --insecure --superlink 127.0.0.1:8000 --port 9094 \\
        --node-config "partition-id=0 num-partitions=2"      # one per client, own --port
    FLWR_HOME=DIR flwr run APP_DIR loopback --stream          # DIR/config.toml: write_flwr_home

Without ``--disable-runtime-dependency-installation`` the SuperLink would try to install the
app's dependencies (a CUDA torch) itself. ``tests/test_prune_loopback.py`` runs exactly this.
"""

from __future__ import annotations

import json
from pathlib import Path

from tinymcu.prune.config import PruneConfig


def _toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, int):
        return str(v)
    return json.dumps(str(v))


def write_app(app_dir: Path, cfg: PruneConfig, jobs: str = "") -> Path:
    """Write the Flower app's pyproject.toml; ``cfg.out`` should be absolute (the ServerApp
    process has its own working directory). ``jobs``: a JSON file of many jobs' flat
    configs that the ServerApp runs in turn instead (benchmarks)."""
    app_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        "[build-system]", 'requires = ["hatchling"]', 'build-backend = "hatchling.build"', "",
        "[project]", 'name = "tinymcu-prune"', 'version = "1.0.0"',
        'description = "FedTiny federated pruning (tinymcu)"', 'license = "Apache-2.0"',
        'dependencies = ["tinymcu[federated]"]', "",
        "[tool.flwr.app]", 'publisher = "tinymcu"', "",
        "[tool.flwr.app.components]", 'serverapp = "tinymcu.prune.apps:server_app"',
        'clientapp = "tinymcu.prune.apps:client_app"', "",
        "[tool.flwr.app.config]",
    ]
    lines += [f"{k} = {_toml_value(v)}" for k, v in cfg.flat().items()]
    if jobs:
        lines.append(f"jobs = {_toml_value(jobs)}")
    path = app_dir / "pyproject.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_flwr_home(home: Path, control_address: str, name: str = "loopback") -> Path:
    """A FLWR_HOME whose config.toml names the SuperLink ``flwr run`` talks to."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "config.toml"
    path.write_text(f'[superlink.{name}]\naddress = "{control_address}"\ninsecure = true\n')
    return path
