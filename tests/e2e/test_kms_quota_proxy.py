"""The KMS quota proxy: real boto3 over HTTP, through the proxy, to LocalStack (or, for the
byte-for-byte check, to a small echo server).

What botocore does with each answer is checked with botocore's own retry classifiers and with
real retries of the handler's client configuration, not assumed.
"""

import base64
import http.client
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError
from botocore.retries.standard import (
    RetryContext,
    RetryEventAdapter,
    ThrottlingErrorDetector,
    TransientRetryableChecker,
)
from support.keys import external_key, new_secret
from support.kms_quota_proxy import (
    JSON_CONTENT_TYPE,
    KMS_QUOTAS,
    THROTTLING_CODE,
    Counts,
    KmsQuotaProxy,
    request_target,
    target_of,
)
from support.localstack import REGION, LocalStack, free_port

from imported_key_handler import clients

if TYPE_CHECKING:
    from mypy_boto3_kms.client import KMSClient

    # Only for annotations: pytest imports the module itself, as a plugin, to rewrite its asserts.
    from support.quota_fixtures import QuotaKms

pytest_plugins = ["support.quota_fixtures"]
pytestmark = pytest.mark.localstack

PARAMETERS = "GetParametersForImport"
DESCRIBE = "DescribeKey"
_CONFIG: Any = clients.CLIENT_CONFIG  # botocore-stubs do not declare Config's attributes
HANDLER_ATTEMPTS = int(_CONFIG.retries["total_max_attempts"])


def _parameters(kms: "KMSClient", key_id: str) -> int:
    """One GetParametersForImport; how many retries botocore needed for it."""
    # RSA_2048 keeps LocalStack's key generation per call far below the quota's 1 s.
    response = kms.get_parameters_for_import(
        KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048"
    )
    return response["ResponseMetadata"]["RetryAttempts"]


def _code(error: ClientError) -> str:
    return str(error.response["Error"]["Code"])


def _is_throttling(error: ClientError) -> bool:
    """botocore's own verdict, the one standard mode's backoff and retry quota use."""
    context = RetryContext(attempt_number=1, parsed_response=dict(error.response))
    detector = ThrottlingErrorDetector(RetryEventAdapter())
    return bool(detector.is_throttling_error_from_context(context))


def _is_transient(error: ClientError) -> bool:
    status = SimpleNamespace(status_code=error.response["ResponseMetadata"]["HTTPStatusCode"])
    context = RetryContext(
        attempt_number=1, parsed_response=dict(error.response), http_response=status
    )
    return bool(TransientRetryableChecker().is_retryable(context))


# --- without the emulator ---------------------------------------------------------------------


