"""Fake remote APIs on 127.0.0.1 that tests and benchmarks reach through the real SDKs."""
