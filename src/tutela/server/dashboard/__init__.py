"""The coordinator's dashboard: studies, live rounds, sites, ledgers and the audit log.

Served by the coordinator itself, over the same TLS and RBAC as its API
(:func:`add_dashboard_routes`): the page and its assets ship inside the package and load
nothing from anywhere else; people sign in with their bearer token and each view is a route
with one declared permission, so each role sees what its permissions allow and gets 403
for the rest.
"""

from tutela.server.dashboard.routes import add_dashboard_routes

__all__ = ["add_dashboard_routes"]
