"""A sentinel material goes through every path; none of its forms may come out anywhere."""

import base64
import json
import logging
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aws_cdk as cdk
import pytest
from support.binding import bind_key
from support.cfn_server import CfnResponseServer
from support.events import LOGICAL_ID, REGION, cfn_event, import_properties, stack_id_for
from support.lambda_context import FakeLambdaContext, play_lambda
from support.leaks import assert_no_leak
from support.localstack import LocalStack
from support.synth import example_app

from imported_key_handler import clients, contract, entry, log_config

if TYPE_CHECKING:
    from mypy_boto3_kms.client import KMSClient
    from mypy_boto3_secretsmanager.client import SecretsManagerClient

pytestmark = pytest.mark.localstack

SENTINEL = b"SENTINEL-MATERIAL-DO-NOT-LEAK-01"
assert len(SENTINEL) == contract.SYMMETRIC_MATERIAL_BYTES


def test_leak_forms_find_a_leak() -> None:
    with pytest.raises(AssertionError, match="material leaked"):
        assert_no_leak(f"oops {base64.b64encode(SENTINEL).decode()} oops", SENTINEL)
    with pytest.raises(AssertionError, match="material leaked"):
        assert_no_leak(f"value={SENTINEL!r}", SENTINEL)


def test_sentinel_never_leaves_the_handler(
    localstack: LocalStack,
    cfn_server: CfnResponseServer,
    kms: "KMSClient",
    secretsmanager: "SecretsManagerClient",
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    play_lambda(monkeypatch, REGION)
    for name, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "LOG_LEVEL": "DEBUG",  # the most verbose setting the handler accepts
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(entry, "_helper", None)

    def secret(**value: Any) -> str:
        return secretsmanager.create_secret(Name=f"sentinel/{uuid.uuid4()}", **value)["ARN"]

    def key() -> str:
        return kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]

    def props(key_id: str, secret_arn: str) -> dict[str, str]:
        properties = import_properties(key_id, secret_arn, **{contract.PROP_VALIDITY_DAYS: "90"})
        # Deployed: tagged now, before the logs are watched (the test's own client logs too).
        bind_key(kms, properties, stack_id=stack_id_for("demo"), logical_id=LOGICAL_ID)
        return properties

    responses: list[dict[str, Any]] = []

    def invoke(request_type: str, properties: dict[str, str], **kwargs: Any) -> str:
        url = cfn_server.response_url(request_type.lower())
        event = cfn_event(request_type, properties, url, **kwargs)
        with clients.endpoint_for_tests(localstack.endpoint):
            entry.handler(event, FakeLambdaContext(120))
        responses.append(cfn_server.wait_for(url, timeout=60))
        return str(responses[-1]["Status"])

    good_key, text_key = key(), key()
    binary = props(good_key, secret(SecretBinary=SENTINEL))
    as_text = props(text_key, secret(SecretString=base64.b64encode(SENTINEL).decode()))
    failures = [
        props(key(), secret(SecretBinary=SENTINEL[:31])),  # wrong length
        props(key(), secret(SecretString=SENTINEL.decode() + "!")),  # not base64
        props(kms.create_key()["KeyMetadata"]["KeyId"], secret(SecretBinary=SENTINEL)),
    ]

    # From here on only the handler runs. Undo any logger levels an earlier test's handler
    # left in this process, so this run must quiet botocore and crhelper by itself.
    for name in log_config.QUIETED_LOGGERS:
        monkeypatch.setattr(logging.getLogger(name), "level", logging.NOTSET)
    caplog.clear()
    capfd.readouterr()
    caplog.set_level(logging.DEBUG)  # the root logger at DEBUG, as Lambda's log level can set

    assert invoke("Create", binary) == "SUCCESS"
    assert invoke("Update", binary, physical_id=good_key, old_properties=binary) == "SUCCESS"
    assert invoke("Delete", binary, physical_id=good_key) == "SUCCESS"

    assert invoke("Create", as_text) == "SUCCESS"
    for properties in failures:
        assert invoke("Create", properties) == "FAILED"

    captured = capfd.readouterr()
    assert caplog.records, "the handler logged nothing: the check would prove nothing"
    assert any(r.name.startswith("imported_key_handler") for r in caplog.records)
    everything = "\n".join(
        [caplog.text, captured.out, captured.err, json.dumps(responses)]
        + [str(record.__dict__) for record in caplog.records]
    )
    assert_no_leak(everything, SENTINEL)
    assert_no_leak(everything, SENTINEL[:31])
    assert not [
        r
        for r in caplog.records
        if r.name.startswith(("botocore", "urllib3")) and r.levelno < logging.WARNING
    ]


def test_sentinel_is_not_in_cdk_out(tmp_path: Path) -> None:
    module = example_app()
    app = cdk.App(outdir=str(tmp_path), context={"material_secret_name": "sentinel/material"})
    module.build_app(app)
    app.synth()
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name.endswith(".template.json") for p in files)
    for path in files:
        assert_no_leak(path.read_bytes().decode("latin-1"), SENTINEL)
