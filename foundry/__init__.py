"""Persona Foundry core: one subpackage per stage of the pipeline, on common ground.

The stages, each importing only those below it: `cli` → (flows, tasks) → `orchestration` →
(deploy, registry) → `evaluation`, `costs` → `synthesis` → `training` → `steering` → `data`.
The ground under all of them sits here: `config.py` (`foundry.yaml`; each stage's own section is
its package's `config.py`), `errors.py`, `logs.py`, `atomic.py` and `slugs.py`.

Importing this package has no side effects: it creates no directories, sets no tracking URI and
configures no logging. Heavy libraries (torch, transformers, dvc, prefect) are imported inside the
functions that use them.
"""

__version__ = "0.1.0"
