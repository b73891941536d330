"""A stand-in for the Lambda context object, for handlers invoked directly in tests."""

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

REGION = "us-east-1"
ACCOUNT_ID = "000000000000"


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
        function_name: str = "imported-key-material",
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
