"""A fault-injecting HTTP proxy on 127.0.0.1 in front of LocalStack, switchable at run time.

Point a client's ``AWS_ENDPOINT_URL`` at ``FaultProxy.endpoint``; every request is read in full,
counted, and then handled by the first matching ``Rule`` (or passed through when none
matches). A rule can delay a request, drop the connection, answer HTTP 500 / 503 or a KMS
``ThrottlingException``, for every request or only one ``X-Amz-Target`` operation, for the next
``count`` matching requests or for all of them, and only once some operation has gone through
(``after``). ``set_upstream`` points the proxy at another port (a closed one: the emulator is
unreachable) and ``go_offline`` closes the listening socket itself (connections are refused).

Bounded: at most ``max_connections`` client connections (one thread each), a request of at most
``MAX_BODY`` bytes, socket timeouts on both sides, and ``close()`` wakes every delayed request
(which is then dropped, never forwarded) and joins every thread it started. Nothing but
``127.0.0.1`` is ever bound or connected to.
"""

import contextlib
import enum
import http.client
import io
import json
import select
import socket
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Self

HOST = "127.0.0.1"
MAX_BODY = 1024 * 1024
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "content-length",
        "te",
        "trailer",
        "upgrade",
    }
)
_ACCEPT_POLL_S = 0.1
_JOIN_TIMEOUT_S = 5.0


class Fault(enum.Enum):
    PASS = "pass"
    DELAY = "delay"
    DROP = "drop"
    HTTP_500 = "http-500"
    HTTP_503 = "http-503"
    THROTTLE = "throttle"


@dataclass
class Rule:
    """What to do with the requests it matches.

    ``target``: an ``X-Amz-Target`` (``TrentService.ImportKeyMaterial``) or just its operation
    (``ImportKeyMaterial``); ``None`` matches every request. ``count``: how many matching
    requests it takes before it stops matching; ``None`` for all. ``after``: the rule matches
    only once a request for that operation has been passed upstream. ``delay_s``: for DELAY,
    how long a request is held before it is forwarded (a rule change ends the wait early, and
    the request then goes through the rules again). A held request whose client has hung up
    in the meantime is dropped, not forwarded.
    """

    fault: Fault
    target: str | None = None
    count: int | None = None
    delay_s: float = 0.0
    after: str | None = None
    applied: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.count is not None and self.count < 1:
            raise ValueError(f"count must be at least 1 or None, got {self.count}")
        if self.fault is Fault.DELAY and self.delay_s <= 0:
            raise ValueError("a DELAY rule needs a positive delay_s")

    def exhausted(self) -> bool:
        return self.count is not None and self.applied >= self.count


def _same_operation(pattern: str | None, target: str) -> bool:
    if pattern is None:
        return True
    return target == pattern or target.rpartition(".")[2] == pattern


@dataclass
class SeenRequest:
    """One request the proxy read: its X-Amz-Target (or method and path), when it arrived and
    what it got (``pending`` while it is held or forwarded; ``delay(2s)+pass`` and so on)."""

    target: str
    at: float
    action: str = "pending"


@dataclass
class _Request:
    method: str
    path: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def target(self) -> str:
        for name, value in self.headers:
            if name.lower() == "x-amz-target":
                return value
        return f"{self.method} {self.path.split('?', 1)[0]}"

    def wants_close(self) -> bool:
        for name, value in self.headers:
            if name.lower() == "connection" and value.strip().lower() == "close":
                return True
        return self.version == "HTTP/1.0"


class _Dropped(Exception):
    """The client connection is to be closed without an answer."""


