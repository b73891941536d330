"""Each key's last renewal, from the handler's own log: one JSON line per action
(``imported_key_handler.audit``), in Lambda's JSON log format, whose keys ``action``,
``key_id``, ``outcome``, ``valid_to`` and, on failure, ``reason`` it writes.

Read with ``logs:FilterLogEvents`` over the handler's log group. The filter pattern narrows
the search where CloudWatch Logs applies it; each line is checked here as well, so an
emulator that ignores patterns gives the same answer.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

_RENEWAL = "Renew("
_PATTERN = '{ $.action = "Renew*" }'
_MOST_PAGES = 50  # a bound on a busy fleet's history: the newest lines come last


class LogsClient(Protocol):
    def filter_log_events(self, **request: Any) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class LastRenewal:
    time: datetime
    action: str  # Renew(sweep), Renew(schedule), Renew(material-expired), Renew(operator)
    outcome: str  # RENEWED, NOT_DUE, FAILED
    reason: str | None

    @property
    def short(self) -> str:
        return f"{self.outcome} {self.time:%m-%d}"

    def summary(self) -> dict[str, Any]:
        return {
            "Time": self.time.isoformat(),
            "Action": self.action,
            "Outcome": self.outcome,
            "Reason": self.reason,
        }


def last_renewals(
    logs: LogsClient, log_group: str, *, since: datetime, until: datetime
) -> dict[str, LastRenewal]:
    """The newest renewal line of each key in ``log_group`` between ``since`` and ``until``."""
    request: dict[str, Any] = {
        "logGroupName": log_group,
        "startTime": int(since.timestamp() * 1000),
        "endTime": int(until.timestamp() * 1000),
        "filterPattern": _PATTERN,
    }
    found: dict[str, LastRenewal] = {}
    for _ in range(_MOST_PAGES):
        page = logs.filter_log_events(**request)
        for event in page.get("events", []):
            renewal = _parse(event)
            if renewal is None:
                continue
            key_id, last = renewal
            if key_id not in found or found[key_id].time <= last.time:
                found[key_id] = last
        token = page.get("nextToken")
        if not token:
            break
        request["nextToken"] = token
    return found


def _parse(event: Mapping[str, Any]) -> tuple[str, LastRenewal] | None:
    try:
        line = json.loads(str(event.get("message", "")))
    except ValueError:
        return None
    if not isinstance(line, dict):
        return None
    action, key_id = line.get("action"), line.get("key_id")
    if not isinstance(action, str) or not action.startswith(_RENEWAL):
        return None
    if not isinstance(key_id, str) or not key_id:
        return None
    reason = line.get("reason")
    when = datetime.fromtimestamp(int(event.get("timestamp", 0)) / 1000, UTC)
    return key_id, LastRenewal(
        when,
        action[:40],
        str(line.get("outcome", "?"))[:16],
        str(reason)[:300] if reason else None,
    )
