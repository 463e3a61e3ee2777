"""tutela.fl."""
