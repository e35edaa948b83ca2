"""Prompt templates shipped with Persona Foundry (YAML files read by
`foundry.synthesis.prompt_templates`)."""
