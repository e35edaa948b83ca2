"""Running the pipeline: cache keys and Prefect caching of the `retrain` flow, step events for the
live display, Prefect schedules from `prefect.yaml`, and the local Prefect and MLflow UI servers.

Sits above deploy and registry (it reads the registry's store) and below tasks, flows and the CLI.
"""
