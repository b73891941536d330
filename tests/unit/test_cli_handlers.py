"""``imported_key_cli.handlers`` against the Lambda API stand-in, with functions of the tests'
own (no emulator): which function serves a key, and what becomes of each kind of answer."""

import json
import os
import threading
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from support.events import stack_id_for
from support.lambda_api import LambdaApi

from imported_key_cli import handlers
from imported_key_cli.handlers import HandlerError, find_function, invoke, renew, sweep
from imported_key_handler import contract

ROLE_ID = "AROADEMOHANDLER"
DEMO = stack_id_for("demo")
OTHER = stack_id_for("other")
ROLE = "arn:aws:iam::000000000000:role/demo-ImportedKeyHandlerRole"
TAGS = {contract.TAG_HANDLER: ROLE_ID}


def environment(role_id: str = ROLE_ID, stack_id: str = DEMO) -> dict[str, str]:
    return {contract.ENV_HANDLER_ROLE_ID: role_id, contract.ENV_HANDLER_STACK_ID: stack_id}


def answering(answer: Any) -> Any:
    def handler(event: Any, context: Any) -> Any:
        return answer

    return handler


def raising(error: Exception) -> Any:
    def handler(event: Any, context: Any) -> Any:
        raise error

    return handler


@pytest.fixture
def api() -> Iterator[LambdaApi]:
    with LambdaApi(None, page_size=1) as stand_in:
        yield stand_in


def client(api: LambdaApi, config: Config = handlers.CLIENT_CONFIG) -> Any:
    return boto3.client(
        "lambda",
        region_name="us-east-1",
        endpoint_url=api.endpoint,
        aws_access_key_id="operator",
        aws_secret_access_key="operator",
        config=config,
    )


def deployment(
    api: LambdaApi, prefix: str, *, stack_id: str = DEMO, role: str = ROLE, role_id: str = ROLE_ID
) -> None:
    """The construct's two functions, with one environment and one role."""
    for name, timeout in ((f"{prefix}-Function", 120), (f"{prefix}-SweepFunction", 900)):
        api.register(
            name,
            timeout_s=timeout,
            variables=environment(role_id, stack_id),
            role=role,
            handler=answering({"Renewed": False, "Keys": 0}),
        )


# --- find_function


def test_the_longest_timeout_of_the_keys_deployment_wins_on_any_page(api: LambdaApi) -> None:
    api.register("a-unrelated", timeout_s=900, variables={"TABLE": "t"})
    deployment(api, "demo")
    deployment(api, "other", stack_id=OTHER, role_id="AROAOTHER")
    assert find_function(client(api), TAGS) == "demo-SweepFunction"
    assert find_function(client(api), {contract.TAG_HANDLER: "AROAOTHER"}) == "other-SweepFunction"
    # One function a page: all five pages, each time.
    assert api.requests == ["ListFunctions"] * 10


def test_an_adopted_key_goes_to_its_adopting_stack_even_with_a_retained_binding(
    api: LambdaApi,
) -> None:
    deployment(api, "demo")
    deployment(api, "other", stack_id=OTHER, role_id="AROAOTHER")
    adopted = {contract.TAG_ADOPTED_BY: "other"}
    assert find_function(client(api), adopted) == "other-SweepFunction"
    # Retained from the demo stack, then adopted by the other one: the adoption decides.
    assert find_function(client(api), {**TAGS, **adopted}) == "other-SweepFunction"
    # Adopted by a stack with no function here: the binding's own handler is all there is.
    gone = {**TAGS, contract.TAG_ADOPTED_BY: "gone"}
    assert find_function(client(api), gone) == "demo-SweepFunction"


def test_functions_of_several_stacks_are_ambiguous(api: LambdaApi) -> None:
    deployment(api, "demo")
    deployment(api, "copy", stack_id=OTHER)  # the same role id under another stack
    with pytest.raises(LookupError, match="several deployments") as ambiguous:
        find_function(client(api), TAGS)
    assert "stack demo" in str(ambiguous.value)
    assert "stack other" in str(ambiguous.value)
    assert "copy-SweepFunction" in str(ambiguous.value)


