"""Run the real ``tutela`` command in a subprocess (end-to-end CLI tests)."""

import subprocess
import sys


def tutela(*args: str, cwd, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tutela", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
