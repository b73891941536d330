"""The command line has the deployed handler renew a key, against LocalStack.

``imported_key_cli.handlers`` finds the handler's function by the key's tags (ListFunctions) and
invokes it synchronously; here a stand-in for the Lambda API (``support.lambda_api``) runs the
real entry point for the functions a stack of the construct would have, with that function's
environment, against LocalStack. Each key is deployed as the other e2e tests deploy it (a
CloudFormation Create played through the real entry point), so its tags are the binding the
handler checks.
"""

import os
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from support.binding import TEST_HANDLER_ROLE_ID, TEST_STACK_ID, PlayedStacks, adopt_key
from support.events import import_properties, stack_id_for
from support.keys import assert_key_holds, external_key, new_secret
from support.lambda_api import LambdaApi, handler_environment
from support.localstack import LocalStack

from imported_key_cli import handlers
from imported_key_cli.handlers import HandlerError, find_function, renew, sweep
from imported_key_handler import contract

if TYPE_CHECKING:
    from mypy_boto3_kms.client import KMSClient
    from mypy_boto3_secretsmanager.client import SecretsManagerClient

pytestmark = pytest.mark.localstack

# Named as CDK names a stack's functions. ListFunctions lists them by name, two a page here:
# the demo stack's sweep function is on the second page, after its CloudFormation function.
DEMO_FUNCTION = "demo-ImportedKeyHandlerFunction7A3C1B2D-AbCdEf"
DEMO_SWEEP = "demo-ImportedKeyHandlerSweepFunction5E4F6A7B-GhIjKl"
OTHER_SWEEP = "other-ImportedKeyHandlerSweepFunction9C8D7E6F-MnOpQr"
UNRELATED = "billing-api-handler"
OTHER_ROLE_ID = "AROAOTHERSTACKHANDLER"
OTHER_STACK_ID = stack_id_for("other")


@pytest.fixture
def lambda_api(localstack: LocalStack) -> Iterator[LambdaApi]:
    """The demo stack's two functions (a due index of their own), another stack's sweep
    function, and a function that is no handler."""
    bucket = f"cli-handlers-{uuid.uuid4()}"
    localstack.s3().create_bucket(Bucket=bucket)
    with LambdaApi(localstack.endpoint, page_size=2) as api:
        demo = handler_environment(TEST_HANDLER_ROLE_ID, TEST_STACK_ID, bucket)
        api.register(DEMO_FUNCTION, timeout_s=120, variables=demo)
        api.register(DEMO_SWEEP, timeout_s=900, variables=demo)
        other = handler_environment(OTHER_ROLE_ID, OTHER_STACK_ID, bucket)
        api.register(OTHER_SWEEP, timeout_s=900, variables=other, role="arn:aws:iam::0:role/o")
        api.register(UNRELATED, timeout_s=900, variables={"TABLE": "billing"})
        yield api


def lambda_client(api: LambdaApi) -> Any:
    return api.client(handlers.CLIENT_CONFIG)


def deployed(
    invoke: Any, kms: "KMSClient", secretsmanager: "SecretsManagerClient"
) -> tuple[str, bytes]:
    """A key of the demo stack with its material imported by a played Create."""
    material = os.urandom(32)
    key_id = external_key(kms)
    properties = import_properties(
        key_id,
        new_secret(secretsmanager, SecretBinary=material),
        **{contract.PROP_WRAPPING_KEY_SPEC: "RSA_2048"},
    )
    response = invoke("Create", properties)
    assert response["Status"] == "SUCCESS", response.get("Reason")
    return key_id, material


def tags_of(kms: "KMSClient", key_id: str) -> dict[str, str]:
    return {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=key_id)["Tags"]}


def key_state(kms: "KMSClient", key_id: str) -> str:
    return kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"]


def test_the_sweep_function_of_the_keys_own_stack_is_found(
    invoke: Any,
    kms: "KMSClient",
    secretsmanager: "SecretsManagerClient",
    stacks: PlayedStacks,
    lambda_api: LambdaApi,
) -> None:
    client = lambda_client(lambda_api)
    key_id, _ = deployed(invoke, kms, secretsmanager)
    assert find_function(client, tags_of(kms, key_id)) == DEMO_SWEEP
    # Every page was read: the answer is on the second one.
    assert lambda_api.requests == ["ListFunctions", "ListFunctions"]

    # A key adopted by each stack (its owner's tag, nothing else) goes to that stack's function.
    for stack_id, expected in ((TEST_STACK_ID, DEMO_SWEEP), (OTHER_STACK_ID, OTHER_SWEEP)):
        adopted = external_key(kms)
        properties = import_properties(adopted, "arn:aws:secretsmanager:us-east-1:0:secret:x")
        adopt_key(kms, properties, stack_id=stack_id, logical_id="Adopted", stacks=stacks)
        assert find_function(client, tags_of(kms, adopted)) == expected


