"""Prompt templates shipped with Persona Foundry (YAML files read by `foundry.prompt_templates`)."""
