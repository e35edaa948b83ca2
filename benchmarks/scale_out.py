"""Four personas trained with the local executor and on a local two-node Ray cluster, side by side.

Builds one throwaway project from the shipped sample (its four personas) on a small tiny base,
built once and shared by both arms (not timed), then trains every persona's SFT and DPO adapters
twice, each arm from scratch (`.foundry/adapters` and `.foundry/work` removed before it):
(1) local, as the retrain flow runs it: `training_pool(workers, threads)` and one `run_in_pool`
per persona, submitted at once from threads; (2) Ray (`orchestration.executor: ray`): a
`ray.cluster_utils.Cluster` on 127.0.0.1, a head and `workers - 1` worker nodes of `threads` CPUs
each, adapters through `paths.shared_url` (a `file://` folder) and a scratch folder per node, one
`run_model_step("train", ...)` per persona inside `model_steps(config)`, again from threads. Each
arm's wall time runs from opening its executor (pool, Ray session) to closing it. `--repeats`
rounds alternate the arms (local, then Ray), so drifting machine load hits both; each round starts
its own cluster after the local arm, so no Ray process runs beside the local arm, and the cluster's
start-up is printed apart. Both arms give every training `threads` torch threads, so their adapter
bytes (sha256 of each `adapter_model.safetensors`) should match; whether they did is printed.

What an executor adds per task: each persona's time in the driver, less its training's own
`seconds` (from `train_persona`) and less its wait for a free slot (a pool process, a Ray node)
while another persona trained there; for Ray that is scheduling, worker start-up, uploading and
unpacking the inputs, uploading and fetching the adapters, checking them, relaying the logs.
Each task is `train_persona` inside a thin wrapper that stamps when it started and ended on the
worker, and where; from the stamps, `at once` is the most trainings that ran at the same moment.
Above the slots, trainings shared cores and the wait model above no longer holds (a warning says
so): Ray gives a task's CPUs back while it blocks in `ray.get`, and starts another task there.
Then `--noops` empty Ray tasks (a bare `ray.get` each, one after another) and as many empty model
steps through `run_model_step` give the fixed cost with no training at all.

On one machine both arms share the same cores, so the local / Ray ratio shows only what Ray costs
here, not what it gains: scale-out needs nodes that bring their own cores (or GPUs). It prints, it
does not assert.
"""

from __future__ import annotations

import os

# Read when Ray is imported: the nodes listen on loopback, and report no usage statistics.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

import argparse  # noqa: E402 - the Ray switches above come first
import hashlib  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from foundry.config import FoundryConfig, load_config  # noqa: E402
from tasks.train import train_persona  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
PERSONAS = ["jonah-okafor", "marguerite-vale", "priya-castellanos", "tobias-renn"]
DATA_REV = "bench"
STAGES = ("sft", "dpo")
RUN_EXAMPLE = (
    "Run: .venv/bin/python benchmarks/scale_out.py [--sft-steps 20] [--dpo-steps 10] "
    "[--workers 2] [--threads 1] [--repeats 2] [--noops 20] [--per-task]"
)


@dataclass
class TaskTime:
    """One persona's training as the driver and the worker saw it (epoch seconds)."""

    slug: str
    submitted: float
    returned: float
    started: float
    ended: float
    seconds: float  # train_persona's own
    slot: str  # the pool process or the Ray node it ran on


@dataclass
class Arm:
    label: str
    wall: float
    tasks: list[TaskTime]
    digests: dict[str, str] = field(default_factory=dict)

    def overheads(self) -> list[float]:
        """Per task: time in the driver less its training and its wait for a free slot."""
        result = []
        for task in self.tasks:
            before = [
                o.ended for o in self.tasks if o.slot == task.slot and o.ended <= task.started
            ]
            free = max([task.submitted, *before])
            result.append(task.returned - free - task.seconds)
        return result

    def most_at_once(self) -> int:
        """The most trainings that ran at the same moment (more than the slots: oversubscribed)."""
        return max(sum(o.started <= t.started < o.ended for o in self.tasks) for t in self.tasks)

    def hand_backs(self) -> list[float]:
        """Per task: from the training's end on the worker to its result in the driver."""
        return [task.returned - task.ended for task in self.tasks]


@dataclass
class Round:
    """One local arm, then one Ray arm on a cluster started for it."""

    local: Arm
    ray: Arm
    cluster_s: float
    opened_s: float
    empty: dict[str, list[float]]


