"""Renewal of expiring material: the schedule arithmetic; ``FleetRenewal``, the sweep, the
expiry-event rule and the fleet alarm one handler shares between its keys; and the optional
per-key alarm."""

import itertools
import re
import weakref
from collections.abc import Callable
from typing import Any, cast

import aws_cdk as cdk
import jsii
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

from imported_key_handler import contract

from . import _nag
from .handler import ImportHandler

# The renewal defaults are plain seconds: worked out per key, through jsii each Duration
# operation is a round trip to Node.js.
MAX_RENEW_BEFORE_S = 30 * 86400
# The default schedule fires this many times inside the renewal window (at most daily), so one
# failed or throttled run leaves several more before the material expires.
DEFAULT_FIRINGS_IN_WINDOW = 4
MAX_DEFAULT_INTERVAL_MINUTES = 24 * 60
DEFAULT_EXPIRY_ALARM_THRESHOLD_S = 14 * 86400

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


def default_renew_before_s(validity_days: int) -> int:
    """30 days, or a third of the validity period (in whole hours) when that is shorter."""
    third_in_hours = validity_days * 24 // 3
    return min(MAX_RENEW_BEFORE_S, third_in_hours * 3600)


def default_renew_before(validity_days: int) -> cdk.Duration:
    """``default_renew_before_s`` as a Duration."""
    return cdk.Duration.hours(default_renew_before_s(validity_days) // 3600)


def default_interval_s(renew_before_s: int) -> int:
    """Daily, or often enough to fire four times inside a shorter renewal window (whole
    minutes): how often the default schedule fires."""
    minutes = renew_before_s // 60 // DEFAULT_FIRINGS_IN_WINDOW
    return max(1, min(MAX_DEFAULT_INTERVAL_MINUTES, minutes)) * 60


def default_expiry_alarm_threshold_s(renew_before_s: int) -> int:
    """14 days, or half the renewal window when that is shorter."""
    return min(DEFAULT_EXPIRY_ALARM_THRESHOLD_S, renew_before_s // 2)


# The sweep runs at least this often, whatever the keys' windows allow: an idle sweep costs one
# S3 list and one PutMetricData, and a due key then waits an hour at most.
MAX_SWEEP_INTERVAL_MINUTES = 60


@jsii.implements(cdk.IStableStringProducer)
class _Produce:
    def __init__(self, produce: Callable[[], str]) -> None:
        self._produce = produce

    def produce(self) -> str:
        return self._produce()


class FleetRenewal(Construct):
    """Keeps the expiring material of every key of one handler imported: one sweep on a schedule
    renews every key that is due, one rule re-imports at once when KMS reports any material
    expired, and one alarm watches the fleet's earliest expiry.

    Nothing here grows with the number of keys: each key adds its window and alarm threshold to
    the figures the schedule and the alarm are made from (the tightest wins).
    """

    def __init__(self, scope: Construct, construct_id: str, *, handler: ImportHandler) -> None:
        super().__init__(scope, construct_id)
        self._intervals_s: list[int] = []
        self._threshold_s: float | None = None
        self._topic_arns: set[str] = set()

        def target(event: dict[str, Any] | None) -> targets.LambdaFunction:
            return targets.LambdaFunction(
                handler.sweep_function,
                # None: the rule's own event, as it is (KMS's expiration event).
                event=events.RuleTargetInput.from_object(event) if event is not None else None,
                # Delivery failures (throttling, a missing permission) are retried with
                # backoff for a day, then recorded in the dead-letter queue.
                retry_attempts=185,
                max_event_age=cdk.Duration.hours(24),
                dead_letter_queue=handler.dead_letter_queue,
            )

        self.sweep_rule = events.Rule(
            self,
            "Sweep",
            description="Renews every imported key material that is due (imported-key-cdk)",
            schedule=events.Schedule.expression(cdk.Lazy.string(_Produce(self._schedule))),
            targets=[target({contract.SWEEP_EVENT: {}})],
        )
        """Runs the sweep: every key whose renewal is due, within the import quota share."""
        self.recovery_rule = events.Rule(
            self,
            "ExpirationRecovery",
            description="Re-imports key material at once if it expired (imported-key-cdk)",
            # Every expiring key of the account and Region: the handler ignores those it does not
            # serve (one ListResourceTags, refused by its permissions), since EventBridge cannot
            # match a key's tags.
            event_pattern=events.EventPattern(
                source=["aws.kms"], detail_type=[contract.KMS_EXPIRATION_EVENT]
            ),
            targets=[target(None)],
        )
        """Re-imports at once when KMS reports the material of one of the fleet's keys expired."""
        self.expiry_alarm = cloudwatch.Alarm(
            self,
            "FleetExpiryAlarm",
            alarm_description=(
                "A key of the fleet expires soon, or the sweep stopped reporting: the renewal "
                "is not working (read the handler's log and the dead-letter queue)."
            ),
            metric=cloudwatch.Metric(
                namespace=contract.FLEET_METRIC_NAMESPACE,
                metric_name=contract.METRIC_MIN_SECONDS_TO_EXPIRY,
                dimensions_map={contract.METRIC_DIMENSION: handler.fleet_name},
                statistic="Minimum",
                period=cdk.Duration.hours(2),
            ),
            threshold=0,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            # The sweep publishes every run while anything is indexed: no datapoint means it
            # stopped, or the index lost its keys.
            treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
        )
        """In alarm when a key of the fleet expires within the tightest threshold, or when the
        sweep stops reporting."""
        self._cfn_alarm = cast(cloudwatch.CfnAlarm, self.expiry_alarm.node.default_child)
        _nag.acknowledge(
            self.expiry_alarm, {"NIST.800.53.R5-CloudWatchAlarmAction": _nag.NO_ALARM_ACTION}
        )

    def _schedule(self) -> str:
        minutes = min([MAX_SWEEP_INTERVAL_MINUTES * 60, *self._intervals_s]) // 60
        minutes = max(1, minutes)
        if minutes % 60 == 0:
            hours = minutes // 60
            return f"rate({hours} hour{'s' if hours > 1 else ''})"
        return f"rate({minutes} minute{'s' if minutes > 1 else ''})"

    def add_key(self, interval_s: int, expiry_alarm_threshold_s: float) -> None:
        """Sweep at least every ``interval_s`` seconds; alarm at the tightest threshold."""
        self._intervals_s.append(interval_s)
        # Written only when it tightens: each write is a jsii round trip, per key.
        if self._threshold_s is None or expiry_alarm_threshold_s < self._threshold_s:
            self._threshold_s = expiry_alarm_threshold_s
            self._cfn_alarm.threshold = expiry_alarm_threshold_s

    def notify(self, topic: sns.ITopic) -> None:
        """Send the fleet alarm to ``topic`` (once, however many keys name it)."""
        # By ARN: the same topic may reach two keys as two imported ITopic objects.
        if topic.topic_arn in self._topic_arns:
            return
        self._topic_arns.add(topic.topic_arn)
        self.expiry_alarm.add_alarm_action(cloudwatch_actions.SnsAction(topic))

    @classmethod
    def of(cls, handler: ImportHandler) -> "FleetRenewal":
        """The handler's renewal, created with its first expiring key."""
        existing = _RENEWALS.get(handler)
        if existing is None:
            found = handler.node.try_find_child("Renewal")
            existing = found if isinstance(found, cls) else cls(handler, "Renewal", handler=handler)
            _RENEWALS[handler] = existing
        return existing


# Each handler's renewal, kept here rather than looked up in the construct tree for each key.
# Weak: it goes with the handler.
_RENEWALS: "weakref.WeakKeyDictionary[ImportHandler, FleetRenewal]" = weakref.WeakKeyDictionary()


class KeyExpiryAlarm(Construct):
    """The per-key alarm (``per_key_expiry_alarm``): KMS's own metric for one key."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        key: kms.IKey,
        expiry_alarm_threshold: cdk.Duration,
    ) -> None:
        super().__init__(scope, construct_id)
        self.expiry_alarm = cloudwatch.Alarm(
            self,
            "MaterialExpiryAlarm",
            alarm_description=(
                "Imported key material expires soon, or KMS no longer reports its expiry: the "
                "renewal is not working."
            ),
            metric=cloudwatch.Metric(
                namespace="AWS/KMS",
                metric_name="SecondsUntilKeyMaterialExpiration",
                dimensions_map={"KeyId": key.key_id},
                statistic="Minimum",
                period=cdk.Duration.hours(1),
            ),
            threshold=expiry_alarm_threshold.to_seconds(),
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            # An expiring key always has this metric; its absence means the material is gone.
            treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
        )
        """In alarm when the material expires within the threshold, or when KMS stops
        reporting the time left."""
        _nag.acknowledge(
            self.expiry_alarm, {"NIST.800.53.R5-CloudWatchAlarmAction": _nag.NO_ALARM_ACTION}
        )

    def notify(self, topic: sns.ITopic) -> None:
        """Send the expiry alarm to ``topic``."""
        self.expiry_alarm.add_alarm_action(cloudwatch_actions.SnsAction(topic))
