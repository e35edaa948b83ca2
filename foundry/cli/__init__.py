"""The `foundry` command line: one Typer app (`main.py`) and one module per command group.

Owns argument parsing, rich output and progress bars, and nothing else: each command loads the
config, calls one flow, task or stage function, and prints a summary. May import everything
below it (flows, tasks, deploy, registry and every `foundry` stage); nothing imports it.
"""
