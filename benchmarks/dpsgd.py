"""DP-SGD step cost on CPU: plain PyTorch vs Opacus (hooks, ghost) vs Tutela.

MLP 784-512-256-10 (535,818 parameters), batch 256, random data, one torch thread.
All modes run in this process, interleaved in rounds, after warm-up; the table reports the
median per-step process CPU time (the machine may be shared, so wall time is noisier) and
throughput, and peak extra memory measured per mode in a fresh subprocess (peak RSS
during the steps above the RSS after setup, via a /proc/self VmHWM reset). Ratios are
against plain PyTorch measured in the same run.

Usage: python benchmarks/dpsgd.py [--quick]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

BATCH = 256
SIGMA = 1.1
CLIP = 1.0
N_DATA = 60_000


def _model() -> nn.Module:
    return nn.Sequential(
        nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10)
    )


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(BATCH, 784, generator=g), torch.randint(0, 10, (BATCH,), generator=g)


def make_step(mode: str) -> Callable[[], None]:
    """Return a closure running one training step of ``mode`` on a fixed batch."""
    torch.manual_seed(0)
    model = _model()
    x, y = _data()
    loss_fn = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.zeros(N_DATA, 784), torch.zeros(N_DATA)),
        batch_size=BATCH,
    )
    if mode == "plain":

        def step() -> None:
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()

        return step
    if mode in ("tutela", "tutela_torchgen"):
        from tutela.dp.sgd import make_private

        # "tutela": secure noise (AES-CTR CSPRNG, grid-rounded), the default.
        # "tutela_torchgen": torch.Generator noise, to show what the secure noise costs.
        rng = torch.Generator().manual_seed(0) if mode == "tutela_torchgen" else None
        private = make_private(
            model, opt, loader, noise_multiplier=SIGMA, max_grad_norm=CLIP, rng=rng
        )
        dp_opt = private.optimizer

        def step() -> None:
            dp_opt.zero_grad()
            loss_fn(model(x), y).backward()
            dp_opt.step()

        return step
    from opacus import PrivacyEngine

    warnings.filterwarnings("ignore")
    engine = PrivacyEngine(accountant="prv")
    if mode == "opacus_hooks":
        model, opt, _ = engine.make_private(
            module=model, optimizer=opt, data_loader=loader, noise_multiplier=SIGMA,
            max_grad_norm=CLIP, poisson_sampling=False,
        )  # fmt: skip

        def step() -> None:
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()

        return step
    if mode == "opacus_ghost":
        model, opt, crit, _ = engine.make_private(
            module=model, optimizer=opt, data_loader=loader, criterion=loss_fn,
            noise_multiplier=SIGMA, max_grad_norm=CLIP, grad_sample_mode="ghost",
            poisson_sampling=False,
        )  # fmt: skip

        def step() -> None:
            opt.zero_grad()
            crit(model(x), y).backward()
            opt.step()

        return step
    raise ValueError(mode)


MODES = ("plain", "opacus_hooks", "opacus_ghost", "tutela", "tutela_torchgen")


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure_peak(mode: str, steps: int) -> float:
    """Peak RSS above the RSS after setup (MB) over ``steps`` steps (the peak is reset first)."""
    step = make_step(mode)
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    base = _status_kb("VmRSS")
    for _ in range(steps):  # the first step's lazily created state counts too
        step()
    return (_status_kb("VmHWM") - base) / 1024


def _peak_memory(mode: str, steps: int) -> float:
    """:func:`measure_peak` in a fresh process, so modes do not share allocator state."""
    code = (
        "import sys, torch; torch.set_num_threads(1)\n"
        "sys.path.insert(0, 'benchmarks'); import dpsgd\n"
        f"print(dpsgd.measure_peak({mode!r}, {steps}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=900
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    parser.add_argument("--json", action="store_true", help="also print raw numbers as JSON")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rounds, per_round = (2, 2) if args.quick else (5, 4)
    steps = {m: make_step(m) for m in MODES}
    for m in MODES:  # warm-up
        for _ in range(2):
            steps[m]()
    times: dict[str, list[float]] = {m: [] for m in MODES}
    for _ in range(rounds):
        for m in MODES:
            t0 = time.process_time()
            for _ in range(per_round):
                steps[m]()
            times[m].append((time.process_time() - t0) / per_round)
    med = {m: statistics.median(v) for m, v in times.items()}
    mem = {m: _peak_memory(m, 2 if args.quick else 4) for m in MODES}
    base = med["plain"]
    print(f"MLP 784-512-256-10, batch {BATCH}, CPU, 1 thread, median of {rounds}x{per_round} steps")
    print(f"{'mode':<16}{'CPU ms/step':>12}{'samples/s':>11}{'x plain':>9}"
          f"{'x opacus ghost':>16}{'peak MB':>9}")  # fmt: skip
    for m in MODES:
        print(
            f"{m:<16}{med[m] * 1e3:>12.1f}{BATCH / med[m]:>11.0f}{med[m] / base:>9.2f}"
            f"{med['opacus_ghost'] / med[m]:>16.2f}{mem[m]:>9.0f}"
        )
    if args.json:
        print(json.dumps({"ms": {m: v * 1e3 for m, v in med.items()}, "peak_mb": mem}))


if __name__ == "__main__":
    main()
