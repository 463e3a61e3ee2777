"""tutela.smpc."""
