"""What ``imported-keys doctor`` checks: is each deployment of the handler in the Region able to
keep its keys imported, and if not, what to do about it.

A deployment is one ``ImportHandler`` of a stack: its two functions (``Function`` for
CloudFormation's requests, ``SweepFunction`` for the schedule and KMS's expiration events),
which share one role and one environment. It is found by that environment, as
``handlers.find_function`` finds the function serving a key. For each one ``check`` reads:

- ``functions``: both functions are there, ``State`` Active and ``LastUpdateStatus``
  Successful (GetFunctionConfiguration: ListFunctions leaves them out);
- ``schedule`` and ``expiry-rule``: an enabled EventBridge rule runs the sweep function on a
  schedule, and another sends it KMS's expiration events (``contract.KMS_EXPIRATION_EVENT``).
  The construct makes both with the handler's first key whose material expires: without such a
  key, none is needed;
- ``dead-letters``: the queue the functions' failed asynchronous events go to (their event
  invoke configuration's on-failure destination) is empty;
- ``alarms``: none of the deployment's alarms is in ALARM. CloudFormation names them
  ``<stack>-<construct id><ErrorsAlarm|DeadLetterAlarm|RenewalFleetExpiryAlarm><hash>-<suffix>``
  (the construct id is the second half of ``contract.ENV_FLEET_NAME``); the fleet alarm is also
  found by its metric (``contract.FLEET_METRIC_NAMESPACE``, dimension ``METRIC_DIMENSION``);
- ``keys``: no managed key the deployment serves needs a person (``ManagedKey.attention``).

Every problem is a ``Finding`` with its fix, a command or a deploy step; a read the caller's
credentials are refused is a finding naming the permission. Nothing here changes anything or
invokes a function. The reads: ``lambda:ListFunctions``, ``GetFunctionConfiguration``,
``GetFunctionEventInvokeConfig``; ``events:ListRuleNamesByTarget``, ``DescribeRule``;
``sqs:GetQueueUrl``, ``GetQueueAttributes``; ``cloudwatch:DescribeAlarms``,
``DescribeAlarmsForMetric``; and the reads of ``inventory.managed_keys``.
"""

import importlib.metadata
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

from botocore.exceptions import ClientError

from imported_key_handler import contract
from imported_key_handler.binding import stack_name
from imported_key_handler.errors import ImportFailure

from . import handlers
from .inventory import ManagedKey, managed_keys

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_kms import KMSClient

T = TypeVar("T")

CHECK_FUNCTIONS: Final = "functions"
CHECK_VERSION: Final = "version"
CHECK_SCHEDULE: Final = "schedule"
CHECK_EXPIRY_RULE: Final = "expiry-rule"
CHECK_DEAD_LETTERS: Final = "dead-letters"
CHECK_ALARMS: Final = "alarms"
CHECK_KEYS: Final = "keys"
CHECKS: Final = (
    CHECK_FUNCTIONS,
    CHECK_VERSION,
    CHECK_SCHEDULE,
    CHECK_EXPIRY_RULE,
    CHECK_DEAD_LETTERS,
    CHECK_ALARMS,
    CHECK_KEYS,
)

# The construct's sweep function has Lambda's longest timeout, its CloudFormation function 2
# minutes (imported_key_cdk.handler SWEEP_TIMEOUT, HANDLER_TIMEOUT): the timeout tells them apart
# where CloudFormation's generated names are cut short.
SWEEP_TIMEOUT_S: Final = handlers.LAMBDA_MAX_TIMEOUT_S
# The construct ids of the handler's alarms, after the handler's own in their logical ids.
ERRORS_ALARM: Final = "ErrorsAlarm"
DEAD_LETTER_ALARM: Final = "DeadLetterAlarm"
FLEET_ALARM: Final = "RenewalFleetExpiryAlarm"
# ImportHandler._construct_id: "ImportedKeyHandler" and the runtime and architecture.
HANDLER_CONSTRUCT_PREFIX: Final = "ImportedKeyHandler"
MAX_REASON_LENGTH: Final = 300
_DENIED_CODES: Final = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError"}
)
_MISSING_QUEUE_CODES: Final = frozenset(
    {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}
)


class LambdaClient(handlers.LambdaClient, Protocol):
    """What this module calls on a Lambda client, besides ListFunctions."""

    def get_function_configuration(self, *, FunctionName: str) -> Mapping[str, Any]: ...

    def get_function_event_invoke_config(self, *, FunctionName: str) -> Mapping[str, Any]: ...


class EventsClient(Protocol):
    """What this module calls on an EventBridge client (the project installs no EventBridge
    stubs: boto3 types that client as Any, and this keeps the calls checked)."""

    def list_rule_names_by_target(
        self, *, TargetArn: str, NextToken: str = ...
    ) -> Mapping[str, Any]: ...

    def describe_rule(self, *, Name: str) -> Mapping[str, Any]: ...