def timed_train(config_path: str, slug: str, data_rev: str) -> dict[str, Any]:
    """`train_persona`, stamped with when it started and ended on the worker, and where."""
    started = time.time()
    result = train_persona(config_path, slug, data_rev)
    return {**result, "started": started, "ended": time.time(), "slot": _slot()}


def empty_step(config_path: str) -> dict[str, Any]:
    """A model step that does nothing: what `run_model_step` costs without any work."""
    return {}


def _slot() -> str:
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():  # a Ray worker: one task at a time per node
        return ray.get_runtime_context().get_node_id()
    return str(os.getpid())


def make_project(root: Path, args: argparse.Namespace) -> FoundryConfig:
    """The sample's four personas on a small tiny base; Ray settings for arm (2) included (the
    local arm reads none of them)."""
    shutil.copytree(REPO_ROOT / "examples" / "sample", root / "data")
    sft, dpo = args.sft_steps, args.dpo_steps
    # Each stage evaluates once, at its end, and never stops early: the same steps in both arms.
    (root / "foundry.yaml").write_text(f"""
personas: {{include: [{", ".join(PERSONAS)}]}}
base_model: {{tiny: {{pretrain_steps: 30, hidden_size: 64, intermediate_size: 128,
  vocab_size: 1000, batch_size: 8}}}}
training:
  lora: {{r: 4, alpha: 8, dropout: 0.0}}
  sft: {{max_steps: {sft}, eval_steps: {sft}, batch_size: 4, max_length: 96,
    early_stopping_patience: 0}}
  dpo: {{max_steps: {dpo}, eval_steps: {dpo}, batch_size: 2, max_length: 96}}
paths: {{shared_url: "file://{root / "shared"}"}}
orchestration:
  executor: ray
  ray: {{scratch_dir: "{root / "scratch"}", train: {{num_cpus: {args.threads}}}}}
""")
    return load_config(root / "foundry.yaml")


def clear_training(config: FoundryConfig) -> None:
    """No adapters and no checkpoints: the next arm trains every persona from scratch."""
    shutil.rmtree(config.adapters_dir, ignore_errors=True)
    shutil.rmtree(config.cache_dir / "work", ignore_errors=True)


def digests(config: FoundryConfig) -> dict[str, str]:
    """sha256 of every persona's adapter weights, by `slug/stage`."""
    return {
        f"{slug}/{stage}": hashlib.sha256(
            (config.adapter_dir(slug, stage) / "adapter_model.safetensors").read_bytes()
        ).hexdigest()
        for slug in PERSONAS
        for stage in STAGES
    }


def train_all(call: Callable[[str], dict[str, Any]]) -> list[TaskTime]:
    """`call(slug)` for every persona at once, each from its own thread."""

    def one(slug: str) -> TaskTime:
        submitted = time.time()
        result = call(slug)
        returned = time.time()
        return TaskTime(
            slug, submitted, returned, result["started"], result["ended"], result["seconds"],
            result["slot"],
        )  # fmt: skip

    with ThreadPoolExecutor(max_workers=len(PERSONAS)) as threads:
        return list(threads.map(one, PERSONAS))


def local_arm(config: FoundryConfig, args: argparse.Namespace) -> Arm:
    """(1) The retrain flow's local executor: a pool of processes, one job per persona."""
    from foundry.training.pool import run_in_pool, training_pool

    clear_training(config)
    path, timeout = str(config.source), config.orchestration.train_timeout_s
    started = time.perf_counter()
    with training_pool(args.workers, args.threads):
        tasks = train_all(
            lambda slug: run_in_pool(timed_train, path, slug, DATA_REV, timeout=timeout)
        )
    arm = Arm(f"local pool {args.workers}x{args.threads}", time.perf_counter() - started, tasks)
    arm.digests = digests(config)
    return arm


def ray_arm(config: FoundryConfig, args: argparse.Namespace) -> tuple[Arm, float]:
    """(2) `executor: ray` on the cluster this process is connected to, one step per persona;
    also the seconds it took to open the run's Ray session."""
    from foundry.orchestration.executors import model_steps, run_model_step
    from foundry.training.adapter_training import work_root

    clear_training(config)
    path, timeout = str(config.source), config.orchestration.train_timeout_s

    def train(slug: str) -> dict[str, Any]:
        return run_model_step(
            "train", timed_train, path, slug, DATA_REV, timeout=timeout,
            outputs=[config.adapter_dir(slug, stage) for stage in STAGES],
            checkpoints=work_root(config, slug),
        )  # fmt: skip

    started = time.perf_counter()
    with model_steps(config):
        opened = time.perf_counter() - started
        tasks = train_all(train)
    arm = Arm(f"Ray {args.workers} nodes x{args.threads}", time.perf_counter() - started, tasks)
    arm.digests = digests(config)
    return arm, opened


