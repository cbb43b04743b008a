"""Fixtures shared by every package's tests: isolated DDS domain, real subprocesses, polling waits.

Every test run gets its own ROS_DOMAIN_ID (derived from the pid) and localhost-only discovery, so
parallel runs and other programs on the machine never cross-talk. Processes started with
`spawn` are real OS processes in their own session; they are always stopped (SIGINT, then
SIGKILL of the whole process group) when the test ends, pass or fail.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

REPO_ROOT = Path(__file__).resolve().parent

os.environ['ROS_DOMAIN_ID'] = str(1 + os.getpid() % 100)
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
# One torch thread per process: tests start several processes on a 2-core machine.
os.environ.setdefault('OMP_NUM_THREADS', '1')


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.02,
             what: str = 'condition') -> None:
    """Poll `predicate` until true; fail the test with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f'timed out after {timeout:.1f} s waiting for {what}')


class ProcessGroup:
    """Real child processes that are guaranteed to be stopped at teardown."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[tuple[subprocess.Popen, Path]] = []

    def start(self, args: list[str], name: str, env: dict[str, str] | None = None,
              python_module: bool = False) -> subprocess.Popen:
        """Start `args` (or `python -m args[0] args[1:]` when python_module) with output to a log."""
        cmd = [sys.executable, '-m', *args] if python_module else list(args)
        log = self.log_dir / f'{name}.log'
        full_env = dict(os.environ)
        full_env.update(env or {})
        fh = open(log, 'wb')
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=full_env,
                                start_new_session=True, cwd=REPO_ROOT)
        fh.close()
        self.procs.append((proc, log))
        return proc

    def log_text(self, proc: subprocess.Popen) -> str:
        for p, log in self.procs:
            if p is proc:
                return log.read_text(errors='replace')
        return ''

    @staticmethod
    def stop(proc: subprocess.Popen, timeout: float = 5.0) -> int | None:
        """SIGINT (clean shutdown), then SIGKILL of the process group if it lingers."""
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(2.0)
        except subprocess.TimeoutExpired:
            pass
        return proc.returncode

    def stop_all(self) -> None:
        for proc, _ in reversed(self.procs):
            self.stop(proc)


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[ProcessGroup]:
    """Start real processes; all of them are stopped when the test ends."""
    group = ProcessGroup(tmp_path)
    try:
        yield group
    finally:
        group.stop_all()


@pytest.fixture
def rclpy_context():
    """A fresh rclpy context for nodes created inside the test process; shut down afterwards."""
    import rclpy
    from rclpy.context import Context

    ctx = Context()
    rclpy.init(context=ctx)
    try:
        yield ctx
    finally:
        if ctx.ok():
            rclpy.shutdown(context=ctx)
