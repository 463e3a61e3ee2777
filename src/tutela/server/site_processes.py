"""Site agents as operating-system processes, for the loopback deployments on one machine
(``tutela demo`` over the network, the query demo, tests and benchmarks).

Each hospital runs in a process of its own, as ``tutela site run`` with the same arguments
(:func:`site_command`): the same command-line entry, the same one-line errors and exit
status, its output in its own log file. The processes are forked from one launcher process
that imported the agent's stack once, instead of each starting an interpreter that imports
PyTorch, the privacy accountants and SciPy again: on a two-core machine five sites used to
spend about ten seconds importing before the first could enrol.

Isolation: the launcher is a fresh interpreter (``python -m tutela.server.site_processes``)
that only imports modules and forks; it never runs a site, reads no data and holds no key.
After the fork a site shares nothing with its siblings, the launcher or the coordinator's
process (memory, keys, connections and files are its own). A site's interpreter is not
torn down module by module at exit (it flushes its streams and ends with ``os._exit``),
which also spares the second a process with PyTorch loaded takes to unload.

The launcher reads one request a line on its standard input (``{"args": [...], "log":
path}``), answers each with the child's pid and reports each child's exit status as it
ends; when its input closes (the deployment ended or died) it stops the sites it still
runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import runpy
import select
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

from tutela.errors import ServiceError

PRELOAD = ("tutela.cli.main", "tutela.server.agent")  # by name: the command line runs here
"""What the launcher imports once for every site it forks."""

_FLAGS = {
    "coordinator": "--coordinator",
    "name": "--name",
    "ca_file": "--ca",
    "cert_file": "--cert",
    "key_file": "--key",
    "enrol_token": "--enrol-token",
    "data": "--data",
    "policy_file": "--policy",
    "state_dir": "--state-dir",
    "seed": "--seed",
    "audit_key": "--audit-key",
}


def site_arguments(kwargs: dict[str, Any]) -> list[str]:
    """The ``tutela site run`` arguments for :func:`~tutela.server.agent.run_site` kwargs."""
    args = ["site", "run"]
    for key, flag in _FLAGS.items():
        if kwargs.get(key) is not None:
            args += [flag, str(kwargs[key])]
    return args


def site_command(kwargs: dict[str, Any]) -> list[str]:
    """The ``tutela site run`` command line for :func:`~tutela.server.agent.run_site` kwargs
    (what an operator would type; what :class:`SiteProcess` runs)."""
    return [sys.executable, "-m", "tutela", *site_arguments(kwargs)]


class _Launcher:
    """The parent's side of the launcher process: start requests out, pids and exits in."""

    def __init__(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tutela.server.site_processes"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        assert self._proc.stdin is not None
        assert self._proc.stdout is not None
        self._in: IO[bytes] = self._proc.stdin
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._started: list[int] = []
        self._exits: dict[int, int] = {}
        self._reader = threading.Thread(
            target=self._read, args=(self._proc.stdout,), name="site launcher", daemon=True
        )
        self._reader.start()

    def alive(self) -> bool:
        return self._proc.poll() is None

    def _read(self, stream: IO[bytes]) -> None:
        for line in stream:
            message = json.loads(line)
            with self._changed:
                if "pid" in message:
                    self._started.append(int(message["pid"]))
                else:
                    self._exits[int(message["exit"])] = int(message["code"])
                self._changed.notify_all()
        with self._changed:  # the launcher ended: whatever it ran is gone with it
            self._changed.notify_all()

    def start(self, args: list[str], log: Path) -> int:
        request = json.dumps({"args": args, "log": str(log)}) + "\n"
        with self._changed:
            seen = len(self._started)
            try:
                self._in.write(request.encode())
                self._in.flush()
            except OSError as exc:
                raise ServiceError(f"the site launcher is gone: {exc}") from None
            ok = self._changed.wait_for(
                lambda: len(self._started) > seen or not self.alive(), timeout=60
            )
            if not ok or len(self._started) <= seen:
                raise ServiceError("the site launcher did not start the site")
            return self._started[seen]

    def exit_code(self, pid: int, timeout: float | None) -> int | None:
        with self._changed:
            self._changed.wait_for(lambda: pid in self._exits or not self.alive(), timeout)
            if pid in self._exits:
                return self._exits[pid]
            return None if self.alive() else -signal.SIGKILL


_launcher: _Launcher | None = None
_launcher_lock = threading.Lock()


def prewarm() -> None:
    """Start the launcher now, so that its imports overlap with the caller's set-up."""
    _shared_launcher()


def _shared_launcher() -> _Launcher:
    global _launcher  # noqa: PLW0603 - one launcher per process, started on first use
    with _launcher_lock:
        if _launcher is None or not _launcher.alive():
            _launcher = _Launcher()
        return _launcher


class SiteProcess:
    """One site agent in its own process (the subset of :class:`subprocess.Popen` the
    deployments use: :meth:`poll`, :meth:`wait`, :meth:`terminate`, :meth:`kill`).

    Args:
        kwargs: :func:`~tutela.server.agent.run_site` keyword arguments.
        log: the file the site's output goes to (created, or emptied, owner-only).

    Attributes:
        args: the equivalent command line (for messages).
        pid: the site's process id.

    Raises:
        ServiceError: the launcher could not start the site.
    """

    def __init__(self, kwargs: dict[str, Any], log: Path) -> None:
        self.args = site_command(kwargs)
        self._launcher = _shared_launcher()
        self.pid = self._launcher.start(site_arguments(kwargs), Path(log))

    @property
    def returncode(self) -> int | None:
        """The exit status (negative: the signal that ended it), or None while it runs."""
        return self._launcher.exit_code(self.pid, 0)

    def poll(self) -> int | None:
        """The exit status if the process ended, else None."""
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the process to end and return its exit status.

        Raises:
            subprocess.TimeoutExpired: still running after ``timeout`` seconds.
        """
        code = self._launcher.exit_code(self.pid, timeout)
        if code is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
        return code

    def _signal(self, sig: int) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        """Ask the process to stop (SIGTERM)."""
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """Stop the process at once (SIGKILL)."""
        self._signal(signal.SIGKILL)


# ---- the launcher process -------------------------------------------------------------------


def _run_site(args: list[str], log: str) -> int:
    """In the forked child: no input, output to ``log`` (the launcher's pipes are replaced,
    so the site holds none of them), then the CLI; returns the exit status."""
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an older log keeps its mode otherwise
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = open(1, "w", buffering=1, encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.argv = ["tutela", *args]
    try:  # what `python -m tutela site run ...` runs, in this interpreter
        runpy.run_module("tutela", run_name="__main__", alter_sys=True)
    except SystemExit as done:
        code = done.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
        return 1
    return 0


def _reap(children: set[int], out: IO[str]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        children.discard(pid)
        out.write(json.dumps({"exit": pid, "code": os.waitstatus_to_exitcode(status)}) + "\n")
        out.flush()


def _serve() -> None:
    """The launcher: import once, then fork a site per request until the input closes."""
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    out = sys.stdout
    requests = sys.stdin.buffer
    children: set[int] = set()
    pending = b""
    while True:
        ready, _, _ = select.select([requests], [], [], 0.05)
        _reap(children, out)
        if not ready:
            continue
        chunk = os.read(requests.fileno(), 65536)
        if not chunk:
            break
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            request = json.loads(line)
            pid = os.fork()
            if pid == 0:  # the site
                code = _run_site([str(a) for a in request["args"]], str(request["log"]))
                with contextlib.suppress(Exception):
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(code)
            children.add(pid)
            out.write(json.dumps({"pid": pid}) + "\n")
            out.flush()
    for pid in children:  # the deployment is gone: so are its sites
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


if __name__ == "__main__":
    _serve()
