"""SMPC between sites as separate processes, through a real coordinator's relay.

Each party is ``python -m tutela smpc ...`` in its own process with its own site certificate;
the coordinator is the real service (TLS, SQLite). The tests play a curious coordinator
(reading everything it stored), a missing party, and a party that is not in the session.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from tutela.server.smpc_sessions import SmpcMessageRow

from .linkage_data import two_hospitals
from .network import Deployment, finish, party, write_csv


def _psi(
    d: Deployment, site: str, session: str, parties: list[str], data: Path, *extra: str
) -> list[str]:
    args = ["psi", *d.credentials(site), "--session", session, "--data", str(data), "--json"]
    for p in parties:
        args += ["--party", p]
    return args + list(extra)


def _stored_relay(d: Deployment, session: str) -> list[bytes]:
    """Everything the coordinator can read of the session's relayed traffic."""
    assert d.server.coordinator is not None
    store = d.server.coordinator.store
    with store.read() as s:
        rows = s.scalars(select(SmpcMessageRow).filter_by(session_id=session)).all()
        return [
            store.unseal(r.blob, f"smpc/{session}/{r.step}/{r.sender}/{r.recipient}") for r in rows
        ]


def test_psi_between_two_processes_links_the_true_pairs(
    deployment: Deployment, tmp_path: Path
) -> None:
    a_rows, b_rows, truth = two_hospitals(80, 70, 30, seed=11)
    a_csv = write_csv(tmp_path / "a.csv", a_rows)
    b_csv = write_csv(tmp_path / "b.csv", b_rows)
    parties = ["hospital-a", "hospital-b"]
    procs = [
        party(_psi(deployment, site, "link-1", parties, data, "--out", str(tmp_path / out)))
        for site, data, out in (
            ("hospital-a", a_csv, "a-linked.csv"),
            ("hospital-b", b_csv, "b-linked.csv"),
        )
    ]
    results = finish(procs)
    for code, out, err in results:
        assert code == 0, err
        assert json.loads(out)["size"] == len(truth) == 30
    a_linked = pd.read_csv(tmp_path / "a-linked.csv", dtype=str)
    b_linked = pd.read_csv(tmp_path / "b-linked.csv", dtype=str)
    assert list(a_linked["link"]) == list(b_linked["link"])
    index_a = {tuple(r.values()): i for i, r in enumerate(a_rows)}
    index_b = {tuple(r.values()): i for i, r in enumerate(b_rows)}
    pairs = {
        (
            index_a[tuple(ra[["given_name", "family_name", "date_of_birth"]].fillna(""))],
            index_b[tuple(rb[["given_name", "family_name", "date_of_birth"]].fillna(""))],
        )
        for (_, ra), (_, rb) in zip(a_linked.iterrows(), b_linked.iterrows(), strict=True)
    }
    assert pairs == truth

    # the audit record of the computation: who, what, what was released
    events = [e for e in deployment.audit() if str(e["resource"]) == "smpc/link-1"]
    actions = [e["action"] for e in events]
    assert actions[0] == "smpc.open" and actions.count("smpc.join") == 2
    complete = [e for e in events if e["action"] == "smpc.complete"]
    assert len(complete) == 1
    detail = complete[0]["detail"]
    assert isinstance(detail, dict)
    assert detail["function"] == "psi-intersection" and detail["parties"] == parties
    assert {site: r["size"] for site, r in detail["released"].items()} == {
        "hospital-a": 30,
        "hospital-b": 30,
    }


