"""Fleets: what a stack of many ImportedKeys costs (resources, policy size), how one handler's
sweep and fleet alarm follow its most demanding key, and how the handler gets to read secrets.

The large stacks are synthesized once per module, without bundling (stacks.NO_BUNDLING).
"""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk.assertions import Template
from stacks import (
    HANDLER_PREFIX,
    NO_BUNDLING,
    READER_NAME,
    SECRET_ARN,
    key_in,
    new_stack,
    statement_with,
)

from imported_key_cdk import ImportedKey, MaterialExpiration
from imported_key_cdk.handler import ImportHandler
from imported_key_handler import contract, registry

DAY = 86400
HOUR = 3600
FLEET_SIZE = 150
CLOUDFORMATION_MAX_RESOURCES = 500
# IAM's quotas: a role's inline policies together, and one managed policy (characters, without
# whitespace): https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html
ROLE_INLINE_POLICIES_MAX_CHARS = 10_240
MANAGED_POLICY_MAX_CHARS = 6_144
SECRET_READER_WARNING = "imported-key-cdk:secret-reader-tag"


def fleet(size: int, alias_last: bool = False) -> Template:
    """``size`` keys of the same settings in one stack, each with its own (imported) secret."""
    stack = new_stack()
    for index in range(size):
        alias = f"alias/fleet-{index}" if alias_last and index == size - 1 else None
        key_in(stack, f"Key{index}", alias=alias)
    return Template.from_stack(stack)


@pytest.fixture(scope="module")
def fleets() -> dict[str, Template]:
    return {
        "1": fleet(1),
        "2": fleet(2),
        "2 with an alias": fleet(2, alias_last=True),
        str(FLEET_SIZE): fleet(FLEET_SIZE),
    }


def resource_types(template: Template) -> list[str]:
    return sorted(r["Type"] for r in template.to_json()["Resources"].values())


def handler_policy_document(template: Template) -> dict[str, Any]:
    (policy,) = [
        p
        for name, p in template.find_resources("AWS::IAM::Policy").items()
        if name.startswith(HANDLER_PREFIX)
    ]
    return dict(policy["Properties"]["PolicyDocument"])


# What CloudFormation puts in place of each intrinsic, at its longest: a log group ARN (a name
# of up to 512 characters) is the longest ARN the policy can name.
_LONGEST = {"AWS::Partition": "aws-us-gov", "RoleId": "A" * 128, "Arn": "a" * 600}


