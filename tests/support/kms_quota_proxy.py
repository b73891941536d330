"""KMS's request quotas, enforced by an HTTP proxy on 127.0.0.1 in front of the emulator.

LocalStack never throttles, so a renewal sweep that would overrun KMS's quotas passes there and
fails in a real account. ``KmsQuotaProxy`` stands between a client and LocalStack and answers
as KMS does: every request is forwarded as it came (method, path, headers, body) and the
emulator's answer returned as it came (only hop-by-hop headers and the length are redone), unless

- an injected fault takes it first (``throttle_next``, ``fail_next``), in the order injected;
- its operation's token bucket is empty: KMS's ``ThrottlingException`` (HTTP 400), which
  botocore's standard retry mode treats as throttling (``ThrottledRetryableChecker`` lists the
  code; backoff ``rand(0, 1) * 2**i`` s);
- the emulator cannot be reached (``pause_upstream``, or it is down or restarting): the client's
  connection is reset with no answer, as a network failure would. botocore raises
  ``ConnectionClosedError``, an ``HTTPClientError`` that standard mode retries as transient
  (backoff ``rand(0, 1) * 0.05 * 2**i`` s) and raises once its attempts are spent; it is a
  ``BotoCoreError``, not a ``ClientError``.

Quotas are per operation (``X-Amz-Target``, e.g. ``TrentService.GetParametersForImport``), in
requests per second of real (monotonic) time, with bursts of up to one second's worth (at least
one request). A request a quota refuses takes no token; a forwarded one takes its token even if
the emulator then fails, as KMS counts a request at its front door. Requests without a quota
(other KMS operations, Secrets Manager, LocalStack's own paths) are forwarded and counted.
KMS's other throttles are not played: quotas shared between operations (the cryptographic ones)
and the per-key "hot key" throttling of state changes.

Every request is counted per target (``counts``): for benchmark figures such as the KMS calls
of one sweep, and for tests that check how many attempts a client made.

How it differs from ``support.fault_proxy.FaultProxy``: that one breaks the transport (dropped
and delayed requests, a listener that goes away) to test the handler's timeouts; this one plays
KMS's quotas and KMS's error answers, with counters cheap enough for thousands of calls.
"""

import contextlib
import http.client
import json
import math
import re
import socket
import struct
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import MappingProxyType, TracebackType
from typing import Any, Literal, Self
from urllib.parse import urlsplit

import botocore.session

HOST = "127.0.0.1"
KMS_TARGET_PREFIX = "TrentService."
# KMS's default request quotas that shape a fleet of imported keys, in requests per second per
# account and Region (AWS KMS Developer Guide, "Request quotas",
# https://docs.aws.amazon.com/kms/latest/developerguide/requests-per-second.html; DESIGN.md 9).
KMS_QUOTAS: Mapping[str, float] = MappingProxyType(
    {
        "TrentService.GetParametersForImport": 1,
        "TrentService.ImportKeyMaterial": 15,
        "TrentService.DeleteImportedKeyMaterial": 15,
        "TrentService.DescribeKey": 2000,
        "TrentService.ListKeyRotations": 100,
        "TrentService.RotateKeyOnDemand": 5,
        "TrentService.ReplicateKey": 5,
    }
)
# What KMS sends when it throttles (its developer guide, "Throttling AWS KMS requests").
THROTTLING_CODE = "ThrottlingException"
THROTTLING_MESSAGE = (
    "You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls."
)
JSON_CONTENT_TYPE = "application/x-amz-json-1.1"
# KMS's own 500 (modelled, retryable) and AWS's common 503 for a temporary server failure.
FAILURES: Mapping[int, tuple[str, str]] = MappingProxyType(
    {
        500: (
            "KMSInternalException",
            "The request was rejected because an internal exception "
            "occurred (injected by the test's quota proxy).",
        ),
        503: (
            "ServiceUnavailable",
            "The request has failed due to a temporary failure of the "
            "server (injected by the test's quota proxy).",
        ),
    }
)
MAX_BODY = 8 * 1024 * 1024
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)
_LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost"})
_RPC_V2_PATH = re.compile(r"/service/([^/]+)/operation/([^/]+)$")
# Answers that never carry a body: their Content-Length, if any, is the upstream's to give.
_BODILESS_STATUSES = frozenset({204, 304})
_JOIN_TIMEOUT_S = 5.0
_MAX_LINE = 65536