def test_coordinator_stores_no_plaintext_of_shares_or_keys(
    deployment: Deployment, tmp_path: Path
) -> None:
    """SHARES mode with the dealer as a third process: the shares add up to the membership
    bits, and nothing the coordinator stored (unsealed with its own keys) contains a PSI
    message header, a blocking key, a share, or the dealer's correlation."""
    a_rows, b_rows, truth = two_hospitals(40, 40, 15, seed=12)
    a_csv = write_csv(tmp_path / "a.csv", a_rows)
    b_csv = write_csv(tmp_path / "b.csv", b_rows)
    parties = ["hospital-a", "hospital-b", "dealer"]
    extra = ["--mode", "shares", "--keys", "phonetic+dob"]
    dealer_args = ["dealer", *deployment.credentials("dealer"), "--session", "shares-1", "--json"]
    for p in parties:
        dealer_args += ["--party", p]
    procs = [
        party(_psi(deployment, site, "shares-1", parties, data, *extra, "--out", str(out)))
        for site, data, out in (
            ("hospital-a", a_csv, tmp_path / "a.csv.shares"),
            ("hospital-b", b_csv, tmp_path / "b.csv.shares"),
        )
    ]
    procs.append(party(dealer_args))
    results = finish(procs)
    for code, _out, err in results:
        assert code == 0, err
    share_a = pd.read_csv(tmp_path / "a.csv.shares", dtype={"share": "uint64"})["share"].to_numpy()
    share_b = pd.read_csv(tmp_path / "b.csv.shares", dtype={"share": "uint64"})["share"].to_numpy()
    member = np.zeros(40, np.uint64)
    member[[i for i, _ in truth]] = 1
    assert np.array_equal(share_a + share_b, member)
    assert json.loads(results[1][1])["size"] is None  # the responder learns nothing

    stored = _stored_relay(deployment, "shares-1")
    assert len(stored) == 6  # size, mask, correlation, request, response, finish
    blob = b"".join(stored)
    assert b"TUPS" not in blob
    from tutela.smpc.linkage import BlockingKey, blocking_keys

    for rows in (a_rows, b_rows):
        for (key,) in blocking_keys(rows, (BlockingKey.PHONETIC_DOB,)):
            assert key is not None and key not in blob
            assert key.split(b"\x00")[1].split(b"|")[1] not in blob  # not even the birth date
    for share in (*share_a.tolist(), *share_b.tolist()):
        assert int(share).to_bytes(8, "little") not in blob


def test_a_missing_party_aborts_cleanly_naming_it(deployment: Deployment, tmp_path: Path) -> None:
    a_csv = write_csv(tmp_path / "a.csv", two_hospitals(5, 5, 2)[0])
    parties = ["hospital-a", "hospital-c"]
    args = _psi(deployment, "hospital-a", "lonely", parties, a_csv, "--timeout", "2")
    ((code, out, err),) = finish([party(args)])
    assert code == 1 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "hospital-c" in lines[0] and "did not join" in lines[0]
    aborts = [e for e in deployment.audit() if e["action"] == "smpc.abort"]
    assert len(aborts) == 1
    detail = aborts[0]["detail"]
    assert isinstance(detail, dict) and detail["missing"] == ["hospital-c"]
    assert aborts[0]["resource"] == "smpc/lonely" and aborts[0]["outcome"] == "failed"


def test_a_party_that_stops_mid_protocol_is_named(deployment: Deployment, tmp_path: Path) -> None:
    """The responder joins and verifies, then never answers: the requester aborts naming it
    and the responder, polling later, sees the abort too."""
    from tutela.errors import ProtocolAbort
    from tutela.server import pki
    from tutela.server.agent.smpc import SmpcChannel, SmpcEndpoint

    a_csv = write_csv(tmp_path / "a.csv", two_hospitals(5, 5, 2)[0])
    parties = ["hospital-a", "hospital-b"]
    paths = pki.PkiLayout(deployment.pki_dir).site("hospital-b")
    quiet = SmpcChannel(
        SmpcEndpoint(deployment.url, deployment.ca, paths.cert, paths.key),
        session="stall",
        function="psi-intersection",
        parties=parties,
        timeout_s=600,  # generous: the other party is a fresh process on a shared machine
    )
    proc = party(_psi(deployment, "hospital-a", "stall", parties, a_csv, "--timeout", "3"))
    quiet.open()  # joins and verifies hospital-a's key, then sends nothing
    ((code, _out, err),) = finish([proc])
    assert code == 1
    assert "hospital-b" in err and "sent nothing for step psi-response" in err
    with pytest.raises(ProtocolAbort, match="missing: hospital-b"):
        quiet.receive("psi-request", "hospital-a")
    quiet.close()


