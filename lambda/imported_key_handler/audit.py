"""One audit line per action, and no failure that escapes without a clear reason.

Every import and renewal runs inside ``audited``: unknown errors become an ``ImportFailure``
summarised by type (their text is not ours to vouch for), and a single structured log line
records the key, the action, the outcome, the new ValidTo and the duration. Never material.
"""

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError

from .errors import ImportFailure

logger = logging.getLogger(__name__)


class AuditRecord:
    """What the caller learned; filled in as the action goes."""

    def __init__(self, action: str, key_id: str) -> None:
        self.fields: dict[str, Any] = {"action": action, "key_id": key_id, "outcome": "FAILED"}

    def succeeded(self, outcome: str = "SUCCESS", valid_to: datetime | None = None) -> None:
        self.fields["outcome"] = outcome
        self.fields["valid_to"] = valid_to.isoformat() if valid_to else None


@contextmanager
def audited(action: str, key_id: str) -> Iterator[AuditRecord]:
    record = AuditRecord(action, key_id)
    started = time.monotonic()
    try:
        yield record
    except ImportFailure as failure:
        record.fields["reason"] = failure.reason
        raise
    except BotoCoreError as error:
        raise ImportFailure(
            f"The AWS SDK failed ({type(error).__name__}) for key {key_id}: check the "
            "function's network access to KMS and Secrets Manager, then retry."
        ) from None
    except Exception as error:
        logger.error("Unexpected %s during %s", type(error).__name__, action)
        raise ImportFailure(
            f"Unexpected {type(error).__name__} during {action} of key {key_id}: see the "
            "function's log, then retry."
        ) from None
    finally:
        record.fields["duration_ms"] = round((time.monotonic() - started) * 1000)
        logger.info("%s %s", action, record.fields["outcome"], extra=record.fields)
