"""Persona Foundry core: config, schemas, persona import, paths and the CLI.

Importing this package has no side effects: it creates no directories, sets no tracking URI and
configures no logging. Heavy libraries (torch, transformers, dvc, prefect) are imported inside the
functions that use them.
"""

__version__ = "0.1.0"