def test_only_parties_use_a_session(deployment: Deployment, tmp_path: Path) -> None:
    """A site that is not a party can neither read the session nor post to it, and a party
    cannot join with another function or party list."""
    from tutela.errors import ProtocolAbort, TransportError
    from tutela.server import pki
    from tutela.server.agent.smpc import SmpcChannel, SmpcEndpoint

    def channel(site: str, parties: list[str], function: str = "psi-intersection") -> SmpcChannel:
        paths = pki.PkiLayout(deployment.pki_dir).site(site)
        return SmpcChannel(
            SmpcEndpoint(deployment.url, deployment.ca, paths.cert, paths.key),
            session="private",
            function=function,
            parties=parties,
            timeout_s=1,
        )

    first = channel("hospital-a", ["hospital-a", "hospital-b"])
    with pytest.raises(ProtocolAbort, match="hospital-b"):
        first.open()  # hospital-b never joins
    other = channel("hospital-c", ["hospital-c", "hospital-a"])
    with pytest.raises(TransportError, match="403"):
        other._request("GET", "")
    wrong = channel("hospital-b", ["hospital-a", "hospital-b"], function="psi-cardinality")
    with pytest.raises(ProtocolAbort, match="runs 'psi-intersection'"):
        wrong.open()


def _tables(seed: int) -> list[pd.DataFrame]:
    rng = np.random.default_rng(seed)
    return [
        pd.DataFrame({"age": rng.uniform(18, 95, n).round(1), "sbp": rng.uniform(90, 190, n)})
        for n in (60, 90, 45)
    ]


EDGES = list(range(0, 129, 8))


def test_joint_statistics_across_three_processes(deployment: Deployment, tmp_path: Path) -> None:
    tables = _tables(3)
    parties = ["hospital-a", "hospital-b", "hospital-c"]
    procs = []
    for site, table in zip(parties, tables, strict=True):
        data = tmp_path / f"{site}.csv"
        table.to_csv(data, index=False)
        args = ["stats", *deployment.credentials(site), "--session", "stats-1", "--data", str(data)]
        args += ["--columns", "age,sbp", "--bounds", "128,256", "--histogram", "age"]
        args += ["--edges", ",".join(str(e) for e in EDGES), "--quantiles", "0.1,0.5,0.9"]
        args += ["--json"]
        for p in parties:
            args += ["--party", p]
        procs.append(party(args))
    results = finish(procs)
    pooled = pd.concat(tables)
    for code, out, err in results:
        assert code == 0, err
        got = json.loads(out)
        assert got["count"] == pytest.approx(195, abs=1e-4)
        assert got["mean"]["sbp"] == pytest.approx(pooled["sbp"].mean(), abs=1e-3)
        assert got["variance"]["age"] == pytest.approx(pooled["age"].var(), rel=1e-4)
        assert np.allclose(got["covariance"], np.cov(pooled.to_numpy().T), rtol=1e-4, atol=1e-2)
        counts = np.histogram(pooled["age"], bins=EDGES)[0]
        assert np.allclose(got["histogram"]["counts"], counts, atol=1e-4)
        expected = np.quantile(pooled["age"], [0.1, 0.5, 0.9])  # within one bin (width 8)
        assert np.all(np.abs(np.asarray(got["quantiles"]["values"]) - expected) <= 8.0)
    complete = [e for e in deployment.audit() if e["action"] == "smpc.complete"]
    assert len(complete) == 1 and complete[0]["resource"] == "smpc/stats-1"


