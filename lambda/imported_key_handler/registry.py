"""The due index: how a sweep learns which keys are due without reading every key.

One empty S3 object per key whose material expires, named for when its renewal falls due and
for the ValidTo last imported: ``due/<due>/<valid to>/<key id>``, times as fixed-width UTC
stamps, so S3 lists the index in due order and an idle sweep reads one page per thousand keys
and calls KMS for nothing. The handler writes an entry after each import into a key and
removes the one it replaces; its role alone may write the bucket (the bucket policy says so).

The index is a hint, never an authority: each key it names is renewed from the key's own
binding tags and checked like any event, so a stale, lost or planted entry costs at most a
renewal that finds nothing due. An entry whose key is not due is rewritten where it belongs.
"""

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from .errors import ImportFailure
from .kms_errors import error_code

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PREFIX = "due/"
_STAMP = "%Y%m%dT%H%M%SZ"
# A key's renewal falls due somewhere in the first quarter of its window, by a hash of its id:
# keys created together then come due over days, not in one sweep, and each keeps at least
# three quarters of its window for retries.
JITTER_SHARE = 4


def jitter(key_id: str, renew_before: timedelta) -> timedelta:
    """The key's fixed offset into its renewal window (same key id, same offset)."""
    span = int(renew_before.total_seconds()) // JITTER_SHARE
    if span <= 0:
        return timedelta(0)
    value = int.from_bytes(hashlib.sha256(key_id.encode()).digest()[:8], "big")
    return timedelta(seconds=value % span)


@dataclass(frozen=True)
class Entry:
    name: str
    key_id: str
    due: datetime
    valid_to: datetime


def entry_for(
    key_id: str, valid_to: datetime, renew_before: timedelta, *, due: datetime | None = None
) -> Entry:
    """The key's entry; ``due`` overrides its place in the window (work that cannot wait)."""
    valid_to = valid_to.astimezone(UTC).replace(microsecond=0)
    if due is None:
        due = valid_to - renew_before + jitter(key_id, renew_before)
    due = due.astimezone(UTC).replace(microsecond=0)
    name = f"{PREFIX}{due.strftime(_STAMP)}/{valid_to.strftime(_STAMP)}/{key_id}"
    return Entry(name, key_id, due, valid_to)


def parse(name: str) -> Entry | None:
    """The entry an object name stands for; None for anything else in the bucket."""
    parts = name.split("/")
    if len(parts) != 4 or parts[0] + "/" != PREFIX or not parts[3]:
        return None
    try:
        due = datetime.strptime(parts[1], _STAMP).replace(tzinfo=UTC)
        valid_to = datetime.strptime(parts[2], _STAMP).replace(tzinfo=UTC)
    except ValueError:
        return None
    return Entry(name, parts[3], due, valid_to)


def _failure(error: ClientError, operation: str, bucket: str) -> ImportFailure:
    return ImportFailure(
        f"S3 {operation} on the due index {bucket[:63]} failed ({error_code(error)}); the "
        "keys themselves are unchanged. Check the handler's access to its bucket, then retry."
    )


def entries(s3: "S3Client", bucket: str) -> Iterator[Entry]:
    """Every entry, in due order (S3 lists names in UTF-8 binary order)."""
    request: dict[str, Any] = {"Bucket": bucket, "Prefix": PREFIX}
    while True:
        try:
            page = s3.list_objects_v2(**request)
        except ClientError as error:
            raise _failure(error, "ListObjectsV2", bucket) from None
        for item in page.get("Contents", []):
            entry = parse(item.get("Key", ""))
            if entry is not None:
                yield entry
        token = page.get("NextContinuationToken")
        if not page.get("IsTruncated") or not token:
            return
        request["ContinuationToken"] = token


def put(s3: "S3Client", bucket: str, entry: Entry) -> None:
    try:
        s3.put_object(Bucket=bucket, Key=entry.name, Body=b"")
    except ClientError as error:
        raise _failure(error, "PutObject", bucket) from None


def remove(s3: "S3Client", bucket: str, name: str) -> None:
    try:
        s3.delete_object(Bucket=bucket, Key=name)
    except ClientError as error:
        raise _failure(error, "DeleteObject", bucket) from None


def move(
    s3: "S3Client", bucket: str, new: Entry | None, old_names: "list[str] | tuple[str, ...]" = ()
) -> None:
    """Write ``new`` (None: the key leaves the index), then remove the entries it replaces.

    In that order: a failure between the two leaves an extra entry, which a sweep rewrites,
    never a key missing from the index."""
    if new is not None:
        put(s3, bucket, new)
    for name in dict.fromkeys(old_names):  # once each: the sweep's entry is often the recorded one
        if new is None or name != new.name:
            remove(s3, bucket, name)
