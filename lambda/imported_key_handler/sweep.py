"""The sweep: one schedule per handler renews every key of its fleet that is due.

It reads the due index (``registry``), not the keys: an idle sweep lists one S3 page per
thousand keys and calls KMS for nothing. Each due key is renewed by ``renewal.renew_key``,
the same path as a single renewal, at most ``ENV_IMPORTS_PER_SECOND`` GetParametersForImport
calls per second (KMS allows 1 per second per account and Region, shared by everything there),
and only while the invocation has time left for one more key: what is left stays due in the
index, and the next sweep takes it. The index is the queue, so nothing is lost to Lambda's
time limit and no second mechanism carries work between invocations.

At the end the sweep publishes the fleet's figures (``contract.METRIC_*``) for the fleet alarm,
then raises if any key failed, so the error alarm fires and Lambda retries the sweep.
"""

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from . import clients, contract, registry
from .audit import audited
from .binding import NotDeclared
from .errors import ImportFailure
from .renewal import FleetClients, renew_key

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient

logger = logging.getLogger(__name__)

# Time kept back for one more key in the worst case (botocore's bounded retries on each call)
# and for publishing the figures.
RESERVE_S = 75.0
_PACER_ID = "imported-key-cdk-sweep-pacer"


class Pacer:
    """Spaces calls at least ``1 / per_second`` seconds apart (one process, any thread)."""

    def __init__(
        self,
        per_second: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = 1.0 / per_second
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self, **_: Any) -> None:
        """A botocore ``before-call`` handler (it takes any keywords and returns nothing)."""
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            self._sleep(start - now)


def imports_per_second(environ: "os._Environ[str] | dict[str, str]" = os.environ) -> float:
    raw = environ.get(contract.ENV_IMPORTS_PER_SECOND, "")
    try:
        value = float(raw) if raw else contract.DEFAULT_IMPORTS_PER_SECOND
    except ValueError:
        value = 0.0
    if not 0 < value <= 1:
        raise ImportFailure(
            f"{contract.ENV_IMPORTS_PER_SECOND}={raw[:16]!r} must be a number of requests per "
            "second above 0 and at most 1 (GetParametersForImport's quota)."
        )
    return value


@dataclass
class SweepReport:
    keys: int = 0
    due: int = 0
    renewed: int = 0
    failed: list[str] = field(default_factory=list)
    left_for_next: int = 0
    dropped: int = 0
    earliest_valid_to: datetime | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "Keys": self.keys,
            "Due": self.due,
            "Renewed": self.renewed,
            "Failed": len(self.failed),
            "LeftForNextSweep": self.left_for_next,
            "LeftTheStack": self.dropped,
            "EarliestValidTo": self.earliest_valid_to.isoformat()
            if self.earliest_valid_to
            else None,
        }


def sweep(
    fleet: FleetClients,
    *,
    remaining_s: Callable[[], float],
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    per_second: float = contract.DEFAULT_IMPORTS_PER_SECOND,
    pacer: Pacer | None = None,
) -> SweepReport:
    """Renew every key the index says is due, while time allows. ``pacer``: a simulation's,
    on its own clock (default: one at ``per_second`` on the real clock)."""
    pacer = pacer or Pacer(per_second)
    event = "before-call.kms.GetParametersForImport"
    fleet.kms.meta.events.register(event, pacer.wait, unique_id=_PACER_ID)
    try:
        return _sweep(fleet, remaining_s=remaining_s, now=now)
    finally:
        # The clients may outlive this sweep (a simulation runs many on one set).
        fleet.kms.meta.events.unregister(event, unique_id=_PACER_ID)


