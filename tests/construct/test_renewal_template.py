"""Template tests for the renewal machinery of ImportedKey: the handler's sweep and expiration
rule, the fleet alarm and the optional per-key alarm, the dead-letter queue.

Nothing here is per key but the optional alarm: every key of a handler shares one
``FleetRenewal`` (the sweep, the expiration rule, the fleet alarm), and tells the sweep its own
window through its declared-settings tag.
"""

import json
import re
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_events as events
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Template
from constructs import Construct
from stacks import FLEET_NAME, key_in, new_stack, tags_of

from imported_key_cdk import ImportedKey, MaterialExpiration
from imported_key_cdk.handler import ImportHandler
from imported_key_cdk.renewal import FleetRenewal, default_renew_before, schedule_interval_seconds
from imported_key_handler import contract

DAY = 86400
HOUR = 3600
KMS_EXPIRATION_EVENT = "KMS Imported Key Material Expiration"
EXPIRY_METRIC = "SecondsUntilKeyMaterialExpiration"
FLEET_METRIC = "MinSecondsUntilExpiration"
RETRY_POLICY = {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400}


# --- helpers -----------------------------------------------------------------------------------


def logical_id(construct: Construct) -> str:
    default_child = construct.node.default_child
    assert isinstance(default_child, cdk.CfnElement)
    return cdk.Stack.of(construct).get_logical_id(default_child)


def get_att(construct: Construct, attribute: str = "Arn") -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id(construct), attribute]}


def ref(construct: Construct) -> dict[str, str]:
    return {"Ref": logical_id(construct)}


def handler_of(key: ImportedKey) -> ImportHandler:
    """The stack's (already existing) default handler, reached through its public lookup."""
    handler = ImportHandler.of(key, lambda_.Runtime.PYTHON_3_13, lambda_.Architecture.ARM_64)
    assert handler.function is key.handler
    return handler


def resource(template: Template, construct: Construct | None) -> dict[str, Any]:
    assert construct is not None
    resources: dict[str, Any] = template.to_json()["Resources"]
    return dict(resources[logical_id(construct)])


def rule_of(template: Template, rule: events.Rule | None) -> dict[str, Any]:
    found = resource(template, rule)
    assert found["Type"] == "AWS::Events::Rule"
    return dict(found["Properties"])


def only_target(rule_props: dict[str, Any]) -> dict[str, Any]:
    (target,) = rule_props["Targets"]
    return dict(target)


def declared_window(template: Template, key: ImportedKey) -> int | None:
    """The renewal window the key declares in its tag (what the sweep renews it by)."""
    tags = tags_of(resource(template, key.external_key))
    return contract.parse_declared(tags[contract.TAG_DECLARED])[1]


def alarms(template: Template) -> dict[str, dict[str, Any]]:
    return {
        name: dict(alarm["Properties"])
        for name, alarm in template.find_resources("AWS::CloudWatch::Alarm").items()
    }


def alarms_with_metric(template: Template, metric_name: str) -> dict[str, dict[str, Any]]:
    return {n: p for n, p in alarms(template).items() if p.get("MetricName") == metric_name}


def after_days(days: int) -> MaterialExpiration:
    return MaterialExpiration.after(cdk.Duration.days(days))


def rate(duration: cdk.Duration) -> events.Schedule:
    return events.Schedule.rate(duration)


def expression(text: str) -> events.Schedule:
    return events.Schedule.expression(text)


# --- the sweep -----------------------------------------------------------------------------------


def test_the_sweep_runs_hourly_by_default() -> None:
    stack = new_stack()
    key = key_in(stack)
    template = Template.from_stack(stack)
    scheduled = {
        name
        for name, rule in template.find_resources("AWS::Events::Rule").items()
        if "ScheduleExpression" in rule["Properties"]
    }
    assert scheduled == {logical_id(key.renewal_rule)}  # type: ignore[arg-type]
    assert key.renewal is FleetRenewal.of(handler_of(key))
    assert key.renewal_rule is key.renewal.sweep_rule
    rule = rule_of(template, key.renewal_rule)
    assert rule["ScheduleExpression"] == "rate(1 hour)"
    assert rule["State"] == "ENABLED"


