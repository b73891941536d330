"""CloudFormation always hears back, in bounded time: the response upload gives up, and the
timeout answer goes out before Lambda would stop the function."""

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from support.cfn_server import CfnResponseServer
from support.events import REGION, cfn_event
from support.lambda_context import FakeLambdaContext

from imported_key_handler import cfn, contract, entry, response


class Blackhole:
    """A TCP listener on 127.0.0.1 that accepts connections and never answers."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self._held.append(connection)

    def close(self) -> None:
        self._listener.close()
        for connection in self._held:
            connection.close()


@pytest.fixture
def blackhole() -> Iterator[Blackhole]:
    hole = Blackhole()
    yield hole
    hole.close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_upload_to_nowhere_gives_up_after_bounded_attempts(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    pauses: list[float] = []
    monkeypatch.setattr(response.time, "sleep", pauses.append)
    url = f"https://127.0.0.1:{closed_port()}/response?X-Amz-Signature=secret-signature"
    started = time.monotonic()
    assert response.send_response(url, {"Status": "FAILED"}) is False
    assert time.monotonic() - started < 5
    assert pauses == [1, 2]
    assert "Gave up sending the response" in caplog.text
    assert "secret-signature" not in caplog.text  # the presigned URL is never logged


def test_upload_to_a_silent_server_times_out(
    blackhole: Blackhole, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(response, "TIMEOUT_S", 0.3)
    monkeypatch.setattr(response.time, "sleep", lambda _s: None)
    started = time.monotonic()
    url = f"https://127.0.0.1:{blackhole.port}/response"
    assert response.send_response(url, {"Status": "SUCCESS"}) is False
    assert time.monotonic() - started < 3 * 0.3 + 1.5


def test_upload_succeeds_once_cloudformation_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with CfnResponseServer() as server:
        monkeypatch.setenv("SSL_CERT_FILE", str(server.ca_file))
        url = server.response_url("ok")
        assert response.send_response(url, {"Status": "SUCCESS", "Data": {}}) is True
        assert server.wait_for(url)["Status"] == "SUCCESS"


def test_worst_case_upload_fits_the_margin() -> None:
    pauses = sum(range(1, response.ATTEMPTS))
    assert response.ATTEMPTS * response.TIMEOUT_S + pauses <= response.WORST_CASE_S


def test_a_hung_import_is_answered_before_the_function_times_out(
    blackhole: Blackhole, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AWS never answers; the FAILED answer must come out with time to spare."""
    with CfnResponseServer() as server:
        for name, value in {
            "SSL_CERT_FILE": str(server.ca_file),
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{blackhole.port}",
            contract.ENV_HANDLER_ROLE_ID: "AROATESTIMPORTHANDLER",
        }.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setattr(entry, "_helper", None)
        url = server.response_url("hung")
        properties = {
            contract.PROP_KEY_ID: "1234abcd-12ab-34cd-56ef-1234567890ab",
            contract.PROP_SECRET_ARN: f"arn:aws:secretsmanager:{REGION}:000000000000:secret:x",
            contract.PROP_KEY_SPEC: "SYMMETRIC_DEFAULT",
            contract.PROP_WRAPPING_ALGORITHM: "RSAES_OAEP_SHA_256",
            contract.PROP_WRAPPING_KEY_SPEC: "RSA_4096",
            contract.PROP_EXPIRATION_MODEL: "KEY_MATERIAL_DOES_NOT_EXPIRE",
        }
        # 1.5 s of work left before the handler must stop and answer.
        context = FakeLambdaContext(response.WORST_CASE_S + 1.5)
        event = cfn_event("Create", properties, url)
        worker = threading.Thread(target=entry.handler, args=(event, context), daemon=True)
        started = time.monotonic()
        worker.start()
        answer = server.wait_for(url, timeout=10)
        elapsed = time.monotonic() - started
        assert answer["Status"] == "FAILED"
        assert answer["Reason"] == cfn.TIMEOUT_REASON
        assert 1.0 < elapsed < 4.0
        assert context.get_remaining_time_in_millis() > 1000 * (response.WORST_CASE_S - 3)
        blackhole.close()  # let the stuck SDK call fail so the worker ends
        worker.join(timeout=120)
        assert not worker.is_alive()