class FaultProxy:
    """An HTTP/1.1 proxy on ``127.0.0.1:<port>`` forwarding to ``127.0.0.1:<upstream_port>``."""

    def __init__(
        self,
        upstream_port: int,
        *,
        max_connections: int = 32,
        client_timeout_s: float = 30.0,
        upstream_timeout_s: float = 30.0,
    ) -> None:
        self._upstream_port = upstream_port
        self._client_timeout_s = client_timeout_s
        self._upstream_timeout_s = upstream_timeout_s
        self._slots = threading.BoundedSemaphore(max_connections)
        self._lock = threading.Condition()
        self._rules: list[Rule] = []
        self._generation = 0
        self._passed: Counter[str] = Counter()
        self._seen: list[SeenRequest] = []
        self._refused_connections = 0
        self._clients: set[socket.socket] = set()
        self._workers: set[threading.Thread] = set()
        self._stopping = threading.Event()
        self._want_listening = True
        self._listener: socket.socket | None = self._bind(0)
        self.port: int = self._listener.getsockname()[1]
        self._listening_changed = threading.Event()
        self._bind_error: OSError | None = None
        self._acceptor = threading.Thread(
            target=self._accept_loop, name=f"fault-proxy-{self.port}", daemon=True
        )
        self._acceptor.start()

    # --- control -------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    def set_rules(self, *rules: Rule) -> None:
        """Replace the rules (first match wins); wakes every delayed request."""
        with self._lock:
            self._rules = list(rules)
            self._generation += 1
            self._lock.notify_all()

    def pass_through(self) -> None:
        self.set_rules()

    def delay(self, seconds: float, target: str | None = None, count: int | None = None) -> None:
        self.set_rules(Rule(Fault.DELAY, target=target, count=count, delay_s=seconds))

    def drop(
        self, target: str | None = None, count: int | None = None, after: str | None = None
    ) -> None:
        self.set_rules(Rule(Fault.DROP, target=target, count=count, after=after))

    def http_error(self, status: int, target: str | None = None, count: int | None = None) -> None:
        faults = {500: Fault.HTTP_500, 503: Fault.HTTP_503}
        if status not in faults:
            raise ValueError(f"status must be 500 or 503, got {status}")
        self.set_rules(Rule(faults[status], target=target, count=count))

    def throttle(self, target: str | None = None, count: int | None = None) -> None:
        self.set_rules(Rule(Fault.THROTTLE, target=target, count=count))

    def set_upstream(self, port: int) -> None:
        """Forward to another port from now on (a closed one makes the emulator unreachable)."""
        with self._lock:
            self._upstream_port = port

    def go_offline(self, timeout_s: float = 2.0) -> None:
        """Close the listening socket: new connections are refused, open ones are closed."""
        self._switch_listening(False, timeout_s)
        self._close_clients()

    def go_online(self, timeout_s: float = 2.0) -> None:
        """Listen again, on the same port."""
        self._switch_listening(True, timeout_s)

    # --- observations --------------------------------------------------------------------

    @property
    def seen(self) -> list[SeenRequest]:
        with self._lock:
            return [replace(request) for request in self._seen]

    def count(self, target: str | None = None, action: str | None = None) -> int:
        """Requests read so far, optionally of one operation and/or with one action."""
        return sum(
            1
            for request in self.seen
            if _same_operation(target, request.target) and action in (None, request.action)
        )

    def by_operation(self) -> dict[str, int]:
        """KMS and Secrets Manager requests read so far per operation (the part of
        X-Amz-Target after the dot); the due index's S3 requests carry none and are left out."""
        return dict(
            Counter(
                request.target.rpartition(".")[2]
                for request in self.seen
                if "." in request.target and " " not in request.target
            )
        )

    @property
    def refused_connections(self) -> int:
        """Connections closed at once because ``max_connections`` were open."""
        with self._lock:
            return self._refused_connections

    def reset_counts(self) -> None:
        with self._lock:
            self._seen.clear()
            self._passed.clear()
            self._refused_connections = 0

    # --- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        """Stop accepting, wake and drop delayed requests, close every socket, join threads."""
        self._stopping.set()
        with self._lock:
            self._generation += 1
            self._lock.notify_all()
        self._acceptor.join(timeout=_JOIN_TIMEOUT_S)
        self._close_clients()
        with self._lock:
            workers = list(self._workers)
        for worker in workers:
            worker.join(timeout=_JOIN_TIMEOUT_S)
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    @property
    def threads_alive(self) -> int:
        with self._lock:
            workers = list(self._workers)
        return sum(1 for thread in [self._acceptor, *workers] if thread.is_alive())

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- internals -----------------------------------------------------------------------

    @staticmethod
    def _bind(port: int) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((HOST, port))
            listener.listen(64)
            listener.settimeout(_ACCEPT_POLL_S)
        except BaseException:
            listener.close()
            raise
        return listener

    def _switch_listening(self, listening: bool, timeout_s: float) -> None:
        if self._want_listening == listening and (self._listener is not None) == listening:
            return
        self._listening_changed.clear()
        self._bind_error = None
        self._want_listening = listening
        if not self._listening_changed.wait(timeout_s):
            raise RuntimeError(f"the proxy did not {'listen' if listening else 'stop'} in time")
        if self._bind_error is not None:
            self._want_listening = False
            raise RuntimeError(f"cannot listen on {HOST}:{self.port} again: {self._bind_error}")

    def _accept_loop(self) -> None:
        # Only this thread opens, accepts on and closes the listener (until close()).
        while not self._stopping.is_set():
            if self._want_listening != (self._listener is not None):
                if self._listener is not None:
                    self._listener.close()
                    self._listener = None
                else:
                    try:
                        self._listener = self._bind(self.port)
                    except OSError as error:  # the port was taken meanwhile
                        self._bind_error = error
                        self._want_listening = False
                self._listening_changed.set()
            listener = self._listener
            if listener is None:
                self._stopping.wait(_ACCEPT_POLL_S)
                continue
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stopping.is_set():
                    return
                continue
            self._start_worker(client)

    def _start_worker(self, client: socket.socket) -> None:
        if not self._slots.acquire(blocking=False):
            with self._lock:
                self._refused_connections += 1
            client.close()
            return
        client.settimeout(self._client_timeout_s)
        worker = threading.Thread(
            target=self._serve_client, args=(client,), name="fault-proxy-conn", daemon=True
        )
        with self._lock:
            self._clients.add(client)
            self._workers.add(worker)
        worker.start()

    def _close_clients(self) -> None:
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)

    def _serve_client(self, client: socket.socket) -> None:
        try:
            with client, client.makefile("rb") as reader:
                while not self._stopping.is_set():
                    request = _read_request(reader)
                    if request is None:
                        return
                    try:
                        status, reason, headers, body = self._handle(request, client)
                    except _Dropped:
                        return
                    keep_open = not request.wants_close()
                    client.sendall(_render(status, reason, headers, body, keep_open))
                    if not keep_open:
                        return
        except (OSError, ValueError, http.client.HTTPException):
            return  # the client went away or spoke something else: just close
        finally:
            with self._lock:
                self._clients.discard(client)
                self._workers.discard(threading.current_thread())
            self._slots.release()

    def _arrived(self, request: _Request) -> SeenRequest:
        entry = SeenRequest(request.target, time.monotonic())
        with self._lock:
            self._seen.append(entry)
        return entry

    def _record(self, entry: SeenRequest, action: str) -> None:
        with self._lock:
            entry.action = action

    def _choose(self, request: _Request) -> tuple[Rule | None, int]:
        """The first rule that takes ``request`` (counting it), and the rules' generation."""
        with self._lock:
            for rule in self._rules:
                if rule.exhausted() or not _same_operation(rule.target, request.target):
                    continue
                if rule.after is not None and not any(
                    _same_operation(rule.after, passed) for passed in self._passed
                ):
                    continue
                rule.applied += 1
                return rule, self._generation
            return None, self._generation

    def _handle(
        self, request: _Request, client: socket.socket
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        entry = self._arrived(request)
        actions: list[str] = []
        while True:
            if self._stopping.is_set():
                self._record(entry, "+".join([*actions, "drop(stopping)"]))
                raise _Dropped
            rule, generation = self._choose(request)
            fault = rule.fault if rule is not None else Fault.PASS
            if rule is not None and fault is Fault.DELAY:
                actions.append(f"delay({rule.delay_s:g}s)")
                self._record(entry, "+".join(actions))
                if self._wait(rule.delay_s, generation):
                    continue  # the rules changed meanwhile: they decide again
                fault = Fault.PASS
            break
        if actions and _client_gone(client):
            # Held until its client gave up: nobody waits for it, so it goes nowhere (a late
            # copy must not reach the emulator in the middle of a later request).
            self._record(entry, "+".join([*actions, "client-gone"]))
            raise _Dropped
        if fault is Fault.DROP:
            self._record(entry, "+".join([*actions, "drop"]))
            raise _Dropped
        if fault in (Fault.HTTP_500, Fault.HTTP_503, Fault.THROTTLE):
            self._record(entry, "+".join([*actions, fault.value]))
            return _error_answer(fault)
        try:
            answer = self._forward(request)
        except OSError:
            self._record(entry, "+".join([*actions, "upstream-unreachable"]))
            _reset(client)
            raise _Dropped from None
        with self._lock:
            self._passed[request.target] += 1
        self._record(entry, "+".join([*actions, "pass"]))
        return answer

    def _wait(self, seconds: float, generation: int) -> bool:
        """Hold for ``seconds``; True if the rules changed (or the proxy closes) meanwhile."""
        deadline = time.monotonic() + seconds
        with self._lock:
            while self._generation == generation:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(remaining)
            return True

    def _forward(self, request: _Request) -> tuple[int, str, list[tuple[str, str]], bytes]:
        with self._lock:
            port = self._upstream_port
        upstream = http.client.HTTPConnection(HOST, port, timeout=self._upstream_timeout_s)
        try:
            headers = {name: value for name, value in request.headers if not _hop(name)}
            headers["Connection"] = "close"
            upstream.request(request.method, request.path, body=request.body, headers=headers)
            response = upstream.getresponse()
            body = response.read(MAX_BODY + 1)
            if len(body) > MAX_BODY:
                raise OSError("upstream answer too large")
            kept = [(name, value) for name, value in response.getheaders() if not _hop(name)]
            return response.status, response.reason, kept, body
        except http.client.HTTPException as error:
            raise OSError(f"upstream spoke no HTTP: {type(error).__name__}") from None
        finally:
            upstream.close()


def _hop(name: str) -> bool:
    return name.lower() in _HOP_BY_HOP


def _read_request(reader: io.BufferedIOBase) -> _Request | None:
    """One HTTP/1.1 request from ``reader``; None at a clean end of the connection."""
    line = reader.readline(65537)
    if not line:
        return None
    if len(line) > 65536:
        raise ValueError("request line too long")
    parts = line.decode("latin-1").split()
    if len(parts) != 3:
        raise ValueError("not an HTTP request line")
    method, path, version = parts
    message = http.client.parse_headers(reader)
    if "chunked" in (message.get("Transfer-Encoding") or "").lower():
        raise ValueError("chunked request bodies are not supported")
    length = int(message.get("Content-Length") or 0)
    if not 0 <= length <= MAX_BODY:
        raise ValueError("request body too large")
    body = reader.read(length) if length else b""
    if len(body) != length:
        raise ValueError("request body cut short")
    return _Request(method, path, version, list(message.items()), body)


def _client_gone(client: socket.socket) -> bool:
    """The client closed its end while its request was held (it timed out and gave up)."""
    try:
        readable, _, _ = select.select([client], [], [], 0)
        return bool(readable) and client.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


def _reset(client: socket.socket) -> None:
    """Close with an RST, as a port with nobody behind it would."""
    with contextlib.suppress(OSError):
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")


def _error_answer(fault: Fault) -> tuple[int, str, list[tuple[str, str]], bytes]:
    status, reason, error_type, message = {
        Fault.HTTP_500: (500, "Internal Server Error", "InternalFailure", "injected HTTP 500"),
        Fault.HTTP_503: (503, "Service Unavailable", "ServiceUnavailable", "injected HTTP 503"),
        Fault.THROTTLE: (400, "Bad Request", "ThrottlingException", "Rate exceeded"),
    }[fault]
    body = json.dumps({"__type": error_type, "message": message}).encode()
    headers = [
        ("Content-Type", "application/x-amz-json-1.1"),
        ("x-amzn-RequestId", str(uuid.uuid4())),
    ]
    return status, reason, headers, body


def _render(
    status: int, reason: str, headers: list[tuple[str, str]], body: bytes, keep_open: bool
) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{name}: {value}" for name, value in headers]
    lines += [
        f"Content-Length: {len(body)}",
        f"Connection: {'keep-alive' if keep_open else 'close'}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
