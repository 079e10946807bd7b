"""Launch a script on 2 CPU processes with ``torch.distributed.run`` (gloo, 127.0.0.1).

Shared by the tests that train under real multi-process training; a failure reports the
children's output.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(script: Path, out: Path, timeout_s: float) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]),
    )
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        str(script),
        str(out),
    ]
    try:
        return subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired as err:
        stderr = (
            err.stderr.decode(errors="replace") if isinstance(err.stderr, bytes) else err.stderr
        )
        pytest.fail(
            f"torchrun {script.name} did not finish in {timeout_s} s.\n--- stderr ---\n{stderr}",
            pytrace=False,
        )


def run_two_processes(script: Path, out: Path, *, timeout_s: float = 240) -> None:
    """Run ``script OUT`` on 2 processes; fail the test with the children's output if it fails."""
    proc = _launch(script, out, timeout_s)
    if proc.returncode != 0 and "address already in use" in proc.stderr.lower():
        proc = _launch(script, out, timeout_s)  # the free port was taken in between
    if proc.returncode != 0:
        pytest.fail(
            f"torchrun {script.name} exited with {proc.returncode}.\n--- stdout ---\n"
            f"{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-12000:]}",
            pytrace=False,
        )
