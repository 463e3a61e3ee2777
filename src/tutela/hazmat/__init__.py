"""tutela.hazmat."""
