"""How often a renewal schedule fires, so the construct can check it against the window."""

import itertools
import re

import aws_cdk as cdk
from aws_cdk import aws_events as events

DEFAULT_RENEWAL_SCHEDULE = events.Schedule.rate(cdk.Duration.days(1))
MAX_RENEW_BEFORE = cdk.Duration.days(30)

_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
_NUMBER = re.compile(r"^\d+$")


def _cron_interval_seconds(fields: list[str]) -> int | None:
    """Longest gap between firings for the cron forms whose gap is plain to see, else None."""
    minute, hour, day_of_month, month, day_of_week, year = fields
    every_day = (
        day_of_month in ("*", "?") and day_of_week in ("*", "?") and month == "*" and year == "*"
    )
    if not every_day or not _NUMBER.match(minute):
        return None
    if _NUMBER.match(hour):
        return 86400
    if hour == "*":
        return 3600
    step = re.match(r"^(?:\*|0)/(\d+)$", hour)
    if step and int(step.group(1)) > 0 and 24 % int(step.group(1)) == 0:
        return int(step.group(1)) * 3600
    if re.match(r"^\d+(,\d+)+$", hour):
        hours = sorted({int(h) for h in hour.split(",")})
        gaps = [b - a for a, b in itertools.pairwise(hours)]
        gaps.append(24 - hours[-1] + hours[0])
        return max(gaps) * 3600
    return None


def schedule_interval_seconds(schedule: events.Schedule) -> int | None:
    """The longest time between two firings of ``schedule``, or None if it cannot be told."""
    expression = schedule.expression_string
    rate = _RATE.match(expression)
    if rate:
        return int(rate.group(1)) * _UNIT_SECONDS[rate.group(2).rstrip("s")]
    if expression.startswith("cron(") and expression.endswith(")"):
        fields = expression[5:-1].split()
        if len(fields) == 6:
            return _cron_interval_seconds(fields)
    return None


def default_renew_before(validity_days: int) -> cdk.Duration:
    """30 days, or a third of the validity period when that is shorter."""
    third_in_hours = validity_days * 24 // 3
    return cdk.Duration.hours(min(MAX_RENEW_BEFORE.to_hours(), third_in_hours))


def check_renewal(
    schedule: events.Schedule, renew_before: cdk.Duration, validity_days: int
) -> None:
    """The schedule must fire at least twice inside the window, and the window fit the validity."""
    window = renew_before.to_seconds()
    if window <= 0 or window >= validity_days * 86400:
        raise ValueError(
            f"Invalid renew_before: {renew_before.to_human_string()}. It must be longer than "
            f"zero and shorter than the material's validity ({validity_days} days)."
        )
    interval = schedule_interval_seconds(schedule)
    if interval is None:
        raise ValueError(
            f"Invalid renewal_schedule: {schedule.expression_string!r}. Cannot tell how often it "
            "fires; use events.Schedule.rate(...) or a daily/hourly cron."
        )
    if 2 * interval > window:
        raise ValueError(
            f"Invalid renewal_schedule: {schedule.expression_string!r} fires every "
            f"{interval // 3600} h {interval % 3600 // 60} min, so not twice inside the renewal "
            f"window of {renew_before.to_human_string()}. Use a rate of at most half the window "
            "or a longer renew_before."
        )