def start_cluster(args: argparse.Namespace) -> tuple[Any, float]:
    """A head and `workers - 1` worker nodes on 127.0.0.1, `threads` CPUs each; this process
    connected to it (so `model_steps` uses it and leaves it running)."""
    import ray
    from ray.cluster_utils import Cluster

    started = time.perf_counter()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": args.threads, "node_ip_address": "127.0.0.1"},
    )
    for _ in range(args.workers - 1):
        cluster.add_node(num_cpus=args.threads, node_ip_address="127.0.0.1")
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    return cluster, time.perf_counter() - started


def empty_tasks(config: FoundryConfig, count: int) -> dict[str, list[float]]:
    """Round trips of `count` empty Ray tasks and `count` empty model steps, one at a time (one
    warm-up of each first, not counted)."""
    import ray

    from foundry.orchestration.executors import model_steps, run_model_step

    nothing = ray.remote(num_cpus=1)(empty_step)
    times: dict[str, list[float]] = {"ray.get(empty task)": [], "run_model_step(empty)": []}
    for _ in range(count + 1):
        started = time.perf_counter()
        ray.get(nothing.remote(""))
        times["ray.get(empty task)"].append(time.perf_counter() - started)
    with model_steps(config):
        for _ in range(count + 1):
            started = time.perf_counter()
            run_model_step("train", empty_step, str(config.source))
            times["run_model_step(empty)"].append(time.perf_counter() - started)
    return {label: values[1:] for label, values in times.items()}


def print_report(
    args: argparse.Namespace,
    base_s: float,
    rounds: list[Round],
) -> None:
    import torch

    print(
        f"\n{os.cpu_count()} CPU cores, torch {torch.__version__}; tiny base built in "
        f"{base_s:.1f} s (once, not timed); {len(PERSONAS)} personas, SFT {args.sft_steps} + DPO "
        f"{args.dpo_steps} steps each, {args.threads} torch thread(s) per training; "
        f"{len(rounds)} round(s) of (local, Ray)"
    )
    starts = ", ".join(f"{r.cluster_s:.1f}" for r in rounds)
    opens = ", ".join(f"{r.opened_s:.2f}" for r in rounds)
    print(
        f"Ray cluster ({args.workers} nodes x {args.threads} CPU) started in {starts} s (not in "
        f"the Ray arm); each run's Ray session opened in {opens} s (in it)"
    )
    print(
        f"\n{'round':>5} {'arm':<20} {'wall s':>7} {'training s':>10} {'overhead/task':>13} "
        f"{'hand-back':>9} {'max overhead':>12} {'at once':>7}"
    )
    for number, one in enumerate(rounds, start=1):
        for arm in (one.local, one.ray):
            overheads = arm.overheads()
            print(
                f"{number:5d} {arm.label:<20} {arm.wall:7.1f} "
                f"{sum(t.seconds for t in arm.tasks):10.1f} {statistics.median(overheads):13.2f} "
                f"{statistics.median(arm.hand_backs()):9.2f} {max(overheads):12.2f} "
                f"{arm.most_at_once():7d}"
            )
    print(
        "(training s: the sum of train_persona's own seconds; overhead/task: median over the "
        "personas of time in the driver - training - wait for a free slot; hand-back: median of "
        "training's end on the worker -> result in the driver; all in seconds; at once: the most "
        "trainings running at the same moment)"
    )
    crowded = [
        arm for one in rounds for arm in (one.local, one.ray) if arm.most_at_once() > args.workers
    ]
    if crowded:
        print(
            f"WARNING: {', '.join(sorted({arm.label for arm in crowded}))} ran more trainings at "
            f"once than its {args.workers} slots: the trainings shared cores (their seconds grow), "
            "and a task placed early counts its wait as overhead. A likely cause on Ray: a task "
            "blocked in `ray.get` gives its CPUs back and Ray starts another task there, and the "
            "Ray executor's log relay (ray.util.queue.Queue.put_nowait per line) calls `ray.get`."
        )
    if args.per_task:
        print_tasks(rounds)
    ratios = [one.local.wall / one.ray.wall for one in rounds]
    overheads = {
        side: statistics.median(o for one in rounds for o in getattr(one, side).overheads())
        for side in ("local", "ray")
    }
    print(
        f"\nwall local / Ray: {', '.join(f'{r:.2f}x' for r in ratios)} (median "
        f"{statistics.median(ratios):.2f}x; above 1: Ray faster); overhead per task, median of "
        f"all rounds: local {overheads['local']:.2f} s, Ray {overheads['ray']:.2f} s, so Ray adds "
        f"{overheads['ray'] - overheads['local']:.2f} s a task"
    )
    print(
        "NOTE: both arms share this one machine's cores, so these ratios show only the overhead "
        "Ray adds here, not scale-out (which needs nodes that bring their own cores or GPUs)."
    )
    for label in rounds[0].empty:
        values = [v for one in rounds for v in one.empty[label]]
        print(
            f"{label}: median {statistics.median(values) * 1000:.1f} ms, max "
            f"{max(values) * 1000:.1f} ms over {len(values)} round trip(s), one at a time"
        )
    reference = rounds[0].local.digests
    arms = [arm for one in rounds for arm in (one.local, one.ray)]
    differ = sorted(
        {key for arm in arms for key in reference if arm.digests[key] != reference[key]}
    )
    same = "yes" if not differ else f"NO ({len(differ)} differ: {', '.join(differ)})"
    print(f"same adapter bytes in every arm and round ({len(reference)} adapters): {same}")


