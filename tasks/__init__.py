"""Pipeline stages, one module per stage: plain functions hold the logic, thin `@task` wrappers."""
