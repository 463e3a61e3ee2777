"""``tutela`` commands for the deployment: PKI, doctor, coordinator and site agent."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    import httpx

pki_app = typer.Typer(help="Certificates for the coordinator and the sites.", no_args_is_help=True)
server_app = typer.Typer(help="Run and administer the coordinator service.", no_args_is_help=True)
site_app = typer.Typer(help="Run a site agent beside a hospital's data.", no_args_is_help=True)

# Options shared by every command that talks to a running coordinator as an administrator.
CoordinatorOpt = Annotated[str, typer.Option("--coordinator", help="Coordinator URL.")]
CaOpt = Annotated[Path, typer.Option("--ca", help="The deployment's CA certificate.")]
TokenOpt = Annotated[
    str | None, typer.Option("--token", envvar="TUTELA_TOKEN", help="Bearer token.")
]
DataDirOpt = Annotated[Path, typer.Option("--data-dir", help="Where admin.token is.")]


@pki_app.command("init")
def pki_init(
    directory: Path = typer.Option(Path("pki"), "--dir", help="PKI directory."),
    name: str = typer.Option("Tutela CA", "--name", help="Common name of the CA."),
    force: bool = typer.Option(False, "--force", help="Replace an existing CA."),
) -> None:
    """Create a certificate authority (ca.pem, ca.key)."""
    from tutela.server.pki import init_ca

    layout = init_ca(directory, common_name=name, force=force)
    typer.echo(f"CA created: {layout.ca.cert} (key {layout.ca.key}, mode 0600)")


@pki_app.command("issue")
def pki_issue(
    directory: Path = typer.Option(Path("pki"), "--dir", help="PKI directory holding the CA."),
    server: bool = typer.Option(False, "--server", help="Issue the coordinator's certificate."),
    site: str | None = typer.Option(None, "--site", help="Issue a site certificate for NAME."),
    host: str = typer.Option("localhost", "--host", help="Server: primary host name."),
    san: list[str] = typer.Option(
        [], "--san", help="Server: extra DNS name or IP (repeatable); loopback is always added."
    ),
    days: int = typer.Option(90, "--days", min=1, help="Lifetime in days."),
) -> None:
    """Issue (or rotate) a server or site certificate; a running server picks it up."""
    from tutela.server.pki import issue_to_files

    if server == (site is not None):
        raise typer.BadParameter("pass exactly one of --server or --site NAME")
    if server:
        sans = [*san, "127.0.0.1", "::1"]
        paths = issue_to_files(directory, kind="server", name=host, sans=sans, valid_days=days)
    else:
        assert site is not None
        paths = issue_to_files(directory, kind="site", name=site, valid_days=days)
    typer.echo(f"issued {paths.cert} (key {paths.key})")


def doctor(
    url: str = typer.Argument(..., help="Coordinator URL, e.g. https://coordinator:8443"),
    ca: Path | None = typer.Option(None, "--ca", help="CA certificate the client trusts."),
    cert: Path | None = typer.Option(None, "--cert", help="Site certificate to test mutual TLS."),
    key: Path | None = typer.Option(None, "--key", help="Its private key."),
) -> None:
    """Diagnose a connection to the coordinator in plain words (exit 1 on any problem)."""
    from tutela.server.doctor import diagnose

    result = diagnose(url, ca_file=ca, client_cert=cert, client_key=key)
    for note in result.notes:
        typer.echo(f"ok: {note}")
    for finding in result.findings:
        typer.echo(f"problem ({finding.problem.value}): {finding.message}")
    if not result.ok:
        raise typer.Exit(1)


@server_app.command("start")
def server_start(
    data_dir: Path = typer.Option(
        Path("coordinator"), "--data-dir", help="Store, keyring, audit log."
    ),
    pki_dir: Path = typer.Option(Path("pki"), "--pki", help="PKI directory (ca.pem, server.pem)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Bind address."),
    port: int = typer.Option(8443, "--port", min=0, max=65535, help="TCP port."),
    db_url: str | None = typer.Option(
        None, "--db-url", envvar="TUTELA_DB_URL", help="postgresql+psycopg://... (default SQLite)."
    ),
) -> None:
    """Run the coordinator over HTTPS (mutual TLS for sites) until interrupted."""
    from tutela.server.serve import ServerSettings, coordinator_verifier_key, serve

    settings = ServerSettings(data_dir, pki_dir, host=host, port=port, db_url=db_url)
    typer.echo(f"coordinator on https://{host}:{port} (admin token in {data_dir / 'admin.token'})")
    typer.echo(
        f"audit checkpoints signed by {coordinator_verifier_key(data_dir).encode()} "
        "(auditors pin it: tutela audit trust add <key>)"
    )
    serve(settings)


@server_app.command("token")
def server_token(
    role: str = typer.Option(..., "--role", help="admin, data-scientist or auditor."),
    name: str = typer.Option(..., "--name", help="Who the token is for."),
    data_dir: Path = typer.Option(Path("coordinator"), "--data-dir"),
    db_url: str | None = typer.Option(None, "--db-url", envvar="TUTELA_DB_URL"),
) -> None:
    """Mint a bearer token directly in the store (on the coordinator's machine)."""
    from tutela.governance.rbac import Role
    from tutela.server.serve import ServerSettings, build_coordinator

    try:
        chosen = Role(role)
    except ValueError:
        raise typer.BadParameter(f"unknown role {role!r}") from None
    coordinator, _ = build_coordinator(ServerSettings(data_dir, None, db_url=db_url))
    try:
        typer.echo(coordinator.create_token(chosen, name, actor="cli"))
    finally:
        coordinator.store.close()


def _admin_client(coordinator: str, ca: Path, token: str | None, data_dir: Path) -> httpx.Client:
    import httpx

    from tutela.server.tls import client_context

    if token is None:
        path = data_dir / "admin.token"
        if not path.exists():
            raise ValueError(f"no --token given and no {path}")
        token = path.read_text().strip()
    return httpx.Client(
        base_url=coordinator,
        verify=client_context(ca),
        headers={"Authorization": f"Bearer {token}"},
        timeout=60.0,
    )


def _checked(response: httpx.Response) -> httpx.Response:
    from tutela.errors import ServiceError

    if response.status_code >= 400:
        try:
            detail = response.json().get("detail")
        except ValueError:
            detail = response.text
        raise ServiceError(f"coordinator answered {response.status_code}: {detail}")
    return response


@server_app.command("submit")
def server_submit(
    coordinator: CoordinatorOpt,
    study_file: Path = typer.Argument(..., help="Study TOML (data.columns must be set)."),
    ca: CaOpt = Path("pki/ca.pem"),
    token: TokenOpt = None,
    data_dir: DataDirOpt = Path("coordinator"),
    site: list[str] = typer.Option([], "--site", help="Invite only these sites (repeatable)."),
    stage_timeout: float = typer.Option(120.0, "--stage-timeout", help="Deadline per stage (s)."),
    start: bool = typer.Option(True, "--start/--no-start", help="Start it right away."),
) -> None:
    """Create a study on a running coordinator, upload its initial model and start it."""
    from tutela.fl.config import load_study
    from tutela.fl.models import build_model, get_parameters
    from tutela.fl.records import parameters_to_bytes

    config = load_study(study_file)
    columns = config.data.model_columns()
    if not columns:
        raise ValueError(
            "data.columns (or data.numeric/categorical) must list the features: "
            "the coordinator never sees the sites' data"
        )
    if config.model.factory is not None:  # built here, by the submitter, never by the coordinator
        from tutela.fl.study import study_model_factory

        model = study_model_factory(config, len(columns))()
    else:
        model = build_model(
            config.model.kind,
            len(columns),
            hidden=tuple(config.model.hidden),
            seed=config.study.seed,
        )
    deployment: dict[str, object] = {"stage_timeout_s": stage_timeout}
    if site:
        deployment["sites"] = list(site)
    client = _admin_client(coordinator, ca, token, data_dir)
    with client:
        body = {"config": config.resolved(), "deployment": deployment}
        created = _checked(client.post("/v1/admin/studies", json=body))
        study_id = created.json()["id"]
        _checked(
            client.put(
                f"/v1/admin/studies/{study_id}/model",
                content=parameters_to_bytes(get_parameters(model)),
                headers={"Content-Type": "application/octet-stream"},
            )
        )
        if start:
            _checked(client.post(f"/v1/admin/studies/{study_id}/start"))
    typer.echo(study_id)


@server_app.command("add-site")
def server_add_site(
    coordinator: CoordinatorOpt,
    name: str = typer.Argument(..., help="The hospital's site name (as it will run the agent)."),
    ca: CaOpt = Path("pki/ca.pem"),
    token: TokenOpt = None,
    data_dir: DataDirOpt = Path("coordinator"),
) -> None:
    """Register a site and print its one-time enrolment token (give it to the site with ca.pem)."""
    client = _admin_client(coordinator, ca, token, data_dir)
    with client:
        created = _checked(client.post("/v1/admin/sites", json={"name": name})).json()
    typer.echo(created["enrolment_token"])


@server_app.command("status")
def server_status(
    coordinator: CoordinatorOpt,
    study_id: str = typer.Argument(..., help="Study id (from `tutela server submit`)."),
    ca: CaOpt = Path("pki/ca.pem"),
    token: TokenOpt = None,
    data_dir: DataDirOpt = Path("coordinator"),
    wait: float = typer.Option(
        0.0,
        "--wait",
        min=0.0,
        help="Wait up to this many seconds for the study to end first (held requests, no "
        "polling); exit 1 if it is still going.",
    ),
) -> None:
    """Show a study's status, participation and rounds (JSON)."""
    import json

    from tutela.errors import ServiceError
    from tutela.server.admin_client import ENDED, wait_for_end

    client = _admin_client(coordinator, ca, token, data_dir)
    with client:
        if wait > 0:
            wait_for_end(client, study_id, wait)
        status = _checked(client.get(f"/v1/admin/studies/{study_id}")).json()
    status.pop("config", None)
    typer.echo(json.dumps(status, indent=2, sort_keys=True))
    if wait > 0 and status.get("status") not in ENDED:
        raise ServiceError(f"study {study_id} is still {status.get('status')} after {wait:g} s")


@server_app.command("results")
def server_results(
    coordinator: CoordinatorOpt,
    study_id: str = typer.Argument(..., help="Study id (from `tutela server submit`)."),
    out: Path = typer.Option(..., "--out", help="Run directory to write the results to."),
    ca: CaOpt = Path("pki/ca.pem"),
    token: TokenOpt = None,
    data_dir: DataDirOpt = Path("coordinator"),
) -> None:
    """Fetch a completed study's results into a run directory: the final model, each
    round's metrics as the sites reported them, the privacy ledger, the sites' signed
    reports, the audit log with its checkpoints and the sites' cosignatures. Then
    `tutela report OUT`, `tutela comply OUT` and `tutela audit verify OUT/audit.jsonl` work
    as on the demo (the token's role needs study, model, ledger and audit read)."""
    from tutela.server.results import fetch_results

    client = _admin_client(coordinator, ca, token, data_dir)
    with client:
        results = fetch_results(client, study_id, out)
    typer.echo(f"results of study {study_id} written to {out} ({len(results.history)} rounds)")


@site_app.command("run")
def site_run(
    coordinator: str = typer.Option(..., "--coordinator", help="Coordinator URL (https://...)."),
    data: Path = typer.Option(..., "--data", help="CSV with this site's rows."),
    policy: Path = typer.Option(..., "--policy", help="Site policy TOML (the local floor)."),
    name: str = typer.Option(..., "--name", help="This site's name (as registered)."),
    ca: Path = typer.Option(..., "--ca", help="The deployment's CA certificate."),
    cert: Path = typer.Option(
        Path("site.pem"), "--cert", help="Site certificate (written at enrolment)."
    ),
    key: Path = typer.Option(Path("site.key"), "--key", help="Site private key."),
    enrol_token: str | None = typer.Option(
        None, "--enrol-token", envvar="TUTELA_ENROL_TOKEN", help="One-time token (first run)."
    ),
    state_dir: Path | None = typer.Option(None, "--state-dir", help="Agent state (identity key)."),
    outcome: str = typer.Option("outcome", "--outcome", help="Outcome column name."),
    seed: int = typer.Option(0, "--seed", help="Seed of the local data order."),
    max_runtime: float = typer.Option(
        3600.0, "--max-runtime", help="Stop after this many seconds."
    ),
    audit_key: str | None = typer.Option(
        None,
        "--audit-key",
        help="The coordinator's audit key as `tutela server start` printed it (compare it out "
        "of band); pinned on first use, the site witnesses (cosigns) the audit log under it.",
    ),
) -> None:
    """Run the site agent: enrol if needed, then serve studies (outbound HTTPS only)."""
    from tutela.server.agent import run_site

    summary = run_site(
        coordinator=coordinator,
        name=name,
        ca_file=ca,
        cert_file=cert,
        key_file=key,
        data=data,
        policy_file=policy,
        enrol_token=enrol_token,
        state_dir=state_dir,
        seed=seed,
        outcome=outcome,
        max_runtime_s=max_runtime,
        log=lambda msg: typer.echo(msg, err=True),
        audit_key=audit_key,
    )
    typer.echo(
        f"site {name}: joined {len(summary['joined'])} study(ies), "
        f"refused {len(summary['refused'])}"
    )
    for study_id, reason in summary["refused"].items():
        typer.echo(f"refused {study_id}: {reason}")


def register(app: typer.Typer) -> None:
    """Attach this domain's commands to the root app."""
    app.add_typer(pki_app, name="pki")
    app.add_typer(server_app, name="server")
    app.add_typer(site_app, name="site")
    app.command("doctor")(doctor)
