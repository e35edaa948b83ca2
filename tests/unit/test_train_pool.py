"""The training pool runs work in spawned processes and relays their log lines."""

from __future__ import annotations

import logging
import os

from foundry.training.pool import plan_workers, run_in_pool, training_pool


def report_pid(label: str) -> int:
    logging.getLogger("foundry.tests.pool").info("working on %s", label)
    return os.getpid()


def test_workers_follow_cores_and_jobs():
    cores = os.cpu_count() or 1

    assert plan_workers(0, 1) == (1, cores)
    assert plan_workers(0, 64)[0] == cores
    assert plan_workers(3, 2) == (2, max(1, cores // 2))
    assert plan_workers(1, 4, threads=3) == (1, 3)
    assert plan_workers(0, 0)[0] == 1


def test_outside_a_pool_the_work_runs_here():
    assert run_in_pool(report_pid, "here") == os.getpid()


def test_inside_a_pool_the_work_runs_in_another_process_and_its_logs_come_back(caplog):
    relay = logging.getLogger("foundry.tests.relay")
    with caplog.at_level(logging.INFO, logger="foundry.tests.relay"), training_pool(1, 1):
        pid = run_in_pool(report_pid, "persona-x", log=relay)

    assert pid != os.getpid()
    assert any("working on persona-x" in r.getMessage() for r in caplog.records), caplog.text


def sleep_for(seconds: float) -> str:
    import time

    time.sleep(seconds)
    return "woke"


def test_a_job_past_its_limit_fails_and_its_process_is_stopped():
    import time

    import pytest

    started = time.monotonic()
    with pytest.raises(TimeoutError, match="ran past 1 s"), training_pool(1, 1):
        run_in_pool(sleep_for, 120.0, timeout=1.0)

    assert time.monotonic() - started < 60  # not the 120 s the job wanted
