"""The binding checks on their own: which events match a key's tags, and when a PendingImport
key counts as revoked rather than expired. Stubbed ListResourceTags, validated against the
real KMS model; the end-to-end suites send the same events to LocalStack."""

from datetime import UTC, datetime, timedelta
from typing import Any, Final

import pytest
import stubbing
from support.binding import TEST_HANDLER_ROLE_ID, binding_tags, cloudformation_reporting
from support.events import LOGICAL_ID, cfn_event, import_properties, stack_id_for

from imported_key_handler import contract
from imported_key_handler.binding import (
    CLOCK_SKEW,
    Binding,
    require_declared,
    require_removal,
)
from imported_key_handler.errors import ImportFailure

NOW: Final = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
PROPERTIES: Final = import_properties(stubbing.KEY_ID, stubbing.SECRET_ARN)


@pytest.fixture(autouse=True)
def handler_role(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(contract.ENV_HANDLER_ROLE_ID, TEST_HANDLER_ROLE_ID)


def declared(kms: stubbing.KmsStub, **changes: str) -> dict[str, Any]:
    """Queue the key's tags for PROPERTIES; return an event's properties with ``changes``."""
    kms.add_binding(PROPERTIES)
    return {**PROPERTIES, **changes}


def test_the_declared_event_is_accepted(kms: stubbing.KmsStub) -> None:
    binding = require_declared(kms.client, declared(kms))
    assert binding.key_id == stubbing.KEY_ID
    assert binding.tags[contract.TAG_SECRET] == stubbing.SECRET_ARN


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({contract.PROP_SECRET_ARN: stubbing.SECRET_ARN + "x"}, contract.TAG_SECRET),
        ({contract.PROP_ROTATE_ON_MATERIAL_CHANGE: "true"}, contract.TAG_SETTINGS),
        ({contract.PROP_DELETE_MATERIAL_ON_REMOVAL: "true"}, contract.TAG_SETTINGS),
        ({contract.PROP_WRAPPING_KEY_SPEC: "RSA_2048"}, contract.TAG_SETTINGS),
        ({contract.PROP_VALIDITY_DAYS: "364"}, contract.TAG_SETTINGS),
        ({contract.PROP_MATERIAL_VERSION_ID: "v-other"}, contract.PROP_MATERIAL_VERSION_ID),
        ({contract.PROP_JSON_FIELD: "material"}, contract.TAG_SETTINGS),
    ],
    ids=lambda value: next(iter(value)) if isinstance(value, dict) else "",
)
def test_anything_else_is_refused_naming_the_tag(
    kms: stubbing.KmsStub, change: dict[str, str], named: str
) -> None:
    with pytest.raises(ImportFailure) as refused:
        require_declared(kms.client, declared(kms, **change))
    assert named in refused.value.reason
    assert "Nothing was changed" in refused.value.reason
    assert kms.recorder.operations == ["ListResourceTags"]