def print_tasks(rounds: list[Round]) -> None:
    """A row per persona trained: when it started after its arm's first submission, and where."""
    print(
        f"\n{'round':>5} {'arm':<20} {'persona':<18} {'slot':<12} {'start s':>7} "
        f"{'training s':>10} {'overhead s':>10}"
    )
    for number, one in enumerate(rounds, start=1):
        for arm in (one.local, one.ray):
            first = min(task.submitted for task in arm.tasks)
            for task, overhead in zip(arm.tasks, arm.overheads(), strict=True):
                print(
                    f"{number:5d} {arm.label:<20} {task.slug:<18} {task.slot[:12]:<12} "
                    f"{task.started - first:7.1f} {task.seconds:10.1f} {overhead:10.2f}"
                )


def run_round(config: FoundryConfig, args: argparse.Namespace) -> Round:
    """The local arm, then a fresh cluster for the Ray arm and the empty tasks (so no Ray
    process runs during the local arm)."""
    import ray

    local = local_arm(config, args)
    cluster, cluster_s = start_cluster(args)
    try:
        remote, opened_s = ray_arm(config, args)
        empty = empty_tasks(config, args.noops)
    finally:
        ray.shutdown()
        cluster.shutdown()
    return Round(local, remote, cluster_s, opened_s, empty)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=RUN_EXAMPLE)
    parser.add_argument("--sft-steps", type=int, default=20, help="SFT steps per persona.")
    parser.add_argument("--dpo-steps", type=int, default=10, help="DPO steps per persona.")
    parser.add_argument(
        "--workers", type=int, default=2, help="Pool processes in (1), Ray nodes in (2)."
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="Torch threads per training in both arms (each Ray node's CPUs).",
    )
    parser.add_argument("--noops", type=int, default=20, help="Empty Ray tasks and steps timed.")
    parser.add_argument("--repeats", type=int, default=2, help="Rounds of (local, Ray).")
    parser.add_argument("--per-task", action="store_true", help="Also print a row per training.")
    args = parser.parse_args()
    counts = (args.sft_steps, args.dpo_steps, args.workers, args.threads, args.noops, args.repeats)
    if min(counts) < 1:
        parser.error("--sft-steps, --dpo-steps, --workers, --threads, --noops, --repeats: >= 1")

    from foundry.training.base_model import ensure_base

    with tempfile.TemporaryDirectory(prefix="scale-out-bench-") as tmp:
        config = make_project(Path(tmp), args)
        started = time.perf_counter()
        ensure_base(config)
        base_s = time.perf_counter() - started
        rounds = [run_round(config, args) for _ in range(args.repeats)]
    print_report(args, base_s, rounds)


if __name__ == "__main__":
    main()
