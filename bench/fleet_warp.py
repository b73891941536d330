"""Years of a fleet on a simulated clock: LocalStack behind the KMS quota proxy, faults injected.

Every day at 03:00 (simulated) the handler's sweep runs against the due index, exactly as in
Lambda but on a clock the simulation moves: the sweep's pacer sleeps in simulated time, the
quota proxy counts GetParametersForImport's 1 request/s in simulated time, and the emulated
KMS checks each ValidTo against the same clock. Between sweeps, KMS's own behaviour is played:
material whose ValidTo passes is deleted (``DeleteImportedKeyMaterial``, as KMS deletes it) and
the expiration rule delivers its event five minutes later.

Injected (each on its own days): throttling bursts and 5xx answers from the proxy, the emulator
unreachable in the middle of a sweep, days without a sweep, one secret deleted for good, and an
outage in which both the schedule and the expiration rule are down for longer than the renewal
window. Measured: renewals per day, minutes each key spends in PendingImport, the days the fleet
alarm would be in alarm, and KMS calls per sweep.

``python bench/fleet_warp.py KEYS YEARS OUT.json [PLOT.png]`` runs it (``make bench`` does);
``tests/e2e/test_fleet_warp.py`` runs a small fleet for one year.
"""

import json
import os
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "constructs"), str(REPO / "lambda")]

from support.binding import TEST_STACK_ID, PlayedStacks, bind_key  # noqa: E402
from support.calls import CallCounter  # noqa: E402
from support.events import LOGICAL_ID, import_properties  # noqa: E402
from support.keys import external_key, new_secret  # noqa: E402
from support.kms_quota_proxy import KmsQuotaProxy  # noqa: E402
from support.localstack import LocalStack  # noqa: E402

from imported_key_handler import contract, registry  # noqa: E402
from imported_key_handler.clients import CLIENT_CONFIG  # noqa: E402
from imported_key_handler.errors import ImportFailure  # noqa: E402
from imported_key_handler.renewal import FleetClients, renew_key  # noqa: E402
from imported_key_handler.sweep import Pacer, sweep  # noqa: E402

START = datetime(2027, 1, 1, 3, 0, tzinfo=UTC)
EVENT_DELAY = timedelta(minutes=5)  # KMS's expiration event, through EventBridge, to the handler
SWEEP_BUDGET_S = 15 * 60


@dataclass
class SimClock:
    """The simulation's time: the sweep's ``now``, the pacer's clock and sleep, the proxy's,
    and (through ``follow``) the emulated KMS's, which checks each ValidTo against it."""

    now: datetime
    follow: Callable[[datetime], None] | None = None

    def monotonic(self) -> float:
        return self.now.timestamp()

    def sleep(self, seconds: float) -> None:
        self.advance_to(self.now + timedelta(seconds=seconds))

    def advance_to(self, moment: datetime) -> None:
        """Move forward to ``moment`` (never back: the proxy's quotas count in this time)."""
        self.now = max(self.now, moment)
        if self.follow is not None:
            self.follow(self.now)


@dataclass(frozen=True)
class Faults:
    """Days (from the start) on which each fault is injected."""

    throttle_days: frozenset[int]
    failure_days: frozenset[int]
    unreachable_days: frozenset[int]
    missed_days: frozenset[int]
    lost_secret_day: int
    outage: range  # neither the sweep nor the expiration rule runs

    @classmethod
    def spread_over(cls, days: int) -> "Faults":
        """The fault plan scaled to a run of ``days``."""

        def at(*fractions: float) -> frozenset[int]:
            return frozenset(int(days * f) for f in fractions)

        outage_start = int(days * 0.55)
        return cls(
            throttle_days=at(0.1, 0.3, 0.5, 0.75),
            failure_days=at(0.15, 0.45, 0.8),
            unreachable_days=at(0.25, 0.8),
            missed_days=at(0.2, 0.2 + 1 / days, 0.65),
            lost_secret_day=int(days * 0.35),
            outage=range(outage_start, outage_start + 35),
        )


