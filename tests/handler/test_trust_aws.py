"""The handler trusts only AWS: no endpoint override in Lambda, no wrapping key of another size.

The refusal tests run the real entry point with the real client factories; the override
points at a closed local port and carries credentials in its URL, so a handler that followed
it would fail differently (and a Reason that echoed it would show the password).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import boto3
import pytest
import stubbing
from botocore.configprovider import ConfiguredEndpointProvider
from support.cfn_server import CfnResponseServer
from support.events import cfn_event, import_properties
from support.lambda_context import FakeLambdaContext, play_lambda

from imported_key_handler import clients, contract, entry
from imported_key_handler.errors import ImportFailure
from imported_key_handler.importer import import_from_secret
from imported_key_handler.renewal import run_renewal
from imported_key_handler.request import ImportRequest

PASSWORD: Final = "hunter2-do-not-echo"
AWS_KMS: Final = f"https://kms.{stubbing.REGION}.amazonaws.com"
AWS_SECRETS: Final = f"https://secretsmanager.{stubbing.REGION}.amazonaws.com"


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    return f"http://attacker:{PASSWORD}@127.0.0.1:{port}"


def config_file(tmp_path: Path, url: str) -> Path:
    """A shared config file that moves both services through a services section."""
    path = tmp_path / "config"
    path.write_text(
        "[default]\nservices = elsewhere\n\n[services elsewhere]\n"
        f"kms =\n  endpoint_url = {url}\nsecrets_manager =\n  endpoint_url = {url}\n"
    )
    return path


@pytest.fixture
def lambda_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment Lambda gives every function, and no endpoint setting."""
    play_lambda(monkeypatch, stubbing.REGION)
    for name in ("AWS_PROFILE", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setattr(entry, "_helper", None)


@pytest.fixture
def cfn_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[CfnResponseServer]:
    with CfnResponseServer() as server:
        monkeypatch.setenv("SSL_CERT_FILE", str(server.ca_file))
        yield server


def overrides(tmp_path: Path) -> dict[str, str]:
    url = closed_port_url()
    return {
        "AWS_ENDPOINT_URL": url,
        "AWS_ENDPOINT_URL_KMS": url,
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": url,
        "AWS_CONFIG_FILE": str(config_file(tmp_path, url)),
    }


@pytest.mark.parametrize(
    "variable",
    [
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_KMS",
        "AWS_ENDPOINT_URL_SECRETS_MANAGER",
        "AWS_CONFIG_FILE",
    ],
)
@pytest.mark.usefixtures("lambda_env")
def test_in_lambda_an_endpoint_override_fails_the_request_naming_the_variable(
    variable: str,
    tmp_path: Path,
    cfn_server: CfnResponseServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(variable, overrides(tmp_path)[variable])
    url = cfn_server.response_url("override")
    properties = import_properties(stubbing.KEY_ID, stubbing.SECRET_ARN)

    entry.handler(cfn_event("Create", properties, url), FakeLambdaContext(60))

    answer = cfn_server.wait_for(url, timeout=30)
    assert answer["Status"] == "FAILED"
    assert variable in answer["Reason"]
    assert "nothing was read or changed" in answer["Reason"]
    assert PASSWORD not in answer["Reason"]
    assert "127.0.0.1" not in answer["Reason"]
    stubbing.assert_clean_reason(answer["Reason"])


@pytest.mark.usefixtures("lambda_env")
def test_in_lambda_every_override_present_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in overrides(tmp_path).items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ImportFailure) as refused:
        clients.secretsmanager_client()
    reason = refused.value.reason
    for name in overrides(tmp_path):
        assert name in reason
    assert PASSWORD not in reason
    stubbing.assert_clean_reason(reason)


@pytest.mark.usefixtures("lambda_env")
def test_in_lambda_a_long_list_of_overrides_keeps_the_sentence_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for service in ("S3", "STS", "SSM", "LAMBDA", "EVENTS", "CLOUDWATCH", "SQS", "SNS", "IAM"):
        monkeypatch.setenv(f"AWS_ENDPOINT_URL_{service}", closed_port_url())
    with pytest.raises(ImportFailure) as refused:
        clients.kms_client()
    reason = refused.value.reason
    stubbing.assert_clean_reason(reason)
    assert "Remove from the function's environment: AWS_ENDPOINT_URL_" in reason


@pytest.mark.usefixtures("lambda_env")
def test_in_lambda_a_renewal_with_an_override_raises_before_any_call(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:

    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", overrides(tmp_path)["AWS_ENDPOINT_URL_KMS"])
    with pytest.raises(ImportFailure, match="AWS_ENDPOINT_URL_KMS"):
        run_renewal(stubbing.KEY_ID, contract.TRIGGER_SCHEDULE)


@pytest.mark.usefixtures("lambda_env")
def test_in_lambda_a_config_file_that_is_not_named_still_cannot_move_the_clients(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default ~/.aws/config is not refused by name; the clients ignore it instead."""
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    config_file(home / ".aws", closed_port_url())
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # it read the config files once
    assert clients.kms_client().meta.endpoint_url == AWS_KMS
    assert clients.secretsmanager_client().meta.endpoint_url == AWS_SECRETS
    # The same file does move a client that does not ignore configured endpoints: the check
    # above would see it.
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    assert clients.kms_client().meta.endpoint_url.startswith("http://attacker:")


def test_outside_lambda_the_usual_configuration_applies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scripts and the benchmark point the handler at LocalStack through the environment."""
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    monkeypatch.setenv("AWS_REGION", stubbing.REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    assert clients.kms_client().meta.endpoint_url == "http://127.0.0.1:4566"


@pytest.mark.usefixtures("lambda_env")
def test_in_lambda_tests_point_the_clients_at_an_emulator_only_through_the_test_path() -> None:
    with clients.endpoint_for_tests("http://127.0.0.1:4566"):
        assert clients.kms_client().meta.endpoint_url == "http://127.0.0.1:4566"
        assert clients.secretsmanager_client().meta.endpoint_url == "http://127.0.0.1:4566"
    assert clients.kms_client().meta.endpoint_url == AWS_KMS


@pytest.mark.parametrize(("client_name", "variable"), [
    ("kms", "AWS_ENDPOINT_URL_KMS"),
    ("secretsmanager", "AWS_ENDPOINT_URL_SECRETS_MANAGER"),
])  # fmt: skip
def test_botocore_reads_the_variables_the_refusal_covers(client_name: str, variable: str) -> None:
    """If botocore renames its variables, this fails before the refusal misses one."""
    provider = ConfiguredEndpointProvider({}, {}, client_name, environ={variable: "x"})
    assert provider.provide() == "x"
    assert variable.startswith(clients.ENDPOINT_VARIABLE_PREFIX)
    assert (
        ConfiguredEndpointProvider({}, {}, client_name, environ={"AWS_ENDPOINT_URL": "y"}).provide()
        == "y"
    )


# --- the wrapping key's size ------------------------------------------------------------------


def request_for(wrapping_key_spec: str) -> ImportRequest:
    return ImportRequest(
        key_id=stubbing.KEY_ID,
        secret_arn=stubbing.SECRET_ARN,
        key_spec="SYMMETRIC_DEFAULT",
        wrapping_algorithm="RSAES_OAEP_SHA_256",
        wrapping_key_spec=wrapping_key_spec,
        expiration_model="KEY_MATERIAL_DOES_NOT_EXPIRE",
        validity_days=None,
    )


@pytest.mark.usefixtures("no_material_in_logs")
@pytest.mark.parametrize(("asked", "given"), [
    ("RSA_3072", "RSA_2048"),  # smaller than asked: easier to break than the owner chose
    ("RSA_2048", "RSA_3072"),  # larger: still not what was asked, so not from that KMS
])  # fmt: skip
def test_a_wrapping_key_of_another_size_is_refused_before_wrapping(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub, asked: str, given: str
) -> None:
    request = request_for(asked)
    secrets.add_secret(SecretBinary=stubbing.SENTINEL_MATERIAL)
    kms.add_describe(stubbing.key_metadata(state="PendingImport"))
    kms.add_parameters(
        key=stubbing.wrapping_key(given),
        token=b"token",
        wrapping_algorithm=request.wrapping_algorithm,
        wrapping_key_spec=asked,
    )

    with pytest.raises(ImportFailure) as refused:
        import_from_secret(kms.client, secrets.client, request)

    reason = refused.value.reason
    assert f"{given} wrapping key where {asked} was asked for" in reason
    stubbing.assert_clean_reason(reason)
    assert "ImportKeyMaterial" not in kms.recorder.operations
    stubbing.assert_all_answered(kms, secrets)