def _sweep(
    fleet: FleetClients, *, remaining_s: Callable[[], float], now: Callable[[], datetime]
) -> SweepReport:
    report = SweepReport()
    started = now()
    due: list[registry.Entry] = []
    for entry in registry.entries(fleet.s3, fleet.bucket):
        report.keys += 1
        if report.earliest_valid_to is None or entry.valid_to < report.earliest_valid_to:
            report.earliest_valid_to = entry.valid_to
        if entry.due <= started:
            due.append(entry)
    report.due = len(due)
    # The most urgent first: in a backlog (after an outage) the due order is not the expiry
    # order, since each key falls due at its own point of its window's first quarter.
    due.sort(key=lambda entry: entry.valid_to)
    for position, entry in enumerate(due):
        if remaining_s() < RESERVE_S:
            report.left_for_next = len(due) - position
            logger.warning("Out of time: %d due keys left for the next sweep", report.left_for_next)
            break
        try:
            # One audit line per key; an SDK failure (a dropped connection) becomes a failure of
            # this key alone, not of the sweep.
            with audited(f"Renew({contract.TRIGGER_SWEEP})", entry.key_id) as record:
                result = renew_key(
                    fleet, entry.key_id, contract.TRIGGER_SWEEP, now=now(), index_entry=entry.name
                )
                record.succeeded("RENEWED" if result.renewed else "NOT_DUE", result.valid_to)
        except NotDeclared as gone:
            # Replaced or removed from its stack: no longer this fleet's key to renew.
            logger.warning("Key %s left the index: %s", entry.key_id, gone.reason)
            registry.remove(fleet.s3, fleet.bucket, entry.name)
            report.dropped += 1
            continue
        except ImportFailure as failure:
            # One key's failure must not stop the others; its entry stays, so it is retried.
            logger.error("Renewal of key %s failed: %s", entry.key_id, failure.reason)
            report.failed.append(entry.key_id)
            continue
        report.renewed += int(result.renewed)
        if result.valid_to is not None and (
            report.earliest_valid_to is None or result.valid_to < report.earliest_valid_to
        ):
            report.earliest_valid_to = result.valid_to
    if report.renewed:
        # Renewals moved entries later; the earliest left is what the alarm should see.
        report.earliest_valid_to = min(
            (e.valid_to for e in registry.entries(fleet.s3, fleet.bucket)), default=None
        )
    return report


def publish(cloudwatch: "CloudWatchClient", fleet_name: str, report: SweepReport) -> None:
    """The fleet's figures, one datapoint each, for the fleet alarm and dashboards."""
    dimensions = [{"Name": contract.METRIC_DIMENSION, "Value": fleet_name}]
    data: list[dict[str, Any]] = [
        {"MetricName": name, "Dimensions": dimensions, "Value": float(value), "Unit": "Count"}
        for name, value in (
            (contract.METRIC_KEYS, report.keys),
            (contract.METRIC_DUE, report.due),
            (contract.METRIC_RENEWED, report.renewed),
            (contract.METRIC_FAILED, len(report.failed)),
        )
    ]
    if report.earliest_valid_to is not None:
        # Absent when nothing is indexed: the alarm treats a missing datapoint as breaching.
        seconds = (report.earliest_valid_to - datetime.now(UTC)).total_seconds()
        data.append(
            {
                "MetricName": contract.METRIC_MIN_SECONDS_TO_EXPIRY,
                "Dimensions": dimensions,
                "Value": max(seconds, 0.0),
                "Unit": "Seconds",
            }
        )
    try:
        cloudwatch.put_metric_data(Namespace=contract.FLEET_METRIC_NAMESPACE, MetricData=data)  # type: ignore[arg-type]
    except ClientError as error:
        raise ImportFailure(
            f"CloudWatch PutMetricData failed ({error.response.get('Error', {}).get('Code')}); "
            "the fleet alarm gets no datapoint from this sweep."
        ) from None


def is_sweep_event(event: object) -> bool:
    return isinstance(event, dict) and isinstance(event.get(contract.SWEEP_EVENT), dict)


def run_sweep(context: Any) -> dict[str, Any]:
    """Entry for the schedule's event."""
    fleet = FleetClients.build()
    report = sweep(
        fleet,
        remaining_s=lambda: float(context.get_remaining_time_in_millis()) / 1000.0,
        per_second=imports_per_second(),
    )
    publish(clients.cloudwatch_client(), os.environ.get(contract.ENV_FLEET_NAME, ""), report)
    logger.info("Sweep done", extra={"sweep": report.summary()})
    if report.failed:
        raise ImportFailure(
            f"{len(report.failed)} of {report.due} due keys failed to renew (first: "
            f"{report.failed[0]}); each reason is logged above. They stay due and are retried."
        )
    return report.summary()