Outcome = Literal["forwarded", "throttled", "failed", "unreachable"]


@dataclass(frozen=True)
class Counts:
    """Requests the proxy read for one target (or all), and what became of them.

    ``throttled``: answered ThrottlingException (by a quota or ``throttle_next``); ``failed``:
    answered a 5xx by ``fail_next``; ``unreachable``: reset because the emulator could not be
    reached; ``forwarded``: answered by the emulator. Once no request is in flight,
    ``requests == forwarded + throttled + failed + unreachable``.
    """

    requests: int = 0
    forwarded: int = 0
    throttled: int = 0
    failed: int = 0
    unreachable: int = 0


@cache
def _kms_operations() -> frozenset[str]:
    model = botocore.session.get_session().get_service_model("kms")
    return frozenset(model.operation_names)


def target_of(name: str) -> str:
    """The target for ``name``: a KMS operation (``DescribeKey``) becomes its ``X-Amz-Target``;
    a full target (``TrentService.DescribeKey``, ``secretsmanager.GetSecretValue``, see
    ``request_target``) is kept as it is."""
    target = name if "." in name or " " in name else KMS_TARGET_PREFIX + name
    operation = target.removeprefix(KMS_TARGET_PREFIX)
    if target.startswith(KMS_TARGET_PREFIX) and operation not in _kms_operations():
        raise ValueError(
            f"target {name!r} names no KMS operation in botocore's KMS model; give an "
            "operation such as 'GetParametersForImport' or a full X-Amz-Target"
        )
    return target


def request_target(method: str, path: str, headers: Iterable[tuple[str, str]]) -> str:
    """What the proxy counts a request under (and matches quotas and faults against): its
    ``X-Amz-Target`` (KMS, Secrets Manager); ``<service>.<Operation>`` from the path of the
    RPC v2 CBOR protocol (CloudWatch); else ``METHOD /<first path segment>`` (an S3 bucket,
    LocalStack's own ``/_localstack``)."""
    for name, value in headers:
        if name.lower() == "x-amz-target":
            return value
    bare = path.split("?", 1)[0]
    rpc = _RPC_V2_PATH.match(bare)
    if rpc:
        return f"{rpc[1]}.{rpc[2]}"
    return f"{method} /{bare.lstrip('/').split('/', 1)[0]}"


def _per_second(name: str, rate: object) -> float:
    if (
        isinstance(rate, bool)
        or not isinstance(rate, int | float)
        or not math.isfinite(rate)
        or rate <= 0
    ):
        raise ValueError(
            f"quota for {name!r} must be a positive, finite number of requests per second, "
            f"got {rate!r}"
        )
    return float(rate)


