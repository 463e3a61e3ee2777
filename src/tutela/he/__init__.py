"""tutela.he."""
