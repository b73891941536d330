"""One year of a key on a controllable clock: the daily renewal against LocalStack.

The renewal runs at each scheduled time (daily, the default) with the clock moved forward, the
emulated KMS's clock with it: so every ValidTo the renewal asks for is checked against KMS's
365-day limit on the day it is asked. A key whose ValidTo lies behind the clock would have
expired: that must never happen. The test also draws the timeline that the README shows, and
fails if the README's copy is stale.
"""

import os
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from support.calls import CallCounter
from support.events import import_properties
from support.keys import assert_key_holds, external_key, new_secret
from support.localstack import LocalStack
from support.synth import REPO

from imported_key_cdk.renewal import default_renew_before
from imported_key_handler import contract
from imported_key_handler.renewal import RenewalRequest, RenewalResult, renew_if_due
from imported_key_handler.request import ImportRequest

if TYPE_CHECKING:
    from mypy_boto3_kms.client import KMSClient
    from mypy_boto3_secretsmanager.client import SecretsManagerClient

pytestmark = pytest.mark.localstack

DAYS = 365
VALIDITIES = (30, 90, 365)
START = datetime(2027, 1, 1, 3, 0, tzinfo=UTC)  # the schedule's first firing
TIMELINE_START = "<!-- time-warp timeline: start -->"
TIMELINE_END = "<!-- time-warp timeline: end -->"


def renewal_for(key_id: str, secret_arn: str, validity_days: int) -> RenewalRequest:
    properties = import_properties(
        key_id,
        secret_arn,
        **{
            contract.PROP_WRAPPING_KEY_SPEC: "RSA_2048",
            contract.PROP_VALIDITY_DAYS: str(validity_days),
        },
    )
    window = timedelta(seconds=default_renew_before(validity_days).to_seconds())
    return RenewalRequest(ImportRequest.from_properties(properties), window, "schedule")


def new_key_and_secret(
    localstack: LocalStack, material: bytes
) -> tuple["KMSClient", "SecretsManagerClient", str, str]:
    kms: KMSClient = localstack.kms()
    secrets: SecretsManagerClient = localstack.secretsmanager()
    return kms, secrets, external_key(kms), new_secret(secrets, SecretBinary=material)


def one_year(localstack: LocalStack, validity_days: int) -> list[tuple[int, RenewalResult, int]]:
    """Run the renewal every day for a year; return (day, result, KMS calls) per run."""
    material = os.urandom(32)
    kms, secrets, key_id, secret_arn = new_key_and_secret(localstack, material)
    observer = localstack.kms()  # reads for the assertions, not counted
    renewal = renewal_for(key_id, secret_arn, validity_days)
    counter = CallCounter(kms)
    runs = []
    try:
        for day in range(DAYS + 1):
            now = START + timedelta(days=day)
            localstack.set_clock(now)
            if day > 0:
                metadata = observer.describe_key(KeyId=key_id)["KeyMetadata"]
                assert metadata["KeyState"] == "Enabled"
                assert metadata["ValidTo"] > now, f"day {day}: the material would have expired"
            result = renew_if_due(kms, secrets, renewal, now=now)
            calls = counter.take()
            runs.append((day, result, sum(calls.values())))
            check_run(renewal, validity_days, now, result, calls)
    finally:
        localstack.set_clock(None)
    assert_key_holds(kms, key_id, material)
    return runs


def check_run(
    renewal: RenewalRequest,
    validity_days: int,
    now: datetime,
    result: RenewalResult,
    calls: Counter[str],
) -> None:
    """A renewal re-imports with exactly its validity; otherwise it reads the key once."""
    if result.renewed:
        assert result.valid_to == now + timedelta(days=validity_days)
        assert calls == Counter(DescribeKey=3, GetParametersForImport=1, ImportKeyMaterial=1), calls
    else:
        assert calls == Counter(DescribeKey=1), calls
        valid_to = result.valid_to
        assert valid_to is not None
        assert valid_to - now > renewal.renew_before  # renewed only inside the window


def draw(validity_days: int, runs: list[tuple[int, RenewalResult, int]]) -> list[str]:
    """One character per week: R = a re-import that week, - = only the daily read."""
    renewal_days = [day for day, result, _ in runs if result.renewed]
    weeks = "".join(
        "R" if any(7 * w <= d < 7 * (w + 1) for d in renewal_days) else "-"
        for w in range(DAYS // 7 + 1)
    )
    window = default_renew_before(validity_days).to_hours() / 24
    reads = [calls for _, result, calls in runs if not result.renewed]
    renews = [calls for _, result, calls in runs if result.renewed]
    return [
        f"valid {validity_days:>3} d, window {window:>4.1f} d |{weeks}|",
        f"{'':>27}{len(runs)} runs: {len(renews)} re-imports on days "
        f"{', '.join(str(d) for d in renewal_days)}; {len(reads)} runs with 1 KMS call, "
        f"{len(renews)} with {renews[0] if renews else 0}",
    ]


@pytest.fixture(scope="module")
def timeline(localstack: LocalStack) -> list[str]:
    lines = [f"{'':>27}|{'week 0':<26}{'week 26':<20}week 52|"]
    for validity in VALIDITIES:
        lines += draw(validity, one_year(localstack, validity))
    return lines


def test_a_year_of_daily_renewals_never_lets_the_material_expire(timeline: list[str]) -> None:
    text = "\n".join(timeline)
    print("\n" + text)
    assert text.count("R") >= len(VALIDITIES)


def test_readme_shows_this_timeline(timeline: list[str]) -> None:
    readme = (REPO / "README.md").read_text()
    start, end = readme.index(TIMELINE_START), readme.index(TIMELINE_END)
    block = readme[start + len(TIMELINE_START) : end].strip("\n").splitlines()
    shown = "\n".join(line for line in block if line != "```")
    assert shown == "\n".join(timeline), (
        "README's timeline is stale; replace it with the lines printed by "
        "`pytest tests/e2e/test_time_warp.py -s`"
    )


def test_an_expired_key_is_restored_by_one_run(localstack: LocalStack) -> None:
    material = os.urandom(32)
    kms, secrets, key_id, secret_arn = new_key_and_secret(localstack, material)
    renewal = renewal_for(key_id, secret_arn, 30)
    assert renew_if_due(kms, secrets, renewal).renewed
    old = kms.encrypt(KeyId=key_id, Plaintext=b"before expiry")["CiphertextBlob"]
    # What KMS does when material expires: deletes it; the key goes back to PendingImport.
    kms.delete_imported_key_material(KeyId=key_id)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingImport"

    counter = CallCounter(kms)
    result = renew_if_due(kms, secrets, renewal)
    assert result.renewed
    assert "PendingImport" in result.why
    assert sum(counter.take().values()) == 5
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    assert kms.decrypt(CiphertextBlob=old)["Plaintext"] == b"before expiry"
    assert_key_holds(kms, key_id, material)
    counter.take()
    again = renew_if_due(kms, secrets, renewal)
    assert not again.renewed
    assert sum(counter.take().values()) == 1