def test_keys_share_one_sweep_and_one_expiration_rule() -> None:
    """Twenty keys, two rules: each key joins the handler's sweep (the due index spreads their
    renewals, see imported_key_handler.registry) rather than adding rules of its own."""
    stack = new_stack()
    keys = [key_in(stack, f"Key{index}") for index in range(20)]
    template = Template.from_stack(stack)
    assert len(template.find_resources("AWS::Events::Rule")) == 2
    assert {id(key.renewal) for key in keys} == {id(keys[0].renewal)}
    assert {logical_id(key.renewal_rule) for key in keys} == {logical_id(keys[0].renewal_rule)}  # type: ignore[arg-type]
    assert {logical_id(key.recovery_rule) for key in keys} == {logical_id(keys[0].recovery_rule)}  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        (rate(cdk.Duration.hours(12)), "rate(1 hour)"),
        (rate(cdk.Duration.days(2)), "rate(1 hour)"),
        (events.Schedule.cron(minute="0", hour="3"), "rate(1 hour)"),
        (expression("cron(30 */6 * * ? *)"), "rate(1 hour)"),
        (rate(cdk.Duration.minutes(90)), "rate(1 hour)"),
        (rate(cdk.Duration.minutes(30)), "rate(30 minutes)"),
        (expression("rate(1 minute)"), "rate(1 minute)"),
    ],
)
def test_a_custom_schedule_makes_the_sweep_more_frequent_never_less(
    schedule: events.Schedule, expected: str
) -> None:
    """renewal_schedule is how often, at the longest, the key wants to be looked at: the sweep
    is hourly at the longest, so a slower schedule changes nothing."""
    stack = new_stack()
    key = key_in(stack, renewal_schedule=schedule)
    rule = rule_of(Template.from_stack(stack), key.renewal_rule)
    assert rule["ScheduleExpression"] == expected
    interval = schedule_interval_seconds(expression(expected))
    assert interval is not None
    assert interval <= (schedule_interval_seconds(schedule) or 0)


@pytest.mark.parametrize("secret_in_stack", [False, True])
def test_the_sweep_target_is_the_sweep_function_with_a_sweep_event(
    secret_in_stack: bool,
) -> None:
    """The sweep event names no key: the sweep reads what is due from the index and each key's
    settings from its own tags, so nothing of a key (not its secret) reaches the rule."""
    stack = new_stack()
    props: dict[str, Any] = {"expiration": after_days(90)}
    if secret_in_stack:
        props["key_material_secret"] = secretsmanager.Secret(stack, "Material")
    key = key_in(stack, **props)
    template = Template.from_stack(stack)
    target = only_target(rule_of(template, key.renewal_rule))
    assert target["Arn"] == get_att(handler_of(key).sweep_function)
    assert json.loads(target["Input"]) == {contract.SWEEP_EVENT: {}}


def test_each_key_declares_its_own_window_to_the_shared_sweep() -> None:
    stack = new_stack()
    first = key_in(stack, "First")
    second = key_in(stack, "Second", expiration=after_days(60))
    template = Template.from_stack(stack)
    assert first.renewal is second.renewal
    assert declared_window(template, first) == 30 * DAY
    assert declared_window(template, second) == 20 * DAY
    assert logical_id(first.external_key) != logical_id(second.external_key)


@pytest.mark.parametrize("which", ["renewal", "recovery"])
def test_rule_target_retries_for_a_day_then_uses_the_dead_letter_queue(which: str) -> None:
    stack = new_stack()
    key = key_in(stack)
    template = Template.from_stack(stack)
    rule = key.renewal_rule if which == "renewal" else key.recovery_rule
    target = only_target(rule_of(template, rule))
    assert target["Arn"] == get_att(handler_of(key).sweep_function)
    assert target["RetryPolicy"] == RETRY_POLICY
    assert target["DeadLetterConfig"] == {"Arn": get_att(handler_of(key).dead_letter_queue)}


