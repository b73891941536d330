"""Revocation on Delete, with botocore's Stubber: what is called, and what is tolerated."""

import pytest
import stubbing

from imported_key_handler import contract, revocation
from imported_key_handler.errors import ImportFailure


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("True", True), ("false", False), ("", False), (None, False), ("yes", False)],
)
def test_revocation_is_asked_for_only_by_true(value: str | None, expected: bool) -> None:
    properties = {} if value is None else {contract.PROP_DELETE_MATERIAL_ON_REMOVAL: value}
    assert revocation.revocation_requested(properties) is expected


def test_enabled_key_loses_its_material_and_is_confirmed_pending_import(
    kms: stubbing.KmsStub,
) -> None:
    kms.add_describe(stubbing.key_metadata(state="Enabled"))
    kms.stub.add_response(
        "delete_imported_key_material",
        {"KeyId": stubbing.KEY_ARN},
        {"KeyId": stubbing.KEY_ID},
    )
    kms.add_describe(stubbing.key_metadata(state="PendingImport"))
    assert revocation.revoke_material(kms.client, stubbing.KEY_ID) == revocation.REVOKED
    assert kms.recorder.operations == [
        "DescribeKey",
        "DeleteImportedKeyMaterial",
        "DescribeKey",
    ]


@pytest.mark.parametrize(
    ("state", "outcome"),
    [
        ("PendingDeletion", revocation.KEY_PENDING_DELETION),
        ("PendingImport", revocation.NO_MATERIAL),
    ],
)
def test_nothing_to_revoke_makes_no_delete_call(
    kms: stubbing.KmsStub, state: str, outcome: str
) -> None:
    kms.add_describe(stubbing.key_metadata(state=state))
    assert revocation.revoke_material(kms.client, stubbing.KEY_ID) == outcome
    assert kms.recorder.operations == ["DescribeKey"]


def test_a_key_that_is_gone_needs_no_revocation(kms: stubbing.KmsStub) -> None:
    kms.add_error("describe_key", "NotFoundException", {"KeyId": stubbing.KEY_ID})
    assert revocation.revoke_material(kms.client, stubbing.KEY_ID) == revocation.KEY_GONE


def test_a_denied_delete_fails_with_the_permission_named(kms: stubbing.KmsStub) -> None:
    kms.add_describe(stubbing.key_metadata(state="Enabled"))
    kms.add_error(
        "delete_imported_key_material", "AccessDeniedException", {"KeyId": stubbing.KEY_ID}
    )
    reason = stubbing.failure_reason(
        lambda: revocation.revoke_material(kms.client, stubbing.KEY_ID), kms
    )
    assert "kms:DeleteImportedKeyMaterial" in reason


def test_a_key_still_usable_after_the_delete_is_a_failure(kms: stubbing.KmsStub) -> None:
    kms.add_describe(stubbing.key_metadata(state="Enabled"))
    kms.stub.add_response(
        "delete_imported_key_material", {"KeyId": stubbing.KEY_ARN}, {"KeyId": stubbing.KEY_ID}
    )
    kms.add_describe(stubbing.key_metadata(state="Enabled"))
    with pytest.raises(ImportFailure, match=r"is Enabled, not PendingImport"):
        revocation.revoke_material(kms.client, stubbing.KEY_ID)