@dataclass
class WarpResult:
    keys: int
    days: int
    renewals_per_day: list[int] = field(default_factory=list)
    pending_minutes: dict[str, float] = field(default_factory=dict)
    pending_minutes_in_outage: dict[str, float] = field(default_factory=dict)
    # Each stay in PendingImport outside the outage: key, since when (ISO 8601), minutes.
    pending_outside_outage: list[tuple[str, str, float]] = field(default_factory=list)
    alarm_days: list[int] = field(default_factory=list)
    lost_key: str = ""
    lost_key_first_alarm_day: int | None = None
    lost_key_expired_day: int | None = None
    failed_renewals: int = 0
    kms_calls_per_idle_sweep_max: int = 0
    kms_calls_total: dict[str, int] = field(default_factory=dict)
    throttled: int = 0
    restored_by_first_sweep_after_outage: int = 0
    injected: dict[str, int] = field(default_factory=dict)
    skipped_idle_sweeps: int = 0
    outage: tuple[int, int] = (0, 0)
    expired_in_outage: int = 0
    seconds: float = 0.0

    def intact_keys_pending_minutes(self) -> float:
        """Minutes in PendingImport of every key whose secret is intact, outside the outage."""
        return sum(m for k, m in self.pending_minutes.items() if k != self.lost_key)


