"""Synthetic debate turns and preference pairs: the providers (Anthropic online and batch, the
offline composer, a local model), what is asked for (plan, jobs, prompt templates), the quality
gate (turn filters and review), the constitution pass, pairs and the generation cache.

May import training (a local model generates through it), steering, data and the ground.
"""