def test_events_may_invoke_the_sweep_function_from_each_rule_only() -> None:
    stack = new_stack()
    key = key_in(stack)
    key_in(stack, "Second")
    template = Template.from_stack(stack)
    permissions = [
        p["Properties"]
        for p in template.find_resources("AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "events.amazonaws.com"
    ]
    expected = [
        {
            "Action": "lambda:InvokeFunction",
            "FunctionName": get_att(handler_of(key).sweep_function),
            "Principal": "events.amazonaws.com",
            "SourceArn": get_att(rule),  # type: ignore[arg-type]
        }
        for rule in (key.renewal_rule, key.recovery_rule)
    ]
    key_of = lambda p: json.dumps(p, sort_keys=True)  # noqa: E731
    assert sorted(permissions, key=key_of) == sorted(expected, key=key_of)


# --- the recovery rule ---------------------------------------------------------------------------


def test_recovery_rule_matches_every_kms_expiration_event_as_it_is() -> None:
    """EventBridge cannot match a key's tags, so the rule takes every expiration event of the
    account and Region; the handler acts on its own keys only (its policy refuses the rest)."""
    stack = new_stack()
    key = key_in(stack)
    template = Template.from_stack(stack)
    rule = rule_of(template, key.recovery_rule)
    assert "ScheduleExpression" not in rule
    assert rule["EventPattern"] == {
        "source": ["aws.kms"],
        "detail-type": [KMS_EXPIRATION_EVENT],
    }
    assert contract.KMS_EXPIRATION_EVENT == KMS_EXPIRATION_EVENT
    target = only_target(rule)
    assert "Input" not in target  # KMS's event itself, which names the key


def test_two_keys_share_the_recovery_rule() -> None:
    stack = new_stack()
    first = key_in(stack, "First")
    second = key_in(stack, "Second")
    template = Template.from_stack(stack)
    assert len(template.find_resources("AWS::Events::Rule")) == 2
    assert first.recovery_rule is second.recovery_rule
    assert "resources" not in rule_of(template, first.recovery_rule)["EventPattern"]


# --- the renewal window --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("validity_days", "schedule", "renew_before", "expected_seconds"),
    [
        (365, None, None, 30 * DAY),
        (91, None, None, 30 * DAY),
        (90, None, None, 30 * DAY),
        (30, None, None, 10 * DAY),
        (3, rate(cdk.Duration.hours(12)), None, 1 * DAY),
        (365, None, cdk.Duration.days(45), 45 * DAY),
        (30, None, cdk.Duration.days(5), 5 * DAY),
        (7, rate(cdk.Duration.hours(6)), cdk.Duration.hours(36), 36 * HOUR),
    ],
)
def test_renewal_window_in_the_declared_tag(
    validity_days: int,
    schedule: events.Schedule | None,
    renew_before: cdk.Duration | None,
    expected_seconds: int,
) -> None:
    stack = new_stack()
    key = key_in(
        stack,
        expiration=after_days(validity_days),
        renewal_schedule=schedule,
        renew_before=renew_before,
    )
    assert declared_window(Template.from_stack(stack), key) == expected_seconds


@pytest.mark.parametrize(
    ("validity_days", "expected_seconds"),
    [(365, 30 * DAY), (90, 30 * DAY), (60, 20 * DAY), (30, 10 * DAY), (3, DAY), (1, 8 * HOUR)],
)
def test_default_renew_before(validity_days: int, expected_seconds: int) -> None:
    assert default_renew_before(validity_days).to_seconds() == expected_seconds


# --- the synth-time schedule check ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("validity_days", "schedule", "expression_text", "window_text"),
    [
        (1, rate(cdk.Duration.days(1)), "rate(1 day)", "8 hours"),
        (365, rate(cdk.Duration.days(20)), "rate(20 days)", "30 days"),
        (365, rate(cdk.Duration.hours(361)), "rate(361 hours)", "30 days"),
        (30, rate(cdk.Duration.days(6)), "rate(6 days)", "10 days"),
        (1, rate(cdk.Duration.hours(5)), "rate(5 hours)", "8 hours"),
    ],
)
def test_schedule_that_does_not_fire_twice_in_the_window_is_rejected(
    validity_days: int,
    schedule: events.Schedule | None,
    expression_text: str,
    window_text: str,
) -> None:
    message = (
        rf"renewal_schedule: '{re.escape(expression_text)}'.*"
        rf"twice inside the renewal window of {window_text}"
    )
    with pytest.raises(ValueError, match=message):
        key_in(new_stack(), expiration=after_days(validity_days), renewal_schedule=schedule)