class SqsClient(Protocol):
    """What this module calls on an SQS client (no SQS stubs either)."""

    def get_queue_url(
        self, *, QueueName: str, QueueOwnerAWSAccountId: str = ...
    ) -> Mapping[str, Any]: ...

    def get_queue_attributes(
        self, *, QueueUrl: str, AttributeNames: Sequence[str]
    ) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class Clients:
    """The clients of one Region that the checks read with."""

    lambda_: LambdaClient
    events: EventsClient
    sqs: SqsClient
    cloudwatch: "CloudWatchClient"
    kms: "KMSClient"
    region: str

    @classmethod
    def of(cls, session: "boto3.session.Session") -> "Clients":
        """Clients of ``session`` (its Region: NoRegionError without one)."""
        kms: KMSClient = session.client("kms")
        cloudwatch: CloudWatchClient = session.client("cloudwatch")
        lambda_client: LambdaClient = session.client("lambda")
        # No stubs for these two: boto3 types them as Any; the Protocols check the calls.
        events: EventsClient = session.client("events")
        sqs: SqsClient = session.client("sqs")
        return cls(
            lambda_=lambda_client,
            events=events,
            sqs=sqs,
            cloudwatch=cloudwatch,
            kms=kms,
            region=str(kms.meta.region_name),
        )


@dataclass(frozen=True)
class Finding:
    """One thing checked: ``ok``, or a problem with ``fix``, what to do about it."""

    check: str
    ok: bool
    detail: str
    fix: str | None = None
    firing: bool = False
    """An alarm in ALARM (not merely one that could not be read): ``status`` fails on it."""

    def summary(self) -> dict[str, Any]:
        """The finding as JSON."""
        return {"Check": self.check, "Ok": self.ok, "Detail": self.detail, "Fix": self.fix}


@dataclass(frozen=True)
class Deployment:
    """One handler of a stack: the functions with its environment (``ENV_HANDLER_STACK_ID``,
    ``ENV_HANDLER_ROLE_ID``), told apart by their timeouts."""

    stack: str
    stack_id: str
    role_id: str
    function: str | None
    """The function for CloudFormation's requests (None: not found)."""
    sweep_function: str | None
    """The function the schedule and KMS's expiration events invoke (None: not found)."""
    others: tuple[str, ...] = ()
    """More functions with the same environment than the construct makes."""
    role_arns: tuple[str, ...] = ()
    _found: "tuple[handlers.HandlerFunction, ...]" = field(default=(), repr=False, compare=False)
    # Every handler function of the Region when this was found: which one serves a key.
    _region: "tuple[handlers.HandlerFunction, ...]" = field(default=(), repr=False, compare=False)

    @property
    def functions(self) -> tuple[str, ...]:
        """Every function of the deployment, by name."""
        return tuple(
            name for name in (self.function, self.sweep_function, *self.others) if name is not None
        )

    def serves(self, key: ManagedKey) -> bool:
        """Whether the key is this deployment's, as the handler and ``find_function`` decide
        (its ``TAG_HANDLER`` names the role; an adopted key goes to the adopting stack)."""
        return any(f in self._found for f in handlers.serving(self._region, key.tags))

    def summary(self) -> dict[str, Any]:
        return {
            "Stack": self.stack,
            "StackId": self.stack_id,
            "HandlerRoleId": self.role_id,
            "Function": self.function,
            "SweepFunction": self.sweep_function,
            "OtherFunctions": list(self.others),
        }


@dataclass(frozen=True)
class Report:
    """The findings for one deployment (``deployment`` None: none was found to check)."""

    stack: str
    deployment: Deployment | None
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return all(finding.ok for finding in self.findings)

    def summary(self) -> dict[str, Any]:
        return {
            "Stack": self.stack,
            "Ok": self.ok,
            "Deployment": self.deployment.summary() if self.deployment else None,
            "Findings": [finding.summary() for finding in self.findings],
        }


class _Unreadable(Exception):
    """A read failed: the finding says which, and what would let it succeed."""

    def __init__(self, what: str, error: ClientError, prefix: str) -> None:
        code = str(error.response.get("Error", {}).get("Code", ""))
        permission = f"{prefix}:{error.operation_name}"
        if code in _DENIED_CODES:
            detail = f"cannot check {what}: {permission} was refused ({code})"
            fix = (
                f"Allow {permission} to the identity running imported-keys (doctor only "
                "reads), then run doctor again."
            )
        else:
            message = _printable(str(error.response.get("Error", {}).get("Message", "")))
            detail = f"cannot check {what}: {error.operation_name} failed ({code}: {message})"
            fix = "Run doctor again; if it fails the same way, read the error above."
        super().__init__(detail)
        self.detail = detail
        self.fix = fix


