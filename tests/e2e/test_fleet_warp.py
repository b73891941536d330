"""A small fleet for five months on a simulated clock, behind the KMS quota proxy, with every
fault of bench/fleet_warp.py injected (make bench runs a thousand keys for five years)."""

import fcntl
import json
import sys
from dataclasses import asdict

import pytest
from support.localstack import LocalStack
from support.synth import REPO

sys.path.insert(0, str(REPO / "bench"))
from fleet_warp import WarpResult, run

pytestmark = pytest.mark.localstack

KEYS = 5
DAYS = 150
VALIDITY = 45
WINDOW = 15
THRESHOLD = 7


@pytest.fixture(scope="module")
def warp(
    localstack: LocalStack, tmp_path_factory: pytest.TempPathFactory, worker_id: str
) -> WarpResult:
    """One run for the whole test session: xdist's work stealing may hand this module's tests
    to several workers, and each would run its own warp (half a minute of CPU) without this."""
    if worker_id == "master":
        return _run(localstack)
    shared = tmp_path_factory.getbasetemp().parent / "fleet_warp.json"
    with (shared.parent / "fleet_warp.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if shared.exists():
            return WarpResult(**json.loads(shared.read_text()))
        result = _run(localstack)
        shared.write_text(json.dumps(asdict(result)))
        return result


def _run(localstack: LocalStack) -> WarpResult:
    return run(
        localstack,
        keys=KEYS,
        days=DAYS,
        validity_days=VALIDITY,
        window_days=WINDOW,
        threshold_days=THRESHOLD,
        per_second=0.2,
        # Of the sweeps the index says are idle, one in five runs (the rest change nothing).
        idle_every=5,
    )


def test_no_key_with_its_secret_spends_a_minute_in_pending_import(warp: WarpResult) -> None:
    assert warp.intact_keys_pending_minutes() == 0, warp.pending_minutes
    # Every key but the lost one was renewed about every validity period less its window.
    renewals = sum(warp.renewals_per_day)
    assert renewals >= (KEYS - 1) * (DAYS // VALIDITY)


def test_every_injected_fault_was_met(warp: WarpResult) -> None:
    assert warp.injected["throttled answers"] >= 3
    assert warp.injected["5xx answers"] >= 3
    assert warp.injected["emulator unreachable (times)"] >= 1
    assert warp.injected["faults never reached"] == 0


def test_the_key_whose_secret_is_gone_alarms_before_it_expires(warp: WarpResult) -> None:
    assert warp.lost_key_expired_day is not None
    assert warp.lost_key_first_alarm_day is not None
    assert warp.lost_key_first_alarm_day <= warp.lost_key_expired_day - THRESHOLD + 1
    assert warp.failed_renewals > 0


def test_keys_that_expired_in_the_outage_are_restored_by_the_first_sweep_after_it(
    warp: WarpResult,
) -> None:
    assert warp.expired_in_outage >= 1
    assert warp.restored_by_first_sweep_after_outage == warp.expired_in_outage
    assert warp.lost_key not in warp.pending_minutes_in_outage
    # Each was PendingImport for less than the outage itself.
    assert all(m < 36 * 24 * 60 for m in warp.pending_minutes_in_outage.values())


def test_an_idle_sweep_calls_kms_for_nothing(warp: WarpResult) -> None:
    assert warp.kms_calls_per_idle_sweep_max == 0
    assert warp.skipped_idle_sweeps < DAYS
