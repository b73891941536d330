"""Renewal of expiring material: the schedule arithmetic, and ``MaterialRenewal``, the construct
holding one key's renewal rule, expiry-event rule and expiry alarm."""

import hashlib
import itertools
import re

import aws_cdk as cdk
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

MAX_RENEW_BEFORE = cdk.Duration.days(30)
# The default schedule fires this many times inside the renewal window (at most daily), so one
# failed or throttled run leaves several more before the material expires.
DEFAULT_FIRINGS_IN_WINDOW = 4
MAX_DEFAULT_INTERVAL_MINUTES = 24 * 60
DEFAULT_EXPIRY_ALARM_THRESHOLD = cdk.Duration.days(14)
KMS_EXPIRATION_EVENT = "KMS Imported Key Material Expiration"

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


def default_renewal_schedule(renew_before: cdk.Duration) -> events.Schedule:
    """Daily, or often enough to fire four times inside a shorter renewal window."""
    minutes = int(renew_before.to_seconds()) // 60 // DEFAULT_FIRINGS_IN_WINDOW
    minutes = max(1, min(MAX_DEFAULT_INTERVAL_MINUTES, minutes))
    if minutes % 60 == 0:
        return events.Schedule.rate(cdk.Duration.hours(minutes // 60))
    return events.Schedule.rate(cdk.Duration.minutes(minutes))


def spread_daily(schedule: events.Schedule, seed: str) -> events.Schedule:
    """The daily default as a daily cron at a minute of the day that hashes from ``seed``.

    A rate starts when its rule is created, so keys deployed together would renew in the same
    minute every day; GetParametersForImport allows 1 request/s per account and Region, shared
    with everything else there. Hashed from the key's construct path, the minute stays the same
    from one synth to the next and is spread evenly over the day across keys. Any other
    schedule is returned as it is.
    """
    if schedule.expression_string != "rate(1 day)":
        return schedule
    minute_of_day = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:4], "big") % 1440
    return events.Schedule.cron(minute=str(minute_of_day % 60), hour=str(minute_of_day // 60))


def default_expiry_alarm_threshold(renew_before: cdk.Duration) -> cdk.Duration:
    """14 days, or half the renewal window when that is shorter."""
    return cdk.Duration.seconds(
        min(DEFAULT_EXPIRY_ALARM_THRESHOLD.to_seconds(), renew_before.to_seconds() // 2)
    )


class MaterialRenewal(Construct):
    """Keeps one key's expiring material imported: a rule that runs the renewal on a schedule,
    a rule that re-imports at once when KMS reports the material expired, and an alarm when
    the material nears its expiry anyway.

    The settings arrive checked (``_props.renewal``); the work is done by the shared handler.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        handler: ImportHandler,
        key: kms.IKey,
        properties: dict[str, str],
        schedule: events.Schedule,
        renew_before: cdk.Duration,
        expiry_alarm_threshold: cdk.Duration,
    ) -> None:
        super().__init__(scope, construct_id)

        def target(trigger: str) -> targets.LambdaFunction:
            return targets.LambdaFunction(
                handler.function,
                event=events.RuleTargetInput.from_object(
                    {
                        contract.RENEWAL_EVENT: {
                            contract.RENEWAL_TRIGGER: trigger,
                            contract.RENEWAL_RENEW_BEFORE_SECONDS: str(
                                int(renew_before.to_seconds())
                            ),
                            contract.RENEWAL_PROPERTIES: properties,
                        }
                    }
                ),
                # Delivery failures (throttling, a missing permission) are retried with
                # backoff for a day, then recorded in the dead-letter queue.
                retry_attempts=185,
                max_event_age=cdk.Duration.hours(24),
                dead_letter_queue=handler.dead_letter_queue,
            )

        self.renewal_rule = events.Rule(
            self,
            "RenewalSchedule",
            description="Re-imports the key material before it expires (imported-key-cdk)",
            schedule=schedule,
            targets=[target(contract.TRIGGER_SCHEDULE)],
        )
        """Runs the renewal on the schedule."""
        self.recovery_rule = events.Rule(
            self,
            "ExpirationRecovery",
            description="Re-imports the key material at once if it expired (imported-key-cdk)",
            event_pattern=events.EventPattern(
                source=["aws.kms"],
                detail_type=[KMS_EXPIRATION_EVENT],
                resources=[key.key_arn],
            ),
            targets=[target(contract.TRIGGER_MATERIAL_EXPIRED)],
        )
        """Re-imports at once when KMS reports the material expired."""
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
