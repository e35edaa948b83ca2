"""Prefect flows, one module per pipeline. Flows compose tasks; they do no data wrangling."""
