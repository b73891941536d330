"""What CloudTrail recorded about a key's material: imports, deletions, rotations, expiries.

CloudTrail's event history (``LookupEvents``, the last 90 days of management events in the
Region, no trail needed) finds a key's events by its ARN, which KMS lists among each event's
resources. Only the fields named here are ever read out of an event: who, when, whether it
succeeded, and for an import its type and ValidTo. KMS does not log key material, and nothing
else of an event's request is shown.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from imported_key_handler import contract

if TYPE_CHECKING:
    from mypy_boto3_cloudtrail import CloudTrailClient

# CloudTrail's event history goes back 90 days (CloudTrail User Guide, "Working with CloudTrail
# event history").
HISTORY = timedelta(days=90)
# The events that change, or tell of, a key's material and its usability.
EVENTS: Mapping[str, str] = {
    "CreateKey": "key created",
    "ReplicateKey": "replica created",
    "ImportKeyMaterial": "material imported",
    "RotateKeyOnDemand": "rotated on demand",
    "DeleteImportedKeyMaterial": "material deleted",
    "DeleteExpiredKeyMaterial": "material expired",
    "DisableKey": "disabled",
    "EnableKey": "enabled",
    "ScheduleKeyDeletion": "deletion scheduled",
    "CancelKeyDeletion": "deletion cancelled",
    "UntagResource": "resumed",
}
_PAGE = 50  # LookupEvents' largest page


@dataclass(frozen=True)
class AuditEvent:
    time: datetime
    name: str
    by: str
    outcome: str  # "ok", or CloudTrail's errorCode
    detail: str

    @property
    def what(self) -> str:
        return EVENTS.get(self.name, self.name)

    def summary(self) -> dict[str, str]:
        return {
            "EventTime": self.time.isoformat(),
            "EventName": self.name,
            "What": self.what,
            "By": self.by,
            "Outcome": self.outcome,
            "Detail": self.detail,
        }


def _who(record: Mapping[str, Any]) -> str:
    identity = record.get("userIdentity") or {}
    if identity.get("type") == "AWSService":
        return str(identity.get("invokedBy") or "AWS")
    issuer = (identity.get("sessionContext") or {}).get("sessionIssuer") or {}
    if issuer.get("userName"):
        return str(issuer["userName"])  # the role's name, not its session's
    return str(identity.get("userName") or identity.get("arn") or identity.get("type") or "?")


def _detail(name: str, record: Mapping[str, Any]) -> str:
    request = record.get("requestParameters") or {}
    if name == "ImportKeyMaterial":
        parts = [str(request.get("importType") or "")]
        if request.get("validTo"):
            parts.append(f"valid to {request['validTo']}")
        return ", ".join(part for part in parts if part)
    if name == "DeleteImportedKeyMaterial" and request.get("keyMaterialId"):
        return f"material {str(request['keyMaterialId'])[:12]}"
    if name == "UntagResource":
        # Only the one untagging that matters to the material: the resume after a revocation.
        keys = request.get("tagKeys") or []
        return "revocation record removed (resumed)" if contract.TAG_VALID_TO in keys else ""
    return ""


def key_events(
    cloudtrail: "CloudTrailClient", key_arn: str, *, since: datetime, until: datetime
) -> list[AuditEvent]:
    """The key's material events between ``since`` and ``until``, newest first."""
    request: dict[str, Any] = {
        "LookupAttributes": [{"AttributeKey": "ResourceName", "AttributeValue": key_arn}],
        "StartTime": since,
        "EndTime": until,
        "MaxResults": _PAGE,
    }
    found = []
    while True:
        page = cloudtrail.lookup_events(**request)
        for event in page.get("Events", []):
            name = str(event.get("EventName", ""))
            if name not in EVENTS:
                continue
            try:
                record = json.loads(event.get("CloudTrailEvent") or "{}")
            except ValueError:
                record = {}
            if name == "UntagResource" and not _detail(name, record):
                continue
            found.append(
                AuditEvent(
                    time=event["EventTime"],
                    name=name,
                    by=_who(record),
                    outcome=str(record.get("errorCode") or "ok"),
                    detail=_detail(name, record),
                )
            )
        token = page.get("NextToken")
        if not token:
            break
        request["NextToken"] = token
    found.sort(key=lambda event: event.time, reverse=True)
    return found
