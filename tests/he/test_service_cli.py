"""HE as a service across processes, through the real CLI: ``tutela he serve`` in its own
process (its own TUTELA_HOME, no keyring), the owner's keygen, encrypt, predict, decrypt
and score in others; predictions match plaintext on every row of the test set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.he._service_fixtures import FEATURES, breast_cancer, logistic_file, make_pki

DATA = breast_cancer()


def tutela(*args: str, home: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TUTELA_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "tutela", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
    )


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("he-cli")
    pki = make_pki(root / "pki", "clinic-a")
    net = logistic_file(root / "model.safetensors", DATA)
    state = root / "state"
    env = {**os.environ, "TUTELA_HOME": str(root / "service-home")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tutela", "he", "serve", str(root / "model.safetensors"),
         "--pki", str(pki.root), "--state", str(state), "--port", "0"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not (state / "service.port").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"the service did not start: {proc.communicate()[1]}")
        time.sleep(0.1)
    url = f"https://127.0.0.1:{int((state / 'service.port').read_text())}"
    site = pki.site("clinic-a")
    tls = ["--service", url, "--ca", str(pki.ca.cert), "--cert", str(site.cert),
           "--cert-key", str(site.key)]  # fmt: skip
    csv = root / "patients.csv"
    table = pd.DataFrame(DATA.x_test, columns=FEATURES)
    table.insert(0, "patient_id", [f"p{i:04d}" for i in range(len(table))])  # never uploaded
    table.to_csv(csv, index=False)
    yield root, net, tls, csv, proc, state
    proc.terminate()
    proc.wait(timeout=30)


def test_keygen_encrypt_predict_decrypt_across_processes(deployment) -> None:
    root, net, tls, csv, proc, state = deployment
    home, keys = root / "owner-home", str(root / "keys")
    r = tutela(
        "he", "keygen", *tls[:4], "--cert", tls[5], "--cert-key", tls[7], "--keys", keys, home=home
    )
    assert r.returncode == 0, r.stderr
    assert (home / "keyring").exists()  # the secret key is under the owner's keyring
    r = tutela("he", "encrypt", str(csv), "--keys", keys, "--out", str(root / "q.bin"), home=home)
    assert r.returncode == 0, r.stderr
    assert b"patient_id" not in (root / "q.bin").read_bytes()
    r = tutela("he", "predict", str(root / "q.bin"), *tls, "--keys", keys,
               "--out", str(root / "r.bin"), home=home)  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = tutela("he", "decrypt", str(root / "r.bin"), "--keys", keys, "--json", home=home)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    logits = np.asarray(doc["logit"])
    plain = net.score_plain(DATA.x_test)
    assert np.max(np.abs(logits - plain)) <= doc["error_bound"]
    assert np.max(np.abs(logits - plain)) < 1e-4
    assert np.array_equal(logits > 0, plain > 0)
    assert np.mean((logits > 0) == DATA.y_test) == np.mean((plain > 0) == DATA.y_test)
    # the service's process: no keyring in its home, no secret key among what it stored
    assert not (root / "service-home" / "keyring").exists()
    assert proc.poll() is None
    secret = (root / "keys" / "secret.key.enc").read_bytes()
    for path in state.rglob("*"):
        if path.is_file():
            assert secret not in path.read_bytes()


def test_score_in_one_line(deployment) -> None:
    root, net, tls, csv, _proc, _state = deployment
    out = root / "scores.csv"
    r = tutela("he", "score", str(csv), *tls, "--keys", str(root / "keys-score"), "--out", str(out),
               home=root / "owner2")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "143 predictions" in r.stdout
    scores = pd.read_csv(out)
    assert np.max(np.abs(scores["logit"] - net.score_plain(DATA.x_test))) < 1e-4


def test_cli_errors_are_one_line(deployment) -> None:
    root, _net, tls, csv, _proc, _state = deployment
    home = root / "owner3"
    keys = str(root / "keys3")
    assert tutela("he", "keygen", *tls, "--keys", keys, home=home).returncode == 0
    partial = root / "partial.csv"
    pd.read_csv(csv).drop(columns=["f3"]).to_csv(partial, index=False)
    cases = [
        (("he", "encrypt", str(partial), "--keys", keys, "--out", str(root / "x.bin")),
         "error: the table lacks the model's feature column(s): f3"),
        (("he", "score", str(csv), "--service", "https://127.0.0.1:9", "--ca", tls[3],
          "--keys", keys), "error: cannot reach the HE service"),
        (("he", "decrypt", str(csv), "--keys", keys), "error: payload checksum mismatch"),
        (("he", "keygen", "--keys", keys), "error: give exactly one of --service or --card"),
        (("he", "serve", str(root / "nope"), "--pki", str(root), "--state", str(root / "s")),
         "error: no model at"),
    ]  # fmt: skip
    for args, start in cases:
        r = tutela(*args, home=home)
        assert r.returncode == 1, (args, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(start), (args, r.stderr)