def _read(
    what: str, prefix: str, call: Callable[..., T], *, missing: Iterable[str] = (), **request: Any
) -> T | None:
    """``call(**request)``; None for an error whose code is in ``missing``, _Unreadable for
    any other."""
    try:
        return call(**request)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in set(missing):
            return None
        raise _Unreadable(what, error, prefix) from None


# --- Finding the deployments


def _group(found: "Sequence[handlers.HandlerFunction]") -> list[Deployment]:
    groups: dict[tuple[str, str], list[handlers.HandlerFunction]] = {}
    for function in found:
        groups.setdefault((function.stack_id, function.role_id), []).append(function)
    result = []
    for (stack_id, role_id), members in sorted(groups.items()):
        ordered = sorted(members, key=lambda f: f.name)
        sweeps = [f.name for f in ordered if f.timeout >= SWEEP_TIMEOUT_S]
        others = [f.name for f in ordered if f.timeout < SWEEP_TIMEOUT_S]
        result.append(
            Deployment(
                stack=stack_name(stack_id) if stack_id else "(no stack named)",
                stack_id=stack_id,
                role_id=role_id,
                function=others[0] if others else None,
                sweep_function=sweeps[0] if sweeps else None,
                others=tuple(sweeps[1:] + others[1:]),
                role_arns=tuple(sorted({f.role_arn for f in members})),
                _found=tuple(members),
                _region=tuple(found),
            )
        )
    return result


def deployments(lambda_client: handlers.LambdaClient, stack: str | None = None) -> list[Deployment]:
    """Every deployment of the handler in the client's Region (only those of stack ``stack``,
    by name, when given). ClientError when ListFunctions is refused."""
    found, _ = handlers.handler_functions(lambda_client)
    return [d for d in _group(found) if stack is None or d.stack == stack]


def diagnose(clients: Clients, now: datetime, stack: str | None = None) -> list[Report]:
    """``check`` every deployment of the Region (or of stack ``stack``), the keys read once.

    No deployment: an empty list; but when ``stack`` is given, one report saying it was not
    found, and when ListFunctions is refused, one naming the permission."""
    try:
        found, listed = handlers.handler_functions(clients.lambda_)
    except ClientError as error:
        unreadable = _Unreadable("the handler's functions", error, "lambda")
        finding = Finding(CHECK_FUNCTIONS, False, unreadable.detail, unreadable.fix)
        return [Report(stack or "(every stack)", None, (finding,))]
    everything = _group(found)
    chosen = [d for d in everything if stack is None or d.stack == stack]
    if not chosen:
        if stack is None:
            return []
        stacks = sorted({d.stack for d in everything})
        finding = Finding(
            CHECK_FUNCTIONS,
            False,
            f"no imported-key-cdk handler of stack {stack} in {clients.region}: none of the "
            f"{listed} functions has its environment"
            + (f" (handlers of stacks {', '.join(stacks)} do)" if stacks else ""),
            f"Check the stack's name and the Region (--region); if the stack should have a "
            f"handler, deploy it: cdk deploy {stack}",
        )
        return [Report(stack, None, (finding,))]
    keys: list[ManagedKey] | Finding
    try:
        keys = managed_keys(clients.kms)
    except (ClientError, ImportFailure) as error:
        keys = _keys_unreadable(error)
    return [
        Report(deployment.stack, deployment, tuple(_check(deployment, clients, now, keys)))
        for deployment in chosen
    ]


# --- The checks


@dataclass
class _Configured:
    """What GetFunctionConfiguration says of one function of the deployment."""

    name: str
    kind: str  # "sweep function" or "handler function"
    configuration: Mapping[str, Any] | None  # None: it is gone, or could not be read
    arn: str

    @property
    def environment(self) -> Mapping[str, str]:
        if not self.configuration:
            return {}
        variables: Mapping[str, str] = (self.configuration.get("Environment") or {}).get(
            "Variables"
        ) or {}
        return variables

    @property
    def log_group(self) -> str:
        return log_group_of(self.name, self.configuration)


def check(
    deployment: Deployment,
    clients: Clients,
    now: datetime,
    keys: Sequence[ManagedKey] | None = None,
) -> list[Finding]:
    """The findings for one deployment, in the order of ``CHECKS``.

    ``keys``: the Region's managed keys (``inventory.managed_keys``), read here when None.
    Checks that need a function the deployment lacks are left out: the ``functions`` finding
    for it says what to do.
    """
    if keys is None:
        try:
            return _check(deployment, clients, now, managed_keys(clients.kms))
        except (ClientError, ImportFailure) as error:
            return _check(deployment, clients, now, _keys_unreadable(error))
    return _check(deployment, clients, now, keys)


