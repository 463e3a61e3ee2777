"""Site agents as operating-system processes, for the loopback deployments on one machine
(``tutela demo`` over the network, the query demo, tests and benchmarks).

Each hospital runs in a process of its own, as ``tutela site run`` with the same arguments
(:func:`site_command`): the same command-line entry, the same one-line errors and exit
status, its output in its own log file. The processes are forked from one launcher process
that imported the agent's stack once, instead of each starting an interpreter that imports
PyTorch, the privacy accountants and SciPy again: on a two-core machine five sites used to
spend about ten seconds importing before the first could enrol.

Isolation: the launcher is a fresh interpreter (``python -m tutela.server.site_processes``)
that only imports modules and forks; it never runs a site, reads no data and holds no key
(the sites' arguments pass through it, enrolment tokens among them, as they passed through
the command line before). After the fork a site shares nothing with its siblings, the
launcher or the coordinator's process (memory, keys, connections and files are its own);
it runs in the working directory and environment of the request that started it. A site's
interpreter is not torn down module by module at exit (it flushes its streams and ends with
``os._exit``), which also spares the second a process with PyTorch loaded takes to unload.

The launcher reads one request a line on its standard input (an id, the arguments, the
log, the working directory and the environment), answers each with the child's pid and
reports each child's exit status by request id as it ends. However it ends (its input
closed because the deployment ended or died, or a failure of its own) it stops the sites
it still runs and reaps them; a site whose launcher is killed outright gets SIGTERM from
the kernel (``PR_SET_PDEATHSIG``).
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
import time
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
    """The parent's side of the launcher process: start requests out (each with an id),
    the started pid and the exit status of each id in."""

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
        self._next = 0
        self._pids: dict[int, int] = {}
        self._exits: dict[int, int] = {}
        self._abandoned: set[int] = set()
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
                ident = int(message["id"])
                if "pid" in message:
                    self._pids[ident] = int(message["pid"])
                    if ident in self._abandoned:  # its start timed out: nobody holds it
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(self._pids[ident], signal.SIGKILL)
                else:
                    self._exits[ident] = int(message["code"])
                self._changed.notify_all()
        with self._changed:  # the launcher ended
            self._changed.notify_all()

    def start(self, args: list[str], log: Path) -> tuple[int, int]:
        """Ask for a site; returns its request id and pid."""
        with self._changed:
            ident = self._next
            self._next += 1
            request = {
                "id": ident,
                "args": args,
                "log": str(log),
                "cwd": str(Path.cwd()),
                "env": dict(os.environ),
            }
            try:
                self._in.write((json.dumps(request) + "\n").encode())
                self._in.flush()
            except OSError as exc:
                raise ServiceError(f"the site launcher is gone: {exc}") from None
            self._changed.wait_for(lambda: ident in self._pids or not self.alive(), timeout=120)
            if ident not in self._pids:
                self._abandoned.add(ident)
                raise ServiceError("the site launcher did not start the site")
            return ident, self._pids[ident]

    def exit_code(self, ident: int, timeout: float | None) -> int | None:
        """The site's exit status once the launcher reported it; None while it runs. A site
        whose launcher is gone is signalled by the kernel (see :func:`_run_site`) and counts
        as failed (1) once its process is gone."""
        with self._changed:
            self._changed.wait_for(lambda: ident in self._exits or not self.alive(), timeout)
            if ident in self._exits:
                return self._exits[ident]
            if self.alive():
                return None
            pid = self._pids.get(ident)
        return None if pid is not None and _running(pid) else 1


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live (not zombie) process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
        state = text.rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


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
        self._id, self.pid = self._launcher.start(site_arguments(kwargs), Path(log))

    @property
    def returncode(self) -> int | None:
        """The exit status (negative: the signal that ended it), or None while it runs."""
        return self._launcher.exit_code(self._id, 0)

    def poll(self) -> int | None:
        """The exit status if the process ended, else None."""
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the process to end and return its exit status.

        Raises:
            subprocess.TimeoutExpired: still running after ``timeout`` seconds.
        """
        code = self._launcher.exit_code(self._id, timeout)
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


def _die_with_parent() -> None:
    """Have the kernel send this process SIGTERM when its parent (the launcher) dies."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG


def _run_site(request: dict[str, Any], launcher: int) -> int:
    """In the forked child: the caller's working directory and environment, no input,
    output to the log (the launcher's pipes are replaced, so the site holds none of them),
    then the CLI; returns the exit status."""
    _die_with_parent()
    if os.getppid() != launcher:  # the launcher died before the line above
        return 1
    args, log = [str(a) for a in request["args"]], str(request["log"])
    os.chdir(str(request["cwd"]))
    os.environ.clear()
    os.environ.update({str(k): str(v) for k, v in dict(request["env"]).items()})
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
        if code is None or isinstance(code, int):
            return code or 0
        print(code, file=sys.stderr)  # as the interpreter prints a message it exits with
        return 1
    except BaseException:
        import traceback

        traceback.print_exc()
        return 1
    return 0


def _reap(children: dict[int, int], out: IO[str], block: bool = False) -> None:
    """Report every child that ended (``children``: pid -> request id)."""
    while children:
        try:
            pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        ident = children.pop(pid, None)
        if ident is not None:
            with contextlib.suppress(OSError, ValueError):
                out.write(json.dumps({"id": ident, "code": os.waitstatus_to_exitcode(status)}))
                out.write("\n")
                out.flush()


def _serve() -> None:
    """The launcher: import once, then fork a site per request until the input closes; on
    the way out, however it ends, stop the sites it still runs and reap them."""
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    out = sys.stdout
    requests = sys.stdin.buffer
    children: dict[int, int] = {}
    pending = b""
    me = os.getpid()
    try:
        while True:
            ready, _, _ = select.select([requests], [], [], 0.05)
            _reap(children, out)
            if not ready:
                continue
            chunk = os.read(requests.fileno(), 1 << 20)
            if not chunk:
                break
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                request = json.loads(line)
                pid = os.fork()
                if pid == 0:  # the site
                    code = 1
                    try:
                        code = _run_site(request, me)
                    finally:
                        with contextlib.suppress(Exception):
                            sys.stdout.flush()
                            sys.stderr.flush()
                        os._exit(code)
                children[pid] = int(request["id"])
                out.write(json.dumps({"id": int(request["id"]), "pid": pid}) + "\n")
                out.flush()
    finally:  # the deployment is gone, or this launcher failed: so are its sites
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while children and time.monotonic() < deadline:
            _reap(children, out)
            time.sleep(0.05)
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _reap(children, out, block=True)


if __name__ == "__main__":
    _serve()
