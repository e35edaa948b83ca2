"""The main job three ways on each base model, side by side: a cold `foundry run` on the sample,
a rerun with nothing changed, and a rerun after editing one of the four personas' corpus.

Each run is the real command (`foundry run`, a subprocess) in a fresh project made from the
shipped sample and the repository's `foundry.yaml`, with its own `PREFECT_HOME`, so nothing is
cached before the cold run; `foundry init` (seeding, DVC) is not timed. While a run goes, the
memory of its whole process tree (the CLI, Prefect's temporary server, the training processes)
is sampled every second, as the sum of the processes' proportional set sizes (PSS: shared library
pages counted once, as the machine holds them; RSS would count the torch libraries once per
process; reading PSS costs CPU time, hence once a second). The script prints wall times, the two
ratios against the cold run with their targets (no-op at most 0.15x, one persona at most 0.4x),
and the cold run's peak memory, against each base's targets (`tiny`: 5 minutes and 3 GB,
`smollm2`: 20 minutes and 6 GB); it prints, it does not assert. Each base runs in its own project
(`FOUNDRY_BASE_MODEL__NAME`), so the table compares the same work on the two bases.

Run: `.venv/bin/python benchmarks/pipeline.py [--base tiny --base smollm2] [--keep DIR]`
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
TARGETS = {"tiny": (5.0, 3.0), "smollm2": (20.0, 6.0)}  # cold minutes, peak GiB


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


def run_three(base_name: str, folder: Path) -> dict[str, float]:
    """Cold, no-op and one-persona runs of a fresh project on `base_name`."""
    root = make_project(folder / "project")
    env = {
        **os.environ,
        "PREFECT_HOME": str(folder / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DVC_NO_ANALYTICS": "1",
        "COLUMNS": "160",
        "FOUNDRY_BASE_MODEL__NAME": base_name,
    }
    for name in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI", "ANTHROPIC_API_KEY", "FOUNDRY_CONFIG"):
        env.pop(name, None)
    subprocess.run([str(FOUNDRY), "init"], cwd=root, env=env, check=True, capture_output=True)
    print(f"{base_name}: project {root}", flush=True)
    run = [str(FOUNDRY), "run"]
    cold, tree, single = timed(run, root, env, folder / "cold.log")
    print(f"  cold run           {cold:7.1f} s", flush=True)
    noop, _, _ = timed(run, root, env, folder / "noop.log")
    print(f"  nothing changed    {noop:7.1f} s", flush=True)
    edit_persona(root)
    one, _, _ = timed(run, root, env, folder / "one.log")
    print(f"  one persona edited {one:7.1f} s ({EDITED})", flush=True)
    return {"cold": cold, "noop": noop, "one": one, "tree": tree, "single": single}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--base", action="append", choices=sorted(TARGETS), help="Base (repeat; default: both)."
    )
    parser.add_argument("--keep", type=Path, help="Make the projects here and keep them.")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="foundry-pipeline-"))
    print(f"{os.cpu_count()} CPU cores", flush=True)
    results = {name: run_three(name, folder / name) for name in args.base or ["tiny", "smollm2"]}
    print()
    print(f"{'':28}" + "".join(f"{name:>22}" for name in results))
    rows = [
        ("cold run (min)", lambda r, t: f"{r['cold'] / 60:.2f} (<= {t[0]:.0f})"),
        ("no-op rerun (s)", lambda r, t: f"{r['noop']:.1f}"),
        ("no-op rerun / cold", lambda r, t: f"{r['noop'] / r['cold']:.3f}x (<= 0.15)"),
        ("one-persona rerun (min)", lambda r, t: f"{r['one'] / 60:.2f}"),
        ("one-persona rerun / cold", lambda r, t: f"{r['one'] / r['cold']:.3f}x (<= 0.40)"),
        ("peak, process tree PSS", lambda r, t: f"{r['tree'] / GIB:.2f} GiB (<= {t[1]:.0f})"),
        ("peak, largest process RSS", lambda r, t: f"{r['single'] / GIB:.2f} GiB"),
    ]
    for label, cell in rows:
        print(f"{label:28}" + "".join(f"{cell(r, TARGETS[n]):>22}" for n, r in results.items()))
    print(f"logs: {folder}/<base>/cold.log, noop.log, one.log")
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
