"""Stop changing a key once the answer to CloudFormation has gone out.

When the function is about to run out of time, crhelper's timer answers FAILED. From then on
the invocation must not change the key: the answer said it failed. Every write to KMS checks
here first. One invocation runs at a time in a Lambda process, so a process-wide flag is
enough; the entry point clears it at the start of each invocation.
"""

import threading

from .errors import ImportFailure

_passed = threading.Event()


def start() -> None:
    _passed.clear()


def mark_passed() -> None:
    _passed.set()


def check(operation: str, key_id: str) -> None:
    """Refuse a write to the key after the FAILED answer went out."""
    if _passed.is_set():
        raise ImportFailure(
            f"Stopped before {operation} on key {key_id}: the function had already answered "
            "CloudFormation that it ran out of time."
        )
