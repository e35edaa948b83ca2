"""Serving targets (issue 9): vLLM, Together, Fireworks and a local OpenAI-compatible server."""
