"""``tutela`` commands for the deployment: PKI, doctor, coordinator and site agent."""

from __future__ import annotations

from pathlib import Path

import typer

pki_app = typer.Typer(help="Certificates for the coordinator and the sites.", no_args_is_help=True)
server_app = typer.Typer(help="Run and administer the coordinator service.", no_args_is_help=True)
site_app = typer.Typer(help="Run a site agent beside a hospital's data.", no_args_is_help=True)


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
    from tutela.server.serve import ServerSettings, serve

    settings = ServerSettings(data_dir, pki_dir, host=host, port=port, db_url=db_url)
    typer.echo(f"coordinator on https://{host}:{port} (admin token in {data_dir / 'admin.token'})")
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
