"""The fleet's pieces without an emulator: the due index's names, the pacer, the declared
settings in clear, CloudFormation's confirmation, and the rollback that finds another key."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import stubbing
from hypothesis import given
from hypothesis import strategies as st
from support.binding import TEST_STACK_ID, MemoryIndex, PlayedStacks, key_logical_id
from support.events import import_properties

from imported_key_handler import binding, contract, registry, sweep
from imported_key_handler.binding import Binding, ReplacedKey, declared_request, require_in_stack
from imported_key_handler.errors import ImportFailure

NOW = datetime(2027, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _handler_role(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(contract.ENV_HANDLER_ROLE_ID, "AROATESTIMPORTHANDLER")


KEY = stubbing.KEY_ID


# --- registry ------------------------------------------------------------------------------


@given(
    valid_to=st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
    ),
    window_s=st.integers(min_value=60, max_value=365 * 86400),
    key_id=st.uuids().map(str),
)
def test_an_entry_name_reads_back_and_falls_due_in_the_first_quarter_of_the_window(
    valid_to: datetime, window_s: int, key_id: str
) -> None:
    window = timedelta(seconds=window_s)
    entry = registry.entry_for(key_id, valid_to, window)
    assert registry.parse(entry.name) == entry
    start = entry.valid_to - window
    assert start <= entry.due <= start + window / registry.JITTER_SHARE
    assert registry.entry_for(key_id, valid_to, window) == entry  # deterministic


def test_names_sort_as_their_due_times() -> None:
    window = timedelta(days=30)
    entries = [
        registry.entry_for(f"key-{n}", NOW + timedelta(hours=7 * n), window) for n in range(200)
    ]
    assert sorted(e.name for e in entries) == [e.name for e in sorted(entries, key=lambda e: e.due)]


def test_a_thousand_keys_imported_at_once_fall_due_over_days() -> None:
    window = timedelta(days=30)
    due_days = {registry.entry_for(f"{n:08d}-key", NOW, window).due.date() for n in range(1000)}
    assert len(due_days) >= 7  # spread over the first quarter of the window (7.5 days)


@pytest.mark.parametrize(
    "name",
    ["due/", "due/x/y/z", "other/20270101T000000Z/20270101T000000Z/k", "due/20270101T000000Z/k"],
)
def test_anything_else_in_the_bucket_is_not_an_entry(name: str) -> None:
    assert registry.parse(name) is None


def test_move_writes_the_new_entry_before_removing_the_old() -> None:
    index = MemoryIndex()
    calls: list[str] = []
    put, delete = index.put_object, index.delete_object
    index.put_object = lambda **p: (calls.append("put"), put(**p))[1]  # type: ignore[method-assign]
    index.delete_object = lambda **p: (calls.append("delete"), delete(**p))[1]  # type: ignore[method-assign]
    old = registry.entry_for(KEY, NOW, timedelta(days=30))
    new = registry.entry_for(KEY, NOW + timedelta(days=300), timedelta(days=30))
    registry.put(index, "bucket", old)  # type: ignore[arg-type]
    calls.clear()
    registry.move(index, "bucket", new, [old.name])  # type: ignore[arg-type]
    assert calls == ["put", "delete"]
    assert index.names == {new.name}
    registry.move(index, "bucket", None, [new.name])  # type: ignore[arg-type]
    assert index.names == set()


# --- pacing --------------------------------------------------------------------------------


def test_the_pacer_spaces_calls_by_the_share_of_the_quota() -> None:
    clock = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    pacer = sweep.Pacer(0.2, clock=lambda: clock[0], sleep=sleep)
    for _ in range(4):
        pacer.wait()
    assert slept == pytest.approx([5.0, 5.0, 5.0])


@pytest.mark.parametrize("raw", ["0", "-1", "1.5", "fast", "nan"])
def test_an_imports_per_second_outside_the_quota_is_refused(raw: str) -> None:
    with pytest.raises(ImportFailure, match=contract.ENV_IMPORTS_PER_SECOND):
        sweep.imports_per_second({contract.ENV_IMPORTS_PER_SECOND: raw})


def test_imports_per_second_defaults_well_under_the_quota() -> None:
    assert sweep.imports_per_second({}) == contract.DEFAULT_IMPORTS_PER_SECOND < 1


# --- declared settings in clear --------------------------------------------------------------


@pytest.mark.parametrize("json_field", [None, "material", "a b/c+d=é" * 4])
@pytest.mark.parametrize("window", [None, 86400])
def test_the_declared_settings_read_back_and_fit_a_tag(json_field: str | None, window: Any) -> None:
    extra = {contract.PROP_JSON_FIELD: json_field} if json_field else {}
    properties = import_properties(KEY, stubbing.SECRET_ARN, **extra)
    value = contract.declared_settings(properties, window)
    assert len(value) <= 256
    tags = {
        contract.TAG_HANDLER: "AROATESTIMPORTHANDLER",
        contract.TAG_SECRET: stubbing.SECRET_ARN,
        contract.TAG_DECLARED: value,
    }
    rebuilt, rebuilt_window = declared_request(KEY, tags)
    assert contract.settings_digest(rebuilt) == contract.settings_digest(properties)
    assert rebuilt_window == window


def test_the_longest_declared_settings_fit_a_tag() -> None:
    properties = import_properties(
        KEY,
        stubbing.SECRET_ARN,
        **{
            contract.PROP_KEY_SPEC: "ECC_SECG_P256K1",
            contract.PROP_KEY_USAGE: contract.GENERATE_VERIFY_MAC,
            contract.PROP_MATERIAL_ENCODING: "base64",
            contract.PROP_WRAPPING_ALGORITHM: contract.RSA_AES_KEY_WRAP_SHA_256,
            contract.PROP_JSON_FIELD: "\U0001f511" * (contract.MAX_JSON_FIELD_BYTES // 4),
            contract.PROP_DELETE_MATERIAL_ON_REMOVAL: "false",
            contract.PROP_ROTATE_ON_MATERIAL_CHANGE: "false",
        },
    )
    assert len(contract.declared_settings(properties, 365 * 86400)) <= 256


@pytest.mark.parametrize("value", ["", "d1", "d0 " + "x " * 11, "d1 " + "- " * 10 + "notanumber"])
def test_a_malformed_declared_tag_is_refused(value: str) -> None:
    tags = {contract.TAG_HANDLER: "AROATESTIMPORTHANDLER", contract.TAG_DECLARED: value}
    with pytest.raises(ImportFailure, match="declared"):
        declared_request(KEY, tags)


# --- CloudFormation's confirmation ---------------------------------------------------------


def bound(stack_id: str = TEST_STACK_ID, logical_id: str | None = None) -> Binding:
    return Binding(
        KEY,
        {
            contract.TAG_STACK: stack_id,
            contract.TAG_KEY_RESOURCE: logical_id or key_logical_id(KEY),
        },
    )


def test_a_key_declared_in_the_handlers_stack_is_confirmed_with_one_call(
    played_deployment: PlayedStacks,
) -> None:
    played_deployment.calls.clear()
    require_in_stack(played_deployment.client(), bound())
    assert [name for name, _ in played_deployment.calls] == ["DescribeStackResource"]


def test_a_key_of_a_nested_stack_is_confirmed_through_its_parent(
    played_deployment: PlayedStacks,
) -> None:
    nested = TEST_STACK_ID.replace("/demo/", "/demo-Keys1-ABC/")
    played_deployment.record(nested, "K", KEY)
    played_deployment.nest(nested, TEST_STACK_ID)
    require_in_stack(played_deployment.client(), bound(nested, "K"))
    assert [name for name, _ in played_deployment.calls][-2:] == [
        "DescribeStacks",
        "DescribeStackResource",
    ]


@pytest.mark.parametrize(
    ("stack", "logical", "error", "why"),
    [
        ("other", None, ImportFailure, "another stack"),
        ("self", "Missing", ImportFailure, "ValidationError"),
        ("self", "Another", ReplacedKey, "is another key"),
        ("unknown", None, ImportFailure, "ValidationError"),
    ],
)
def test_a_key_cloudformation_does_not_name_is_refused(
    played_deployment: PlayedStacks, stack: str, logical: str | None, error: type, why: str
) -> None:
    other = TEST_STACK_ID.replace("/demo/", "/other/")
    played_deployment.record(other, key_logical_id(KEY), KEY)
    played_deployment.record(TEST_STACK_ID, "Another", "0000-another-key")
    stack_id = {"other": other, "self": TEST_STACK_ID, "unknown": other + "x"}[stack]
    with pytest.raises(error) as refused:
        require_in_stack(played_deployment.client(), bound(stack_id, logical))
    assert why in str(refused.value)
    assert "Nothing was changed" in str(refused.value)


def test_without_its_stack_id_the_handler_confirms_nothing(
    played_deployment: PlayedStacks, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(contract.ENV_HANDLER_STACK_ID)
    played_deployment.calls.clear()
    with pytest.raises(ImportFailure, match=contract.ENV_HANDLER_STACK_ID):
        require_in_stack(played_deployment.client(), bound())
    assert played_deployment.calls == []


def test_recorded_valid_to_reads_the_handlers_tag() -> None:
    assert Binding(KEY, {contract.TAG_VALID_TO: NOW.isoformat()}).recorded_valid_to() == NOW
    for value in (contract.VALID_TO_NEVER, "garbage", "2027-01-01T00:00:00"):
        assert Binding(KEY, {contract.TAG_VALID_TO: value}).recorded_valid_to() is None
    assert timedelta(0) < binding.CLOCK_SKEW


# --- an adopted key's record -----------------------------------------------------------------


def owner_tagged(kms: Any, *extra: tuple[str, str]) -> None:
    tags = [{"TagKey": contract.TAG_ADOPTED_BY, "TagValue": "demo"}]
    tags += [{"TagKey": key, "TagValue": value} for key, value in extra]
    kms.stub.add_response("list_resource_tags", {"Tags": tags, "Truncated": False}, {"KeyId": KEY})


DECLARED = {contract.TAG_HANDLER: "AROATESTIMPORTHANDLER", contract.TAG_SETTINGS: "v2-x"}


@pytest.mark.parametrize(
    "metadata",
    [
        None,
        {"Other": {}},
        {contract.METADATA_BINDING: "not an object"},
        {contract.METADATA_BINDING: {contract.METADATA_TAGS: DECLARED}},
        {contract.METADATA_BINDING: {contract.METADATA_KEY_ARN: KEY, contract.METADATA_TAGS: []}},
    ],
    ids=["none", "another entry", "not an object", "no key", "tags not an object"],
)
def test_an_import_resource_without_a_well_formed_record_adopts_nothing(
    kms: Any, played_deployment: PlayedStacks, metadata: dict[str, Any] | None
) -> None:
    owner_tagged(kms)
    played_deployment.record(TEST_STACK_ID, "Import", KEY)
    if metadata is not None:
        played_deployment.declare_metadata(TEST_STACK_ID, "Import", metadata)
    with pytest.raises(binding.NotDeclared, match="declares no adopted key"):
        binding.key_binding_tags(
            kms.client, played_deployment.client(), KEY, (TEST_STACK_ID, "Import")
        )


def test_an_adopted_key_takes_its_binding_from_the_record_and_only_its_valid_to_from_itself(
    kms: Any, played_deployment: PlayedStacks
) -> None:
    nested = TEST_STACK_ID.replace("/demo/", "/demo-Keys1-ABC/")
    played_deployment.nest(nested, TEST_STACK_ID)
    played_deployment.record(nested, "Import", KEY)
    arn = f"arn:aws:kms:us-east-1:111122223333:key/{KEY}"
    played_deployment.declare_metadata(
        nested,
        "Import",
        {
            contract.METADATA_BINDING: {
                contract.METADATA_KEY_ARN: arn,
                contract.METADATA_TAGS: {**DECLARED, "imported-key-cdk:unknown": "dropped"},
            }
        },
    )
    # Tags on the key itself claim other settings: only its ValidTo record is taken.
    owner_tagged(
        kms,
        (contract.TAG_SETTINGS, "v2-forged"),
        (contract.TAG_VALID_TO, NOW.isoformat()),
        (contract.TAG_STACK, nested),
        (contract.TAG_RESOURCE, "Import"),
    )
    tags, adopted = binding.key_binding_tags(kms.client, played_deployment.client(), KEY)
    assert adopted
    assert tags == {
        **DECLARED,
        contract.TAG_STACK: nested,
        contract.TAG_RESOURCE: "Import",
        contract.TAG_VALID_TO: NOW.isoformat(),
    }


def test_an_adopted_key_never_imported_has_no_record_to_read(
    kms: Any, played_deployment: PlayedStacks
) -> None:
    owner_tagged(kms)
    played_deployment.calls.clear()
    with pytest.raises(ImportFailure, match="never imported by its stack"):
        binding.key_binding_tags(kms.client, played_deployment.client(), KEY)
    assert played_deployment.calls == []


# --- the sweep's order ----------------------------------------------------------------------


def test_a_backlog_is_renewed_most_urgent_first(monkeypatch: pytest.MonkeyPatch) -> None:
    # After an outage every key is due at once; each fell due at its own point of its window's
    # first quarter, so the due order is not the expiry order. Already expired keys come first.
    index = MemoryIndex()
    window = timedelta(days=30)
    valid_tos = {f"key-{n:02d}": NOW + timedelta(hours=5 * n - 20) for n in range(40)}
    entries = [registry.entry_for(key, valid_to, window) for key, valid_to in valid_tos.items()]
    assert [e.key_id for e in sorted(entries, key=lambda e: e.due)] != sorted(valid_tos)
    for entry in entries:
        registry.put(index, "bucket", entry)  # type: ignore[arg-type]
    renewed: list[str] = []

    def renew(_fleet: Any, key_id: str, *_: Any, **__: Any) -> Any:
        renewed.append(key_id)
        return type("Result", (), {"renewed": True, "valid_to": NOW + timedelta(days=365)})

    monkeypatch.setattr(sweep, "renew_key", renew)
    fleet: Any = type("Fleet", (), {"s3": index, "bucket": "bucket"})
    report = sweep._sweep(fleet, remaining_s=lambda: 900.0, now=lambda: NOW + window)
    assert report.due == len(entries)
    assert renewed == sorted(valid_tos, key=valid_tos.__getitem__)
