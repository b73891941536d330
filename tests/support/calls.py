"""Counting what a boto3 client sends, by operation (KMS calls per sweep, per renewal)."""

from collections import Counter
from typing import Any


class CallCounter:
    """Counts the requests a client sends, by operation."""

    def __init__(self, client: Any) -> None:
        self.calls: Counter[str] = Counter()
        client.meta.events.register("before-call.*.*", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.calls[model.name] += 1

    def take(self) -> Counter[str]:
        taken, self.calls = self.calls, Counter()
        return taken