class _Echo(BaseHTTPRequestHandler):
    """Answers every request with what it received, under a status and headers of its own."""

    protocol_version = "HTTP/1.1"

    def _echo(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        received = {
            "method": self.command,
            "path": self.path,
            "headers": list(self.headers.items()),
            "body": base64.b64encode(self.rfile.read(length)).decode(),
        }
        body = json.dumps(received).encode()
        self.send_response_only(207, "Echoed")
        self.send_header("X-Echo", "first")
        self.send_header("X-Echo", "second")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET = do_PUT = _echo

    def do_HEAD(self) -> None:
        self.send_response_only(200, "OK")
        self.send_header("Content-Length", "1234")  # what a GET would have sent
        self.end_headers()

    def do_DELETE(self) -> None:
        self.send_response_only(204, "No Content")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def echo_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_forwards_method_path_headers_and_body_and_returns_the_answer_verbatim(
    echo_server: str,
) -> None:
    body = bytes(range(256)) * 3
    headers = [
        ("X-Amz-Target", "TrentService.ListKeys"),
        ("X-Repeated", "one"),
        ("X-Repeated", "two"),
        ("Content-Type", JSON_CONTENT_TYPE),
    ]
    with KmsQuotaProxy(echo_server) as proxy:
        connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        try:
            for _ in range(2):  # the second over the same kept-alive connection
                connection.putrequest("POST", "/some/path?x=1&y=%20")
                for name, value in headers:
                    connection.putheader(name, value)
                connection.putheader("Content-Length", str(len(body)))
                connection.endheaders(body)
                response = connection.getresponse()
                answer = response.read()
                assert (response.status, response.reason) == (207, "Echoed")
                assert response.headers.get_all("X-Echo") == ["first", "second"]
                assert response.getheader("Content-Length") == str(len(answer))
                received = json.loads(answer)
                assert received["method"] == "POST"
                assert received["path"] == "/some/path?x=1&y=%20"
                assert base64.b64decode(received["body"]) == body
                sent = [tuple(pair) for pair in received["headers"]]
                assert sent == [
                    ("Host", f"127.0.0.1:{proxy.port}"),
                    ("Accept-Encoding", "identity"),
                    *headers,
                    ("Content-Length", str(len(body))),
                ]
            connection.request("GET", "/_plain")
            response = connection.getresponse()
            assert json.loads(response.read())["method"] == "GET"
        finally:
            connection.close()
        assert proxy.counts_by_target() == {
            "GET /_plain": Counts(requests=1, forwarded=1),
            "TrentService.ListKeys": Counts(requests=2, forwarded=2),
        }


def test_chunked_bodies_head_and_no_content_answers_keep_their_framing(echo_server: str) -> None:
    """What S3 traffic (the due index) may bring: a chunked upload, HEAD, a 204."""
    with KmsQuotaProxy(echo_server) as proxy:
        connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        try:
            connection.request(
                "PUT", "/bucket/due/key", body=iter([b"due ", b"index"]), encode_chunked=True
            )
            response = connection.getresponse()
            received = json.loads(response.read())
            assert base64.b64decode(received["body"]) == b"due index"
            sent = dict(received["headers"])
            assert sent["Content-Length"] == "9"
            assert "Transfer-Encoding" not in sent
            connection.request("HEAD", "/bucket/due/key")
            response = connection.getresponse()
            assert (response.status, response.getheader("Content-Length")) == (200, "1234")
            assert response.read() == b""
            connection.request("DELETE", "/bucket/due/key")
            response = connection.getresponse()
            assert response.status == 204
            assert response.read() == b""
            connection.request("GET", "/bucket?list-type=2")  # the connection is still in step
            assert json.loads(connection.getresponse().read())["path"] == "/bucket?list-type=2"
        finally:
            connection.close()
        assert proxy.counts_by_target() == {
            "DELETE /bucket": Counts(requests=1, forwarded=1),
            "GET /bucket": Counts(requests=1, forwarded=1),
            "HEAD /bucket": Counts(requests=1, forwarded=1),
            "PUT /bucket": Counts(requests=1, forwarded=1),
        }


def test_settings_are_checked() -> None:
    assert KMS_QUOTAS[target_of(PARAMETERS)] == 1
    assert target_of("secretsmanager.GetSecretValue") == "secretsmanager.GetSecretValue"
    cbor = [("Smithy-Protocol", "rpc-v2-cbor"), ("Content-Type", "application/cbor")]
    cloudwatch = "/service/GraniteServiceVersion20100801/operation/PutMetricData"
    assert request_target("POST", cloudwatch, cbor) == (
        "GraniteServiceVersion20100801.PutMetricData"
    )
    assert request_target("GET", "/_localstack/health", []) == "GET /_localstack"
    assert request_target("POST", "/", [("x-amz-target", "TrentService.ListKeys")]) == (
        "TrentService.ListKeys"
    )
    with pytest.raises(ValueError, match="'GetParameterForImport' names no KMS operation"):
        KmsQuotaProxy("http://127.0.0.1:1", quotas={"GetParameterForImport": 1})
    with pytest.raises(ValueError, match=r"quota for 'DescribeKey' must be a positive.*got 0"):
        KmsQuotaProxy("http://127.0.0.1:1", quotas={DESCRIBE: 0})
    with pytest.raises(ValueError, match=r"upstream must be .*got 'https://kms\.us-east-1"):
        KmsQuotaProxy("https://kms.us-east-1.amazonaws.com")
    proxy = KmsQuotaProxy("http://localhost:1")
    with pytest.raises(ValueError, match=r"status must be one of \[500, 503\], got 502"):
        proxy.fail_next(1, status=502)
    with pytest.raises(ValueError, match="n must be a positive number of requests, got 0"):
        proxy.throttle_next(0)
    with pytest.raises(RuntimeError, match="not started"):
        _ = proxy.endpoint


# --- against LocalStack ------------------------------------------------------------------------


def test_real_kms_calls_pass_through(quota_kms: "QuotaKms", localstack: LocalStack) -> None:
    created = quota_kms.kms.create_key(Description="through the quota proxy")["KeyMetadata"]
    through = quota_kms.kms.describe_key(KeyId=created["KeyId"])["KeyMetadata"]
    direct = localstack.kms().describe_key(KeyId=created["KeyId"])["KeyMetadata"]
    assert through == direct
    assert through["Description"] == "through the quota proxy"
    assert quota_kms.proxy.counts("CreateKey") == Counts(requests=1, forwarded=1)
    assert quota_kms.proxy.counts(DESCRIBE) == Counts(requests=1, forwarded=1)


def test_the_handlers_own_clients_reach_kms_and_secrets_manager_through_it(
    quota_kms: "QuotaKms", localstack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """How a sweep is put behind the proxy: one endpoint for both of the handler's clients."""
    key_id = localstack.kms().create_key()["KeyMetadata"]["KeyId"]
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    with clients.endpoint_for_tests(quota_kms.proxy.endpoint):
        secrets, kms = clients.secretsmanager_client(), clients.kms_client()
    arn = new_secret(secrets, SecretString="not material")
    assert secrets.get_secret_value(SecretId=arn)["SecretString"] == "not material"
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyId"] == key_id
    assert quota_kms.proxy.counts_by_target() == {
        "TrentService.DescribeKey": Counts(requests=1, forwarded=1),
        "secretsmanager.CreateSecret": Counts(requests=1, forwarded=1),
        "secretsmanager.GetSecretValue": Counts(requests=1, forwarded=1),
    }
    assert quota_kms.proxy.kms_counts() == Counts(requests=1, forwarded=1)


def test_get_parameters_for_import_beyond_one_a_second_is_throttled_as_kms_does(
    quota_kms: "QuotaKms", localstack: LocalStack
) -> None:
    key_id = external_key(localstack.kms())
    errors: list[ClientError] = []
    started = time.monotonic()
    for _ in range(3):
        try:
            _parameters(quota_kms.kms_once, key_id)
        except ClientError as error:
            errors.append(error)
    elapsed = time.monotonic() - started
    assert errors, "three GetParametersForImport in a tight loop all passed a 1/s quota"
    # A bucket that starts with one token and earns one a second.
    assert 3 - len(errors) <= 1 + elapsed
    for throttled in errors:
        assert _code(throttled) == THROTTLING_CODE
        metadata = throttled.response["ResponseMetadata"]
        assert metadata["HTTPStatusCode"] == 400
        assert metadata["HTTPHeaders"]["content-type"] == JSON_CONTENT_TYPE
        assert metadata["RetryAttempts"] == 0
        assert _is_throttling(throttled)
    counts = quota_kms.proxy.counts(PARAMETERS)
    assert counts == Counts(requests=3, forwarded=3 - len(errors), throttled=len(errors))


def test_the_handlers_retries_ride_out_the_quota(
    quota_kms: "QuotaKms", localstack: LocalStack
) -> None:
    key_ids = [external_key(localstack.kms()) for _ in range(3)]
    started = time.monotonic()
    retries = [_parameters(quota_kms.kms, key_id) for key_id in key_ids]
    elapsed = time.monotonic() - started
    # Three tokens of a 1/s bucket that starts with one: the last is no sooner than 2 s in.
    assert elapsed >= 2.0
    counts = quota_kms.proxy.counts(PARAMETERS)
    assert counts.forwarded == 3
    assert counts.throttled == sum(retries) >= 1
    assert counts.requests == 3 + sum(retries)
    print(f"3 GetParametersForImport at 1/s: {elapsed:.2f} s, {sum(retries)} throttled attempts")


def test_a_changed_quota_holds_under_concurrent_clients(
    quota_kms: "QuotaKms", localstack: LocalStack
) -> None:
    key_id = localstack.kms().create_key()["KeyMetadata"]["KeyId"]
    proxy = quota_kms.proxy
    proxy.set_quota(DESCRIBE, 5)
    assert proxy.quotas == {**KMS_QUOTAS, target_of(DESCRIBE): 5}
    proxy.set_quota("ListKeys", 3)
    proxy.set_quota("ListKeys", None)
    assert proxy.quotas == {**KMS_QUOTAS, target_of(DESCRIBE): 5}

    def describe(_: int) -> str:
        try:
            quota_kms.kms_once.describe_key(KeyId=key_id)
        except ClientError as error:
            return _code(error)
        return "ok"

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(describe, range(24)))
    elapsed = time.monotonic() - started
    counts = proxy.counts(DESCRIBE)
    assert set(outcomes) == {"ok", THROTTLING_CODE}
    # A full bucket of 5, plus what trickled in at 5/s while the burst lasted.
    assert 5 <= outcomes.count("ok") <= 5 + int(elapsed * 5) + 1
    assert counts == Counts(
        requests=24, forwarded=outcomes.count("ok"), throttled=outcomes.count(THROTTLING_CODE)
    )


def test_injected_throttles_and_failures_are_honoured_then_cleared(
    quota_kms: "QuotaKms", localstack: LocalStack
) -> None:
    key_id = localstack.kms().create_key()["KeyMetadata"]["KeyId"]
    proxy, kms = quota_kms.proxy, quota_kms.kms_once

    def describe() -> str:
        try:
            kms.describe_key(KeyId=key_id)
        except ClientError as error:
            return _code(error)
        return "ok"

    proxy.throttle_next(2, target=DESCRIBE)
    proxy.fail_next(1, status=503, target="ListKeys")  # another operation: not DescribeKey's
    proxy.fail_next(1)
    proxy.fail_next(1, status=503, target=DESCRIBE)
    assert proxy.pending_faults == 5
    outcomes = [describe() for _ in range(5)]
    assert outcomes == [
        THROTTLING_CODE,
        THROTTLING_CODE,
        "KMSInternalException",
        "ServiceUnavailable",
        "ok",
    ]
    assert proxy.pending_faults == 1  # ListKeys's
    with pytest.raises(ClientError) as raised:
        kms.list_keys()
    assert _code(raised.value) == "ServiceUnavailable"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert _is_transient(raised.value)
    assert not _is_throttling(raised.value)

    proxy.throttle_next(10)
    proxy.clear_faults()
    assert proxy.pending_faults == 0
    assert describe() == "ok"
    assert kms.list_keys()["Keys"]

    assert proxy.counts(DESCRIBE) == Counts(requests=6, forwarded=2, throttled=2, failed=2)
    assert proxy.counts("ListKeys") == Counts(requests=2, forwarded=1, failed=1)
    assert proxy.counts() == Counts(requests=8, forwarded=3, throttled=2, failed=3)
    proxy.reset_counts()
    assert proxy.counts() == Counts()


def test_the_handlers_retries_get_past_5xx(quota_kms: "QuotaKms", localstack: LocalStack) -> None:
    key_id = localstack.kms().create_key()["KeyMetadata"]["KeyId"]
    quota_kms.proxy.fail_next(1, status=500, target=DESCRIBE)
    quota_kms.proxy.fail_next(1, status=503, target=DESCRIBE)
    response = quota_kms.kms.describe_key(KeyId=key_id)
    assert response["ResponseMetadata"]["RetryAttempts"] == 2
    assert quota_kms.proxy.counts(DESCRIBE) == Counts(requests=3, forwarded=1, failed=2)
    # Past the handler's attempts, the last failure is what the caller sees.
    quota_kms.proxy.fail_next(HANDLER_ATTEMPTS, status=500)
    with pytest.raises(ClientError) as raised:
        quota_kms.kms.describe_key(KeyId=key_id)
    assert _code(raised.value) == "KMSInternalException"
    assert raised.value.response["ResponseMetadata"]["RetryAttempts"] == HANDLER_ATTEMPTS - 1


def test_an_unreachable_emulator_resets_the_connection_then_service_resumes(
    quota_kms: "QuotaKms", localstack: LocalStack
) -> None:
    key_id = localstack.kms().create_key()["KeyMetadata"]["KeyId"]
    proxy = quota_kms.proxy

    def describe(kms: "KMSClient") -> str:
        return kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyId"]

    proxy.pause_upstream()
    with pytest.raises(ConnectionClosedError):
        describe(quota_kms.kms_once)
    assert proxy.counts(DESCRIBE) == Counts(requests=1, unreachable=1)
    # The handler's client retries a reset connection as transient, then gives up with it.
    with pytest.raises(ConnectionClosedError):
        describe(quota_kms.kms)
    assert proxy.counts(DESCRIBE).unreachable == 1 + HANDLER_ATTEMPTS
    proxy.resume_upstream()
    assert describe(quota_kms.kms_once) == key_id

    # An emulator that is gone (nothing listens on the port) looks the same to the client.
    proxy.set_upstream(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ConnectionClosedError):
        describe(quota_kms.kms_once)
    proxy.set_upstream(localstack.endpoint)
    assert proxy.upstream == localstack.endpoint
    assert describe(quota_kms.kms_once) == key_id
    assert proxy.counts(DESCRIBE) == Counts(
        requests=4 + HANDLER_ATTEMPTS, forwarded=2, unreachable=2 + HANDLER_ATTEMPTS
    )


def test_stop_ends_kept_alive_connections(quota_kms: "QuotaKms") -> None:
    proxy = quota_kms.proxy
    quota_kms.kms_once.list_keys()  # leaves a kept-alive connection, and its thread, waiting
    threads_before = threading.active_count()
    started = time.monotonic()
    proxy.stop()
    assert time.monotonic() - started < 2.0
    # The serving thread and the kept-alive connection's thread are gone.
    assert threading.active_count() <= threads_before - 2
    proxy.stop()  # idempotent