@pytest.mark.parametrize(
    ("validity_days", "schedule", "renew_before"),
    [
        (365, rate(cdk.Duration.days(15)), None),
        (365, rate(cdk.Duration.hours(360)), None),
        (30, rate(cdk.Duration.days(5)), None),
        (1, rate(cdk.Duration.hours(4)), None),
        (3, rate(cdk.Duration.hours(12)), None),
        (365, rate(cdk.Duration.days(1)), cdk.Duration.days(2)),
        (365, expression("cron(0 3 * * ? *)"), cdk.Duration.days(2)),
    ],
)
def test_schedule_firing_exactly_twice_in_the_window_is_accepted(
    validity_days: int, schedule: events.Schedule, renew_before: cdk.Duration | None
) -> None:
    stack = new_stack()
    key = key_in(
        stack,
        expiration=after_days(validity_days),
        renewal_schedule=schedule,
        renew_before=renew_before,
    )
    # Accepted, and the sweep looks at the key at least as often as the schedule asks.
    rule = rule_of(Template.from_stack(stack), key.renewal_rule)
    sweep = schedule_interval_seconds(expression(rule["ScheduleExpression"]))
    assert sweep is not None
    assert sweep <= (schedule_interval_seconds(schedule) or 0)


@pytest.mark.parametrize(
    "text",
    [
        "cron(0 3 ? * MON *)",
        "cron(0 3 1 * ? *)",
        "cron(0/30 * * * ? *)",
        "cron(0 */5 * * ? *)",
        "cron(0 3 ? JAN * *)",
    ],
)
def test_cron_it_cannot_reason_about_is_rejected_clearly(text: str) -> None:
    message = rf"renewal_schedule: '{re.escape(text)}'.*Cannot tell how often it fires"
    with pytest.raises(ValueError, match=message):
        key_in(new_stack(), renewal_schedule=expression(text))


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("cron(0 3 * * ? 2030)", id="year-bound"),
        pytest.param("cron(0 */0 * * ? *)", id="zero-hour-step"),
    ],
)
def test_year_bound_or_zero_step_cron_is_rejected_with_value_error(text: str) -> None:
    with pytest.raises(ValueError, match=rf"renewal_schedule: '{re.escape(text)}'"):
        key_in(new_stack(), renewal_schedule=expression(text))


@pytest.mark.parametrize(
    ("validity_days", "renew_before"),
    [
        (365, cdk.Duration.days(365)),
        (365, cdk.Duration.days(400)),
        (30, cdk.Duration.days(30)),
        (365, cdk.Duration.seconds(0)),
    ],
)
def test_renew_before_outside_the_validity_is_rejected(
    validity_days: int, renew_before: cdk.Duration
) -> None:
    message = (
        r"Invalid renew_before: .*longer than zero and shorter than the material's validity "
        rf"\({validity_days} days\)"
    )
    with pytest.raises(ValueError, match=message):
        key_in(new_stack(), expiration=after_days(validity_days), renew_before=renew_before)


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        (rate(cdk.Duration.minutes(1)), 60),
        (rate(cdk.Duration.minutes(5)), 300),
        (rate(cdk.Duration.minutes(90)), 5400),
        (rate(cdk.Duration.hours(1)), HOUR),
        (rate(cdk.Duration.hours(6)), 6 * HOUR),
        (rate(cdk.Duration.days(1)), DAY),
        (rate(cdk.Duration.days(7)), 7 * DAY),
        (expression("rate(1 minute)"), 60),
        (expression("rate(2 hours)"), 2 * HOUR),
        (expression("rate(3 days)"), 3 * DAY),
        (events.Schedule.cron(minute="0", hour="3"), DAY),
        (expression("cron(15 23 ? * * *)"), DAY),
        (expression("cron(0 * * * ? *)"), HOUR),
        (expression("cron(0 */6 * * ? *)"), 6 * HOUR),
        (expression("cron(0 0/8 * * ? *)"), 8 * HOUR),
        (expression("cron(0 */1 * * ? *)"), HOUR),
        # Largest gap between listed hours, wrap-around to the next day included.
        (expression("cron(0 3,9,15 * * ? *)"), 12 * HOUR),
        (expression("cron(0 1,2,20 * * ? *)"), 18 * HOUR),
        (expression("cron(0 20,2 * * ? *)"), 18 * HOUR),
        (expression("cron(0 0,12 * * ? *)"), 12 * HOUR),
        (expression("cron(0 6,7 * * ? *)"), 23 * HOUR),
    ],
)
def test_schedule_interval_seconds(schedule: events.Schedule, expected: int) -> None:
    assert schedule_interval_seconds(schedule) == expected