def test_a_function_of_the_same_stack_under_another_role_is_not_guessed_at(
    api: LambdaApi,
) -> None:
    deployment(api, "demo")
    api.register(
        "zz-impostor", timeout_s=900, variables=environment(), role="arn:aws:iam::0:role/x"
    )
    with pytest.raises(LookupError, match="several deployments") as ambiguous:
        find_function(client(api), TAGS)
    assert "zz-impostor" in str(ambiguous.value)
    assert ROLE in str(ambiguous.value)


def test_no_function_is_a_lookup_error_that_says_what_to_check(api: LambdaApi) -> None:
    deployment(api, "other", stack_id=OTHER, role_id="AROAOTHER")
    with pytest.raises(LookupError) as missing:
        find_function(client(api), {**TAGS, contract.TAG_ADOPTED_BY: "demo"})
    message = str(missing.value)
    assert f"{contract.ENV_HANDLER_ROLE_ID}={ROLE_ID}" in message
    assert "of stack demo" in message
    assert "among 2 functions (2 of them imported-key-cdk handlers)" in message
    assert "Region" in message
    assert "lambda:ListFunctions" in message
    with pytest.raises(LookupError, match="neither"):
        find_function(client(api), {"Name": "x"})


# --- invoke


def test_a_function_error_is_a_handler_error_with_the_functions_reason(api: LambdaApi) -> None:
    api.register("f", timeout_s=60, variables={}, handler=raising(ValueError("no such secret")))
    with pytest.raises(HandlerError) as failed:
        invoke(client(api), "f", {"a": 1})
    assert failed.value.reason == "no such secret"
    assert str(failed.value) == "no such secret"
    assert failed.value.error_type == "ValueError"
    assert failed.value.function_name == "f"


def test_a_long_or_unprintable_reason_is_cut_and_cleaned(api: LambdaApi) -> None:
    api.register("long", timeout_s=60, variables={}, handler=raising(RuntimeError("x" * 900)))
    api.register("escape", timeout_s=60, variables={}, handler=raising(RuntimeError("a\x1b[2Jb")))
    with pytest.raises(HandlerError) as long:
        invoke(client(api), "long", {})
    assert long.value.reason == "x" * 497 + "..."
    with pytest.raises(HandlerError) as escape:
        invoke(client(api), "escape", {})
    assert escape.value.reason == "a [2Jb"


def test_a_function_error_without_a_message_points_at_the_log_group(api: LambdaApi) -> None:
    api.register("f", timeout_s=60, variables={}, handler=raising(RuntimeError()))
    with pytest.raises(HandlerError, match="without an error message") as failed:
        invoke(client(api), "f", {})
    assert "/aws/lambda/f" in failed.value.reason


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        (b"\x00secret-ish bytes\xff", "18 bytes of non-JSON"),
        (b"[1, 2]", "a JSON list"),
        (b"null", "a JSON NoneType"),
    ],
)
def test_an_answer_that_is_no_json_object_is_a_handler_error(
    api: LambdaApi, answer: bytes, said: str
) -> None:
    api.register("f", timeout_s=60, variables={}, handler=answering(answer))
    with pytest.raises(HandlerError) as odd:
        invoke(client(api), "f", {})
    assert said in odd.value.reason
    assert "secret-ish" not in odd.value.reason


def test_no_answer_in_time_is_a_handler_error_and_is_not_sent_again(api: LambdaApi) -> None:
    release = threading.Event()

    def slow(event: Any, context: Any) -> Any:
        release.wait(10)
        return {}

    function = api.register("slow", timeout_s=900, variables={}, handler=slow)
    impatient = client(api, handlers.CLIENT_CONFIG.merge(Config(read_timeout=0.3)))
    try:
        with pytest.raises(HandlerError, match="may still be running"):
            invoke(impatient, "slow", {})
    finally:
        release.set()
    assert len(function.invocations) == 1


