"""A stand-in for the Lambda context object, for handlers invoked directly in tests."""

import os
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from imported_key_handler import contract
from support.binding import INDEX_BUCKET, TEST_HANDLER_ROLE_ID, TEST_STACK_ID

if TYPE_CHECKING:
    import pytest

REGION = "us-east-1"
ACCOUNT_ID = "000000000000"
FUNCTION_NAME = "imported-key-material"


def play_lambda(monkeypatch: "pytest.MonkeyPatch", region: str = REGION) -> None:
    """Give this process the environment the handler sees in Lambda (credentials aside).

    ``AWS_LAMBDA_FUNCTION_NAME`` is the handler's "in Lambda" signal (and the construct sets the
    role's id, which the binding checks), and in Lambda it refuses
    every endpoint override: the emulator's endpoint goes through ``clients.endpoint_for_tests``.
    """
    for name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL")]:
        monkeypatch.delenv(name)
    monkeypatch.delenv("AWS_CONFIG_FILE", raising=False)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", FUNCTION_NAME)
    monkeypatch.setenv("AWS_REGION", region)
    monkeypatch.setenv("AWS_DEFAULT_REGION", region)
    monkeypatch.setenv(contract.ENV_HANDLER_ROLE_ID, TEST_HANDLER_ROLE_ID)
    monkeypatch.setenv(contract.ENV_HANDLER_STACK_ID, TEST_STACK_ID)
    monkeypatch.setenv(contract.ENV_REGISTRY_BUCKET, INDEX_BUCKET)
    monkeypatch.setenv(contract.ENV_FLEET_NAME, "TestStack/ImportedKeyHandler")


class FakeLambdaContext:
    """Carries the attributes of ``LambdaContext`` that handlers and crhelper read.

    ``get_remaining_time_in_millis()`` counts down from ``timeout_s`` starting at creation, so a
    test can make a short timeout to drive crhelper's "about to time out" path (it answers
    FAILED 0.5 s before the end). ``clock`` is injectable to make that path deterministic.
    """

    def __init__(
        self,
        timeout_s: float = 300.0,
        *,
        function_name: str = FUNCTION_NAME,
        memory_limit_in_mb: int = 256,
        region: str = REGION,
        account_id: str = ACCOUNT_ID,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        self._clock = clock
        self._deadline = clock() + timeout_s
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = memory_limit_in_mb
        self.aws_request_id = str(uuid.uuid4())
        self.invoked_function_arn = f"arn:aws:lambda:{region}:{account_id}:function:{function_name}"
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = (
            f"{datetime.now(UTC):%Y/%m/%d}/[{self.function_version}]{uuid.uuid4().hex}"
        )
        self.identity: object | None = None
        self.client_context: object | None = None

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - self._clock()) * 1000))
