"""tutela.secagg."""
