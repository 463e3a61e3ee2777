"""tutela.dp."""
