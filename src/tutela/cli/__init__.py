"""The ``tutela`` command line: thin commands over the recipes."""
