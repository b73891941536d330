"""Have the deployed handler do what the operator's own credentials may not.

The key policies this library deploys let only the handler's role import material
(``restrict_import_to_handler``), and an operator often may not read the secret. So renewing a
key, restoring one after a revocation and sweeping a fleet go through the handler's own Lambda
function, with the events it already takes from its schedule (``contract.RENEWAL_EVENT``,
``contract.SWEEP_EVENT``): the handler checks the key's binding as it does for any event, so
the command line can ask for nothing the schedule could not.

Needs ``lambda:ListFunctions`` (to find the function serving a key) and
``lambda:InvokeFunction`` on it. Nothing here logs an event or an answer.
"""

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

from botocore.config import Config
from botocore.exceptions import ReadTimeoutError

from imported_key_handler import contract
from imported_key_handler.binding import stack_name

if TYPE_CHECKING:
    import boto3

# Lambda's longest timeout: no handler function, the sweep's included, runs longer.
LAMBDA_MAX_TIMEOUT_S: Final = 900
MAX_REASON_LENGTH: Final = 500

# For the client that invokes the handler. botocore's default 60 s read timeout would give up
# on a sweep (15 minutes) that is still importing. Retries are off: a synchronous Invoke that
# botocore sent again after a lost connection would run the handler a second time while the
# first run may still be importing; the operator sees the error and decides.
CLIENT_CONFIG: Final = Config(
    connect_timeout=10,
    read_timeout=LAMBDA_MAX_TIMEOUT_S + 60,
    tcp_keepalive=True,
    retries={"mode": "standard", "total_max_attempts": 1},
)


class _FunctionPages(Protocol):
    def paginate(self) -> Iterable[Mapping[str, Any]]: ...


class LambdaClient(Protocol):
    """What this module calls on a Lambda client: a Protocol rather than the stubs' client type,
    so the tests' stand-ins and botocore's Stubber fit it alike."""

    def get_paginator(self, operation_name: Literal["list_functions"]) -> _FunctionPages: ...

    def invoke(
        self,
        *,
        FunctionName: str,
        InvocationType: Literal["RequestResponse"],
        Payload: bytes,
    ) -> Mapping[str, Any]: ...


class HandlerError(Exception):
    """The handler function failed, or answered something that is not its answer.

    ``reason`` is what the function said (its ``errorMessage``: the handler's messages name the
    problem and never hold material), cut to MAX_REASON_LENGTH characters."""

    def __init__(self, function_name: str, reason: str, error_type: str | None = None) -> None:
        reason = _printable(reason)
        if len(reason) > MAX_REASON_LENGTH:
            reason = reason[: MAX_REASON_LENGTH - 3] + "..."
        super().__init__(reason)
        self.function_name = function_name
        self.error_type = error_type

    @property
    def reason(self) -> str:
        return str(self.args[0])


def client(session: "boto3.session.Session") -> LambdaClient:
    """A Lambda client of ``session`` configured for invoking the handler (CLIENT_CONFIG)."""
    lambda_client: LambdaClient = session.client("lambda", config=CLIENT_CONFIG)
    return lambda_client


@dataclass(frozen=True)
class HandlerFunction:
    name: str
    timeout: int
    role_arn: str
    role_id: str
    stack_id: str

    @property
    def stack(self) -> str:
        return stack_name(self.stack_id) if self.stack_id else "(no stack named)"


def handler_functions(lambda_client: LambdaClient) -> tuple[list[HandlerFunction], int]:
    """Every function of the Region whose environment makes it an imported-key-cdk handler,
    and how many functions were listed in all."""
    found: list[HandlerFunction] = []
    listed = 0
    for page in lambda_client.get_paginator("list_functions").paginate():
        for configuration in page.get("Functions") or []:
            listed += 1
            # Absent when Lambda reports an Error for the environment instead: such a
            # function cannot be told apart from any other, so it is not a candidate.
            variables = (configuration.get("Environment") or {}).get("Variables") or {}
            role_id = variables.get(contract.ENV_HANDLER_ROLE_ID)
            if not role_id:
                continue
            found.append(
                HandlerFunction(
                    name=str(configuration["FunctionName"]),
                    timeout=int(configuration.get("Timeout") or 0),
                    role_arn=str(configuration.get("Role") or ""),
                    role_id=str(role_id),
                    stack_id=str(variables.get(contract.ENV_HANDLER_STACK_ID) or ""),
                )
            )
    return found, listed


