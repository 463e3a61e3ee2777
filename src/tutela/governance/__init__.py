"""tutela.governance."""
