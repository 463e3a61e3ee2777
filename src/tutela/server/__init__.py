"""tutela.server: the coordinator service, its store and PKI, and the site agent.

- :mod:`tutela.server.pki` and :mod:`tutela.server.doctor`: a private CA, server and site
  certificates, and plain-words diagnosis of TLS problems (``tutela pki``, ``tutela doctor``).
- :mod:`tutela.server.store` / :mod:`tutela.server.coordinator`: SQLAlchemy state (SQLite or
  PostgreSQL, Alembic migrations, sealed blobs) and the round engine driving
  :mod:`tutela.fl` strategies with deadlines and quorums, plain or with SecAgg+.
- :mod:`tutela.server.app` / :mod:`tutela.server.serve`: the FastAPI coordinator over TLS
  with mutual TLS for sites and bearer tokens for people (``tutela server start``).
- :mod:`tutela.server.agent`: the site agent, which enforces its own
  :class:`~tutela.governance.minimisation.SitePolicy` and ledger (``tutela site run``).
- :mod:`tutela.server.deploy`: the flagship through all of it on loopback
  (:func:`~tutela.server.deploy.run_study_over_network`).
"""