@pytest.mark.parametrize(
    "text",
    [
        "cron(0 3 ? * MON *)",
        "cron(0 3 1 * ? *)",
        "cron(0 3 ? JAN * *)",
        "cron(0/30 * * * ? *)",
        "cron(0 */5 * * ? *)",
        "cron(0 8-17 * * ? *)",
        "cron(0 3 * * ?)",
        "at(2030-01-01T00:00:00)",
        "rate(1 week)",
    ],
)
def test_schedule_interval_seconds_unknown(text: str) -> None:
    assert schedule_interval_seconds(expression(text)) is None


# --- MaterialExpiration.never() ------------------------------------------------------------------


def test_never_expiring_material_has_no_rules_and_no_expiry_alarm() -> None:
    stack = new_stack()
    key = key_in(stack, expiration=MaterialExpiration.never(), per_key_expiry_alarm=True)
    template = Template.from_stack(stack)
    assert template.find_resources("AWS::Events::Rule") == {}
    assert alarms_with_metric(template, EXPIRY_METRIC) == {}
    assert alarms_with_metric(template, FLEET_METRIC) == {}
    assert key.renewal is None
    assert key.renewal_rule is None
    assert key.recovery_rule is None
    assert key.expiry_alarm is None
    assert key.key_expiry_alarm is None
    assert declared_window(template, key) is None
    # The handler's own alarms remain (its import can still fail).
    assert set(alarms(template)) == {
        logical_id(key.handler_errors_alarm),
        logical_id(key.dead_letter_alarm),
    }


def test_a_never_expiring_key_beside_an_expiring_one_stays_out_of_the_renewal() -> None:
    stack = new_stack()
    expiring = key_in(stack, "Expiring")
    never = key_in(stack, "Never", expiration=MaterialExpiration.never())
    template = Template.from_stack(stack)
    assert never.renewal is None
    assert never.expiry_alarm is None
    assert expiring.renewal is not None
    assert len(template.find_resources("AWS::Events::Rule")) == 2


@pytest.mark.parametrize(
    "prop",
    [
        {"renewal_schedule": rate(cdk.Duration.days(1))},
        {"renew_before": cdk.Duration.days(10)},
        {"expiry_alarm_threshold": cdk.Duration.days(7)},
    ],
)
def test_never_expiring_material_rejects_renewal_settings(prop: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"never expires.*nothing to renew"):
        key_in(new_stack(), expiration=MaterialExpiration.never(), **prop)


# --- alarms --------------------------------------------------------------------------------------


def test_the_fleet_alarm_watches_the_sweeps_metric() -> None:
    """One alarm for the handler's keys, on the earliest expiry the sweep publishes; missing
    data (the sweep stopped, or the index lost its keys) is breaching."""
    stack = new_stack()
    key = key_in(stack)
    template = Template.from_stack(stack)
    assert key.renewal is not None
    assert key.expiry_alarm is key.renewal.expiry_alarm
    assert set(alarms_with_metric(template, FLEET_METRIC)) == {logical_id(key.expiry_alarm)}
    assert alarms_with_metric(template, EXPIRY_METRIC) == {}  # no per-key alarm by default
    props = resource(template, key.expiry_alarm)["Properties"]
    assert {k: v for k, v in props.items() if k != "AlarmDescription"} == {
        "Namespace": contract.FLEET_METRIC_NAMESPACE,
        "MetricName": FLEET_METRIC,
        "Dimensions": [{"Name": contract.METRIC_DIMENSION, "Value": FLEET_NAME}],
        "Statistic": "Minimum",
        "Period": 2 * HOUR,
        "EvaluationPeriods": 1,
        "ComparisonOperator": "LessThanThreshold",
        "Threshold": 14 * DAY,
        "TreatMissingData": "breaching",
    }
    assert contract.FLEET_METRIC_NAMESPACE == "ImportedKeyCdk/Fleet"
    assert contract.METRIC_MIN_SECONDS_TO_EXPIRY == FLEET_METRIC