def log_group_of(name: str, configuration: Mapping[str, Any] | None) -> str:
    """Where a function logs: its LoggingConfig's group, else Lambda's default for its name."""
    logging = (configuration or {}).get("LoggingConfig") or {}
    return str(logging.get("LogGroup") or f"/aws/lambda/{name}")


def _expects_renewal(served: Sequence[ManagedKey]) -> bool:
    """Whether the construct gave the deployment a sweep, its rules and its fleet alarm: it
    does with the first key whose material expires."""
    return any(
        key.expiration_model == contract.KEY_MATERIAL_EXPIRES or key.renew_before is not None
        for key in served
    )


def _check(
    deployment: Deployment,
    clients: Clients,
    now: datetime,
    keys: Sequence[ManagedKey] | Finding,
) -> list[Finding]:
    context = _Context(deployment, clients, now)
    findings = context.functions()
    findings += context.version()
    if isinstance(keys, Finding):
        served: list[ManagedKey] = []
        context.renewal_expected = None  # unknown
    else:
        served = [key for key in keys if deployment.serves(key)]
        context.renewal_expected = _expects_renewal(served)
    findings += context.rules()
    findings += context.dead_letters()
    findings += context.alarms()
    findings += [keys] if isinstance(keys, Finding) else context.keys(served)
    return findings


def _keys_unreadable(error: ClientError | ImportFailure) -> Finding:
    if isinstance(error, ClientError):
        unreadable = _Unreadable("the keys it serves", error, "kms")
        return Finding(CHECK_KEYS, False, unreadable.detail, unreadable.fix)
    return Finding(
        CHECK_KEYS,
        False,
        f"cannot check the keys it serves: {_printable(error.reason)}",
        "Run doctor again; if it fails the same way, read the error above.",
    )


