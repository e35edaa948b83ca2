"""The main job three ways, side by side: a cold `foundry run` on the sample, a rerun with nothing
changed, and a rerun after editing one of the four personas' corpus.

Each run is the real command (`foundry run`, a subprocess) in a fresh project made from the
shipped sample and the repository's `foundry.yaml`, with its own `PREFECT_HOME`, so nothing is
cached before the cold run; `foundry init` (seeding, DVC) is not timed. While a run goes, the
memory of its whole process tree (the CLI, Prefect's temporary server, the training processes)
is sampled every second, as the sum of the processes' proportional set sizes (PSS: shared library
pages counted once, as the machine holds them; RSS would count the torch libraries once per
process; reading PSS costs CPU time, hence once a second). The script prints wall times, the two
ratios against the cold run with their targets (no-op at most 0.15x, one persona at most 0.4x),
and the cold run's peak memory (target: at most 3 GB); it prints, it does not assert.

Run: `.venv/bin/python benchmarks/pipeline.py [--keep DIR]`
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO_ROOT = Path(__file__).resolve().parents[1]
FOUNDRY = Path(sys.executable).parent / "foundry"
EDITED = "jonah-okafor"
GIB = 1024**3


def make_project(root: Path) -> Path:
    root.mkdir(parents=True)
    shutil.copytree(REPO_ROOT / "examples" / "sample", root / "examples" / "sample")
    shutil.copy(REPO_ROOT / "foundry.yaml", root / "foundry.yaml")
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / ".gitignore").write_text("/data/\n.foundry/\nmlflow.db\nmlruns/\n")
    return root


def timed(args: list[str], cwd: Path, env: dict[str, str], log: Path) -> tuple[float, int, int]:
    """(seconds, peak tree PSS, peak single-process RSS) of one command."""
    peaks = {"tree": 0, "single": 0}
    started = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        done = threading.Event()

        def sample() -> None:
            parent = psutil.Process(proc.pid)
            while not done.is_set():
                try:
                    procs = [parent, *parent.children(recursive=True)]
                    shares, sizes = [], []
                    for p in procs:
                        try:
                            info = p.memory_full_info()
                        except psutil.Error:
                            continue
                        shares.append(getattr(info, "pss", info.rss))
                        sizes.append(info.rss)
                    peaks["tree"] = max(peaks["tree"], sum(shares))
                    peaks["single"] = max(peaks["single"], max(sizes, default=0))
                except psutil.Error:
                    pass
                done.wait(1.0)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = proc.wait()
        done.set()
        sampler.join()
    seconds = time.perf_counter() - started
    if code != 0:
        sys.exit(f"{' '.join(args)} exited {code}; see {log}")
    return seconds, peaks["tree"], peaks["single"]


def edit_persona(root: Path) -> None:
    corpus = root / "data" / "personas" / EDITED / "corpus"
    target = next(p for p in sorted(corpus.iterdir()) if p.suffix == ".md")
    with target.open("a", encoding="utf-8") as handle:
        handle.write("\n\nFreight rates move first; the quay tells you what happened later.\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="Make the project here and keep it.")
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="foundry-pipeline-"))
    root = make_project(base / "project")
    env = {
        **os.environ,
        "PREFECT_HOME": str(base / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DVC_NO_ANALYTICS": "1",
        "COLUMNS": "160",
    }
    for name in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI", "ANTHROPIC_API_KEY", "FOUNDRY_CONFIG"):
        env.pop(name, None)
    subprocess.run([str(FOUNDRY), "init"], cwd=root, env=env, check=True, capture_output=True)
    print(f"project: {root} ({os.cpu_count()} CPU cores)", flush=True)
    run = [str(FOUNDRY), "run"]
    cold, cold_tree, cold_single = timed(run, root, env, base / "cold.log")
    print(
        f"cold run:           {cold:7.1f} s  peak memory {cold_tree / GIB:.2f} GiB (process "
        f"tree, PSS), {cold_single / GIB:.2f} GiB (largest process, RSS)",
        flush=True,
    )
    noop, _, _ = timed(run, root, env, base / "noop.log")
    print(f"nothing changed:    {noop:7.1f} s", flush=True)
    edit_persona(root)
    one, _, _ = timed(run, root, env, base / "one.log")
    print(f"one persona edited: {one:7.1f} s ({EDITED})", flush=True)
    print()
    print(f"no-op rerun / cold:       {noop / cold:.3f}x  (target <= 0.15x)")
    print(f"one-persona rerun / cold: {one / cold:.3f}x  (target <= 0.40x)")
    print(f"cold run: {cold / 60:.2f} min (target <= 5), peak {cold_tree / GIB:.2f} GiB "
          "(target <= 3)")  # fmt: skip
    print(f"logs: {base}/cold.log, noop.log, one.log")
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
