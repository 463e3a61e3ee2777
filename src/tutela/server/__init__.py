"""tutela.server."""