class _Context:
    def __init__(self, deployment: Deployment, clients: Clients, now: datetime) -> None:
        self.deployment = deployment
        self.clients = clients
        self.now = now
        self.region = clients.region
        self.stack = deployment.stack
        self.deploy = f"cdk deploy {deployment.stack}"
        self.sweep: _Configured | None = None
        self.handler: _Configured | None = None
        self.renewal_expected: bool | None = None
        self.queue_url: str | None = None

    def _arn_of(self, name: str) -> str:
        # Where GetFunctionConfiguration could not say: the account is the role's.
        role_arns = self.deployment.role_arns
        parts = role_arns[0].split(":") if role_arns else []
        partition = parts[1] if len(parts) > 4 else "aws"
        account = parts[4] if len(parts) > 4 else ""
        return f"arn:{partition}:lambda:{self.region}:{account}:function:{name}"

    # --- version

    def version(self) -> list[Finding]:
        """The library version that deployed the handler (its environment records it) against
        this command line's: an older handler lacks events the command line sends (verify)."""
        function = self.sweep or self.handler
        if function is None or not function.configuration:
            return []
        deployed = function.environment.get(contract.ENV_LIBRARY_VERSION)
        try:
            mine = importlib.metadata.version(contract.LIBRARY_DISTRIBUTION)
        except importlib.metadata.PackageNotFoundError:
            mine = "unknown"
        if deployed == mine:
            return [Finding(CHECK_VERSION, True, f"deployed by imported-key-cdk {mine}")]
        what = (
            f"deployed by imported-key-cdk {_cut(deployed)}"
            if deployed
            else "deployed by an imported-key-cdk that does not record its version"
        )
        return [
            Finding(
                CHECK_VERSION,
                False,
                f"{what}; this command line is {mine}: commands the older handler does not "
                "know (verify) fail until it is deployed again",
                f"Deploy the stack with imported-key-cdk {mine}: {self.deploy}",
            )
        ]

    # --- functions

    def functions(self) -> list[Finding]:
        findings = []
        for kind, name in (
            ("handler function", self.deployment.function),
            ("sweep function", self.deployment.sweep_function),
        ):
            if name is None:
                findings.append(self._missing(kind))
                continue
            try:
                configuration = _read(
                    f"the {kind} {name}",
                    "lambda",
                    self.clients.lambda_.get_function_configuration,
                    missing=("ResourceNotFoundException",),
                    FunctionName=name,
                )
            except _Unreadable as unreadable:
                findings.append(Finding(CHECK_FUNCTIONS, False, unreadable.detail, unreadable.fix))
                configuration = None
                gone = False
            else:
                gone = configuration is None
            function = _Configured(
                name,
                kind,
                configuration,
                str((configuration or {}).get("FunctionArn") or self._arn_of(name)),
            )
            if gone:
                findings.append(self._missing(kind, name))
                continue
            if kind == "sweep function":
                self.sweep = function
            else:
                self.handler = function
            if configuration is not None:
                findings.append(self._state(function, configuration))
        if self.deployment.others or len(self.deployment.role_arns) > 1:
            findings.append(self._extra())
        return findings

    def _missing(self, kind: str, name: str | None = None) -> Finding:
        if kind == "sweep function":
            what = (
                "The sweep renews the keys whose material expires and takes KMS's expiration "
                "events: without it none of them is renewed."
            )
        else:
            what = (
                "CloudFormation sends it the stack's key imports: without it no key of the "
                "stack can be created, updated or deleted."
            )
        gone = f" ({name} is gone)" if name else ""
        left = [other for other in self.deployment.functions if other != name]
        return Finding(
            CHECK_FUNCTIONS,
            False,
            f"no {kind} in stack {self.stack}{gone}: only {', '.join(left) or 'none'} has the "
            f"deployment's environment. {what}",
            f"Deploy the stack again to re-create it: {self.deploy}. To see what else was "
            f"removed by hand: aws cloudformation detect-stack-drift --stack-name {self.stack} "
            f"--region {self.region}",
        )

    def _state(self, function: _Configured, configuration: Mapping[str, Any]) -> Finding:
        name, kind = function.name, function.kind
        state = str(configuration.get("State") or "")
        update = configuration.get("LastUpdateStatus")
        if state not in ("", "Active"):
            reason = _reason(configuration, "StateReasonCode", "StateReason")
            if state == "Failed":
                fix = f"Fix what Lambda names and deploy the stack again: {self.deploy}"
            elif state == "Inactive":
                fix = (
                    "Lambda reclaimed its resources after it sat idle; the next invocation "
                    "fails while it is restored. Wake it now (the handler ignores an empty "
                    f"event): aws lambda invoke --function-name {name} --payload '{{}}' "
                    f"--cli-binary-format raw-in-base64-out --region {self.region} /dev/null"
                )
            else:
                fix = (
                    "Lambda is still creating or updating it: run doctor again in a minute. If "
                    f"it stays {state}: aws lambda get-function-configuration --function-name "
                    f"{name} --region {self.region}"
                )
            return Finding(CHECK_FUNCTIONS, False, f"{kind} {name} is {state}{reason}", fix)
        if update not in (None, "Successful"):
            reason = _reason(configuration, "LastUpdateStatusReasonCode", "LastUpdateStatusReason")
            if update == "Failed":
                fix = (
                    "It still runs its previous code and configuration. Fix what Lambda names "
                    f"and deploy the stack again: {self.deploy}"
                )
            else:
                fix = "An update is under way: run doctor again when it is done."
            return Finding(
                CHECK_FUNCTIONS, False, f"{kind} {name}: its last update is {update}{reason}", fix
            )
        return Finding(CHECK_FUNCTIONS, True, f"{kind} {name} is Active")

    def _extra(self) -> Finding:
        roles = self.deployment.role_arns
        return Finding(
            CHECK_FUNCTIONS,
            False,
            f"{len(self.deployment.functions)} functions carry the environment of stack "
            f"{self.stack}'s handler ({', '.join(self.deployment.functions)})"
            + (f", under {len(roles)} roles ({', '.join(roles)})" if len(roles) > 1 else "")
            + "; the construct makes two, under one role. The command line will not guess "
            "which one to invoke.",
            "See which ones the stack holds: aws cloudformation describe-stack-resources "
            f"--stack-name {self.stack} --region {self.region}; delete the others: aws lambda "
            f"delete-function --function-name NAME --region {self.region}",
        )

    # --- schedule and expiry rule

    def rules(self) -> list[Finding]:
        if self.sweep is None:
            return []
        try:
            rules = self._rules_of(self.sweep.arn)
        except _Unreadable as unreadable:
            return [
                Finding(check, False, unreadable.detail, unreadable.fix)
                for check in (CHECK_SCHEDULE, CHECK_EXPIRY_RULE)
            ]
        schedules = [rule for rule in rules if rule.get("ScheduleExpression")]
        expiries = [rule for rule in rules if _is_expiry_rule(rule)]
        if schedules or expiries:
            # The construct makes both rules and the fleet alarm together (FleetRenewal).
            self.renewal_expected = True
        expected = self.renewal_expected
        return self._rule_findings(
            CHECK_SCHEDULE,
            schedules,
            expected,
            "runs the sweep",
            "no key of this deployment is renewed",
        ) + self._rule_findings(
            CHECK_EXPIRY_RULE,
            expiries,
            expected,
            "sends KMS's expiration events to the sweep",
            "material that expires is restored only by the next scheduled sweep",
        )

    def _rules_of(self, target_arn: str) -> list[Mapping[str, Any]]:
        names: list[str] = []
        request: dict[str, str] = {"TargetArn": target_arn}
        what = "the rules that invoke the sweep function"
        while True:
            page = _read(what, "events", self.clients.events.list_rule_names_by_target, **request)
            names += (page or {}).get("RuleNames") or []
            token = (page or {}).get("NextToken")
            if not token:
                break
            request["NextToken"] = token
        rules = []
        for name in sorted(set(names)):
            rule = _read(
                what,
                "events",
                self.clients.events.describe_rule,
                missing=("ResourceNotFoundException",),  # deleted since it was listed
                Name=name,
            )
            if rule is not None:
                rules.append(rule)
        return rules

    def _rule_findings(
        self,
        check: str,
        rules: list[Mapping[str, Any]],
        expected: bool | None,
        does: str,
        otherwise: str,
    ) -> list[Finding]:
        if not rules:
            if expected is False:
                return [
                    Finding(
                        check,
                        True,
                        f"no rule {does}: no key of this deployment has material that expires",
                    )
                ]
            unknown = (
                " (if one is needed: the keys could not be read to tell)"
                if expected is None
                else ""
            )
            return [
                Finding(
                    check,
                    False,
                    f"no EventBridge rule {does} ({self.sweep.name if self.sweep else '?'}): "
                    f"{otherwise}{unknown}",
                    "The construct makes it with the handler's first key whose material "
                    f"expires: deploy the stack again, {self.deploy}. Until then, renew due "
                    "keys by hand: imported-keys renew --due",
                )
            ]
        findings = []
        for rule in rules:
            name = str(rule.get("Name", ""))
            state = str(rule.get("State", ""))
            expression = rule.get("ScheduleExpression")
            what = f"{does} ({expression})" if expression else does
            if state.startswith("ENABLED"):
                findings.append(Finding(check, True, f"rule {name} {what}: {state}"))
                continue
            bus = str(rule.get("EventBusName") or "default")
            on_bus = "" if bus == "default" else f" --event-bus-name {bus}"
            findings.append(
                Finding(
                    check,
                    False,
                    f"rule {name} {what} but is {state or 'in no state'}: {otherwise}",
                    f"aws events enable-rule --name {name}{on_bus} --region {self.region}",
                )
            )
        return findings

    # --- dead-letter queue

    def dead_letters(self) -> list[Finding]:
        function = self.sweep or self.handler
        if function is None:
            return []
        what = "the dead-letter queue"
        try:
            invoke_config = _read(
                what,
                "lambda",
                self.clients.lambda_.get_function_event_invoke_config,
                missing=("ResourceNotFoundException",),
                FunctionName=function.name,
            )
            destination = str(
                ((invoke_config or {}).get("DestinationConfig") or {})
                .get("OnFailure", {})
                .get("Destination")
                or ""
            )
            parts = destination.split(":")
            if len(parts) < 6 or parts[0] != "arn" or parts[2] != "sqs":
                lost = (
                    f"sends them to {destination}, not to a queue"
                    if destination
                    else "keeps them nowhere"
                )
                return [
                    Finding(
                        CHECK_DEAD_LETTERS,
                        False,
                        f"{function.kind} {function.name} {lost}: a renewal that fails every "
                        "retry is lost",
                        "The construct sends failed events to the stack's dead-letter queue: "
                        f"deploy the stack again, {self.deploy}",
                    )
                ]
            account, queue = parts[4], ":".join(parts[5:])
            located = _read(
                what,
                "sqs",
                self.clients.sqs.get_queue_url,
                missing=_MISSING_QUEUE_CODES,
                QueueName=queue,
                QueueOwnerAWSAccountId=account,
            )
            if located is None:
                return [
                    Finding(
                        CHECK_DEAD_LETTERS,
                        False,
                        f"the dead-letter queue {destination} does not exist: a renewal that "
                        "fails every retry is lost",
                        f"Deploy the stack again to re-create it: {self.deploy}",
                    )
                ]
            url = str(located["QueueUrl"])
            self.queue_url = url
            answer = _read(
                what,
                "sqs",
                self.clients.sqs.get_queue_attributes,
                QueueUrl=url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )
        except _Unreadable as unreadable:
            return [Finding(CHECK_DEAD_LETTERS, False, unreadable.detail, unreadable.fix)]
        attributes = (answer or {}).get("Attributes") or {}
        waiting = int(attributes.get("ApproximateNumberOfMessages") or 0)
        reading = int(attributes.get("ApproximateNumberOfMessagesNotVisible") or 0)
        if waiting + reading == 0:
            return [Finding(CHECK_DEAD_LETTERS, True, f"the dead-letter queue {queue} is empty")]
        events = "event" if waiting + reading == 1 else "events"
        return [
            Finding(
                CHECK_DEAD_LETTERS,
                False,
                f"{waiting + reading} failed {events} in the dead-letter queue {queue} "
                f"({waiting} waiting, {reading} being read): renewals that failed every retry",
                f"Read them: aws sqs receive-message --queue-url {url} --max-number-of-messages "
                "10 --visibility-timeout 0 --attribute-names All --message-attribute-names All "
                f"--region {self.region}. Lambda's records hold the event (requestPayload) and "
                "the error (responsePayload); EventBridge's hold the event, its error in the "
                "ERROR_CODE and ERROR_MESSAGE attributes. Fix the cause (the handler's log: aws "
                f"logs tail {function.log_group} --since 1d --region {self.region}), renew the "
                "keys they name (imported-keys renew KEY, or renew --due), then empty the "
                f"queue: aws sqs purge-queue --queue-url {url} --region {self.region}",
            )
        ]

    # --- alarms

    def _construct_id(self) -> str | None:
        # The fleet is named "<stack name>/<the handler's construct id>" (ImportHandler).
        fleet = self._fleet_name()
        return fleet.rsplit("/", 1)[1] if fleet and "/" in fleet else None

    def _fleet_name(self) -> str | None:
        for function in (self.sweep, self.handler):
            fleet = function.environment.get(contract.ENV_FLEET_NAME) if function else None
            if fleet:
                return fleet
        return None

    def alarms(self) -> list[Finding]:
        construct_id = self._construct_id()
        prefix = f"{self.stack}-{construct_id or HANDLER_CONSTRUCT_PREFIX}"
        fleet = self._fleet_name()
        found: dict[str, Mapping[str, Any]] = {}
        try:
            request: dict[str, Any] = {"AlarmNamePrefix": prefix}
            while True:
                page = _read(
                    "the deployment's alarms",
                    "cloudwatch",
                    self.clients.cloudwatch.describe_alarms,
                    **request,
                )
                for listed in page["MetricAlarms"] if page else []:
                    found[listed["AlarmName"]] = listed
                token = page.get("NextToken") if page else None
                if not token:
                    break
                request["NextToken"] = token
            if fleet:
                by_metric = _read(
                    "the fleet alarm",
                    "cloudwatch",
                    self.clients.cloudwatch.describe_alarms_for_metric,
                    Namespace=contract.FLEET_METRIC_NAMESPACE,
                    MetricName=contract.METRIC_MIN_SECONDS_TO_EXPIRY,
                    Dimensions=[{"Name": contract.METRIC_DIMENSION, "Value": fleet}],
                )
                for watching in by_metric["MetricAlarms"] if by_metric else []:
                    found[watching["AlarmName"]] = {**watching, "_fleet": True}
        except _Unreadable as unreadable:
            return [Finding(CHECK_ALARMS, False, unreadable.detail, unreadable.fix)]
        kinds = {name: self._kind(name, alarm, construct_id) for name, alarm in found.items()}
        findings = []
        expected = [ERRORS_ALARM, DEAD_LETTER_ALARM]
        if self.renewal_expected:
            expected.append(FLEET_ALARM)
        for kind in expected:
            if kind not in kinds.values():
                findings.append(
                    Finding(
                        CHECK_ALARMS,
                        False,
                        f"no {kind} of the deployment found (alarms named {prefix}...{kind}..."
                        + (f", or on {contract.METRIC_DIMENSION}={fleet}" if fleet else "")
                        + "): nothing would tell you it fails",
                        f"Deploy the stack again to re-create it: {self.deploy}",
                    )
                )
        for name, alarm in sorted(found.items()):
            if alarm.get("StateValue") != "ALARM":
                continue
            since = alarm.get("StateUpdatedTimestamp")
            when = f" since {since.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if since else ""
            reason = _printable(str(alarm.get("StateReason") or "no reason given"))
            findings.append(
                Finding(
                    CHECK_ALARMS,
                    False,
                    f"alarm {name} is in ALARM{when}: {_cut(reason)}",
                    self._alarm_fix(kinds[name], name),
                    firing=True,
                )
            )
        if not findings:
            names = ", ".join(sorted(found)) or "none"
            findings.append(Finding(CHECK_ALARMS, True, f"no alarm in ALARM ({names})"))
        return findings

    @staticmethod
    def _kind(name: str, alarm: Mapping[str, Any], construct_id: str | None) -> str:
        handler = construct_id or ""
        if alarm.get("_fleet") or f"{handler}{FLEET_ALARM}" in name:
            return FLEET_ALARM
        if f"{handler}{ERRORS_ALARM}" in name:
            return ERRORS_ALARM
        if f"{handler}{DEAD_LETTER_ALARM}" in name:
            return DEAD_LETTER_ALARM
        return "other"

    def _alarm_fix(self, kind: str, name: str) -> str:
        log_group = (self.sweep or self.handler or _Configured("", "", None, "")).log_group
        read_log = (
            f"aws logs tail {log_group} --since 1h --filter-pattern "
            f"'{{ $.level = \"ERROR\" }}' --region {self.region}"
        )
        if kind == ERRORS_ALARM:
            return (
                f"The handler failed in the last 5 minutes. Read why: {read_log}. Fix the "
                "cause (the message names the key and the call that failed), then renew the "
                "keys it names: imported-keys renew KEY. The alarm clears after 5 minutes "
                "without errors."
            )
        if kind == DEAD_LETTER_ALARM:
            queue = self.queue_url or "QUEUE_URL"
            return (
                "A renewal failed every retry and waits in the dead-letter queue (see the "
                f"dead-letters finding): aws sqs receive-message --queue-url {queue} "
                f"--visibility-timeout 0 --region {self.region}"
            )
        if kind == FLEET_ALARM:
            return (
                "A key of the fleet expires within the alarm's threshold, or the sweep stopped "
                "reporting. List the keys: imported-keys ls --stack "
                f"{self.stack} --problems; renew the due ones: imported-keys renew --due; if "
                f"the sweep stopped, read its log: {read_log}"
            )
        return (
            f"Read what it watches: aws cloudwatch describe-alarms --alarm-names {name} "
            f"--region {self.region}"
        )

    # --- keys

    def keys(self, served: Sequence[ManagedKey]) -> list[Finding]:
        findings = []
        for key in sorted(served, key=lambda k: (k.name, k.key_id)):
            attention = key.attention(self.now)
            if attention is None:
                continue
            findings.append(
                Finding(
                    CHECK_KEYS,
                    False,
                    f"key {key.name} ({key.key_id}): {attention}",
                    self._key_fix(key),
                )
            )
        if findings:
            return findings
        if not served:
            detail = f"no managed key in {self.region} is served by this deployment"
        else:
            count = f"{len(served)} key" + ("s" if len(served) > 1 else "")
            detail = f"{count} served by this deployment, none needs attention"
        return [Finding(CHECK_KEYS, True, detail)]

    def _key_fix(self, key: ManagedKey) -> str:
        # In the order ManagedKey.attention decides.
        key_id, name, region = key.key_id, key.name, self.region
        if key.state == "PendingDeletion":
            return (
                f"If it should stay: aws kms cancel-key-deletion --key-id {key_id} --region "
                f"{region}, then aws kms enable-key --key-id {key_id} --region {region}. If "
                "not, remove it from the stack so that it is no longer declared."
            )
        if key.revoked(self.now):
            return (
                "Its material was deleted on purpose (imported-keys revoke). If that should "
                f"stand, nothing to do; to restore it: imported-keys resume {name}"
            )
        if key.state == "PendingImport":
            return (
                f"Have the handler import it again: imported-keys renew {name}; if it "
                f"refuses, imported-keys verify {name} and the handler's log say why."
            )
        if key.state not in ("Enabled", "Disabled"):
            return f"See what KMS says: aws kms describe-key --key-id {key_id} --region {region}"
        return (
            f"Renew it now: imported-keys renew {name}; then find why the sweep missed it "
            "(this deployment's schedule, dead-letter queue and alarms)."
        )