def test_a_key_no_function_serves_is_a_lookup_error(
    invoke: Any,
    kms: "KMSClient",
    secretsmanager: "SecretsManagerClient",
    localstack: LocalStack,
) -> None:
    key_id, _ = deployed(invoke, kms, secretsmanager)
    tags = tags_of(kms, key_id)
    # The Region holds another stack's handler and a function that is none.
    with LambdaApi(localstack.endpoint) as api:
        api.register(
            OTHER_SWEEP,
            timeout_s=900,
            variables=handler_environment(OTHER_ROLE_ID, OTHER_STACK_ID, "b"),
        )
        api.register(UNRELATED, timeout_s=900, variables={})
        with pytest.raises(LookupError) as missing:
            find_function(lambda_client(api), tags)
        with pytest.raises(LookupError):
            renew(lambda_client(api), tags, key_id)
        assert [len(f.invocations) for f in api.functions.values()] == [0, 0]
    message = str(missing.value)
    assert TEST_HANDLER_ROLE_ID in message
    assert "among 2 functions (1 of them imported-key-cdk handlers)" in message
    assert "Region" in message
    assert "lambda:ListFunctions" in message


def test_a_revoked_key_is_refused_until_resumed_then_renewed(
    invoke: Any,
    kms: "KMSClient",
    secretsmanager: "SecretsManagerClient",
    lambda_api: LambdaApi,
) -> None:
    client = lambda_client(lambda_api)
    key_id, material = deployed(invoke, kms, secretsmanager)
    kms.delete_imported_key_material(KeyId=key_id)  # break-glass revocation

    with pytest.raises(HandlerError) as refused:
        renew(client, tags_of(kms, key_id), key_id)
    assert "revoked, not expired" in refused.value.reason
    assert refused.value.error_type == "ImportFailure"
    assert refused.value.function_name == DEMO_SWEEP
    assert key_state(kms, key_id) == "PendingImport"

    # The documented resume: remove the handler's ValidTo record. The next renewal restores it.
    kms.untag_resource(KeyId=key_id, TagKeys=[contract.TAG_VALID_TO])
    summary = renew(client, tags_of(kms, key_id), key_id)
    assert summary["KeyId"] == key_id
    assert summary["Renewed"] is True
    assert "PendingImport" in summary["Why"]
    assert key_state(kms, key_id) == "Enabled"
    assert_key_holds(kms, key_id, material)
    assert contract.TAG_VALID_TO in tags_of(kms, key_id)
    # Both renewals ran in the sweep function, as renewal events for this key.
    event = {
        contract.RENEWAL_EVENT: {
            contract.RENEWAL_TRIGGER: contract.TRIGGER_SCHEDULE,
            contract.RENEWAL_KEY_ID: key_id,
        }
    }
    assert lambda_api.functions[DEMO_SWEEP].invocations == [event, event]
    assert lambda_api.functions[DEMO_FUNCTION].invocations == []


def test_a_key_that_is_not_due_is_left_alone_and_the_sweep_indexes_it(
    invoke: Any,
    kms: "KMSClient",
    secretsmanager: "SecretsManagerClient",
    lambda_api: LambdaApi,
) -> None:
    client = lambda_client(lambda_api)
    key_id, material = deployed(invoke, kms, secretsmanager)
    arn = kms.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"]
    valid_to = kms.describe_key(KeyId=key_id)["KeyMetadata"]["ValidTo"]
    tags = tags_of(kms, key_id)

    summary = renew(client, tags, arn)  # an ARN works as well as the id
    assert summary == {
        "KeyId": key_id,
        "Renewed": False,
        "Why": "not due",
        "ValidTo": valid_to.isoformat(),
    }
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["ValidTo"] == valid_to
    assert tags_of(kms, key_id) == tags

    # The renewal indexed the key in the function's due index; the sweep finds it, not due.
    report = sweep(client, tags)
    assert (report["Keys"], report["Due"], report["Renewed"], report["Failed"]) == (1, 0, 0, 0)
    assert lambda_api.functions[DEMO_SWEEP].invocations[-1] == {contract.SWEEP_EVENT: {}}
    assert_key_holds(kms, key_id, material)
