"""One schedule of a `prefect.yaml` deployment, checked with Prefect's own models.

`ScheduleSpec` is a cron or interval entry of a deployment's `schedules:` list (its `describe()`
is the human form, `to_prefect()` the object Prefect takes); `next_run(schedule)` says when it
fires next. `ScheduleError` is what every schedule and `prefect.yaml` problem raises.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, model_validator

from foundry.errors import FoundryError

if TYPE_CHECKING:
    from prefect.schedules import Schedule


class ScheduleError(FoundryError):
    """`prefect.yaml` is invalid, or its deployments cannot be served or registered."""


class ScheduleSpec(BaseModel):
    """One entry of a deployment's `schedules:` list (Prefect's prefect.yaml format)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cron: str | None = Field(default=None, description="Cron expression, e.g. '0 3 * * *'.")
    interval: PositiveInt | None = Field(default=None, description="Seconds between runs.")
    timezone: str = Field(default="UTC", description="IANA time zone the cron is read in.")
    active: bool = Field(default=True, description="False registers the schedule paused.")

    @model_validator(mode="after")
    def _check_kind(self) -> ScheduleSpec:
        if (self.cron is None) == (self.interval is None):
            raise ValueError("set exactly one of `cron` (e.g. '0 3 * * *') or `interval` (seconds)")
        # Prefect's own schedule models check the cron string and the time zone.
        try:
            self._prefect_schedule()
        except ValidationError as exc:
            reasons = (e["msg"].removeprefix("Value error, ") for e in exc.errors())
            raise ValueError("; ".join(reasons)) from None
        return self

    def _prefect_schedule(self) -> Any:
        from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule

        if self.cron is not None:
            return CronSchedule(cron=self.cron, timezone=self.timezone)
        return IntervalSchedule(
            interval=timedelta(seconds=self.interval or 0), timezone=self.timezone
        )

    def describe(self) -> str:
        """Short human form: `cron 0 3 * * * (UTC)` or `every 30 min`."""
        paused = "" if self.active else " [paused]"
        if self.cron is not None:
            return f"cron {self.cron} ({self.timezone}){paused}"
        seconds = self.interval or 0
        if seconds % 3600 == 0:
            return f"every {seconds // 3600} h{paused}"
        if seconds % 60 == 0:
            return f"every {seconds // 60} min{paused}"
        return f"every {seconds} s{paused}"

    def to_prefect(self) -> Schedule:
        """The `prefect.schedules` object that `to_deployment(schedules=...)` takes."""
        from prefect.schedules import Cron, Interval

        if self.cron is not None:
            return Cron(self.cron, timezone=self.timezone, active=self.active)
        return Interval(self.interval or 0, timezone=self.timezone, active=self.active)


def next_run(schedule: ScheduleSpec, after: datetime | None = None) -> datetime:
    """When `schedule` fires next after `after` (default: now); intervals count from `after`."""
    from prefect.server.schemas.schedules import CronSchedule
    from prefect.utilities.asyncutils import run_coro_as_sync

    start = after or datetime.now(UTC)
    if schedule.interval is not None:
        return start + timedelta(seconds=schedule.interval)
    cron = CronSchedule(cron=schedule.cron or "", timezone=schedule.timezone)
    dates = run_coro_as_sync(cron.get_dates(n=1, start=start)) or []
    return dates[0]
