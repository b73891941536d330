"""Run LocalStack (KMS and Secrets Manager only) as a host process for end-to-end tests.

No Docker: LocalStack 4.10 runs from its own virtual environment (its pins clash with the
project's boto3), with its state in a throw-away directory, and is only ever addressed as
``127.0.0.1``. Beware that 4.10 ignores the host part of ``GATEWAY_LISTEN`` for IPv4 and binds
the port on all interfaces (``localstack/runtime/server/twisted.py``, "TODO: interface = host?").
The process gets ``tests/localstack_shim`` on ``PYTHONPATH`` so that its KMS keeps to what the
KMS documentation says about imported material (see that module's docstring), with a clock the
tests can move (``LocalStack.set_clock``).
"""

import contextlib
import ctypes
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_kms.client import KMSClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_secretsmanager.client import SecretsManagerClient

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIM_DIR = REPO_ROOT / "tests" / "localstack_shim"
SHIM_MARKER = "imported-key-cdk localstack shim: KMS ImportKeyMaterial patched"
# The shim reads "now" from the file this names (sitecustomize.CLOCK_ENVIRONMENT).
SHIM_CLOCK_ENVIRONMENT = "IMPORTED_KEY_CDK_SHIM_CLOCK"
_CLOCK_FILE = "shim-clock"
DEFAULT_PYTHON = REPO_ROOT / ".localstack-venv" / "bin" / "python"
# LocalStack indexes every botocore service model on its first start in a FILESYSTEM_ROOT, which
# costs about 5 s and 320 MiB of RSS; a fresh root per run would pay that every time. The index
# file is named after the LocalStack and botocore versions, so a kept copy never goes stale.
DEFAULT_CATALOG_CACHE = REPO_ROOT / ".cache" / "localstack-catalog"
_CATALOG_GLOB = "service-catalog-*.dill"
_ROOT_CACHE = Path("var") / "lib" / "localstack" / "cache"
REGION = "us-east-1"
ACCOUNT_ID = "000000000000"
SERVICES = ("kms", "secretsmanager", "s3", "cloudwatch", "sqs", "logs")

_READY_STATES = frozenset({"available", "running"})
_READY_LINE = "Ready."
_PORT_TAKEN = "Address already in use"
_LOG_TAIL_LINES = 40
# Only a port lost to another process between probing and binding is worth another attempt.
_PORT_ATTEMPTS = 3


class LocalStackError(RuntimeError):
    """LocalStack did not start, or stopped working."""


def localstack_python() -> Path:
    """The interpreter of LocalStack's own virtual environment (``LOCALSTACK_PYTHON`` overrides)."""
    configured = os.environ.get("LOCALSTACK_PYTHON")
    python = Path(configured) if configured else DEFAULT_PYTHON
    if not python.exists():
        raise LocalStackError(
            f"LocalStack's Python {python} does not exist. Install LocalStack into its own "
            "virtual environment (see DESIGN.md section 4) or point LOCALSTACK_PYTHON at it."
        )
    return python


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        return f"<cannot read {path}: {error}>"
    return "\n".join(text.splitlines()[-lines:])


