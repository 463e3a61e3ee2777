"""Tutela: privacy-preserving AI in one system."""

__version__ = "0.1.0"
