"""One Prefect test harness for the whole session (it takes ~10 s to start)."""

from __future__ import annotations

import asyncio
import time

import pytest


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def settled_task_runs(flow_run_id, settle_s: float = 60.0) -> list:
    """The flow run's task runs as Prefect's API holds them, once every one is final.

    Task-run states reach the API through Prefect's event pipeline, after the flow has returned,
    so a task run can still read `Running` for a moment under load: wait (bounded) until every
    task run of the flow run is in a final state, then return what the API holds.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async def read():
        async with get_client() as client:
            deadline = time.monotonic() + settle_s
            while True:
                runs = await client.read_task_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
                )
                settled = all(run.state is not None and run.state.is_final() for run in runs)
                if (runs and settled) or time.monotonic() > deadline:
                    return runs
                await asyncio.sleep(0.2)

    return asyncio.run(read())
