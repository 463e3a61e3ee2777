"""Homomorphic encryption as a service: a model served over TLS to owners of encrypted data.

- :mod:`~tutela.server.he_service.models`: the served model, from a run directory or a file.
- :mod:`~tutela.server.he_service.state`: what the service stores (public bundles, encrypted
  tables, per-key budgets): public material and ciphertexts only.
- :mod:`~tutela.server.he_service.app`: the FastAPI app (the coordinator's TLS, RBAC, audit
  and body limits).
- :mod:`~tutela.server.he_service.runner`: running it; :mod:`~tutela.server.he_service.client`:
  the owner's HTTPS client; :mod:`~tutela.server.he_service.keys`: the owner's key directory.
"""