def test_per_key_expiry_alarm_on_seconds_until_expiration() -> None:
    stack = new_stack()
    key = key_in(stack, per_key_expiry_alarm=True)
    template = Template.from_stack(stack)
    assert key.key_expiry_alarm is not None
    assert key.expiry_alarm is key.key_expiry_alarm.expiry_alarm
    assert set(alarms_with_metric(template, EXPIRY_METRIC)) == {logical_id(key.expiry_alarm)}
    props = resource(template, key.expiry_alarm)["Properties"]
    assert {k: v for k, v in props.items() if k != "AlarmDescription"} == {
        "Namespace": "AWS/KMS",
        "MetricName": EXPIRY_METRIC,
        "Dimensions": [{"Name": "KeyId", "Value": ref(key.external_key)}],
        "Statistic": "Minimum",
        "Period": 3600,
        "EvaluationPeriods": 1,
        "ComparisonOperator": "LessThanThreshold",
        "Threshold": 14 * DAY,
        "TreatMissingData": "breaching",
    }
    # The fleet alarm stays: the per-key alarm is in addition.
    assert len(alarms_with_metric(template, FLEET_METRIC)) == 1


@pytest.mark.parametrize(
    ("validity_days", "extra", "expected_threshold"),
    [
        (365, {}, 14 * DAY),
        (90, {}, 14 * DAY),
        (30, {}, 5 * DAY),
        (3, {"renewal_schedule": rate(cdk.Duration.hours(12))}, 12 * HOUR),
        (365, {"renew_before": cdk.Duration.days(20)}, 10 * DAY),
        (365, {"renew_before": cdk.Duration.days(60)}, 14 * DAY),
        (365, {"expiry_alarm_threshold": cdk.Duration.days(7)}, 7 * DAY),
        (30, {"expiry_alarm_threshold": cdk.Duration.days(9)}, 9 * DAY),
        (365, {"expiry_alarm_threshold": cdk.Duration.hours(12)}, 12 * HOUR),
    ],
)
def test_expiry_alarm_threshold(
    validity_days: int, extra: dict[str, Any], expected_threshold: int
) -> None:
    stack = new_stack()
    key = key_in(stack, expiration=after_days(validity_days), per_key_expiry_alarm=True, **extra)
    template = Template.from_stack(stack)
    assert key.renewal is not None
    for alarm in (key.renewal.expiry_alarm, key.expiry_alarm):
        assert resource(template, alarm)["Properties"]["Threshold"] == expected_threshold


@pytest.mark.parametrize(
    ("validity_days", "extra"),
    [
        (365, {"expiry_alarm_threshold": cdk.Duration.days(30)}),
        (365, {"expiry_alarm_threshold": cdk.Duration.days(45)}),
        (30, {"expiry_alarm_threshold": cdk.Duration.days(10)}),
        (
            365,
            {
                "renew_before": cdk.Duration.days(20),
                "expiry_alarm_threshold": cdk.Duration.days(20),
            },
        ),
        (365, {"expiry_alarm_threshold": cdk.Duration.seconds(0)}),
    ],
)
def test_expiry_alarm_threshold_not_inside_the_window_is_rejected(
    validity_days: int, extra: dict[str, Any]
) -> None:
    message = r"Invalid expiry_alarm_threshold: .*shorter than the renewal window"
    with pytest.raises(ValueError, match=message):
        key_in(new_stack(), expiration=after_days(validity_days), **extra)