def _rss_of(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii", errors="replace")
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _children_of(pid: int) -> list[int]:
    children: list[int] = []
    task_dir = Path(f"/proc/{pid}/task")
    with contextlib.suppress(OSError):
        for task in task_dir.iterdir():
            with contextlib.suppress(OSError):
                children.extend(int(child) for child in (task / "children").read_text().split())
    return children


class LocalStack:
    """A LocalStack process on ``127.0.0.1:<port>``; stop it with ``stop()`` or ``with``."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        port: int,
        log_file: Path,
        filesystem_root: Path,
        startup_seconds: float,
    ) -> None:
        self.process = process
        self.port = port
        self.log_file = log_file
        self.startup_seconds = startup_seconds
        self._filesystem_root = filesystem_root
        self._stopped = False

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def client(self, service: str, region: str = REGION) -> Any:
        """A plain boto3 client for ``service`` pointed at this LocalStack, signing for
        ``region``: LocalStack serves every Region on its one endpoint and keeps each Region's
        resources apart by the Region a request is signed for."""
        return boto3.session.Session().client(
            service,  # type: ignore[call-overload]
            region_name=region,
            endpoint_url=self.endpoint,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            # An empty mapping, unlike the default, keeps HTTP(S)_PROXY from the environment
            # out: requests go straight to 127.0.0.1. No retries: a loopback emulator does not
            # throttle, and its errors (an HTTP 500 for a bad unwrap) should surface at once.
            config=Config(proxies={}, retries={"mode": "standard", "max_attempts": 1}),
        )

    def set_clock(self, now: datetime | None) -> None:
        """Set the shim's "now" (``None``: the real time again) for ValidTo limits and rotations.

        Tests that run the handler with a moved clock move KMS's with it, so a ValidTo a year
        ahead of the real date is judged against the 365-day limit of the moved day.
        """
        clock = self._filesystem_root / _CLOCK_FILE
        if now is None:
            clock.unlink(missing_ok=True)
            return
        if now.tzinfo is None:
            raise ValueError(f"set_clock needs an aware datetime, got {now!r}")
        partial = clock.with_suffix(".partial")
        partial.write_text(now.isoformat(), encoding="utf-8")
        os.replace(partial, clock)  # the shim never reads half a time

    def kms(self, region: str = REGION) -> "KMSClient":
        client: KMSClient = self.client("kms", region)
        return client

    def secretsmanager(self) -> "SecretsManagerClient":
        client: SecretsManagerClient = self.client("secretsmanager")
        return client

    def s3(self) -> "S3Client":
        client: S3Client = self.client("s3")
        return client

    def health(self, timeout: float = 5.0) -> dict[str, Any]:
        """The parsed ``/_localstack/health`` document."""
        return _get_health(self.endpoint, timeout)

    def is_running(self) -> bool:
        return self.process.poll() is None

    def rss_bytes(self) -> int:
        """Resident memory of the LocalStack process and all its descendants."""
        total, pending, seen = 0, [self.process.pid], set[int]()
        while pending:
            pid = pending.pop()
            if pid in seen:
                continue
            seen.add(pid)
            total += _rss_of(pid)
            pending.extend(_children_of(pid))
        return total

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        return _tail(self.log_file, lines)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM the process group, SIGKILL it after ``timeout`` s; return the exit code."""
        if self._stopped:
            return self.process.returncode
        self._stopped = True
        try:
            if self.process.poll() is None:
                _signal_group(self.process, signal.SIGTERM)
                try:
                    self.process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    _signal_group(self.process, signal.SIGKILL)
                    self.process.wait(timeout=10)
            # Helpers LocalStack started may outlive it in the group it led. Only now, once: later
            # the group id could belong to someone else.
            _signal_group(self.process, signal.SIGKILL)
            return self.process.returncode
        finally:
            shutil.rmtree(self._filesystem_root, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


_PR_SET_PDEATHSIG = 1


def _die_with(parent: int) -> Callable[[], None]:
    """A ``preexec_fn`` that has Linux kill the child when the test process dies.

    Without it a test run that is killed outright (a CI timeout, a second Ctrl-C) leaves a
    LocalStack of several hundred MiB running in its own session. Threads are not involved:
    the fixtures start LocalStack from pytest's main thread, which lives as long as the run.
    """

    def set_death_signal() -> None:
        if sys.platform == "linux":
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the line above took effect
            os._exit(1)

    return set_death_signal


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    # The process was started in its own session, so its pid is its process group id.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get_health(endpoint: str, timeout: float) -> dict[str, Any]:
    with _DIRECT.open(f"{endpoint}/_localstack/health", timeout=timeout) as response:
        document: dict[str, Any] = json.load(response)
        return document


def _services_ready(health: Mapping[str, Any]) -> bool:
    services = health.get("services", {})
    return all(services.get(name) in _READY_STATES for name in SERVICES)


def _environment(port: int, filesystem_root: Path, shim: bool) -> dict[str, str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        # The test run's own settings must not leak into the emulator: LocalStack reads many
        # plain names (DEBUG, PERSISTENCE, ...) as configuration, so pass only the basics.
        if key in {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ"}
    }
    environment.update(
        {
            "GATEWAY_LISTEN": f"127.0.0.1:{port}",
            "SERVICES": ",".join(SERVICES),
            "EAGER_SERVICE_LOADING": "1",
            "FILESYSTEM_ROOT": str(filesystem_root),
            "OVERRIDE_IN_DOCKER": "0",
            "DNS_ADDRESS": "0",
            "SKIP_SSL_CERT_DOWNLOAD": "1",
            "DISABLE_EVENTS": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if shim:
        environment["PYTHONPATH"] = str(SHIM_DIR)
        environment[SHIM_CLOCK_ENVIRONMENT] = str(filesystem_root / _CLOCK_FILE)
    return environment


def _seed_catalog(catalog_cache: Path | None, filesystem_root: Path) -> None:
    if catalog_cache is None:
        return
    target = filesystem_root / _ROOT_CACHE
    target.mkdir(parents=True, exist_ok=True)
    for cached in catalog_cache.glob(_CATALOG_GLOB):
        shutil.copyfile(cached, target / cached.name)


def _keep_catalog(catalog_cache: Path | None, filesystem_root: Path) -> None:
    if catalog_cache is None:
        return
    for built in (filesystem_root / _ROOT_CACHE).glob(_CATALOG_GLOB):
        kept = catalog_cache / built.name
        if kept.exists():
            continue
        catalog_cache.mkdir(parents=True, exist_ok=True)
        # Another test session may be storing the same file: write aside, then rename.
        partial = catalog_cache / f".{built.name}.{os.getpid()}.partial"
        shutil.copyfile(built, partial)
        os.replace(partial, kept)


def _launch(
    python: Path,
    log_dir: Path,
    port: int,
    *,
    shim: bool,
    timeout: float,
    catalog_cache: Path | None,
) -> LocalStack | None:
    """Start one LocalStack; ``None`` if it lost its port to another process."""
    log_file = log_dir / f"localstack-{port}.log"
    with log_file.open("wb") as log:
        filesystem_root = Path(tempfile.mkdtemp(prefix="localstack-fs-"))
        try:
            _seed_catalog(catalog_cache, filesystem_root)
            started = time.monotonic()
            process = subprocess.Popen(
                [str(python), "-m", "localstack.runtime.main"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_environment(port, filesystem_root, shim),
                # A cwd inside the repo could shadow modules (tests/, lambda/ ...) on sys.path[0].
                cwd=filesystem_root,
                start_new_session=True,
                preexec_fn=_die_with(os.getpid()),
            )
        except BaseException:
            shutil.rmtree(filesystem_root, ignore_errors=True)
            raise
    stack = LocalStack(process, port, log_file, filesystem_root, startup_seconds=0.0)
    deadline = started + timeout
    last_problem = "it has not printed 'Ready.' yet"
    try:
        while True:
            log_text = log_file.read_text(encoding="utf-8", errors="replace")
            # LocalStack does not exit when its port is taken: it logs the error, prints
            # "Ready." anyway and serves nothing, while the port answers for someone else.
            if _PORT_TAKEN in log_text:
                # Such a half-started LocalStack hangs on SIGTERM; there is nothing to save.
                stack.stop(timeout=1)
                return None
            if process.poll() is not None:
                raise LocalStackError(
                    f"LocalStack exited with code {process.returncode} before it was ready.\n"
                    f"--- last lines of {log_file} ---\n{_tail(log_file)}"
                )
            # Only after our own process says it is up can the port's answers be its own.
            if _READY_LINE in log_text.splitlines():
                try:
                    health = _get_health(stack.endpoint, timeout=2.0)
                except (OSError, ValueError) as error:
                    last_problem = f"health check: {type(error).__name__}: {error}"
                else:
                    if _services_ready(health):
                        break
                    last_problem = f"services not ready: {health.get('services')}"
            if time.monotonic() >= deadline:
                raise LocalStackError(
                    f"LocalStack on {stack.endpoint} was not ready within {timeout:g} s "
                    f"({last_problem}).\n--- last lines of {log_file} ---\n{_tail(log_file)}"
                )
            time.sleep(0.1)
        stack.startup_seconds = time.monotonic() - started
        if shim and SHIM_MARKER not in log_text:
            raise LocalStackError(
                f"LocalStack started but the KMS shim in {SHIM_DIR} did not report itself; "
                f"was sitecustomize shadowed?\n--- last lines of {log_file} ---\n{_tail(log_file)}"
            )
        _keep_catalog(catalog_cache, filesystem_root)
    except BaseException:
        stack.stop()
        raise
    return stack


def start_localstack(
    log_dir: Path,
    *,
    timeout: float = 90.0,
    shim: bool = True,
    catalog_cache: Path | None = DEFAULT_CATALOG_CACHE,
) -> LocalStack:
    """Start LocalStack on a free port of 127.0.0.1 and wait until KMS and Secrets Manager run.

    ``log_dir`` receives ``localstack-<port>.log`` (kept after ``stop()``). ``shim=False``
    runs LocalStack as shipped, without the KMS shim. ``catalog_cache`` keeps LocalStack's
    service index between runs (``None``: build it every time). Raises ``LocalStackError`` with
    the tail of the log if it does not come up within ``timeout`` seconds.
    """
    python = localstack_python()
    log_dir.mkdir(parents=True, exist_ok=True)
    with _first_to_build(catalog_cache):
        for _ in range(_PORT_ATTEMPTS):
            stack = _launch(
                python,
                log_dir,
                free_port(),
                shim=shim,
                timeout=timeout,
                catalog_cache=catalog_cache,
            )
            if stack is not None:
                return stack
    raise LocalStackError(f"LocalStack lost its port to another process {_PORT_ATTEMPTS} times")


@contextlib.contextmanager
def _first_to_build(catalog_cache: Path | None) -> Iterator[None]:
    """While the cache holds no service index, one start at a time: the pytest workers of a
    fresh clone, starting together, would each build it (see DEFAULT_CATALOG_CACHE); the
    others wait a few seconds for the first to keep it, then copy it."""
    if catalog_cache is None or any(catalog_cache.glob(_CATALOG_GLOB)):
        yield
        return
    catalog_cache.mkdir(parents=True, exist_ok=True)
    with (catalog_cache / ".building.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield
