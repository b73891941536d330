"""``entry``: only CloudFormation custom resource requests may reach crhelper.

crhelper answers every event it is handed with a PUT to the event's ResponseURL, and retries
that PUT until the function times out when the URL is not a real one. A tripwire module stands
in for ``imported_key_handler.cfn`` so that reaching crhelper is an immediate, visible error.
"""

from __future__ import annotations

import logging
import sys
import types
from typing import Any, Final

import pytest

from imported_key_handler import entry

SIGNATURE: Final = "SIGNATURE0123456789abcdef"
CFN_EVENT: Final[dict[str, Any]] = {
    "RequestType": "Create",
    "ServiceToken": "arn:aws:lambda:us-east-1:111122223333:function:importer",
    "ResponseURL": (
        "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/"
        f"arn%3Aaws%3Acloudformation?X-Amz-Signature={SIGNATURE}"
    ),
    "StackId": "arn:aws:cloudformation:us-east-1:111122223333:stack/app/0000",
    "RequestId": "11111111-2222-3333-4444-555555555555",
    "LogicalResourceId": "KeyMaterial",
    "ResourceType": "Custom::ImportedKeyMaterial",
    "ResourceProperties": {"ServiceToken": "arn:aws:lambda:us-east-1:111122223333:function:x"},
}
SCHEDULED_EVENT: Final[dict[str, Any]] = {
    "version": "0",
    "id": "89d1a02d-5ec7-412e-82f5-13505f849b41",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "111122223333",
    "time": "2026-11-28T12:00:00Z",
    "region": "us-east-1",
    "resources": ["arn:aws:events:us-east-1:111122223333:rule/renew-key-material"],
    "detail": {},
}


def without(name: str) -> dict[str, Any]:
    return {k: v for k, v in CFN_EVENT.items() if k != name}


NOT_CLOUDFORMATION: Final = [
    pytest.param(SCHEDULED_EVENT, id="scheduled-event"),
    pytest.param({}, id="empty-dict"),
    pytest.param([], id="empty-list"),
    pytest.param([CFN_EVENT], id="list-holding-a-cfn-event"),
    pytest.param(None, id="none"),
    pytest.param("Create", id="string"),
    pytest.param(
        CFN_EVENT | {"ResponseURL": CFN_EVENT["ResponseURL"].replace("https://", "http://")},
        id="http-response-url",
    ),
    pytest.param(CFN_EVENT | {"ResponseURL": ""}, id="empty-response-url"),
    pytest.param(CFN_EVENT | {"ResponseURL": None}, id="null-response-url"),
    pytest.param(without("ResponseURL"), id="no-response-url"),
    pytest.param(without("StackId"), id="no-stack-id"),
    pytest.param(CFN_EVENT | {"StackId": None}, id="null-stack-id"),
    pytest.param(without("RequestId"), id="no-request-id"),
    pytest.param(without("LogicalResourceId"), id="no-logical-resource-id"),
    pytest.param(without("RequestType"), id="no-request-type"),
    pytest.param(CFN_EVENT | {"RequestType": "Read"}, id="unknown-request-type"),
    pytest.param(CFN_EVENT | {"RequestType": "create"}, id="lowercase-request-type"),
]


class ReachedCrhelper(Exception):
    pass


def _tripwire_build_helper() -> Any:
    raise ReachedCrhelper


@pytest.fixture(autouse=True)
def _isolated_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    """No helper built yet, a tripwire instead of the crhelper wiring (conftest.py puts the
    logger levels back)."""
    monkeypatch.setattr(entry, "_helper", None)
    tripwire = types.ModuleType("imported_key_handler.cfn")
    tripwire.build_helper = _tripwire_build_helper  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "imported_key_handler.cfn", tripwire)


@pytest.mark.parametrize("request_type", ["Create", "Update", "Delete"])
def test_a_cloudformation_request_is_recognised(request_type: str) -> None:
    assert entry.is_cloudformation_request(CFN_EVENT | {"RequestType": request_type})


@pytest.mark.parametrize("event", NOT_CLOUDFORMATION)
def test_anything_else_is_not_a_cloudformation_request(event: object) -> None:
    assert not entry.is_cloudformation_request(event)


@pytest.mark.parametrize("event", NOT_CLOUDFORMATION)
def test_the_handler_ignores_anything_else_without_touching_crhelper(
    event: object, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    result = entry.handler(event, None)
    assert result == {
        "Status": "IGNORED",
        "Reason": "not a CloudFormation custom resource request",
    }
    assert entry._helper is None
    # The presigned URL (and its signature) is never logged, only the event's keys.
    assert SIGNATURE not in caplog.text
    assert "Ignored an event" in caplog.text


def test_the_warning_for_an_ignored_event_lists_its_keys(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    entry.handler(SCHEDULED_EVENT, None)
    (record,) = [r for r in caplog.records if r.name == "imported_key_handler.entry"]
    assert record.levelno == logging.WARNING
    assert "'detail-type'" in record.getMessage()
    assert "'source'" in record.getMessage()


def test_a_cloudformation_request_reaches_crhelper() -> None:
    """The control for the tripwire: a real request does get there."""
    with pytest.raises(ReachedCrhelper):
        entry.handler(CFN_EVENT, None)