def serving(functions: Iterable[HandlerFunction], tags: Mapping[str, str]) -> list[HandlerFunction]:
    handler = tags.get(contract.TAG_HANDLER)
    adopted_by = tags.get(contract.TAG_ADOPTED_BY)
    # As the handler itself decides (binding.is_adopted): a key tagged for adoption is the
    # adopting stack's, even when it still carries the binding of a stack that retained it;
    # that stack no longer declares it, so its handler would refuse the key.
    if adopted_by:
        adopting = [
            f
            for f in functions
            if f.stack_id and f.role_id != handler and stack_name(f.stack_id) == adopted_by
        ]
        if adopting:
            return adopting
    return [f for f in functions if handler and f.role_id == handler]


def _wanted(tags: Mapping[str, str]) -> str:
    wanted = []
    if tags.get(contract.TAG_HANDLER):
        wanted.append(
            f"{contract.ENV_HANDLER_ROLE_ID}={tags[contract.TAG_HANDLER]} (the key's "
            f"{contract.TAG_HANDLER} tag)"
        )
    if tags.get(contract.TAG_ADOPTED_BY):
        wanted.append(
            f"{contract.ENV_HANDLER_STACK_ID} of stack {tags[contract.TAG_ADOPTED_BY]} (the "
            f"key's {contract.TAG_ADOPTED_BY} tag)"
        )
    return " or ".join(wanted)


def find_function(lambda_client: LambdaClient, tags: Mapping[str, str]) -> str:
    """The name of the deployed handler function that serves the key with these tags.

    The construct deploys two functions with the same environment: one for CloudFormation's
    requests and a sweep function with a longer timeout, the one for renewals. The longest
    timeout wins. LookupError when no function serves the key, or functions of several stacks
    (or of one stack under different roles) would.
    """
    if not tags.get(contract.TAG_HANDLER) and not tags.get(contract.TAG_ADOPTED_BY):
        raise LookupError(
            f"the key has neither a {contract.TAG_HANDLER} nor a {contract.TAG_ADOPTED_BY} "
            "tag: no imported-key-cdk handler serves it."
        )
    functions, listed = handler_functions(lambda_client)
    candidates = serving(functions, tags)
    if not candidates:
        raise LookupError(
            f"no Lambda function serves the key: looked for an environment with {_wanted(tags)} "
            f"among {listed} functions ({len(functions)} of them imported-key-cdk handlers). "
            "Check the Region (the handler runs in the key's Region), that you may "
            "lambda:ListFunctions, and that the key's stack is deployed."
        )
    # Both functions of one deployment share its stack and role. Anything else with the same
    # environment (a copy, an impostor) must not be invoked by a guess.
    groups: dict[tuple[str, str], list[HandlerFunction]] = {}
    for function in candidates:
        groups.setdefault((function.stack_id, function.role_arn), []).append(function)
    if len(groups) > 1:
        named = "; ".join(
            f"stack {members[0].stack} (role {role_arn or '?'}): "
            + ", ".join(sorted(f.name for f in members))
            for (_, role_arn), members in sorted(groups.items())
        )
        raise LookupError(
            f"functions of several deployments serve the key ({named}): remove the stale one, "
            "or invoke the right one yourself."
        )
    return max(candidates, key=lambda f: (f.timeout, f.name)).name


def invoke(
    lambda_client: LambdaClient, function_name: str, event: Mapping[str, Any]
) -> dict[str, Any]:
    """Invoke the function synchronously with ``event``; its answer, a JSON object.

    HandlerError when the function fails (``reason``: its ``errorMessage``), answers anything
    but a JSON object, or does not answer within the client's read timeout.
    """
    try:
        response = lambda_client.invoke(
            FunctionName=function_name,
            InvocationType="RequestResponse",
            Payload=json.dumps(event).encode(),
        )
    except ReadTimeoutError:
        raise HandlerError(
            function_name,
            f"{function_name} did not answer in time and may still be running: see its log "
            f"group /aws/lambda/{function_name} before trying again.",
        ) from None
    body = response["Payload"].read()
    try:
        answer: Any = json.loads(body) if body else None
        parsed = True
    except ValueError:  # UnicodeDecodeError included
        answer, parsed = None, False
    function_error = response.get("FunctionError")
    if function_error:
        message = answer.get("errorMessage") if isinstance(answer, dict) else None
        error_type = answer.get("errorType") if isinstance(answer, dict) else None
        raise HandlerError(
            function_name,
            message
            if isinstance(message, str) and message
            else f"{function_name} failed ({function_error}) without an error message: see "
            f"its log group /aws/lambda/{function_name}.",
            error_type if isinstance(error_type, str) else None,
        )
    if not isinstance(answer, dict):
        # Only the length: whatever it was, it is not shown.
        what = "a JSON " + type(answer).__name__ if parsed else f"{len(body)} bytes of non-JSON"
        raise HandlerError(
            function_name,
            f"{function_name} answered with {what}, not a JSON object: is it an "
            "imported-key-cdk handler?",
        )
    return answer