class Fleet:
    """The keys, their secrets and what the simulation knows of each key's ValidTo."""

    def __init__(
        self,
        localstack: LocalStack,
        proxy: KmsQuotaProxy,
        clock: SimClock,
        keys: int,
        validity_days: int,
        window: timedelta,
    ) -> None:
        self.localstack = localstack
        self.clock = clock
        self.validity_days = validity_days
        self.window = window
        self.stacks = PlayedStacks()
        self.bucket = f"warp-{uuid.uuid4()}"
        localstack.s3().create_bucket(Bucket=self.bucket)

        session_clients = {
            name: _client(name, proxy.endpoint) for name in ("kms", "secretsmanager", "s3")
        }
        self.clients = FleetClients(
            session_clients["kms"],
            session_clients["secretsmanager"],
            self.stacks.client(),
            session_clients["s3"],
            self.bucket,
        )
        self.kms_calls = CallCounter(self.clients.kms)
        # When each key's material last went in, on the simulated clock: a key restored by a
        # sweep is counted restored at its own import, not when the day's sweeps end.
        self.imported_at: dict[str, datetime] = {}
        self.clients.kms.meta.events.register(
            "before-parameter-build.kms.ImportKeyMaterial", self._importing
        )
        self.clients.kms.meta.events.register("after-call.kms.ImportKeyMaterial", self._imported)
        self.observer = localstack.kms()  # reads for the simulation, not counted
        self.secrets: dict[str, str] = {}
        self.valid_to: dict[str, datetime] = {}
        self.pending_since: dict[str, datetime] = {}
        self.next_due: datetime | None = None
        for _ in range(keys):
            key_id = external_key(self.observer)
            self.secrets[key_id] = new_secret(
                localstack.secretsmanager(), SecretBinary=os.urandom(32)
            )
            properties = import_properties(
                key_id,
                self.secrets[key_id],
                **{
                    contract.PROP_WRAPPING_KEY_SPEC: "RSA_2048",
                    contract.PROP_VALIDITY_DAYS: str(validity_days),
                },
            )
            bind_key(
                self.observer,
                properties,
                stack_id=TEST_STACK_ID,
                logical_id=LOGICAL_ID,
                renew_before_s=int(window.total_seconds()),
                stacks=self.stacks,
            )
        # The deployment: every Create at the start. CloudFormation runs them in parallel and
        # the SDK's retries spread them at KMS's quota; here one second apart.
        for key_id in self.secrets:
            clock.sleep(1.0)
            result = renew_key(self.clients, key_id, contract.TRIGGER_SCHEDULE, now=clock.now)
            assert result.valid_to is not None
            self.valid_to[key_id] = result.valid_to

    def _importing(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["warp_key_id"] = params["KeyId"]

    def _imported(self, http_response: Any, context: dict[str, Any], **_: Any) -> None:
        if http_response.status_code == 200:
            self.imported_at[context["warp_key_id"]] = self.clock.now

    def refresh_from_index(self) -> list[registry.Entry]:
        entries = list(registry.entries(self.clients.s3, self.bucket))
        for entry in entries:
            self.valid_to[entry.key_id] = entry.valid_to
        self.next_due = min((entry.due for entry in entries), default=None)
        return entries


def _client(service: str, endpoint: str) -> Any:
    # The handler's own configuration (standard retries, bounded timeouts), through the proxy.
    return boto3.session.Session().client(
        service,  # type: ignore[call-overload]
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=CLIENT_CONFIG.merge(Config(proxies={})),
    )


def _expire(fleet: Fleet, result: WarpResult, until: datetime, outage: range) -> None:
    """Play KMS up to ``until``: material past its ValidTo is deleted, and (unless the rule was
    down at that time) the expiration event reaches the handler five minutes later."""
    for key_id, valid_to in sorted(fleet.valid_to.items(), key=lambda item: item[1]):
        if valid_to > until or key_id in fleet.pending_since:
            continue
        events = (valid_to + EVENT_DELAY - START).days not in outage
        fleet.clock.advance_to(valid_to)
        fleet.observer.delete_imported_key_material(KeyId=key_id)
        fleet.pending_since[key_id] = valid_to
        if not events:
            continue
        fleet.clock.advance_to(valid_to + EVENT_DELAY)
        try:
            restored = renew_key(
                fleet.clients, key_id, contract.TRIGGER_MATERIAL_EXPIRED, now=fleet.clock.now
            )
        except ImportFailure:
            continue  # stays PendingImport: the alarms say so
        _restored(fleet, result, key_id, restored.valid_to, in_outage=False)


def _restored(
    fleet: Fleet, result: WarpResult, key_id: str, valid_to: datetime | None, *, in_outage: bool
) -> None:
    since = fleet.pending_since.pop(key_id)
    imported = fleet.imported_at.get(key_id)
    restored_at = imported if imported is not None and imported >= since else fleet.clock.now
    minutes = (restored_at - since).total_seconds() / 60
    book = result.pending_minutes_in_outage if in_outage else result.pending_minutes
    book[key_id] = book.get(key_id, 0.0) + minutes
    if not in_outage:
        result.pending_outside_outage.append((key_id, since.isoformat(), minutes))
    if valid_to is not None:
        fleet.valid_to[key_id] = valid_to


class Unreachable:
    """Takes the emulator away right after the next GetParametersForImport, for a third of a
    second of real time (the SDK's retries back off about that long), once per ``arm()``."""

    def __init__(self, proxy: KmsQuotaProxy, kms: Any) -> None:
        self.proxy = proxy
        self.armed = 0
        self.fired = 0
        kms.meta.events.register("after-call.kms.GetParametersForImport", self._cut)

    def arm(self) -> None:
        self.armed += 1

    def _cut(self, **_: Any) -> None:
        if self.armed == 0:
            return
        self.armed -= 1
        self.fired += 1
        self.proxy.pause_upstream()
        threading.Timer(0.3, self.proxy.resume_upstream).start()


def _sweep_until_done(fleet: Fleet, clock: SimClock, at: datetime, per_second: float) -> Any:
    """The day's sweep at ``at``. The schedule fires hourly: an idle hourly sweep changes
    nothing, so only when a sweep leaves due keys for the next does the next run, an hour on.
    Returns one report for the day (renewed and failed summed, the last sweep's earliest)."""
    total: Any = None
    for hour in range(24):
        started = at + timedelta(hours=hour)
        clock.advance_to(started)

        def remaining_s(begun: datetime = started) -> float:
            return SWEEP_BUDGET_S - (clock.now - begun).total_seconds()

        report = sweep(
            fleet.clients,
            remaining_s=remaining_s,
            now=lambda: clock.now,
            pacer=Pacer(per_second, clock=clock.monotonic, sleep=clock.sleep),
        )
        if total is None:
            total = report
        else:
            total.renewed += report.renewed
            total.failed += report.failed
            total.earliest_valid_to = report.earliest_valid_to
            total.left_for_next = report.left_for_next
        if not report.left_for_next:
            return total
    return total


def run(
    localstack: LocalStack,
    *,
    keys: int,
    days: int,
    validity_days: int = 365,
    window_days: int = 30,
    threshold_days: int = 14,
    per_second: float = contract.DEFAULT_IMPORTS_PER_SECOND,
    faults: Faults | None = None,
    idle_every: int = 1,
) -> WarpResult:
    """``days`` of daily sweeps over a fleet of ``keys``, faults as planned.

    ``idle_every``: run only every n-th sweep that the index says will find nothing due (and
    no fault is planned for): such a sweep lists the index and publishes, nothing else, so
    skipping it changes nothing but the run's length. Its alarm state is still recorded."""
    os.environ[contract.ENV_HANDLER_ROLE_ID] = "AROATESTIMPORTHANDLER"
    os.environ[contract.ENV_HANDLER_STACK_ID] = TEST_STACK_ID
    plan = faults or Faults.spread_over(days)
    started = datetime.now(UTC)
    clock = SimClock(START, follow=localstack.set_clock)
    localstack.set_clock(START)
    result = WarpResult(keys=keys, days=days, outage=(plan.outage.start, plan.outage.stop))
    with KmsQuotaProxy(localstack.endpoint, clock=clock.monotonic) as proxy:
        fleet = Fleet(localstack, proxy, clock, keys, validity_days, timedelta(days=window_days))
        fleet.refresh_from_index()
        result.lost_key = next(iter(fleet.secrets))
        # A fault injected on a day without a renewal waits for the next one.
        unreachable = Unreachable(proxy, fleet.clients.kms)
        fleet.kms_calls.take()
        proxy.reset_counts()
        for day in range(1, days + 1):
            if day % 100 == 0:
                print(f"day {day}: {sum(result.renewals_per_day)} renewals", file=sys.stderr)
            at = START + timedelta(days=day)
            in_outage = day in plan.outage
            _expire(fleet, result, at, plan.outage)
            clock.advance_to(at)
            if day == plan.lost_secret_day:
                localstack.secretsmanager().delete_secret(
                    SecretId=fleet.secrets[result.lost_key], ForceDeleteWithoutRecovery=True
                )
            if day in plan.missed_days or in_outage:
                result.renewals_per_day.append(0)
                result.alarm_days.append(day)  # no datapoint: missing data is breaching
                continue
            idle = (
                fleet.next_due is not None
                and fleet.next_due > at
                and not fleet.pending_since
                and day not in plan.throttle_days | plan.failure_days | plan.unreachable_days
            )
            if idle and day % idle_every:
                result.renewals_per_day.append(0)
                result.skipped_idle_sweeps += 1
                earliest_known = min(fleet.valid_to.values())
                if earliest_known - at < timedelta(days=threshold_days):
                    result.alarm_days.append(day)
                continue
            if day in plan.throttle_days:
                proxy.throttle_next(3, "GetParametersForImport")
            if day in plan.failure_days:
                proxy.fail_next(2, 503, "ImportKeyMaterial")
                proxy.fail_next(1, 500, "DescribeKey")
            if day in plan.unreachable_days:
                unreachable.arm()
            pending_before = set(fleet.pending_since)

            report = _sweep_until_done(fleet, clock, at, per_second)
            calls = fleet.kms_calls.take()
            if report.due == 0:
                result.kms_calls_per_idle_sweep_max = max(
                    result.kms_calls_per_idle_sweep_max, sum(calls.values())
                )
            for name, count in calls.items():
                result.kms_calls_total[name] = result.kms_calls_total.get(name, 0) + count
            result.failed_renewals += len(report.failed)
            result.renewals_per_day.append(report.renewed)
            if report.renewed or report.failed or pending_before:
                fleet.refresh_from_index()
            for key_id in pending_before:
                state = fleet.observer.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"]
                if state == "Enabled":
                    outage_restore = day == plan.outage.stop
                    _restored(fleet, result, key_id, None, in_outage=outage_restore)
                    result.restored_by_first_sweep_after_outage += int(outage_restore)
            earliest = report.earliest_valid_to
            if earliest is None or earliest - at < timedelta(days=threshold_days):
                result.alarm_days.append(day)
                if result.lost_key_first_alarm_day is None and day >= plan.lost_secret_day:
                    result.lost_key_first_alarm_day = day
            if day == plan.outage.stop:
                result.expired_in_outage = len(result.pending_minutes_in_outage)
        result.throttled = proxy.counts().throttled
        result.injected = {
            "throttled answers": result.throttled,
            "5xx answers": proxy.counts().failed,
            "emulator unreachable (times)": unreachable.fired,
            "faults never reached": proxy.pending_faults + unreachable.armed,
        }
        lost_since = fleet.pending_since.get(result.lost_key)
        if lost_since is not None:
            result.lost_key_expired_day = (lost_since - START).days
        for key_id, since in fleet.pending_since.items():
            if key_id != result.lost_key:  # still PendingImport at the end: count it
                result.pending_minutes[key_id] = (
                    result.pending_minutes.get(key_id, 0.0)
                    + (clock.now - since).total_seconds() / 60
                )
    localstack.set_clock(None)
    result.seconds = (datetime.now(UTC) - started).total_seconds()
    return result


def plot(result: WarpResult, path: Path) -> None:
    """Renewals per day over the run; the outage shaded, the lost secret's alarm marked."""
    import matplotlib  # type: ignore[import-not-found,unused-ignore]

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # type: ignore[import-not-found,unused-ignore]

    figure, axes = plt.subplots(figsize=(10, 3.4), dpi=100)
    days = list(range(1, len(result.renewals_per_day) + 1))
    axes.vlines(days, 0, result.renewals_per_day, color="#2b6cb0", linewidth=1.2)
    start, stop = result.outage
    axes.axvspan(start, stop, color="#a0aec0", alpha=0.35, linewidth=0, label="outage (injected)")
    if result.lost_key_first_alarm_day is not None:
        axes.axvline(
            result.lost_key_first_alarm_day,
            color="#e53e3e",
            linestyle="--",
            linewidth=1,
            label="fleet alarm: the key whose secret was deleted",
        )
    axes.set_xlabel("day (simulated; the sweep runs at 03:00, and hourly while keys are left)")
    axes.set_ylabel("keys renewed")
    axes.set_title(
        f"{result.keys} keys over {result.days} days: {sum(result.renewals_per_day)} renewals, "
        f"{result.intact_keys_pending_minutes():.0f} min PendingImport outside the outage"
    )
    axes.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def main(argv: list[str]) -> int:
    from support.localstack import start_localstack

    keys, years, out = int(argv[1]), float(argv[2]), Path(argv[3])
    with start_localstack(Path(os.environ.get("TMPDIR", "/tmp"))) as localstack:
        result = run(localstack, keys=keys, days=int(years * 365))
    figures = asdict(result)
    figures["intact_keys_pending_minutes"] = result.intact_keys_pending_minutes()
    figures["renewals_max_per_day"] = max(result.renewals_per_day)
    out.write_text(json.dumps(figures, indent=1, default=str))
    if len(argv) > 4:
        plot(result, Path(argv[4]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