def test_a_key_of_another_handler_is_refused(
    kms: stubbing.KmsStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(contract.ENV_HANDLER_ROLE_ID, "AROAANOTHERHANDLER")
    with pytest.raises(ImportFailure, match="not declared for this handler"):
        require_declared(kms.client, declared(kms))


def test_without_its_role_id_the_handler_serves_nothing(
    kms: stubbing.KmsStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(contract.ENV_HANDLER_ROLE_ID)
    with pytest.raises(ImportFailure, match=contract.ENV_HANDLER_ROLE_ID):
        require_declared(kms.client, PROPERTIES)
    assert kms.recorder.operations == []


def test_a_version_held_in_its_own_tag_must_match(kms: stubbing.KmsStub) -> None:
    properties = {**PROPERTIES, contract.PROP_MATERIAL_VERSION_ID: "v-1"}
    tags = binding_tags(properties, stack_id=stack_id_for("demo"), logical_id=LOGICAL_ID)
    for version, accepted in (("v-1", True), ("v-2", False)):
        kms.add_binding(PROPERTIES, extra={**tags, contract.TAG_MATERIAL_VERSION: "v-1"})
        event = {**properties, contract.PROP_MATERIAL_VERSION_ID: version}
        if accepted:
            require_declared(kms.client, event)
        else:
            with pytest.raises(ImportFailure, match="not the version the stack declared"):
                require_declared(kms.client, event)


# --- revoked or expired -------------------------------------------------------------------------


def binding_with(record: str | None) -> Binding:
    tags = {} if record is None else {contract.TAG_VALID_TO: record}
    return Binding(stubbing.KEY_ID, tags)


def metadata(state: str) -> Any:
    return stubbing.key_metadata(state=state)


@pytest.mark.parametrize(
    "record",
    [
        None,  # never imported by this handler, or resumed by removing the tag
        (NOW - timedelta(days=1)).isoformat(),  # expired a day ago
        (NOW + CLOCK_SKEW - timedelta(seconds=1)).isoformat(),  # KMS's clock a little ahead
    ],
    ids=["no-record", "expired", "within-clock-skew"],
)
def test_a_pending_import_key_whose_material_expired_may_be_restored(record: str | None) -> None:
    binding_with(record).refuse_if_revoked(metadata("PendingImport"), NOW)


@pytest.mark.parametrize(
    "record",
    [
        (NOW + timedelta(days=200)).isoformat(),
        (NOW + CLOCK_SKEW + timedelta(seconds=1)).isoformat(),
        contract.VALID_TO_NEVER,
        "not-a-date",
        "2027-01-01T00:00:00",  # no time zone: not one the handler wrote
    ],
    ids=["months-left", "just-beyond-skew", "never-expires", "garbage", "naive"],
)
def test_a_pending_import_key_before_its_recorded_valid_to_was_revoked(record: str) -> None:
    with pytest.raises(ImportFailure) as refused:
        binding_with(record).refuse_if_revoked(metadata("PendingImport"), NOW)
    assert "revoked, not expired" in refused.value.reason
    assert contract.TAG_VALID_TO in refused.value.reason


@pytest.mark.parametrize("state", ["Enabled", "Disabled"])
def test_a_key_that_holds_material_is_never_refused_as_revoked(state: str) -> None:
    binding_with((NOW + timedelta(days=200)).isoformat()).refuse_if_revoked(metadata(state), NOW)


# --- revoking Deletes -------------------------------------------------------------------------


def delete_event(physical_id: str = stubbing.KEY_ID) -> dict[str, Any]:
    return cfn_event("Delete", PROPERTIES, "https://example.invalid/", physical_id=physical_id)


def bound_binding() -> Binding:
    tags = binding_tags(PROPERTIES, stack_id=stack_id_for("demo"), logical_id=LOGICAL_ID)
    return Binding(stubbing.KEY_ID, tags)


@pytest.mark.parametrize(
    ("status", "physical_id", "allowed"),
    [
        ("DELETE_IN_PROGRESS", stubbing.KEY_ID, True),
        ("UPDATE_COMPLETE", "another-key-id", True),  # replaced: the old key's import goes
        ("UPDATE_COMPLETE", stubbing.KEY_ID, False),
        ("CREATE_COMPLETE", stubbing.KEY_ID, False),
        ("UPDATE_IN_PROGRESS", stubbing.KEY_ID, False),
    ],
)
def test_a_revoking_delete_needs_cloudformation_to_be_removing_the_resource(
    status: str, physical_id: str, allowed: bool
) -> None:
    event = delete_event()
    cloudformation = cloudformation_reporting(event, status, physical_id)
    if allowed:
        require_removal(cloudformation, event, bound_binding())
    else:
        with pytest.raises(ImportFailure, match=f"reports {LOGICAL_ID} as {status}"):
            require_removal(cloudformation, event, bound_binding())


def test_a_delete_from_another_stack_or_resource_is_refused_before_asking() -> None:
    for changes in ({"StackId": stack_id_for("other")}, {"LogicalResourceId": "Other"}):
        event = {**delete_event(), **changes}
        with pytest.raises(ImportFailure, match="declared it for another resource"):
            # No stubbed answer: asking CloudFormation would fail the test differently.
            require_removal(
                cloudformation_reporting(delete_event(), "DELETE_IN_PROGRESS"),
                event,
                bound_binding(),
            )
