"""Following a Together fine-tuning job, and turning the SDK's errors into `TrainingError`s.

Kept apart from `foundry.training.together` (preparing, submitting and installing a job) because
polling a running job, reading its metrics and explaining Together's failures is its own concern:
`wait_for_job` polls until the job completes, fails or passes `training.together.timeout_s`;
`job_losses` and `job_seconds` read what the summary records; `api_errors` wraps SDK calls so a
failure says what to do, never with the key.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from foundry.config import FoundryConfig
from foundry.logs import get_logger
from foundry.training.artifacts import TrainingError, TrainProgress

logger = get_logger(__name__)

STATE_FILENAME = "job.json"  # in a job's work folder: its ids, so a re-run resumes the same job
KEY_VARIABLE = "TOGETHER_API_KEY"
FAILED_STATUSES = {"error", "user_error", "failed", "cancelled", "cancel_requested"}


def wait_for_job(
    client: Any,
    job_id: str,
    label: str,
    work_dir: Path,
    progress: TrainProgress | None,
    config: FoundryConfig,
) -> Any:
    """Poll job `job_id` until it completes; raise on failure or after `training.together`'s
    `timeout_s`."""
    settings = config.training.together
    deadline = time.monotonic() + settings.timeout_s
    last_status = None
    while True:
        job = client.fine_tuning.retrieve(job_id)
        status = str(getattr(job.status, "value", job.status))
        if status != last_status:
            logger.info("%s: Together job %s is %s", label, job_id, status)
            last_status = status
        _report_steps(job, progress)
        if status == "completed":
            return job
        if status in FAILED_STATUSES:
            shutil.rmtree(work_dir, ignore_errors=True)  # a re-run starts a new job
            raise TrainingError(
                f"{label}: Together job {job_id} ended {status}: {_job_message(job)}; no adapter "
                "was installed (an earlier one is kept). Fix the cause and run training again"
            )
        if time.monotonic() > deadline:
            raise TrainingError(
                f"{label}: Together job {job_id} is still {status} after "
                f"{settings.timeout_s:.0f} s; it keeps running (not cancelled). Run training "
                f"again to resume polling it (its id "
                f"is in {work_dir / STATE_FILENAME}), or cancel it: `together fine-tuning cancel "
                f"{job_id}`"
            )
        time.sleep(settings.poll_s)


def _report_steps(job: Any, progress: TrainProgress | None) -> None:
    events = [e for e in job.events or [] if getattr(e, "total_steps", None)]
    if progress and events:
        progress(int(events[-1].step or 0), int(events[-1].total_steps), {})


def _job_message(job: Any) -> str:
    """Together's own account of a failure: the last error event's message."""
    errors = [
        e.message
        for e in job.events or []
        if getattr(e, "type", "") == "job_error" or getattr(e, "level", "") == "error"
    ]
    return errors[-1] if errors else "Together gave no reason"


def job_losses(client: Any, job_id: str) -> tuple[list[float], list[float], int]:
    """(train losses, eval losses, last step) from the job's recorded metrics."""
    import together

    try:
        rows = client.fine_tuning.list_metrics(job_id).metrics or []
    except together.APIStatusError as exc:
        logger.warning(
            "Together job %s: its metrics could not be read (%s); the summary has no losses",
            job_id, exc.status_code,
        )  # fmt: skip
        return [], [], 0
    train = [float(r["train/loss"]) for r in rows if "train/loss" in r]
    evaluation = [float(r["eval/loss"]) for r in rows if "eval/loss" in r]
    steps = max((int(r.get("train/global_step", 0)) for r in rows), default=0)
    return train, evaluation, steps


def job_seconds(job: Any) -> float:
    if job.started_at and job.updated_at:
        return round(max((job.updated_at - job.started_at).total_seconds(), 0.0), 3)
    return 0.0


@contextmanager
def api_errors(label: str, job_id: str | None, *, resumable: bool = False) -> Iterator[None]:
    """Turn the SDK's errors into a `TrainingError` saying what to do (never with the key)."""
    import together

    job = f" (job {job_id})" if job_id else ""
    retry = " Run training again: it resumes the same job." if resumable else ""
    try:
        yield
    except together.AuthenticationError:
        raise TrainingError(
            f"{label}: Together refused the API key{job} (401); set {KEY_VARIABLE} to a valid key"
        ) from None
    except together.APIStatusError as exc:
        raise TrainingError(
            f"{label}: Together answered {exc.status_code}{job}: {_error_text(exc)}.{retry}"
        ) from None
    except together.APIConnectionError as exc:
        raise TrainingError(
            f"{label}: could not reach Together{job}: {exc}; check the network or "
            f"TOGETHER_BASE_URL.{retry}"
        ) from None
    except together.DownloadError as exc:
        raise TrainingError(
            f"{label}: downloading the adapter{job} failed: {exc}.{retry}"
        ) from None


def _error_text(exc: Any) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        return str(error.get("message", error) if isinstance(error, dict) else error)
    return str(body or exc.message)[:300]