def test_handler_alarms_exist_once_per_stack_and_are_shared() -> None:
    stack = new_stack()
    first = key_in(stack, "First")
    second = key_in(stack, "Second", expiration=after_days(90))
    template = Template.from_stack(stack)
    handler = handler_of(first)
    assert first.handler_errors_alarm is second.handler_errors_alarm
    assert first.dead_letter_alarm is second.dead_letter_alarm
    assert first.handler_errors_alarm is not first.dead_letter_alarm

    # The errors of both functions, the import's and the sweep's, in one alarm.
    errors_props = resource(template, first.handler_errors_alarm)["Properties"]
    expression_metric, *metrics = errors_props["Metrics"]
    assert expression_metric["Expression"] == "FILL(imports, 0) + FILL(sweeps, 0)"
    assert expression_metric["ReturnData"] is True
    assert sorted(
        (m["Id"], m["MetricStat"]["Metric"]["Namespace"], m["MetricStat"]["Metric"]["MetricName"],
         json.dumps(m["MetricStat"]["Metric"]["Dimensions"]), m["MetricStat"]["Stat"],
         m["MetricStat"]["Period"])
        for m in metrics
    ) == [
        ("imports", "AWS/Lambda", "Errors",
         json.dumps([{"Name": "FunctionName", "Value": ref(handler.function)}]), "Sum", 300),
        ("sweeps", "AWS/Lambda", "Errors",
         json.dumps([{"Name": "FunctionName", "Value": ref(handler.sweep_function)}]), "Sum", 300),
    ]  # fmt: skip
    assert errors_props["Threshold"] == 1
    assert errors_props["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"

    dead_letters = alarms_with_metric(template, "ApproximateNumberOfMessagesVisible")
    assert set(dead_letters) == {logical_id(first.dead_letter_alarm)}
    dlq_props = dead_letters[logical_id(first.dead_letter_alarm)]
    assert dlq_props["Namespace"] == "AWS/SQS"
    assert dlq_props["Dimensions"] == [
        {"Name": "QueueName", "Value": get_att(handler.dead_letter_queue, "QueueName")}
    ]
    assert dlq_props["Threshold"] == 1
    assert dlq_props["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"

    # One fleet alarm for both keys plus the two shared ones.
    assert first.expiry_alarm is second.expiry_alarm
    assert set(alarms(template)) == {
        logical_id(first.expiry_alarm),  # type: ignore[arg-type]
        logical_id(first.handler_errors_alarm),
        logical_id(first.dead_letter_alarm),
    }


@pytest.mark.parametrize("per_key", [False, True])
def test_alarm_topic_receives_every_alarm(per_key: bool) -> None:
    stack = new_stack()
    topic = sns.Topic(stack, "Alerts")
    key = key_in(stack, alarm_topic=topic, per_key_expiry_alarm=per_key)
    template = Template.from_stack(stack)
    assert len(alarms(template)) == (4 if per_key else 3)
    for name, props in alarms(template).items():
        assert props["AlarmActions"] == [ref(topic)], name
    assert key.expiry_alarm is not None


@pytest.mark.parametrize("per_key", [False, True])
def test_two_keys_with_the_same_topic_do_not_duplicate_actions(per_key: bool) -> None:
    stack = new_stack()
    topic = sns.Topic(stack, "Alerts")
    first = key_in(stack, "First", alarm_topic=topic, per_key_expiry_alarm=per_key)
    second = key_in(stack, "Second", alarm_topic=topic, per_key_expiry_alarm=per_key)
    template = Template.from_stack(stack)
    for name, props in alarms(template).items():
        assert props["AlarmActions"] == [ref(topic)], name
    assert len(alarms(template)) == (5 if per_key else 3)
    assert (first.expiry_alarm is second.expiry_alarm) is not per_key


def test_same_topic_imported_twice_does_not_duplicate_actions() -> None:
    stack = new_stack()
    arn = "arn:aws:sns:eu-west-1:111122223333:alerts"
    key_in(stack, "First", alarm_topic=sns.Topic.from_topic_arn(stack, "AlertsA", arn))
    key_in(stack, "Second", alarm_topic=sns.Topic.from_topic_arn(stack, "AlertsB", arn))
    for name, props in alarms(Template.from_stack(stack)).items():
        assert props["AlarmActions"] == [arn], name


def test_two_keys_with_different_topics() -> None:
    stack = new_stack()
    topic_a = sns.Topic(stack, "AlertsA")
    topic_b = sns.Topic(stack, "AlertsB")
    first = key_in(stack, "First", alarm_topic=topic_a, per_key_expiry_alarm=True)
    second = key_in(stack, "Second", alarm_topic=topic_b, per_key_expiry_alarm=True)
    template = Template.from_stack(stack)

    def actions(alarm: Construct | None) -> list[Any]:
        return list(resource(template, alarm)["Properties"]["AlarmActions"])

    assert actions(first.expiry_alarm) == [ref(topic_a)]
    assert actions(second.expiry_alarm) == [ref(topic_b)]
    assert first.renewal is not None
    shared = (first.handler_errors_alarm, first.dead_letter_alarm, first.renewal.expiry_alarm)
    for alarm in shared:
        assert sorted(actions(alarm), key=json.dumps) == sorted(
            [ref(topic_a), ref(topic_b)], key=json.dumps
        )


def test_without_a_topic_alarms_have_no_actions() -> None:
    stack = new_stack()
    key_in(stack, per_key_expiry_alarm=True)
    found = alarms(Template.from_stack(stack))
    assert len(found) == 4
    for name, props in found.items():
        assert "AlarmActions" not in props, name


# --- the dead-letter queue and the asynchronous invoke config ------------------------------------


def test_dead_letter_queue_is_sqs_managed_encrypted() -> None:
    stack = new_stack()
    key = key_in(stack)
    template = Template.from_stack(stack)
    assert len(template.find_resources("AWS::SQS::Queue")) == 1
    queue = resource(template, handler_of(key).dead_letter_queue)
    assert queue["Type"] == "AWS::SQS::Queue"
    assert queue["Properties"]["SqsManagedSseEnabled"] is True
    assert "KmsMasterKeyId" not in queue["Properties"]


def test_dead_letter_queue_policy_denies_plain_http_and_admits_the_rules() -> None:
    stack = new_stack()
    key = key_in(stack)
    template = Template.from_stack(stack)
    queue = handler_of(key).dead_letter_queue
    (policy,) = template.find_resources(
        "AWS::SQS::QueuePolicy", {"Properties": {"Queues": [ref(queue)]}}
    ).values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]

    denies = [s for s in statements if s["Effect"] == "Deny"]
    assert denies == [
        {
            "Action": "sqs:*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Resource": get_att(queue),
        }
    ]

    allows = [s for s in statements if s["Effect"] == "Allow"]
    for statement in allows:
        assert statement["Principal"] == {"Service": "events.amazonaws.com"}
        assert statement["Action"] == "sqs:SendMessage"
        assert statement["Resource"] == get_att(queue)
    sources = sorted(
        json.dumps(s["Condition"]["ArnEquals"]["aws:SourceArn"], sort_keys=True) for s in allows
    )
    assert sources == sorted(
        json.dumps(get_att(rule), sort_keys=True)  # type: ignore[arg-type]
        for rule in (key.renewal_rule, key.recovery_rule)
    )


def test_async_invoke_config_retries_twice_then_records_to_the_queue() -> None:
    stack = new_stack()
    key = key_in(stack)
    template = Template.from_stack(stack)
    handler = handler_of(key)
    configs = {
        json.dumps(c["Properties"]["FunctionName"]): c["Properties"]
        for c in template.find_resources("AWS::Lambda::EventInvokeConfig").values()
    }
    functions = (handler.function, handler.sweep_function)
    assert set(configs) == {json.dumps(ref(f)) for f in functions}
    for props in configs.values():
        assert props["MaximumRetryAttempts"] == 2
        assert props["MaximumEventAgeInSeconds"] == 6 * HOUR
        assert props["DestinationConfig"] == {
            "OnFailure": {"Destination": get_att(handler.dead_letter_queue)}
        }


def test_one_queue_and_one_invoke_config_per_function_for_two_keys() -> None:
    stack = new_stack()
    first = key_in(stack, "First")
    key_in(stack, "Second")
    template = Template.from_stack(stack)
    assert len(template.find_resources("AWS::SQS::Queue")) == 1
    assert len(template.find_resources("AWS::Lambda::EventInvokeConfig")) == 2
    queue_arn = get_att(handler_of(first).dead_letter_queue)
    for rule in (first.renewal_rule, first.recovery_rule):
        target = only_target(rule_of(template, rule))
        assert target["DeadLetterConfig"] == {"Arn": queue_arn}
