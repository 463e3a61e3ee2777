"""tutela.anonymize."""
