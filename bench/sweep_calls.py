"""What a sweep costs at 1,000 keys, counted on LocalStack: calls per idle sweep, per renewal.

The due index holds ``KEYS`` entries: ``RENEWED`` real keys, imported once through the renewal
path and bound as a deployment binds them, and fabricated key ids whose ValidTo lies a year
ahead (an idle sweep reads only names, so it cannot tell them from real keys). Every client the
sweep uses counts its requests by service and operation (a botocore ``before-call`` handler,
registered first so that no other handler's answer hides a call). Three sweeps:

- idle (nothing due): what a scheduled sweep costs on most days;
- the real keys past their due times, at ``per_second=1.0`` (all of GetParametersForImport's
  quota), then again a renewal period later at the default share (0.2/s): calls and wall time
  per renewed key.

The emulated KMS's clock moves with the sweep's (``LocalStack.set_clock``), so each ValidTo
asked for is judged against KMS's 365-day limit on the moved day.
"""

import os
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from support.binding import TEST_HANDLER_ROLE_ID, TEST_STACK_ID, PlayedStacks, bind_key
from support.events import LOGICAL_ID, import_properties
from support.keys import external_key, new_secret
from support.localstack import LocalStack, start_localstack

from imported_key_handler import contract, registry
from imported_key_handler.renewal import FleetClients, renew_key
from imported_key_handler.sweep import SweepReport, sweep

KEYS = 1000
RENEWED = 5
START = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
VALIDITY_DAYS = 30
WINDOW = timedelta(days=10)
# The fabricated keys' material is valid for a year: due in about eleven months.
FAR = timedelta(days=365)
SERVICES = ("kms", "s3", "secretsmanager", "cloudformation")


class Calls:
    """Requests sent by a set of clients, as ``service.Operation`` counts."""

    def __init__(self, clients: FleetClients) -> None:
        self.counts: Counter[str] = Counter()
        for service, client in zip(
            SERVICES,
            (clients.kms, clients.s3, clients.secrets, clients.cloudformation),
            strict=True,
        ):
            client.meta.events.register_first("before-call.*.*", self._counter(service))

    def _counter(self, service: str) -> Any:
        def count(model: Any, **_: Any) -> None:
            self.counts[f"{service}.{model.name}"] += 1

        return count

    def of(self, service: str) -> int:
        return sum(n for name, n in self.counts.items() if name.startswith(f"{service}."))


def _clients(localstack: LocalStack, stacks: PlayedStacks, bucket: str) -> FleetClients:
    """Fresh clients, as each invocation of the sweep builds (a fresh pacer on each)."""
    return FleetClients(
        localstack.kms(), localstack.secretsmanager(), stacks.client(), localstack.s3(), bucket
    )


def _timed_sweep(
    localstack: LocalStack, stacks: PlayedStacks, bucket: str, at: datetime, per_second: float
) -> tuple[SweepReport, Calls, float]:
    localstack.set_clock(at)
    clients = _clients(localstack, stacks, bucket)
    calls = Calls(clients)
    started = time.perf_counter()
    report = sweep(clients, remaining_s=lambda: 900.0, now=lambda: at, per_second=per_second)
    return report, calls, time.perf_counter() - started


def _real_keys(localstack: LocalStack, stacks: PlayedStacks, bucket: str) -> list[str]:
    """RENEWED keys bound as a deployment binds them and imported at START (so indexed)."""
    clients = _clients(localstack, stacks, bucket)
    localstack.set_clock(START)
    keys = []
    for _ in range(RENEWED):
        key_id = external_key(clients.kms)
        secret = new_secret(clients.secrets, SecretBinary=os.urandom(32))
        properties = import_properties(
            key_id,
            secret,
            **{
                contract.PROP_WRAPPING_KEY_SPEC: "RSA_2048",
                contract.PROP_VALIDITY_DAYS: str(VALIDITY_DAYS),
            },
        )
        bind_key(
            clients.kms,
            properties,
            stack_id=TEST_STACK_ID,
            logical_id=LOGICAL_ID,
            renew_before_s=int(WINDOW.total_seconds()),
            stacks=stacks,
        )
        assert renew_key(clients, key_id, contract.TRIGGER_SCHEDULE, now=START).renewed
        keys.append(key_id)
    return keys


def _renewals(report: SweepReport, calls: Calls, seconds: float) -> dict[str, Any]:
    assert (report.due, report.renewed, report.failed) == (RENEWED, RENEWED, []), report
    return {
        "renewed": report.renewed,
        "kms_calls_per_renewal": calls.of("kms") / report.renewed,
        "calls": dict(sorted(calls.counts.items())),
        "wall_s": seconds,
        "wall_s_per_renewal": seconds / report.renewed,
    }


def measure(work: Path) -> dict[str, Any]:
    """The calls and times of an idle sweep and of renewals over a KEYS-entry due index."""
    saved = {name: os.environ.get(name) for name in _ENVIRONMENT}
    os.environ.update(_ENVIRONMENT)
    try:
        with start_localstack(work) as localstack:
            return _measure(localstack)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# What the handler reads from its environment: which keys are its own, which stack is its own.
_ENVIRONMENT = {
    contract.ENV_HANDLER_ROLE_ID: TEST_HANDLER_ROLE_ID,
    contract.ENV_HANDLER_STACK_ID: TEST_STACK_ID,
}


def _measure(localstack: LocalStack) -> dict[str, Any]:
    stacks = PlayedStacks()
    bucket = f"sweep-bench-{uuid.uuid4()}"
    s3 = localstack.s3()
    s3.create_bucket(Bucket=bucket)
    real = _real_keys(localstack, stacks, bucket)
    filled = time.perf_counter()
    for index in range(KEYS - RENEWED):
        key_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-fleet-key-{index}"))
        registry.put(s3, bucket, registry.entry_for(key_id, START + FAR, timedelta(days=30)))
    fill_s = time.perf_counter() - filled

    idle_at = START + timedelta(days=1)
    idle, idle_calls, idle_s = _timed_sweep(localstack, stacks, bucket, idle_at, 1.0)
    assert (idle.keys, idle.due) == (KEYS, 0), idle

    # Past every real key's due time (inside the first quarter of its window), before any
    # fabricated one's.
    first_at = START + timedelta(days=VALIDITY_DAYS) - WINDOW + WINDOW / registry.JITTER_SHARE
    at_quota = _timed_sweep(localstack, stacks, bucket, first_at, 1.0)
    second_at = first_at + timedelta(days=VALIDITY_DAYS) - WINDOW + WINDOW / registry.JITTER_SHARE
    at_default = _timed_sweep(
        localstack, stacks, bucket, second_at, contract.DEFAULT_IMPORTS_PER_SECOND
    )
    localstack.set_clock(None)
    entries = {e.key_id: e for e in registry.entries(s3, bucket)}
    assert len(entries) == KEYS
    assert all(entries[key].valid_to > second_at for key in real)
    return {
        "index_entries": KEYS,
        "index_fill_s": fill_s,
        "idle_sweep": {
            "kms_calls": idle_calls.of("kms"),
            "calls": dict(sorted(idle_calls.counts.items())),
            "wall_s": idle_s,
        },
        "renewals_at_1_per_s": _renewals(*at_quota),
        f"renewals_at_{contract.DEFAULT_IMPORTS_PER_SECOND}_per_s": _renewals(*at_default),
    }
