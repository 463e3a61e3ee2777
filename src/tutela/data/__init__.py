"""tutela.data."""
