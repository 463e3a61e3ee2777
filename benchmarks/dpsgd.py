"""DP-SGD step cost on CPU: plain PyTorch vs Opacus (hooks, ghost) vs Tutela (fast, exact).

MLP 784-512-256-10 (535,818 parameters), batch 256, random data, one torch thread.
All modes run in this process, interleaved in rounds, after warm-up; the table reports the
median per-step process CPU time (the machine may be shared, so wall time is noisier) and
throughput, and peak extra memory measured per mode in a fresh subprocess (peak RSS
during the steps above the RSS after setup, via a /proc/self VmHWM reset). Ratios are
against plain PyTorch measured in the same run. A second table splits each step into
forward, backward, per-example norms, clipping, noise (drawn and added on the grid) and the
optimiser step, from separately timed, interleaved steps.

Opacus 1.6.0 is imported from the main environment if it is there, else from
``.bench-venvs/opacus-1.6.0`` (installed there on first use with ``pip --target
--no-deps``: it runs on this environment's torch, numpy and scipy, and nothing is added to
the main environment). ``--no-opacus`` leaves it out.

Usage: python benchmarks/dpsgd.py [--quick] [--json] [--no-opacus]
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
from typing import Any

import torch
from torch import nn

BATCH = 256
SIGMA = 1.1
CLIP = 1.0
N_DATA = 60_000
ROOT = Path(__file__).resolve().parents[1]
OPACUS_DIR = ROOT / ".bench-venvs" / "opacus-1.6.0"


def ensure_opacus() -> str:
    """Make ``import opacus`` work; return "" or why it cannot."""
    try:
        import opacus
    except ImportError:
        pass
    else:
        return ""
    if not (OPACUS_DIR / "opacus").is_dir():
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
             str(OPACUS_DIR), "opacus==1.6.0", "opt_einsum==3.4.0"],
            capture_output=True, text=True, check=False, timeout=900,
        )  # fmt: skip
        if proc.returncode != 0:
            return (proc.stderr.strip().splitlines() or ["pip failed"])[-1]
    sys.path.insert(0, str(OPACUS_DIR))
    try:
        import opacus  # noqa: F401
    except ImportError as exc:
        return str(exc)
    return ""


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
    if mode.startswith("tutela"):
        from tutela.dp.sgd import Clipping, make_private

        # "tutela": ghost norms and the clipped sum from one backward pass, secure noise
        # (AES-256-CTR CSPRNG, grid-rounded), the defaults.
        # "tutela_exact": the exact fallback (torch.func per-example gradients) for every layer.
        # "tutela_torchgen": torch.Generator noise, to show what the secure noise costs.
        rng = torch.Generator().manual_seed(0) if mode == "tutela_torchgen" else None
        clipping = Clipping.PER_SAMPLE if mode == "tutela_exact" else Clipping.GHOST
        private = make_private(
            model, opt, loader, noise_multiplier=SIGMA, max_grad_norm=CLIP, rng=rng,
            clipping=clipping,
        )  # fmt: skip
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


MODES = ("plain", "opacus_hooks", "opacus_ghost", "tutela", "tutela_exact", "tutela_torchgen")
PHASES = ("forward", "backward", "norms", "clipping", "noise", "step")


def make_phased_step(mode: str) -> Callable[[], dict[str, float]]:
    """One step of ``mode`` split into timed phases (process CPU seconds per phase).

    Tutela's step is replayed from the optimiser's own parts, in the order
    ``DPOptimizer.step`` runs them. Opacus and plain PyTorch clip, noise and update inside
    ``backward()`` / ``step()``, so only those phases are split for them.
    """
    torch.manual_seed(0)
    model = _model()
    x, y = _data()
    loss_fn = nn.CrossEntropyLoss()
    opt: Any = torch.optim.SGD(model.parameters(), lr=0.05)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.zeros(N_DATA, 784), torch.zeros(N_DATA)),
        batch_size=BATCH,
    )
    clock = time.process_time
    crit: Any = loss_fn
    if mode.startswith("opacus"):
        from opacus import PrivacyEngine

        warnings.filterwarnings("ignore")
        engine = PrivacyEngine(accountant="prv")
        kwargs: dict[str, Any] = {"poisson_sampling": False}
        if mode == "opacus_ghost":
            kwargs.update(criterion=loss_fn, grad_sample_mode="ghost")
        made = engine.make_private(
            module=model, optimizer=opt, data_loader=loader, noise_multiplier=SIGMA,
            max_grad_norm=CLIP, **kwargs,
        )  # fmt: skip
        model, opt = made[0], made[1]
        if mode == "opacus_ghost":
            crit = made[2]
    if not mode.startswith("tutela"):

        def plain_like() -> dict[str, float]:
            t0 = clock()
            opt.zero_grad()
            loss = crit(model(x), y)
            t1 = clock()
            loss.backward()
            t2 = clock()
            opt.step()
            t3 = clock()
            return {"forward": t1 - t0, "backward": t2 - t1, "step": t3 - t2}

        return plain_like
    from tutela.dp.sgd import Clipping, make_private

    rng = torch.Generator().manual_seed(0) if mode == "tutela_torchgen" else None
    clipping = Clipping.PER_SAMPLE if mode == "tutela_exact" else Clipping.GHOST
    dp = make_private(
        model, opt, loader, noise_multiplier=SIGMA, max_grad_norm=CLIP, rng=rng,
        clipping=clipping,
    ).optimizer  # fmt: skip
    eng = dp._engine

    def tutela() -> dict[str, float]:
        t0 = clock()
        dp.zero_grad()
        loss = loss_fn(model(x), y)
        t1 = clock()
        loss.backward()
        t2 = clock()
        dp._check_covered()
        grads = eng.per_example_norms()
        t3 = clock()
        sums = eng.clip(grads, dp.max_grad_norm)
        dp.last_norms = grads.norms
        t4 = clock()
        for p in dp._params:
            p.grad = dp._release(p, sums.pop(p, None))
        eng.clear()
        t5 = clock()
        dp.accountant.compose(dp.event)
        dp.steps_taken += 1
        dp.optimizer.step()
        t6 = clock()
        times = (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5)
        return dict(zip(PHASES, times, strict=True))

    return tutela


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
        f"{'dpsgd.ensure_opacus()' if mode.startswith('opacus') else ''}\n"
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
    parser.add_argument("--no-opacus", action="store_true", help="leave Opacus out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    why = "not asked for" if args.no_opacus else ensure_opacus()
    modes = [m for m in MODES if not (why and m.startswith("opacus"))]
    if why:
        print(f"Opacus left out: {why}")
    rounds, per_round = (2, 2) if args.quick else (5, 4)
    steps = {m: make_step(m) for m in modes}
    for m in modes:  # warm-up
        for _ in range(2):
            steps[m]()
    times: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(rounds):
        for m in modes:
            t0 = time.process_time()
            for _ in range(per_round):
                steps[m]()
            times[m].append((time.process_time() - t0) / per_round)
    med = {m: statistics.median(v) for m, v in times.items()}
    # the phase split, in its own interleaved rounds (Opacus hooks is too slow to repeat)
    phased_modes = [m for m in modes if m != "opacus_hooks"]
    phased = {m: make_phased_step(m) for m in phased_modes}
    for m in phased_modes:
        for _ in range(2):
            phased[m]()
    split: dict[str, dict[str, list[float]]] = {m: {} for m in phased_modes}
    for _ in range(rounds * per_round):
        for m in phased_modes:
            for phase, secs in phased[m]().items():
                split[m].setdefault(phase, []).append(secs)
    phase_ms = {
        m: {ph: statistics.median(v) * 1e3 for ph, v in split[m].items()} for m in phased_modes
    }
    mem = {m: _peak_memory(m, 2 if args.quick else 4) for m in modes}
    base = med["plain"]
    ghost = med.get("opacus_ghost")
    print(f"MLP 784-512-256-10, batch {BATCH}, CPU, 1 thread, median of {rounds}x{per_round} steps")
    print("baseline: plain PyTorch SGD, same batch, same run")
    print(f"{'mode':<16}{'CPU ms/step':>12}{'samples/s':>11}{'x plain':>9}"
          f"{'x opacus ghost':>16}{'peak MB':>9}")  # fmt: skip
    for m in modes:
        vs_ghost = f"{ghost / med[m]:>16.2f}" if ghost else f"{'-':>16}"
        print(
            f"{m:<16}{med[m] * 1e3:>12.1f}{BATCH / med[m]:>11.0f}{med[m] / base:>9.2f}"
            f"{vs_ghost}{mem[m]:>9.0f}"
        )
    print()
    print("per-step phases, CPU ms (median of separately timed steps; '-': inside another phase)")
    print(f"{'mode':<16}" + "".join(f"{ph:>10}" for ph in PHASES) + f"{'total':>9}{'x plain':>9}")
    plain_total = sum(phase_ms["plain"].values())
    for m in phased_modes:
        row = phase_ms[m]
        cells = "".join(f"{row[ph]:>10.2f}" if ph in row else f"{'-':>10}" for ph in PHASES)
        total = sum(row.values())
        print(f"{m:<16}{cells}{total:>9.2f}{total / plain_total:>9.2f}")
    if args.json:
        print(json.dumps({"ms": {m: v * 1e3 for m, v in med.items()}, "peak_mb": mem,
                          "phases_ms": phase_ms}))  # fmt: skip


if __name__ == "__main__":
    main()