def renew(
    lambda_client: LambdaClient, tags: Mapping[str, str], key_id: str, *, now: bool = False
) -> dict[str, Any]:
    """Have the key's handler renew it, as its schedule would: only when due (a key that is
    PendingImport, after a resume, is); with ``now``, due or not (an operator's renewal). Its
    summary: ``KeyId``, ``Renewed``, ``Why``, ``ValidTo`` and maybe ``PendingKeyMaterialId``.
    HandlerError with the handler's reason when it refuses or fails (a revoked key is refused
    until resumed)."""
    trigger = contract.TRIGGER_OPERATOR if now else contract.TRIGGER_SCHEDULE
    event = {
        contract.RENEWAL_EVENT: {
            contract.RENEWAL_TRIGGER: trigger,
            contract.RENEWAL_KEY_ID: _bare_key_id(key_id),
        }
    }
    name = find_function(lambda_client, tags)
    answer = invoke(lambda_client, name, event)
    if not isinstance(answer.get("Renewed"), bool):
        raise HandlerError(name, _not_understood(name, answer, "renewal"))
    return answer


def verify(lambda_client: LambdaClient, tags: Mapping[str, str], key_id: str) -> dict[str, Any]:
    """Have the key's handler prove that the key holds its secret's material (it changes
    nothing). Its answer: ``KeyId``, ``Verified`` (the proof: GetPublicKey, GenerateMac or
    KeyMaterialId) and ``Materials``; HandlerError with the reason when the proof fails."""
    event = {contract.VERIFY_EVENT: {contract.RENEWAL_KEY_ID: _bare_key_id(key_id)}}
    name = find_function(lambda_client, tags)
    answer = invoke(lambda_client, name, event)
    if not isinstance(answer.get("Verified"), str):
        raise HandlerError(name, _not_understood(name, answer, "verify"))
    return answer


def sweep(lambda_client: LambdaClient, tags: Mapping[str, str]) -> dict[str, Any]:
    """Have the handler serving the key with ``tags`` sweep its whole fleet now: renew every
    key its due index says is due. The sweep's summary (``Keys``, ``Due``, ``Renewed``,
    ``Failed``, ...); HandlerError when a key failed to renew (the reason names the first)."""
    name = find_function(lambda_client, tags)
    answer = invoke(lambda_client, name, {contract.SWEEP_EVENT: {}})
    if not isinstance(answer.get("Keys"), int):
        raise HandlerError(name, _not_understood(name, answer, "sweep"))
    return answer


def _not_understood(name: str, answer: Mapping[str, Any], what: str) -> str:
    # A handler older than the event answers IGNORED (entry.handler); say so rather than
    # print an answer that is no renewal.
    status = str(answer.get("Status", ""))[:32]
    return (
        f"{name} did not take the {what} event (answered {status or 'something else'}): its "
        "stack runs an older imported-key-cdk; deploy it with this version."
    )


def _bare_key_id(key_id: str) -> str:
    # The handler names its due-index entries by the id it is given: an ARN would index the
    # key a second time under another name. An alias names no key to the handler.
    if key_id.startswith("alias/") or ":alias/" in key_id:
        raise ValueError(f"{key_id} is an alias: give the key's id or ARN.")
    return key_id.rsplit("/", 1)[-1] if key_id.startswith("arn:") else key_id


def _printable(text: str) -> str:
    # The reason ends up on the operator's terminal: no control sequence of the function's
    # may rewrite what is on it.
    return "".join(c if c.isprintable() else " " for c in text)
