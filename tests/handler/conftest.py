"""Fixtures shared by the handler tests (helpers and constants live in ``stubbing``).

- ``kms`` / ``secrets``: real clients behind an active Stubber; at teardown every queued
  response must have been used.
- ``timeline``: one call recorder on both clients, for the order of calls across services.
- ``no_material_in_logs``: captures every log record at DEBUG and fails the test if one
  carries any of ``logged_materials`` (the sentinel unless a module overrides it). Opt in with
  ``pytestmark = pytest.mark.usefixtures("no_material_in_logs")``.
- Logger levels (which ``entry.handler`` and crhelper change) are put back after every test.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import pytest
import stubbing
from support.binding import (
    INDEX_BUCKET,
    TEST_STACK_ID,
    MemoryIndex,
    PlayedStacks,
    key_logical_id,
)

from imported_key_handler import clients, contract, deadline
from imported_key_handler.log_config import QUIETED_LOGGERS


@pytest.fixture(autouse=True)
def played_deployment(monkeypatch: pytest.MonkeyPatch) -> PlayedStacks:
    """What the handler reads besides KMS and Secrets Manager, as a deployment leaves it: its
    environment, CloudFormation's record of the stack (the stubbed key declared in it) and the
    due index (in memory)."""
    # A test that played a timed-out invocation leaves the process-wide deadline passed; each
    # test starts as a new invocation does.
    deadline.start()
    monkeypatch.setenv(contract.ENV_HANDLER_STACK_ID, TEST_STACK_ID)
    monkeypatch.setenv(contract.ENV_REGISTRY_BUCKET, INDEX_BUCKET)
    stacks = PlayedStacks()
    stacks.record(TEST_STACK_ID, key_logical_id(stubbing.KEY_ID), stubbing.KEY_ID)
    monkeypatch.setattr(clients, "cloudformation_client", stacks.client)
    index = MemoryIndex()
    monkeypatch.setattr(clients, "s3_client", lambda: index)
    return stacks


@pytest.fixture
def kms() -> Iterator[stubbing.KmsStub]:
    stubbed = stubbing.new_kms()
    with stubbed.stub:
        yield stubbed
    stubbed.stub.assert_no_pending_responses()


@pytest.fixture
def secrets() -> Iterator[stubbing.SecretsStub]:
    stubbed = stubbing.new_secrets()
    with stubbed.stub:
        yield stubbed
    stubbed.stub.assert_no_pending_responses()


@pytest.fixture
def timeline(kms: stubbing.KmsStub, secrets: stubbing.SecretsStub) -> stubbing.CallRecorder:
    """One recorder on both clients: the order of the calls across the two services."""
    recorder = stubbing.CallRecorder()
    kms.client.meta.events.register("provide-client-params.kms", recorder)
    secrets.client.meta.events.register("provide-client-params.secrets-manager", recorder)
    return recorder


@pytest.fixture
def logged_materials() -> Sequence[bytes]:
    """The materials ``no_material_in_logs`` looks for; a module may override this."""
    return (stubbing.SENTINEL_MATERIAL,)


@pytest.fixture
def no_material_in_logs(
    caplog: pytest.LogCaptureFixture, logged_materials: Sequence[bytes]
) -> Iterator[None]:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="imported_key_handler")
    yield
    # At teardown ``caplog.records`` holds only the teardown's own records: read the test's.
    records = [*caplog.get_records("setup"), *caplog.get_records("call")]
    for material in logged_materials:
        stubbing.assert_records_clean(records, material)


@pytest.fixture(autouse=True)
def _restore_logger_levels() -> Iterator[None]:
    names = [*QUIETED_LOGGERS, "imported_key_handler", "boto", ""]
    levels = {name: logging.getLogger(name).level for name in names}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
