"""The local server under load: 16 concurrent clients over four persona adapters, with requests
batched across adapters against one request at a time. Prints ratios measured side by side.

The server is the real app (`deploy.local.build_app`: the project's base, every persona adapter
and vector) behind uvicorn on 127.0.0.1; the clients are threads posting chat completions with
`requests`. Both arms serve the same requests (each client asks its persona the same prompts,
greedy, `min_tokens = max_tokens` so every answer has the same length); the only difference is
the engine's `max_batch` (16 vs 1). Reported: requests per second and its ratio, p50 and p95
latency, and the adapters mixed per batch.

Run: `.venv/bin/python benchmarks/serving.py [--clients 16] [--requests 4] [--tokens 48]`
after `make run` (it needs trained adapters).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from foundry.config import load_config

PROMPT = "Will AI capex pay off within a decade?"


def serve(config_path: Path, max_batch: int) -> tuple[str, object, object]:
    from deploy.local import build_app, serve_in_thread

    config = load_config(config_path)
    app, engine, adapters, _ = build_app(config, max_batch=max_batch, source="trained")
    if len(adapters) < 2:
        raise SystemExit("needs trained persona adapters: run `make run` first")
    server = serve_in_thread(app)
    return server.url, server, engine


def run_arm(config_path: Path, max_batch: int, clients: int, per_client: int, tokens: int) -> dict:
    url, server, engine = serve(config_path, max_batch)
    models = [m["id"] for m in requests.get(f"{url}/v1/models", timeout=30).json()["data"]][1:]
    body = {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": tokens,
            "min_tokens": tokens, "temperature": 0}  # fmt: skip
    requests.post(f"{url}/v1/chat/completions", json={**body, "model": models[0]}, timeout=300)
    warm = engine.stats.batches, engine.stats.rows, len(engine.stats.adapters_per_batch)

    def client(index: int) -> list[float]:
        model = models[index % len(models)]
        latencies = []
        for _ in range(per_client):
            started = time.perf_counter()
            reply = requests.post(
                f"{url}/v1/chat/completions", json={**body, "model": model}, timeout=600
            )
            reply.raise_for_status()
            latencies.append(time.perf_counter() - started)
        return latencies

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = [s for result in pool.map(client, range(clients)) for s in result]
    seconds = time.perf_counter() - started
    mixed = engine.stats.adapters_per_batch[warm[2] :]
    server.stop()
    engine.close()
    ordered = sorted(latencies)
    return {
        "max_batch": max_batch,
        "requests": len(latencies),
        "seconds": seconds,
        "throughput": len(latencies) / seconds,
        "p50": statistics.median(ordered),
        "p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
        "batches": engine.stats.batches - warm[0],
        "mean_rows": (engine.stats.rows - warm[1]) / max(1, engine.stats.batches - warm[0]),
        "mean_adapters": statistics.mean(mixed) if mixed else 0.0,
        "adapters": len(models),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=Path("foundry.yaml"))
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=4, help="Requests per client.")
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    arms = [
        run_arm(args.config, batch, args.clients, args.requests, args.tokens) for batch in (1, 16)
    ]
    print(
        f"{args.clients} clients x {args.requests} requests, {args.tokens} tokens each, "
        f"{arms[0]['adapters']} adapters, {torch.get_num_threads()} threads"
    )
    print(f"{'arm':<22} {'req/s':>7} {'p50 s':>7} {'p95 s':>7} {'batches':>8} {'rows/batch':>10} "
          f"{'adapters/batch':>14}")  # fmt: skip
    for arm in arms:
        label = "one at a time" if arm["max_batch"] == 1 else f"batched (max {arm['max_batch']})"
        print(
            f"{label:<22} {arm['throughput']:7.2f} {arm['p50']:7.2f} {arm['p95']:7.2f} "
            f"{arm['batches']:8d} {arm['mean_rows']:10.1f} {arm['mean_adapters']:14.1f}"
        )
    print(
        f"throughput batched / one at a time: {arms[1]['throughput'] / arms[0]['throughput']:.2f}x"
    )


if __name__ == "__main__":
    main()
