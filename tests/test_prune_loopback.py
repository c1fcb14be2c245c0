"""Multi-process deployment on loopback: a SuperLink, two SuperNodes and ``flwr run`` — the
same ClientApp/ServerApp as the simulation, each client in its own process."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tinymcu.prune.config import PruneConfig
from tinymcu.prune.deploy import write_app, write_flwr_home

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc), including ones that started a new session."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "process exited early"
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise TimeoutError(f"port {port} never opened")


def test_superlink_two_supernodes_and_flwr_run(tmp_path):
    out = tmp_path / "out"
    cfg = PruneConfig(clients=2, rounds=1, density=0.2, candidates=2, out=str(out), timeout=120)
    app = tmp_path / "app"
    write_app(app, cfg)
    link = _free_port()
    home = tmp_path / "flwr-home"
    write_flwr_home(home, f"127.0.0.1:{link}")
    env = dict(os.environ, FLWR_TELEMETRY_ENABLED="0", FLWR_HOME=str(home),
               TF_CPP_MIN_LOG_LEVEL="3", PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
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
            str(BIN / "flower-superlink"), "--insecure", "--host", "127.0.0.1",
            "--port", str(link), "--disable-runtime-dependency-installation",
            "--database", str(tmp_path / "state.db")])
        _wait_port(link, superlink, 60)
        for pid in range(2):
            start(f"supernode{pid}", [
                str(BIN / "flower-supernode"), "--insecure", "--superlink", f"127.0.0.1:{link}",
                "--port", str(_free_port()),
                "--node-config", f"partition-id={pid} num-partitions=2"])
        run = subprocess.run([str(BIN / "flwr"), "run", str(app), "loopback", "--stream"],
                             env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        deadline = time.monotonic() + 60
        while not (out / "report.json").exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        report = json.loads((out / "report.json").read_text())
        assert [r["round"] for r in report["rounds"]] == [1]
        assert abs(report["density"] - 0.2) < 0.01
        assert report["selection"]["chosen"] in (0, 1)
        assert report["client_to_server_bytes"] > 0 and not report["excluded_clients"]
    finally:
        # The SuperLink/SuperNodes detach helpers (superexec, app processes) into their own
        # sessions: collect every descendant before stopping anything, then stop them all.
        family = [c for p in procs for c in _descendants(p.pid)]
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in family:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            time.sleep(2 if sig == signal.SIGTERM else 0)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
        for f in logs.values():
            f.close()