def deployed(node: Any) -> Any:
    """The policy as IAM would store it, with each intrinsic at its longest."""
    if isinstance(node, list):
        return [deployed(item) for item in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Ref"}:
        return _LONGEST[node["Ref"]]
    if set(node) == {"Fn::GetAtt"}:
        return _LONGEST[node["Fn::GetAtt"][1]]
    if set(node) == {"Fn::Join"}:
        delimiter, parts = node["Fn::Join"]
        return str(delimiter).join(str(deployed(part)) for part in parts)
    return {key: deployed(value) for key, value in node.items()}


# --- what each key costs -----------------------------------------------------------------------


def test_a_fleet_of_150_keys_stays_well_under_cloudformations_500_resources(
    fleets: dict[str, Template],
) -> None:
    count = {name: len(resource_types(t)) for name, t in fleets.items()}
    assert count[str(FLEET_SIZE)] < CLOUDFORMATION_MAX_RESOURCES
    # The shared part (handler, index, rules, alarms) is paid once, each key adds 2 resources.
    assert count[str(FLEET_SIZE)] == count["1"] + 2 * (FLEET_SIZE - 1)


def test_each_key_adds_its_key_and_its_import_and_an_alias_when_asked(
    fleets: dict[str, Template],
) -> None:
    one, two, aliased = (resource_types(fleets[n]) for n in ("1", "2", "2 with an alias"))
    added = list(two)
    for resource_type in one:
        added.remove(resource_type)
    assert sorted(added) == ["AWS::KMS::Key", contract.RESOURCE_TYPE]
    added = list(aliased)
    for resource_type in one:
        added.remove(resource_type)
    assert sorted(added) == ["AWS::KMS::Alias", "AWS::KMS::Key", contract.RESOURCE_TYPE]


def test_the_handler_policy_is_the_same_for_1_and_150_keys(fleets: dict[str, Template]) -> None:
    one = json.dumps(handler_policy_document(fleets["1"]), sort_keys=True)
    many = json.dumps(handler_policy_document(fleets[str(FLEET_SIZE)]), sort_keys=True)
    assert many == one
    # One policy, on the role only: no managed policies added as keys grow.
    for template in (fleets["1"], fleets[str(FLEET_SIZE)]):
        policies = [n for n in template.find_resources("AWS::IAM::Policy") if HANDLER_PREFIX in n]
        assert len(policies) == 1
        assert template.find_resources("AWS::IAM::ManagedPolicy") == {}


def test_the_handler_policy_fits_iams_quotas_with_room_to_spare(
    fleets: dict[str, Template],
) -> None:
    document = deployed(handler_policy_document(fleets[str(FLEET_SIZE)]))
    size = len(json.dumps(document, separators=(",", ":")))
    assert size < MANAGED_POLICY_MAX_CHARS < ROLE_INLINE_POLICIES_MAX_CHARS
    # The worst case is pessimistic: the real one is well under half the inline quota.
    assert size < ROLE_INLINE_POLICIES_MAX_CHARS / 2


def test_the_conditions_grow_with_the_settings_in_use_not_the_keys() -> None:
    """Every wrapping the catalog allows in one stack: the lists stay bounded by the choices."""
    stack = new_stack()
    wrappings = [
        ("RSAES_OAEP_SHA_1", "RSA_2048"),
        ("RSAES_OAEP_SHA_256", "RSA_3072"),
        ("RSAES_OAEP_SHA_256", "RSA_4096"),
    ]
    for index, (algorithm, wrapping_key_spec) in enumerate(wrappings * 3):
        key_in(
            stack,
            f"Key{index}",
            wrapping_algorithm=algorithm,
            wrapping_key_spec=wrapping_key_spec,
            expiration=MaterialExpiration.never() if index % 2 else None,
        )
    template = Template.from_stack(stack)
    condition = statement_with(template, "kms:GetParametersForImport")["Condition"]
    assert condition["StringEquals"]["kms:WrappingAlgorithm"] == [
        "RSAES_OAEP_SHA_1",
        "RSAES_OAEP_SHA_256",
    ]
    assert condition["StringEquals"]["kms:WrappingKeySpec"] == ["RSA_2048", "RSA_3072", "RSA_4096"]
    imports = statement_with(template, "kms:ImportKeyMaterial")["Condition"]
    assert imports["StringEquals"]["kms:ExpirationModel"] == [
        "KEY_MATERIAL_DOES_NOT_EXPIRE",
        "KEY_MATERIAL_EXPIRES",
    ]


# --- the sweep and the fleet alarm follow the tightest key -------------------------------------


def sweep_and_threshold(stack: cdk.Stack, runtime_arch: lambda_.Architecture) -> tuple[str, Any]:
    handler = ImportHandler.find(stack, lambda_.Runtime.PYTHON_3_13, runtime_arch)
    assert handler is not None
    resources = Template.from_stack(stack).to_json()["Resources"]
    renewal = handler.node.find_child("Renewal")
    sweep = resources[stack.get_logical_id(renewal.node.find_child("Sweep").node.default_child)]  # type: ignore[arg-type]
    alarm = resources[
        stack.get_logical_id(renewal.node.find_child("FleetExpiryAlarm").node.default_child)  # type: ignore[arg-type]
    ]
    return sweep["Properties"]["ScheduleExpression"], alarm["Properties"]["Threshold"]


@pytest.mark.parametrize(
    ("keys", "expected_schedule", "expected_threshold"),
    [
        pytest.param([{}], "rate(1 hour)", 14 * DAY, id="default"),
        pytest.param([{}, {}], "rate(1 hour)", 14 * DAY, id="two-defaults"),
        pytest.param(
            [{}, {"renew_before": cdk.Duration.hours(2)}], "rate(30 minutes)", HOUR, id="short-last"
        ),
        pytest.param(
            [{"renew_before": cdk.Duration.hours(2)}, {}],
            "rate(30 minutes)",
            HOUR,
            id="short-first",
        ),
        pytest.param(
            [{}, {"expiry_alarm_threshold": cdk.Duration.days(7)}, {}],
            "rate(1 hour)",
            7 * DAY,
            id="tight-alarm",
        ),
        pytest.param(
            [{"expiration": MaterialExpiration.after(cdk.Duration.days(30))}, {}],
            "rate(1 hour)",
            5 * DAY,
            id="short-validity",
        ),
        pytest.param(
            [{"renewal_schedule": cdk.aws_events.Schedule.rate(cdk.Duration.minutes(20))}, {}],
            "rate(20 minutes)",
            14 * DAY,
            id="custom-schedule",
        ),
        pytest.param(
            [{"expiration": MaterialExpiration.never()}, {"renew_before": cdk.Duration.hours(2)}],
            "rate(30 minutes)",
            HOUR,
            id="never-expiring-beside",
        ),
    ],
)
def test_the_sweep_and_the_fleet_alarm_follow_the_tightest_key(
    keys: list[dict[str, Any]], expected_schedule: str, expected_threshold: int
) -> None:
    stack = new_stack()
    for index, props in enumerate(keys):
        key_in(stack, f"Key{index}", **props)
    schedule, threshold = sweep_and_threshold(stack, lambda_.Architecture.ARM_64)
    assert schedule == expected_schedule
    assert threshold == expected_threshold
    assert len(Template.from_stack(stack).find_resources("AWS::Events::Rule")) == 2


def test_each_handler_follows_its_own_keys() -> None:
    stack = new_stack()
    key_in(stack, "Arm")
    key_in(
        stack,
        "X86",
        handler_architecture=lambda_.Architecture.X86_64,
        renew_before=cdk.Duration.hours(2),
    )
    assert sweep_and_threshold(stack, lambda_.Architecture.ARM_64) == ("rate(1 hour)", 14 * DAY)
    assert sweep_and_threshold(stack, lambda_.Architecture.X86_64) == ("rate(30 minutes)", HOUR)
    assert len(Template.from_stack(stack).find_resources("AWS::Events::Rule")) == 4


def test_keys_created_together_fall_due_over_the_first_quarter_of_their_window() -> None:
    """A thousand keys imported on one day do not all come due in one sweep: each key's due
    time is offset into its window by a hash of its id, the same at every import."""
    valid_to = datetime(2031, 1, 1, tzinfo=UTC)
    window = timedelta(days=30)
    key_ids = [f"1234abcd-0000-4000-8000-{index:012d}" for index in range(1000)]
    dues = [registry.entry_for(key_id, valid_to, window).due for key_id in key_ids]
    earliest = valid_to - window
    assert all(earliest <= due < earliest + window / 4 for due in dues)
    per_day = [0] * 8  # the first quarter of 30 days, in whole days
    for due in dues:
        per_day[(due - earliest).days] += 1
    assert min(per_day[:7]) >= 90  # 1000 / 7.5 = 133 expected per day
    assert max(per_day) <= 180
    assert dues == [registry.entry_for(k, valid_to, window).due for k in key_ids]


# --- secrets: read by their tag ------------------------------------------------------------------


def warnings_on_handler(stack: cdk.Stack) -> list[str]:
    handler = ImportHandler.find(stack, lambda_.Runtime.PYTHON_3_13, lambda_.Architecture.ARM_64)
    assert handler is not None
    return [str(e.data) for e in handler.node.metadata if e.type == "aws:cdk:warning"]


def test_a_secret_created_in_the_app_is_tagged_for_the_handler() -> None:
    stack = new_stack()
    secret = secretsmanager.Secret(stack, "Material")
    ImportedKey(stack, "First", key_material_secret=secret)
    ImportedKey(stack, "Second", key_material_secret=secret)
    template = Template.from_stack(stack)
    (created,) = template.find_resources("AWS::SecretsManager::Secret").values()
    assert created["Properties"]["Tags"] == [
        {"Key": contract.SECRET_READER_TAG, "Value": READER_NAME}
    ]
    # The tag is what the handler's policy asks of a secret.
    condition = statement_with(template, "secretsmanager:GetSecretValue")["Condition"]
    assert condition == {
        "StringEquals": {f"secretsmanager:ResourceTag/{contract.SECRET_READER_TAG}": READER_NAME}
    }
    assert warnings_on_handler(stack) == []


def test_an_imported_secret_gets_a_warning_naming_the_tag_to_write() -> None:
    stack = new_stack()
    key_in(stack)  # its secret is imported by its complete ARN
    (warning,) = warnings_on_handler(stack)
    assert "Test/KeySecret was not created by this app" in warning
    assert f"{contract.SECRET_READER_TAG}={READER_NAME}" in warning
    assert SECRET_ARN not in warning  # the path, not the ARN
    assert warning.endswith(f"[ack: {SECRET_READER_WARNING}]")


def assembled_warnings(acknowledge: bool) -> list[str]:
    """The warnings the cloud assembly holds (what ``cdk synth --strict`` fails on)."""
    stack = new_stack()
    key_in(stack)
    if acknowledge:
        cdk.Annotations.of(stack).acknowledge_warning(SECRET_READER_WARNING, "Tagged by hand.")
    stage = cdk.Stage.of(stack)
    assert stage is not None
    directory = Path(stage.synth().directory)
    artifact = json.loads((directory / "manifest.json").read_text())["artifacts"]["Test"]
    metadata = dict(artifact.get("metadata", {}))
    if "additionalMetadataFile" in artifact:
        metadata.update(json.loads((directory / artifact["additionalMetadataFile"]).read_text()))
    return [
        str(entry["data"])
        for entries in metadata.values()
        for entry in entries
        if entry["type"] == "aws:cdk:warning"
    ]


def test_the_warning_reaches_the_assembly_until_acknowledged() -> None:
    (warning,) = assembled_warnings(acknowledge=False)
    assert f"{contract.SECRET_READER_TAG}={READER_NAME}" in warning
    assert assembled_warnings(acknowledge=True) == []


def test_a_secret_shared_by_two_handlers_is_readable_by_both() -> None:
    stack = new_stack()
    secret = secretsmanager.Secret(stack, "Material")
    ImportedKey(stack, "Arm", key_material_secret=secret)
    ImportedKey(
        stack, "X86", key_material_secret=secret, handler_architecture=lambda_.Architecture.X86_64
    )
    template = Template.from_stack(stack)
    (created,) = template.find_resources("AWS::SecretsManager::Secret").values()
    tags = {t["Key"]: t["Value"] for t in created["Properties"]["Tags"]}
    readers = [
        statement["Condition"]["StringEquals"]
        for name, policy in template.find_resources("AWS::IAM::Policy").items()
        if name.startswith(HANDLER_PREFIX)
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Action"] == "secretsmanager:GetSecretValue"
    ]
    assert len(readers) == 2
    for condition in readers:
        ((tag_condition, value),) = condition.items()
        assert tags.get(tag_condition.split("/", 1)[1]) == value


def test_a_secret_created_in_the_app_serves_the_keys_of_one_stack_only() -> None:
    app = cdk.App(context=NO_BUNDLING)
    one = cdk.Stack(app, "One")
    two = cdk.Stack(app, "Two")
    secret = secretsmanager.Secret(one, "Material")
    ImportedKey(one, "Key", key_material_secret=secret)
    with pytest.raises(ValueError, match="read by keys of stack 'One' and of stack 'Two'"):
        ImportedKey(two, "Key", key_material_secret=secret)
    assert two.node.try_find_child("Key") is None
