"""The x86_64 Lambda bundle, run by Python 3.13 as the Lambda runtime would, against LocalStack.

This is the handler exactly as deployed: the asset's own boto3, botocore, cryptography, cffi
and crhelper. A decoy of the runtime's SDK sits after the asset on the path, where Lambda puts
its own boto3, and fails if anything reaches it.
"""

import json
import os
import subprocess
import textwrap
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from support.binding import INDEX_BUCKET, TEST_HANDLER_ROLE_ID, TEST_STACK_ID, bind_key
from support.cfn_server import CfnResponseServer
from support.events import REGION, cfn_event, import_properties
from support.kms_blob import decrypt_localstack_ciphertext
from support.lambda_runtime import find_python_313, runtime_sdk_decoy
from support.localstack import LocalStack

from imported_key_handler import contract

if TYPE_CHECKING:
    from mypy_boto3_kms.client import KMSClient
    from mypy_boto3_secretsmanager.client import SecretsManagerClient

pytestmark = [pytest.mark.localstack, pytest.mark.slow]


RUNTIME_PYTHON = find_python_313()
INVOKE = textwrap.dedent(
    """
    import json, os, sys
    sys.path[0:0] = [sys.argv[1], sys.argv[3]]  # the asset first, then the runtime's SDK
    import botocore, cryptography, imported_key_handler.entry as entry
    from imported_key_handler import clients
    for module in (botocore, cryptography):
        assert module.__file__.startswith(sys.argv[1]), module.__file__

    class Context:
        function_name = "bundled"
        aws_request_id = "r-1"
        invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:bundled"
        def get_remaining_time_in_millis(self):
            return 60000

    # CloudFormation's record, as the test plays it: the declared key resource is this key.
    import boto3
    from botocore.awsrequest import AWSResponse
    def cloudformation():
        client = boto3.client("cloudformation", region_name="us-east-1")
        def answer(model, params, **_):
            detail = {
                "LogicalResourceId": params["body"]["LogicalResourceId"],
                "PhysicalResourceId": sys.argv[6], "ResourceType": "AWS::KMS::Key",
                "LastUpdatedTimestamp": "2026-01-01T00:00:00Z",
                "ResourceStatus": "CREATE_COMPLETE",
            }
            return AWSResponse("https://cloudformation", 200, {}, None), {
                "StackResourceDetail": detail}
        client.meta.events.register(
            "before-call.cloudformation.DescribeStackResource", answer)
        return client
    clients.cloudformation_client = cloudformation

    print(json.dumps(entry.handler({"source": "aws.events"}, Context())))
    with clients.endpoint_for_tests(sys.argv[4]):
        entry.handler(json.loads(sys.argv[2]), Context())
        # A changed function configuration: refused, even with the emulator one call away.
        os.environ["AWS_ENDPOINT_URL_SECRETS_MANAGER"] = sys.argv[4]
        entry.handler(json.loads(sys.argv[5]), Context())
    """
)


@pytest.mark.skipif(RUNTIME_PYTHON is None, reason="python3.13 is not on this machine")
def test_bundle_imports_under_python_313(
    lambda_bundles: dict[str, Path],
    tmp_path: Path,
    localstack: LocalStack,
    cfn_server: CfnResponseServer,
    kms: "KMSClient",
    secretsmanager: "SecretsManagerClient",
) -> None:
    material = os.urandom(32)
    key_id = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    secret_arn = secretsmanager.create_secret(
        Name=f"bundled/{uuid.uuid4()}", SecretBinary=material
    )["ARN"]
    url = cfn_server.response_url("bundled")
    refused_url = cfn_server.response_url("refused")
    properties = import_properties(key_id, secret_arn, **{contract.PROP_VALIDITY_DAYS: "30"})
    env = {
        "PATH": os.environ["PATH"],
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_LAMBDA_FUNCTION_NAME": "bundled",  # reserved: Lambda sets it, nothing else can
        contract.ENV_HANDLER_ROLE_ID: TEST_HANDLER_ROLE_ID,
        contract.ENV_HANDLER_STACK_ID: TEST_STACK_ID,
        contract.ENV_REGISTRY_BUCKET: INDEX_BUCKET,
        "SSL_CERT_FILE": str(cfn_server.ca_file),
    }
    refused_event = cfn_event(
        "Update", properties, refused_url, physical_id=key_id, old_properties=properties
    )
    bind_key(
        kms,
        properties,
        stack_id=refused_event["StackId"],
        logical_id=refused_event["LogicalResourceId"],
    )
    assert RUNTIME_PYTHON is not None
    result = subprocess.run(
        [RUNTIME_PYTHON, "-I", "-B", "-c", INVOKE, str(lambda_bundles["x86_64"]),
         json.dumps(cfn_event("Create", properties, url)), str(runtime_sdk_decoy(tmp_path)),
         localstack.endpoint, json.dumps(refused_event), key_id],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[0])["Status"] == "IGNORED"
    response = cfn_server.wait_for(url, timeout=30)
    assert response["Status"] == "SUCCESS", response["Reason"]
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"bundled")["CiphertextBlob"]
    assert decrypt_localstack_ciphertext(blob, material) == b"bundled"
    refused = cfn_server.wait_for(refused_url, timeout=30)
    assert refused["Status"] == "FAILED"
    assert "AWS_ENDPOINT_URL_SECRETS_MANAGER" in refused["Reason"]
    assert localstack.endpoint not in refused["Reason"]