def _is_expiry_rule(rule: Mapping[str, Any]) -> bool:
    try:
        pattern = json.loads(str(rule.get("EventPattern") or "{}"))
    except ValueError:
        return False
    detail_types = pattern.get("detail-type") if isinstance(pattern, dict) else None
    return isinstance(detail_types, list) and contract.KMS_EXPIRATION_EVENT in detail_types


def _reason(configuration: Mapping[str, Any], code_field: str, reason_field: str) -> str:
    code = configuration.get(code_field)
    reason = configuration.get(reason_field)
    said = ": ".join(_printable(str(part)) for part in (code, reason) if part)
    return f" ({_cut(said)})" if said else ""


def _cut(text: str) -> str:
    return text if len(text) <= MAX_REASON_LENGTH else text[: MAX_REASON_LENGTH - 3] + "..."


def _printable(text: str) -> str:
    # What AWS says ends up on the operator's terminal: no control sequence may rewrite it.
    return "".join(c if c.isprintable() else " " for c in text)


def alarm_states(clients: Clients, key: ManagedKey, now: datetime) -> list[Finding]:
    """The alarms of the deployment that serves ``key`` (``status``): its alarm findings, or
    one finding saying why they could not be read."""
    try:
        serving = [d for d in deployments(clients.lambda_) if d.serves(key)]
    except ClientError as error:
        unreadable = _Unreadable("the key's handler", error, "lambda")
        return [Finding(CHECK_ALARMS, False, unreadable.detail, unreadable.fix)]
    if not serving:
        return [
            Finding(
                CHECK_ALARMS,
                False,
                f"no deployed handler serves key {key.key_id} in {clients.region}",
                "Deploy the key's stack, or check the Region (--region).",
            )
        ]
    # Only what the alarm check needs: the functions' environment names the alarms.
    context = _Context(serving[0], clients, now)
    context.functions()
    context.renewal_expected = _expects_renewal([key])
    return context.alarms()
