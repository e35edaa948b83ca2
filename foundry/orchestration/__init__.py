"""Running the pipeline: the retrain plan (checks and cache keys), the run's state and retry policy,
Prefect caching of the `retrain` flow, step events for the live display, which personas' data
changed since their champion, Prefect schedules from `prefect.yaml`, and the local Prefect and
MLflow UI servers.

Sits above deploy and registry (it reads the registry's store and checks deployment targets) and
below tasks, flows and the CLI.
"""