# --- renew and sweep


def test_renew_sends_the_schedules_renewal_event_for_the_keys_id(api: LambdaApi) -> None:
    deployment(api, "demo")
    arn = "arn:aws:kms:us-east-1:000000000000:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    assert renew(client(api), TAGS, arn) == {"Renewed": False, "Keys": 0}
    assert api.functions["demo-SweepFunction"].invocations == [
        {
            contract.RENEWAL_EVENT: {
                contract.RENEWAL_TRIGGER: contract.TRIGGER_SCHEDULE,
                contract.RENEWAL_KEY_ID: "1234abcd-12ab-34cd-56ef-1234567890ab",
            }
        }
    ]
    with pytest.raises(ValueError, match="alias"):
        renew(client(api), TAGS, "alias/payments")


def test_sweep_sends_the_schedules_sweep_event(api: LambdaApi) -> None:
    deployment(api, "demo")
    assert sweep(client(api), TAGS)["Keys"] == 0
    assert api.functions["demo-SweepFunction"].invocations == [{contract.SWEEP_EVENT: {}}]


@pytest.mark.parametrize(
    "operation",
    [lambda c: renew(c, TAGS, "1234"), lambda c: sweep(c, TAGS)],
    ids=["renew", "sweep"],
)
def test_a_handler_that_ignores_the_event_is_said_to_be_too_old(
    api: LambdaApi, operation: Callable[[Any], Any]
) -> None:
    ignored = {"Status": "IGNORED", "Reason": "not a CloudFormation custom resource request"}
    api.register("old", timeout_s=900, variables=environment(), handler=answering(ignored))
    with pytest.raises(HandlerError, match="older imported-key-cdk") as old:
        operation(client(api))
    assert "IGNORED" in old.value.reason


# --- the stand-in itself


def test_a_function_runs_in_its_own_environment_which_is_put_back(
    api: LambdaApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    monkeypatch.setenv(contract.ENV_REGISTRY_BUCKET, "the-process-bucket")
    seen: dict[str, str | None] = {}

    def look(event: Any, context: Any) -> Any:
        for name in (
            "AWS_ENDPOINT_URL",
            contract.ENV_REGISTRY_BUCKET,
            contract.ENV_HANDLER_ROLE_ID,
            "AWS_LAMBDA_FUNCTION_NAME",
        ):
            seen[name] = os.environ.get(name)
        seen["context"] = context.function_name
        return {}

    api.register("look", timeout_s=60, variables=environment(), handler=look)
    before = dict(os.environ)
    invoke(client(api), "look", {})
    assert dict(os.environ) == before
    assert seen == {
        "AWS_ENDPOINT_URL": None,
        contract.ENV_REGISTRY_BUCKET: None,
        contract.ENV_HANDLER_ROLE_ID: ROLE_ID,
        "AWS_LAMBDA_FUNCTION_NAME": "look",
        "context": "look",
    }


def test_the_stand_in_refuses_what_botocore_would_not_send(api: LambdaApi) -> None:
    signed = {
        "Authorization": "AWS4-HMAC-SHA256 Credential=a/20260101/us-east-1/lambda/aws4_request"
    }
    for path, headers in (
        ("/2015-03-31/functions?Unknown=1", signed),
        ("/2015-03-31/functions", {}),
    ):
        request = urllib.request.Request(api.endpoint + path, headers=headers)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        assert refused.value.code in (400, 403)
        json.loads(refused.value.read())
    assert len(api.refusals) == 2


def test_the_client_waits_out_the_longest_function_and_never_sends_an_invoke_twice() -> None:
    session = boto3.session.Session(
        region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
    )
    config = handlers.client(session).meta.config  # type: ignore[attr-defined]
    assert config.read_timeout > handlers.LAMBDA_MAX_TIMEOUT_S
    assert config.retries["total_max_attempts"] == 1