def test_dp_statistics_charge_each_party_ledger_before_sending(
    deployment: Deployment, tmp_path: Path
) -> None:
    """Each party charges its own ledger before anything leaves it; a party whose budget
    is spent refuses the next release without joining or sending anything."""
    import threading

    from tutela.dp.ledger import PrivacyLedger
    from tutela.errors import BudgetExceeded
    from tutela.server import pki
    from tutela.server.agent.smpc import SmpcChannel, SmpcEndpoint
    from tutela.server.agent.smpc_jobs import StatsPrivacy, run_stats, stats_function
    from tutela.smpc.joint import StatsSpec

    spec = StatsSpec(("age", "sbp"), (128.0, 256.0))
    tables = _tables(4)[:2]
    parties = ["hospital-a", "hospital-b"]

    def plan(site: str) -> StatsPrivacy:
        return StatsPrivacy(1.0, 1e-6, tmp_path / site, budget=1.2)

    def channel(site: str, session: str) -> SmpcChannel:
        paths = pki.PkiLayout(deployment.pki_dir).site(site)
        return SmpcChannel(
            SmpcEndpoint(deployment.url, deployment.ca, paths.cert, paths.key),
            session=session,
            function=stats_function(spec, plan(site)),
            parties=parties,
            timeout_s=120,
        )

    results: dict[str, dict] = {}

    def work(site: str, table: pd.DataFrame) -> None:
        with channel(site, "dp-1") as c:
            results[site] = run_stats(
                c, {k: table[k].to_numpy() for k in table}, spec, privacy=plan(site)
            )

    threads = [threading.Thread(target=work, args=a) for a in zip(parties, tables, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert set(results) == set(parties)
    assert results["hospital-a"]["count"] == results["hospital-b"]["count"]  # one noised total
    assert results["hospital-a"]["count"] != pytest.approx(150, abs=1e-3)  # noised
    assert results["hospital-a"]["count"] == pytest.approx(150, abs=60)  # sigma about 6
    for site in parties:
        ledger = PrivacyLedger(tmp_path / site / "ledger-smpc.sqlite")
        assert [r.label for r in ledger.records("smpc")] == ["smpc joint statistics, session dp-1"]
        assert 0.9 < ledger.spent("smpc") <= 1.0 + 1e-6
    # a second release would pass hospital-a's budget of 1.2: refused before joining
    with channel("hospital-a", "dp-2") as c, pytest.raises(BudgetExceeded):
        run_stats(
            c, {k: tables[0][k].to_numpy() for k in tables[0]}, spec, privacy=plan("hospital-a")
        )
    assert not [e for e in deployment.audit() if e["resource"] == "smpc/dp-2"]


def test_vertical_training_on_psi_linked_records_matches_plaintext(
    deployment: Deployment, tmp_path: Path
) -> None:
    """Two hospitals link their patients with PSI, then train logistic regression on the
    linked rows (hospital A holds 12 lab columns, B the other 18 and the outcome) with the
    dealer as a third process. The model equals float64 gradient descent on the true joined
    table within 1e-3 per weight."""
    from sklearn.datasets import load_breast_cancer

    from tutela.smpc.vertical import VerticalPlan, plaintext_reference

    X, y = load_breast_cancer(return_X_y=True)
    a_rows, b_rows, truth = two_hospitals(130, 120, 100, seed=21)
    pairs = sorted(truth)
    row_of_a = {i: k for k, (i, _) in enumerate(pairs)}
    row_of_b = {j: k for k, (_, j) in enumerate(pairs)}
    spare = iter(range(len(pairs), len(y)))
    a_cols, b_cols = [f"lab{c}" for c in range(12)], [f"dx{c}" for c in range(18)]
    for i, row in enumerate(a_rows):
        k = row_of_a.get(i, next(spare))
        row.update(dict(zip(a_cols, X[k, :12].tolist(), strict=True)))
    for j, row in enumerate(b_rows):
        k = row_of_b.get(j, next(spare))
        row.update(dict(zip(b_cols, X[k, 12:].tolist(), strict=True)), outcome=int(y[k]))
    a_csv, b_csv = write_csv(tmp_path / "a.csv", a_rows), write_csv(tmp_path / "b.csv", b_rows)
    link = ["hospital-a", "hospital-b"]
    procs = [
        party(_psi(deployment, site, "link-2", link, data, "--out", str(tmp_path / out)))
        for site, data, out in (("hospital-a", a_csv, "a-l.csv"), ("hospital-b", b_csv, "b-l.csv"))
    ]
    for code, _out, err in finish(procs):
        assert code == 0, err

    parties = [*link, "dealer"]
    common = ["--session", "train-1", "--iterations", "20", "--json"]
    for p in parties:
        common += ["--party", p]
    function = "train-vertical-i20-lr0.5-l20"
    procs = [
        party(["train", *deployment.credentials("hospital-a"), *common, "--data",
               str(tmp_path / "a-l.csv"), "--features", ",".join(a_cols)]),
        party(["train", *deployment.credentials("hospital-b"), *common, "--data",
               str(tmp_path / "b-l.csv"), "--features", ",".join(b_cols), "--label", "outcome"]),
        party(["dealer", *deployment.credentials("dealer"), "--function", function,
               *[c for c in common if c not in ("--iterations", "20")]]),
    ]  # fmt: skip
    results = finish(procs)
    for code, _out, err in results:
        assert code == 0, err
    weights = [np.asarray(json.loads(out)["weights"]) for _, out, _ in results[:2]]
    assert np.array_equal(weights[0], weights[1])

    def standardise(m: np.ndarray) -> np.ndarray:
        sd = m.std(axis=0)
        return (m - m.mean(axis=0)) / np.where(sd == 0, 1.0, sd)

    rows = np.arange(len(pairs))  # the joint order is A's row order, as the pairs are sorted
    plan = VerticalPlan(rows=len(pairs), widths=(12, 18), label_party=1, iterations=20)
    reference = plaintext_reference(
        [standardise(X[rows, :12]), standardise(X[rows, 12:])], y[rows], plan
    )
    assert np.max(np.abs(weights[0] - reference)) < 1e-3
    complete = [e for e in deployment.audit() if e["resource"] == "smpc/train-1"]
    assert [e["action"] for e in complete][-1] == "smpc.complete"


def _channels(d: Deployment, session: str, sites: list[str], timeout: float = 120) -> list:
    from tutela.server import pki
    from tutela.server.agent.smpc import SmpcChannel, SmpcEndpoint

    out = []
    for site in sites:
        paths = pki.PkiLayout(d.pki_dir).site(site)
        endpoint = SmpcEndpoint(d.url, d.ca, paths.cert, paths.key)
        out.append(SmpcChannel(endpoint, session, "test-relay", sites, timeout_s=timeout))
    return out


def _open_all(channels: list) -> None:
    import threading

    errors: list[BaseException] = []

    def run(c) -> None:  # type: ignore[no-untyped-def]
        try:
            c.open()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in channels]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    if errors:
        raise errors[0]


def test_a_coordinator_that_replays_a_message_into_another_step_is_caught(
    deployment: Deployment,
) -> None:
    """The coordinator copies a party's sealed message to another step: the recipient's
    decryption fails (the step is in the associated data) and it aborts naming the sender."""
    from tutela.errors import ProtocolAbort
    from tutela.server.smpc_sessions import SmpcMessageRow

    a, b = _channels(deployment, "replay", ["hospital-a", "hospital-b"], timeout=3)
    _open_all([a, b])
    a.send("step-1", "hospital-b", b"first")
    assert b.receive("step-1", "hospital-a") == b"first"
    assert deployment.server.coordinator is not None
    store = deployment.server.coordinator.store
    with store.session() as s:
        row = s.scalars(select(SmpcMessageRow).filter_by(session_id="replay")).one()
        body = store.unseal(row.blob, "smpc/replay/step-1/hospital-a/hospital-b")
        s.add(
            SmpcMessageRow(
                session_id="replay", step="step-2", sender="hospital-a", recipient="hospital-b",
                digest=row.digest, created_at=row.created_at,
                blob=store.seal(body, "smpc/replay/step-2/hospital-a/hospital-b"),
            )
        )  # fmt: skip
    with pytest.raises(ProtocolAbort, match="hospital-a: its message for step step-2 does not"):
        b.receive("step-2", "hospital-a")
    a.close()
    b.close()


def test_a_key_swapped_by_the_coordinator_is_refused(deployment: Deployment) -> None:
    """The coordinator replaces hospital-a's registered session key with one of its own: the
    peer refuses the session before sending anything (the key is not bound to hospital-a's
    certificate), and the abort names hospital-a."""
    from tutela.errors import ProtocolAbort
    from tutela.hazmat.kex import generate_x25519, x25519_public_bytes
    from tutela.server.agent.peers import bind_identity
    from tutela.server.smpc_sessions import SmpcMemberRow

    a, b = _channels(deployment, "swap", ["hospital-a", "hospital-b"], timeout=30)
    # hospital-a joins honestly (its key bound to its certificate) without waiting for b
    public = x25519_public_bytes(a._key)
    bound = bind_identity(
        a.endpoint.cert_file, a.endpoint.key_file, "smpc-session/swap", "hospital-a", public
    )
    a._request(
        "POST",
        "/join",
        json={
            "function": "test-relay",
            "parties": ["hospital-a", "hospital-b"],
            "timeout_s": 30,
            "key": {"public_key": public.hex(), **bound},
        },
    )
    assert deployment.server.coordinator is not None
    store = deployment.server.coordinator.store
    with store.session() as s:
        member = s.get(SmpcMemberRow, ("swap", "hospital-a"))
        assert member is not None
        entry = json.loads(member.join_json)
        entry["public_key"] = x25519_public_bytes(generate_x25519()).hex()
        member.join_json = json.dumps(entry)
    with pytest.raises(ProtocolAbort, match="hospital-a: its session key was refused"):
        b.open()
    aborts = [e for e in deployment.audit() if e["resource"] == "smpc/swap"]
    assert aborts[-1]["action"] == "smpc.abort"
    a.close()
    b.close()
