"""MLflow tracking and the model registry (issue 6): the only code that talks to the registry."""
