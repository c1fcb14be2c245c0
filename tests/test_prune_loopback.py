"""Multi-process deployment on loopback: a SuperLink, three SuperNodes and ``flwr run`` — the
same ClientApp/ServerApp as the simulation, each client in its own process. The third node
trains on its own local file (``data-path`` node config), as a real device would, and each
round samples two of the nodes (FedAvg's ``fraction_train`` / ``min_train_nodes``)."""

import json
import os
import socket
import subprocess
import time

import numpy as np
import pytest

from tinymcu.prune import data as D
from tinymcu.prune.config import PruneConfig
from tinymcu.prune.deploy import write_app, write_flwr_home
from tinymcu.prune.federation import free_port, stop_processes, write_launchers

pytestmark = pytest.mark.slow


def _wait_port(port: int, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "process exited early"
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise TimeoutError(f"port {port} never opened")


def test_superlink_three_supernodes_sampled_and_flwr_run(tmp_path):
    out = tmp_path / "out"
    cfg = PruneConfig(clients=3, fraction=0.5, min_train_nodes=2, rounds=1, density=0.2,
                      candidates=2, out=str(out), timeout=120)
    app = tmp_path / "app"
    write_app(app, cfg)
    own = D.load("digits")
    np.savez(tmp_path / "node1.npz", x=own.x[:57], y=own.y[:57])  # this node's own files
    node_config = ["partition-id=0 num-partitions=2", "partition-id=1 num-partitions=2",
                   f'partition-id=2 data-path="{tmp_path / "node1.npz"}"']
    bin_dir = write_launchers(tmp_path / "bin")  # Flower's commands in this interpreter
    link = free_port()
    home = tmp_path / "flwr-home"
    write_flwr_home(home, f"127.0.0.1:{link}")
    env = dict(os.environ, FLWR_TELEMETRY_ENABLED="0", FLWR_HOME=str(home),
               TF_CPP_MIN_LOG_LEVEL="3", PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    logs = {}
    procs: list[subprocess.Popen] = []

    def start(name, args):
        logs[name] = open(tmp_path / f"{name}.log", "w")  # noqa: SIM115 - closed in finally
        p = subprocess.Popen(args, stdout=logs[name], stderr=subprocess.STDOUT, env=env,
                             cwd=tmp_path, start_new_session=True)
        procs.append(p)
        return p

    try:
        superlink = start("superlink", [
            str(bin_dir / "flower-superlink"), "--insecure", "--host", "127.0.0.1",
            "--port", str(link), "--disable-runtime-dependency-installation",
            "--database", str(tmp_path / "state.db")])
        _wait_port(link, superlink, 60)
        for pid in range(3):
            start(f"supernode{pid}", [
                str(bin_dir / "flower-supernode"), "--insecure", "--superlink", f"127.0.0.1:{link}",
                "--port", str(free_port()),
                "--node-config", node_config[pid]])
        run = subprocess.run([str(bin_dir / "flwr"), "run", str(app), "loopback", "--stream"],
                             env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        deadline = time.monotonic() + 60
        while not (out / "report.json").exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        report = json.loads((out / "report.json").read_text())
        assert [r["round"] for r in report["rounds"]] == [1]
        # two nodes sampled (⌊0.5 · 3⌋ = 1, raised to min_train_nodes): nodes 0 and 1 train
        # on their partitions of the run's data, node 2 on its own 57 samples
        sizes = [len(D.Split("digits", 2, 0.5, 0).client(i).y) for i in range(2)] + [57]
        assert report["rounds"][0]["clients"] == 2
        assert report["rounds"][0]["examples"] in {a + b for i, a in enumerate(sizes)
                                                   for b in sizes[i + 1:]}
        for f in logs.values():
            f.flush()
        seen = [(tmp_path / f"supernode{pid}.log").read_text() for pid in range(3)]
        assert all("Receiving: query.hello" in t for t in seen)  # all three took part ...
        assert sum("Receiving: train" in t for t in seen) == 2  # ... two were sampled
        assert report["client_peak_bytes"] > 0
        assert abs(report["density"] - 0.2) < 0.01
        assert report["selection"]["chosen"] in (0, 1)
        assert report["client_to_server_bytes"] > 0 and not report["excluded_clients"]
    finally:
        # The SuperLink/SuperNodes detach helpers (superexec, app processes) into their own
        # sessions: every descendant is collected before anything is stopped.
        stop_processes(procs)
        for f in logs.values():
            f.close()
