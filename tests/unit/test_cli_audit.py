"""``imported-keys audit``'s reading of CloudTrail's event history, with botocore's Stubber
(LocalStack has no CloudTrail): every request is checked against CloudTrail's own model."""

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from rich.console import Console

from imported_key_cli.audit import key_events
from imported_key_cli.inventory import ManagedKey
from imported_key_cli.render import audit_table
from imported_key_handler import contract

KEY_ARN = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
SINCE = NOW - timedelta(days=90)
HANDLER_ROLE = "byok-keys-ImportedKeyHandlerRole-1A2B3C4D5E6F"
# What a request might carry that must never be shown: KMS logs no material, but the command
# line reads only the fields it names, whatever an event holds.
SENTINEL = base64.b64encode(b"sentinel key material, never shown").decode()


def assumed_role(role: str) -> dict[str, Any]:
    return {
        "type": "AssumedRole",
        "arn": f"arn:aws:sts::111122223333:assumed-role/{role}/session",
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "arn": f"arn:aws:iam::111122223333:role/{role}",
                "userName": role,
            }
        },
    }


def event(name: str, minutes_ago: int, **record: Any) -> dict[str, Any]:
    body = {
        "eventVersion": "1.09",
        "eventSource": "kms.amazonaws.com",
        "eventName": name,
        "awsRegion": "us-east-1",
        "resources": [{"type": "AWS::KMS::Key", "ARN": KEY_ARN}],
        **record,
    }
    return {
        "EventId": f"{name}-{minutes_ago}",
        "EventName": name,
        "EventTime": NOW - timedelta(minutes=minutes_ago),
        "EventSource": "kms.amazonaws.com",
        "Resources": [{"ResourceType": "AWS::KMS::Key", "ResourceName": KEY_ARN}],
        "CloudTrailEvent": json.dumps(body),
    }


PAGE_1 = [
    event(
        "ImportKeyMaterial",
        600,
        userIdentity=assumed_role(HANDLER_ROLE),
        requestParameters={
            "keyId": KEY_ARN,
            "importType": "EXISTING_KEY_MATERIAL",
            "validTo": "Dec 2, 2027, 12:00:00 PM",
            "encryptedKeyMaterial": SENTINEL,
            "importToken": SENTINEL,
        },
    ),
    event("Decrypt", 500, userIdentity=assumed_role("app")),  # not a material event
    event(
        "DeleteImportedKeyMaterial",
        300,
        userIdentity=assumed_role("incident-responder"),
        requestParameters={"keyId": KEY_ARN, "keyMaterialId": "a" * 64},
    ),
]
PAGE_2 = [
    event(
        "DeleteImportedKeyMaterial",
        200,
        userIdentity=assumed_role("intruder"),
        errorCode="AccessDeniedException",
        requestParameters={"keyId": KEY_ARN},
    ),
    event(
        "UntagResource",
        100,
        userIdentity=assumed_role("incident-responder"),
        requestParameters={"keyId": KEY_ARN, "tagKeys": [contract.TAG_VALID_TO]},
    ),
    event(
        "UntagResource",
        90,
        userIdentity=assumed_role("ops"),
        requestParameters={"keyId": KEY_ARN, "tagKeys": ["team"]},
    ),
    event(
        "DeleteExpiredKeyMaterial",
        10,
        userIdentity={"type": "AWSService", "invokedBy": "kms.amazonaws.com"},
    ),
]


def stubbed() -> tuple[Any, Stubber]:
    client = boto3.client(
        "cloudtrail", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    stubber = Stubber(client)
    request = {
        "LookupAttributes": [{"AttributeKey": "ResourceName", "AttributeValue": KEY_ARN}],
        "StartTime": SINCE,
        "EndTime": NOW,
        "MaxResults": 50,
    }
    stubber.add_response("lookup_events", {"Events": PAGE_1, "NextToken": "page-2"}, request)
    stubber.add_response("lookup_events", {"Events": PAGE_2}, {**request, "NextToken": "page-2"})
    return client, stubber


def test_the_material_events_come_newest_first_with_who_and_outcome() -> None:
    client, stubber = stubbed()
    with stubber:
        events = key_events(client, KEY_ARN, since=SINCE, until=NOW)
    stubber.assert_no_pending_responses()
    assert [(e.name, e.by, e.outcome) for e in events] == [
        ("DeleteExpiredKeyMaterial", "kms.amazonaws.com", "ok"),
        ("UntagResource", "incident-responder", "ok"),
        ("DeleteImportedKeyMaterial", "intruder", "AccessDeniedException"),
        ("DeleteImportedKeyMaterial", "incident-responder", "ok"),
        ("ImportKeyMaterial", HANDLER_ROLE, "ok"),
    ]
    assert events[1].detail == "revocation record removed (resumed)"
    assert events[3].detail == f"material {'a' * 12}"
    assert events[4].detail == "EXISTING_KEY_MATERIAL, valid to Dec 2, 2027, 12:00:00 PM"
    assert SENTINEL not in json.dumps([e.summary() for e in events])


@pytest.mark.parametrize("width", [80, 120])
def test_the_audit_table_fits_the_terminal_and_shows_no_request_fields(width: int) -> None:
    client, stubber = stubbed()
    with stubber:
        events = key_events(client, KEY_ARN, since=SINCE, until=NOW)
    key = ManagedKey(
        key_id=KEY_ARN.rsplit("/", 1)[1],
        arn=KEY_ARN,
        region="us-east-1",
        aliases=("alias/payments",),
        spec=contract.SYMMETRIC_DEFAULT,
        usage="ENCRYPT_DECRYPT",
        state="Enabled",
        current_material=None,
        expiration_model=None,
        valid_to=None,
        renew_before=None,
        multi_region=None,
        replica_regions=(),
        primary_region=None,
        tags={},
    )
    console = Console(width=width, record=True, markup=False, emoji=False, highlight=False)
    audit_table(console, key, events, 90)
    text = console.export_text()
    assert all(len(line) <= width for line in text.splitlines()), text
    assert "5 events of payments in us-east-1" in text
    assert "material expired" in text
    # A refused attempt shows as such, however the column folds it.
    assert "AccessDeniedException" in "".join(text.split())
    assert SENTINEL not in text