def _loopback_upstream(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "http" or parts.hostname not in _LOOPBACK_NAMES or port is None:
        raise ValueError(
            f"upstream must be the local emulator as http://127.0.0.1:<port>, got {url!r}"
        )
    return parts.hostname, port


class _Bucket:
    """A token bucket: ``rate`` tokens a second, at most ``max(1, rate)`` held; starts full."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self._clock = clock
        self.at = clock()

    def take(self) -> bool:
        now = self._clock()
        # A clock that went back refills nothing (and takes nothing away).
        self.tokens = min(self.capacity, self.tokens + max(0.0, now - self.at) * self.rate)
        self.at = max(self.at, now)
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


@dataclass
class _Fault:
    status: int  # 400 is a ThrottlingException, 500/503 the FAILURES
    target: str | None
    remaining: int


@dataclass(frozen=True)
class _Answer:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    bodiless: bool = False  # HEAD, 1xx, 204, 304: headers only, Content-Length among them


def _error_answer(status: int, code: str, message: str) -> _Answer:
    body = json.dumps({"__type": code, "message": message}).encode()
    reason = http.client.responses.get(status, "")
    headers = [("Content-Type", JSON_CONTENT_TYPE), ("x-amzn-RequestId", str(uuid.uuid4()))]
    return _Answer(status, reason, headers, body)


def _throttling_answer() -> _Answer:
    return _error_answer(400, THROTTLING_CODE, THROTTLING_MESSAGE)


def _failure_answer(status: int) -> _Answer:
    code, message = FAILURES[status]
    return _error_answer(status, code, message)


class KmsQuotaProxy:
    """An HTTP proxy on ``127.0.0.1:<port>`` in front of ``upstream`` (``http://127.0.0.1:N``).

    ``quotas`` maps an operation (``DescribeKey``) or a full ``X-Amz-Target`` to requests per
    second; default ``KMS_QUOTAS``. Pass ``{**KMS_QUOTAS, "DescribeKey": 50}`` to change one.
    Start it with ``start()`` or ``with``; ``stop()`` closes every connection and joins every
    thread it started. All methods are thread-safe.
    """

    def __init__(
        self,
        upstream: str,
        *,
        quotas: Mapping[str, float] | None = None,
        upstream_timeout_s: float = 30.0,
        client_timeout_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # ``clock``: seconds, monotonic; a simulation passes its own so quotas hold in its time.
        self._lock = threading.Lock()
        self._clock = clock
        self._upstream = _loopback_upstream(upstream)
        self._paused = False
        chosen = KMS_QUOTAS if quotas is None else quotas
        self._buckets = {
            target_of(name): _Bucket(_per_second(name, rate), clock)
            for name, rate in chosen.items()
        }
        self._faults: list[_Fault] = []
        self._tally: Counter[tuple[str, str]] = Counter()
        self._upstream_timeout_s = upstream_timeout_s
        self._client_timeout_s = client_timeout_s
        self._server: _Server | None = None
        self._serving: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> Self:
        """Listen on a free port of 127.0.0.1 and serve from a background thread."""
        if self._server is not None:
            raise RuntimeError("the proxy is already started")
        self._server = _Server(self)
        self._serving = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"kms-quota-proxy-{self.port}",
            daemon=True,
        )
        self._serving.start()
        return self

    def stop(self) -> None:
        """Stop serving, reset open client connections, join the threads (idempotent)."""
        server, serving = self._server, self._serving
        if server is None or serving is None:
            return
        server.shutdown()
        serving.join(timeout=_JOIN_TIMEOUT_S)
        server.close_clients()
        server.server_close()  # joins the connection threads
        self._server = self._serving = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the proxy is not started")
        port: int = self._server.server_address[1]
        return port

    @property
    def endpoint(self) -> str:
        """The URL to give a client as ``endpoint_url``."""
        return f"http://{HOST}:{self.port}"

    # --- quotas and upstream -------------------------------------------------------------

    @property
    def quotas(self) -> dict[str, float]:
        """The quotas in force, per ``X-Amz-Target``."""
        with self._lock:
            return {target: bucket.rate for target, bucket in self._buckets.items()}

    def set_quota(self, target: str, per_second: float | None) -> None:
        """Limit ``target`` to ``per_second`` from now on (a full bucket); ``None``: no limit."""
        key = target_of(target)
        bucket = (
            None if per_second is None else _Bucket(_per_second(target, per_second), self._clock)
        )
        with self._lock:
            if bucket is None:
                self._buckets.pop(key, None)
            else:
                self._buckets[key] = bucket

    @property
    def upstream(self) -> str:
        with self._lock:
            host, port = self._upstream
        return f"http://{host}:{port}"

    def set_upstream(self, url: str) -> None:
        """Forward to another emulator (``http://127.0.0.1:<port>``) from the next request on."""
        address = _loopback_upstream(url)
        with self._lock:
            self._upstream = address

    def pause_upstream(self) -> None:
        """Treat the emulator as unreachable: reset every client connection that asks for it."""
        with self._lock:
            self._paused = True

    def resume_upstream(self) -> None:
        with self._lock:
            self._paused = False

    # --- faults --------------------------------------------------------------------------

    def throttle_next(self, n: int, target: str | None = None) -> None:
        """Answer the next ``n`` requests (for ``target`` only, if given) ThrottlingException,
        whatever their quota says."""
        self._inject(400, n, target)

    def fail_next(self, n: int, status: int = 500, target: str | None = None) -> None:
        """Answer the next ``n`` requests (for ``target`` only, if given) with HTTP ``status``:
        500 ``KMSInternalException`` or 503 ``ServiceUnavailable``."""
        if status not in FAILURES:
            raise ValueError(f"status must be one of {sorted(FAILURES)}, got {status!r}")
        self._inject(status, n, target)

    def clear_faults(self) -> None:
        """Forget every injected fault not yet used."""
        with self._lock:
            self._faults.clear()

    @property
    def pending_faults(self) -> int:
        """Requests the injected faults will still take."""
        with self._lock:
            return sum(fault.remaining for fault in self._faults)

    def _inject(self, status: int, n: int, target: str | None) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive number of requests, got {n!r}")
        key = None if target is None else target_of(target)
        with self._lock:
            self._faults.append(_Fault(status, key, n))

    # --- counters ------------------------------------------------------------------------

    def counts(self, target: str | None = None) -> Counts:
        """What became of the requests for ``target`` (an operation or X-Amz-Target), or of
        every request."""
        key = None if target is None else target_of(target)
        with self._lock:
            return self._counts_of(lambda seen: key is None or seen == key)

    def kms_counts(self) -> Counts:
        """``counts`` of every KMS request (``TrentService.*``), the figure a bench reports as
        KMS calls; Secrets Manager and anything else are left out."""
        with self._lock:
            return self._counts_of(lambda seen: seen.startswith(KMS_TARGET_PREFIX))

    def counts_by_target(self) -> dict[str, Counts]:
        """``counts`` for every target seen (requests without X-Amz-Target: ``METHOD /path``)."""
        with self._lock:
            targets = sorted({seen for seen, _ in self._tally})
            return {target: self._counts_of(target.__eq__) for target in targets}

    def _counts_of(self, wanted: Callable[[str], bool]) -> Counts:
        tally = Counter[str]()
        for (seen, outcome), number in self._tally.items():
            if wanted(seen):
                tally[outcome] += number
        return Counts(**tally)

    def reset_counts(self) -> None:
        with self._lock:
            self._tally.clear()

    # --- the request path ----------------------------------------------------------------

    def _decide(self, target: str) -> tuple[_Answer | None, tuple[str, int] | None]:
        """An answer the proxy gives itself, or where to forward (None: unreachable)."""
        with self._lock:
            self._tally[target, "requests"] += 1
            for fault in self._faults:
                if fault.target in (None, target):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    if fault.status == 400:
                        self._tally[target, "throttled"] += 1
                        return _throttling_answer(), None
                    self._tally[target, "failed"] += 1
                    return _failure_answer(fault.status), None
            bucket = self._buckets.get(target)
            if bucket is not None and not bucket.take():
                self._tally[target, "throttled"] += 1
                return _throttling_answer(), None
            return None, None if self._paused else self._upstream

    def _outcome(self, target: str, outcome: Outcome) -> None:
        with self._lock:
            self._tally[target, outcome] += 1

    def _answer(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes | None
    ) -> _Answer | None:
        """The answer for one request; None when the client's connection is to be reset."""
        target = request_target(method, path, headers)
        answer, upstream = self._decide(target)
        if answer is not None:
            return answer
        if upstream is None:
            self._outcome(target, "unreachable")
            return None
        try:
            answer = self._forward(upstream, method, path, headers, body)
        except (OSError, http.client.HTTPException):
            self._outcome(target, "unreachable")
            return None
        self._outcome(target, "forwarded")
        return answer

    def _forward(
        self,
        upstream: tuple[str, int],
        method: str,
        path: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
    ) -> _Answer:
        connection = http.client.HTTPConnection(*upstream, timeout=self._upstream_timeout_s)
        try:
            # putrequest/putheader keep the client's headers, their order and repeats as sent.
            sent_host = any(name.lower() == "host" for name, _ in headers)
            connection.putrequest(method, path, skip_host=sent_host, skip_accept_encoding=True)
            for name, value in headers:
                if name.lower() not in _HOP_BY_HOP:
                    connection.putheader(name, value)
            if body is not None:
                connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            response = connection.getresponse()
            answer_body = response.read(MAX_BODY + 1)
            if len(answer_body) > MAX_BODY:
                raise OSError("the emulator's answer is too large")
            bodiless = (
                method == "HEAD" or response.status < 200 or response.status in _BODILESS_STATUSES
            )
            kept = [
                (name, value)
                for name, value in response.getheaders()
                if name.lower() not in _HOP_BY_HOP
                or (bodiless and name.lower() == "content-length")
            ]
            return _Answer(response.status, response.reason, kept, answer_body, bodiless)
        finally:
            connection.close()


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"
    protocol_version = "HTTP/1.1"  # keep-alive, as botocore's connection pool expects

    def setup(self) -> None:
        super().setup()
        # A client that goes quiet must not hold its connection thread (or stop()) for ever.
        self.connection.settimeout(self.server.owner._client_timeout_s)

    def _relay(self) -> None:
        try:
            body = self._body()
        except ValueError as error:
            self.send_error(400, f"unreadable request body: {error}")
            return
        answer = self.server.owner._answer(self.command, self.path, self.headers.items(), body)
        if answer is None:
            self.server.reset(self.connection)
            self.close_connection = True
            return
        self.send_response_only(answer.status, answer.reason)
        for name, value in answer.headers:
            self.send_header(name, value)
        if not answer.bodiless:
            self.send_header("Content-Length", str(len(answer.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if not answer.bodiless:
            self.wfile.write(answer.body)

    def _body(self) -> bytes | None:
        """The request's body (None when it declares none), de-chunked if it came in chunks."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._chunked_body()
        if "Content-Length" not in self.headers:
            return None
        length = int(self.headers["Content-Length"])
        if not 0 <= length <= MAX_BODY:
            raise ValueError(f"Content-Length {length} is out of bounds")
        return self.rfile.read(length)

    def _chunked_body(self) -> bytes:
        body = bytearray()
        while True:
            # int() refuses an empty or malformed size line with a ValueError.
            size = int(self.rfile.readline(_MAX_LINE).split(b";", 1)[0].strip(), 16)
            if size == 0:
                break
            if size < 0 or len(body) + size > MAX_BODY:
                raise ValueError("chunked body too large")
            body += self.rfile.read(size)
            self.rfile.readline(_MAX_LINE)  # the CRLF after each chunk
        while self.rfile.readline(_MAX_LINE).strip():
            pass  # trailers: nothing upstream needs them once the body has a length
        return bytes(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _relay

    def log_message(self, format: str, *args: Any) -> None:
        return  # an access log per request is noise in pytest's captured output


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True  # server_close() joins the connection threads

    def __init__(self, owner: KmsQuotaProxy) -> None:
        self.owner = owner
        self._clients: set[socket.socket] = set()
        self._resets: set[socket.socket] = set()
        self._clients_lock = threading.Lock()
        super().__init__((HOST, 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._clients_lock:
            self._clients.add(request)
        super().process_request(request, client_address)

    def reset(self, client: socket.socket) -> None:
        """Have ``shutdown_request`` close ``client`` with an RST, as a dead peer would."""
        with contextlib.suppress(OSError):
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with self._clients_lock:
            self._resets.add(client)

    def shutdown_request(self, request: Any) -> None:
        with self._clients_lock:
            self._clients.discard(request)
            reset = request in self._resets
            self._resets.discard(request)
        if reset:
            self.close_request(request)  # no FIN first: the client sees a reset connection
        else:
            super().shutdown_request(request)

    def close_clients(self) -> None:
        """Wake every connection thread waiting on a kept-alive client, so it ends."""
        with self._clients_lock:
            clients = list(self._clients)
        for client in clients:
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # a client that hung up mid-request is no news to a test
