"""The README's monitoring example: a transcript in which `tobias-renn` speaks some of
`jonah-okafor`'s validation texts, scored by `foundry monitor`.

Turns 0 and 1 are each persona's own text; turns 2 and 4 give tobias-renn jonah-okafor's words, and
turn 3 is jonah-okafor's again. Run it in a project whose vectors are extracted (after
`make run`):

    .venv/bin/python scripts/monitor_example.py [--config foundry.yaml]

It writes the transcript to `.foundry/monitor-example.jsonl` and prints `foundry monitor`'s table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from foundry.config import load_config
from foundry.steering.inputs import read_steering_corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("foundry.yaml"))
    args = parser.parse_args()
    config = load_config(args.config)
    texts = read_steering_corpus(config).validation
    tobias, jonah = texts["tobias-renn"], texts["jonah-okafor"]
    turns = [
        ("tobias-renn", tobias[0]),
        ("jonah-okafor", jonah[0]),
        ("tobias-renn", jonah[1]),
        ("jonah-okafor", jonah[2]),
        ("tobias-renn", jonah[3]),
    ]
    path = config.cache_dir / "monitor-example.jsonl"
    lines = [json.dumps({"speaker": speaker, "text": row.response}) for speaker, row in turns]
    path.write_text("\n".join(lines) + "\n")
    foundry = Path(sys.executable).parent / "foundry"
    subprocess.run([str(foundry), "monitor", str(path), "--config", str(args.config)], check=True)


if __name__ == "__main__":
    main()
