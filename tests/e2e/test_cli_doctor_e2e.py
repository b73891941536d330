"""``imported_key_cli.doctor`` against a deployment of the handler as the construct makes it,
first healthy, then broken one thing at a time: each break must give exactly its finding.

Where each part lives: the keys (deployed through the handler's custom resource code path) and
the alarms on the session's LocalStack, in a Region no other suite uses, so what the doctor
lists there is this module's; the two functions in the Lambda API stand-in
(``support.lambda_api``); the dead-letter queue on a LocalStack that serves SQS (the session's
serves KMS, Secrets Manager, S3 and CloudWatch only: this module starts a small one of its own
for SQS, about a second, unless the session's serves it); and the two rules in an EventBridge
stand-in here (``EventBridgeApi``): LocalStack 4.10's EventBridge cannot load in its virtual
environment (it imports ``crontab``, which the pinned requirements do not install).

The doctor's clients come from ``Clients.of`` with the endpoints in the environment, as the
command line would make them.
"""

import json
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.validate import ParamValidator
from support import localstack as localstack_support
from support.binding import TEST_HANDLER_ROLE_ID, PlayedStacks
from support.events import ACCOUNT_ID, import_properties
from support.lambda_api import LambdaApi, handler_environment
from support.localstack import LocalStack, start_localstack
from support.regions import Regional, deploy_region, import_in, stack_id_in

from imported_key_cli import doctor
from imported_key_cli.doctor import Clients, Finding, Report
from imported_key_handler import clients as handler_clients
from imported_key_handler import contract

pytestmark = pytest.mark.localstack

REGION = "ca-central-1"
HANDLER = "ImportedKeyHandler"  # the construct id handler_environment's fleet name ends with


# --- EventBridge


class _Refusal(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class EventBridgeApi:
    """The EventBridge API on 127.0.0.1, default event bus only, for the operations that make
    and read rules: PutRule, PutTargets, EnableRule, DisableRule, DescribeRule and
    ListRuleNamesByTarget (one rule a page, so that paging is used). JSON 1.1 as botocore
    sends it; each request and answer is checked against botocore's model, and each request
    must be signed for ``events``. Nothing is ever delivered to a target."""

    PAGE_SIZE = 1

    def __init__(self, region: str) -> None:
        self.region = region
        self.rules: dict[str, dict[str, Any]] = {}
        self.targets: dict[str, list[dict[str, Any]]] = {}
        self.requests: list[str] = []
        self._model = botocore.session.get_session().get_service_model("events")
        self._validator = ParamValidator()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _EventBridgeHandler)
        self._server.api = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def client(self) -> Any:
        """An EventBridge client for this stand-in."""
        return boto3.client(
            "events",
            region_name=REGION,
            endpoint_url=self.endpoint,
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def answer(self, target: str, authorization: str, body: bytes) -> dict[str, Any]:
        if "/events/aws4_request" not in authorization:
            raise _Refusal(403, "MissingAuthenticationTokenException", "no SigV4 for events")
        prefix = f"{self._model.metadata['targetPrefix']}."
        name = target.removeprefix(prefix)
        if not target.startswith(prefix) or name not in self._model.operation_names:
            raise _Refusal(400, "UnknownOperationException", f"no operation {target}")
        operation = self._model.operation_model(name)
        request = json.loads(body or b"{}")
        self._check(request, operation.input_shape)
        with self._lock:
            self.requests.append(name)
            answer = self._run(name, request)
        if operation.output_shape is not None:  # EnableRule and DisableRule answer nothing
            self._check(answer, operation.output_shape)
        return answer

    def _check(self, value: Mapping[str, Any], shape: Any) -> None:
        report = self._validator.validate(value, shape)
        if report.has_errors():
            raise _Refusal(400, "ValidationException", report.generate_report())

    def _rule(self, name: str) -> dict[str, Any]:
        if name not in self.rules:
            raise _Refusal(400, "ResourceNotFoundException", f"Rule {name} does not exist.")
        return self.rules[name]

    def _run(self, operation: str, request: dict[str, Any]) -> dict[str, Any]:
        if operation == "PutRule":
            name = request["Name"]
            arn = f"arn:aws:events:{self.region}:{ACCOUNT_ID}:rule/{name}"
            rule = {"Name": name, "Arn": arn, "EventBusName": "default", "State": "ENABLED"}
            for field in ("ScheduleExpression", "EventPattern", "State", "Description"):
                if field in request:
                    rule[field] = request[field]
            self.rules[name] = rule
            return {"RuleArn": arn}
        if operation == "PutTargets":
            self._rule(request["Rule"])
            self.targets.setdefault(request["Rule"], []).extend(request["Targets"])
            return {"FailedEntryCount": 0, "FailedEntries": []}
        if operation in ("EnableRule", "DisableRule"):
            self._rule(request["Name"])["State"] = (
                "ENABLED" if operation == "EnableRule" else "DISABLED"
            )
            return {}
        if operation == "DescribeRule":
            return dict(self._rule(request["Name"]))
        if operation == "ListRuleNamesByTarget":
            names = sorted(
                name
                for name, targets in self.targets.items()
                if any(t["Arn"] == request["TargetArn"] for t in targets)
            )
            start = int(request.get("NextToken", "0"))
            answer: dict[str, Any] = {"RuleNames": names[start : start + self.PAGE_SIZE]}
            if start + self.PAGE_SIZE < len(names):
                answer["NextToken"] = str(start + self.PAGE_SIZE)
            return answer
        raise _Refusal(400, "UnsupportedOperation", f"the stand-in does not play {operation}")


class _EventBridgeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        api: EventBridgeApi = self.server.api  # type: ignore[attr-defined]
        try:
            status, payload = (
                200,
                api.answer(
                    self.headers.get("X-Amz-Target", ""),
                    self.headers.get("Authorization", ""),
                    body,
                ),
            )
        except Exception as error:
            refusal = (
                error
                if isinstance(error, _Refusal)
                else _Refusal(500, "InternalException", f"stand-in failed: {error!r}")
            )
            status, payload = refusal.status, {"__type": refusal.code, "message": refusal.message}
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return


# --- The deployment


@dataclass
class Deployed:
    """A stack's handler as the construct deploys it, named as CloudFormation names it."""

    stack: str
    regional: Regional
    stacks: PlayedStacks
    lambda_api: LambdaApi
    events_api: EventBridgeApi
    sqs: Any
    cloudwatch: Any
    function: str
    sweep_function: str
    variables: dict[str, str]
    queue_arn: str
    queue_url: str
    sweep_rule: str
    expiry_rule: str
    alarms: dict[str, str]  # ErrorsAlarm, DeadLetterAlarm, RenewalFleetExpiryAlarm -> name
    endpoints: dict[str, str]

    def register(self, name: str) -> None:
        timeout = 900 if name == self.sweep_function else 120
        self.lambda_api.register(
            name,
            timeout_s=timeout,
            variables=self.variables,
            role=f"arn:aws:iam::{ACCOUNT_ID}:role/{self.stack}-{HANDLER}Role1A2B3C4D-ROLE",
            on_failure=self.queue_arn,
            log_group=f"{self.stack}-{HANDLER}Logs5E6F7A8B-LOGS",
        )


def cfn_name(stack: str, logical_id: str) -> str:
    """A physical name as CloudFormation generates it: stack, logical id, random suffix."""
    return f"{stack}-{logical_id}-{uuid.uuid4().hex[:12].upper()}"


def deploy_key(regional: Regional, stacks: PlayedStacks, alias: str) -> str:
    """A key of the stack whose material expires, imported by the handler as on a Create."""
    kms, secrets = regional.kms, regional.clients.secrets
    key_id = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName=f"alias/{alias}", TargetKeyId=key_id)
    secret = secrets.create_secret(
        Name=f"{alias}/{uuid.uuid4()}", SecretBinary=uuid.uuid4().bytes * 2
    )
    properties = import_properties(
        key_id, secret["ARN"], **{contract.PROP_WRAPPING_KEY_SPEC: "RSA_2048"}
    )
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(handler_clients, "cloudformation_client", stacks.client)
        import_in(regional, properties, stacks, monkeypatch)
    return key_id


@pytest.fixture(scope="module")
def sqs_endpoint(localstack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A LocalStack endpoint that serves SQS: the session's if it does, else a small one."""
    if localstack.health()["services"].get("sqs") in ("available", "running"):
        yield localstack.endpoint
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(localstack_support, "SERVICES", ("sqs",))
        own = start_localstack(tmp_path_factory.mktemp("localstack-sqs"), shim=False)
    try:
        yield own.endpoint
    finally:
        own.stop()


@pytest.fixture(scope="module")
def deployed(localstack: LocalStack, sqs_endpoint: str) -> Iterator[Deployed]:
    stacks = PlayedStacks()
    regional = deploy_region(localstack, stacks, REGION)
    stack = f"doctor-{uuid.uuid4().hex[:6]}"
    regional.stack_id = stack_id_in(REGION, stack)
    sqs = boto3.client(
        "sqs",
        region_name=REGION,
        endpoint_url=sqs_endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    queue_url = sqs.create_queue(QueueName=cfn_name(stack, f"{HANDLER}DeadLetterQueue9C1D2E3F"))[
        "QueueUrl"
    ]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    variables = handler_environment(TEST_HANDLER_ROLE_ID, regional.stack_id, "due-index")
    events_api = EventBridgeApi(REGION)
    try:
        with LambdaApi(localstack.endpoint, region=REGION) as lambda_api:
            found = Deployed(
                stack=stack,
                regional=regional,
                stacks=stacks,
                lambda_api=lambda_api,
                events_api=events_api,
                sqs=sqs,
                cloudwatch=localstack.client("cloudwatch", REGION),
                # CloudFormation cuts generated function names to 64 characters.
                function=cfn_name(stack, f"{HANDLER}Function3C5A9F1B")[:64],
                sweep_function=cfn_name(stack, f"{HANDLER}SweepFunction8D2E4B6C")[:64],
                variables=variables,
                queue_arn=queue_arn,
                queue_url=queue_url,
                sweep_rule=cfn_name(stack, f"{HANDLER}RenewalSweep4B5C6D7E"),
                expiry_rule=cfn_name(stack, f"{HANDLER}RenewalExpirationRecovery0A1B2C3D"),
                alarms={
                    kind: cfn_name(stack, f"{HANDLER}{kind}{suffix}")
                    for kind, suffix in (
                        (doctor.ERRORS_ALARM, "6A7B8C9D"),
                        (doctor.DEAD_LETTER_ALARM, "1E2F3A4B"),
                        (doctor.FLEET_ALARM, "5C6D7E8F"),
                    )
                },
                endpoints={
                    "AWS_ENDPOINT_URL": localstack.endpoint,
                    "AWS_ENDPOINT_URL_LAMBDA": lambda_api.endpoint,
                    # Named after the service id, EventBridge.
                    "AWS_ENDPOINT_URL_EVENTBRIDGE": events_api.endpoint,
                    "AWS_ENDPOINT_URL_SQS": sqs_endpoint,
                },
            )
            for name in (found.function, found.sweep_function):
                found.register(name)
            build_rules(found)
            build_alarms(found)
            deploy_key(regional, stacks, f"doctor-{uuid.uuid4().hex[:6]}")  # a healthy one
            yield found
    finally:
        events_api.close()


def build_rules(deployed: Deployed) -> None:
    events = deployed.events_api.client()
    sweep_arn = deployed.lambda_api.functions[deployed.sweep_function].arn
    events.put_rule(Name=deployed.sweep_rule, ScheduleExpression="rate(1 hour)", State="ENABLED")
    events.put_targets(
        Rule=deployed.sweep_rule,
        Targets=[
            {"Id": "Target0", "Arn": sweep_arn, "Input": json.dumps({contract.SWEEP_EVENT: {}})}
        ],
    )
    pattern = {"source": ["aws.kms"], "detail-type": [contract.KMS_EXPIRATION_EVENT]}
    events.put_rule(Name=deployed.expiry_rule, EventPattern=json.dumps(pattern), State="ENABLED")
    events.put_targets(Rule=deployed.expiry_rule, Targets=[{"Id": "Target0", "Arn": sweep_arn}])


def build_alarms(deployed: Deployed) -> None:
    """The handler's three alarms, each in OK. The emulator evaluates alarms on their period:
    missing data is not breaching here, so none of them changes on its own meanwhile."""
    cloudwatch = deployed.cloudwatch
    function_errors = [
        {
            "Id": id_,
            "MetricStat": {
                "Metric": {
                    "Namespace": "AWS/Lambda",
                    "MetricName": "Errors",
                    "Dimensions": [{"Name": "FunctionName", "Value": name}],
                },
                "Period": 300,
                "Stat": "Sum",
            },
            "ReturnData": False,
        }
        for id_, name in (("imports", deployed.function), ("sweeps", deployed.sweep_function))
    ]
    common = {
        "EvaluationPeriods": 1,
        "TreatMissingData": "notBreaching",
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "Threshold": 1,
    }
    cloudwatch.put_metric_alarm(
        AlarmName=deployed.alarms[doctor.ERRORS_ALARM],
        Metrics=[
            {"Id": "expr", "Expression": "FILL(imports, 0) + FILL(sweeps, 0)", "Label": "Errors"},
            *function_errors,
        ],
        **common,
    )
    cloudwatch.put_metric_alarm(
        AlarmName=deployed.alarms[doctor.DEAD_LETTER_ALARM],
        Namespace="AWS/SQS",
        MetricName="ApproximateNumberOfMessagesVisible",
        Dimensions=[{"Name": "QueueName", "Value": deployed.queue_arn.rsplit(":", 1)[1]}],
        Statistic="Maximum",
        Period=300,
        **common,
    )
    cloudwatch.put_metric_alarm(
        AlarmName=deployed.alarms[doctor.FLEET_ALARM],
        Namespace=contract.FLEET_METRIC_NAMESPACE,
        MetricName=contract.METRIC_MIN_SECONDS_TO_EXPIRY,
        Dimensions=[
            {
                "Name": contract.METRIC_DIMENSION,
                "Value": deployed.variables[contract.ENV_FLEET_NAME],
            }
        ],
        Statistic="Minimum",
        Period=7200,
        **{**common, "ComparisonOperator": "LessThanThreshold", "Threshold": 7 * 86400},
    )
    for name in deployed.alarms.values():
        cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="healthy")


@pytest.fixture
def clients(deployed: Deployed, monkeypatch: pytest.MonkeyPatch) -> Clients:
    """The doctor's clients, as the command line makes them from the environment."""
    for name, value in {
        **deployed.endpoints,
        "AWS_ACCESS_KEY_ID": "operator",
        "AWS_SECRET_ACCESS_KEY": "operator",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return Clients.of(boto3.session.Session(region_name=REGION))


def report_of(deployed: Deployed, clients: Clients) -> Report:
    (report,) = doctor.diagnose(clients, datetime.now(UTC), stack=deployed.stack)
    return report


def problems(deployed: Deployed, clients: Clients) -> list[Finding]:
    return [finding for finding in report_of(deployed, clients).findings if not finding.ok]


# --- Healthy


def test_a_healthy_deployment_has_no_finding_and_every_check_ran(
    deployed: Deployed, clients: Clients
) -> None:
    report = report_of(deployed, clients)
    assert report.ok, [f.summary() for f in report.findings if not f.ok]
    assert report.deployment is not None
    assert (report.deployment.function, report.deployment.sweep_function) == (
        deployed.function,
        deployed.sweep_function,
    )
    assert [f.check for f in report.findings] == [
        doctor.CHECK_FUNCTIONS,
        doctor.CHECK_FUNCTIONS,
        doctor.CHECK_VERSION,
        doctor.CHECK_SCHEDULE,
        doctor.CHECK_EXPIRY_RULE,
        doctor.CHECK_DEAD_LETTERS,
        doctor.CHECK_ALARMS,
        doctor.CHECK_KEYS,
    ]
    details = " ".join(f.detail for f in report.findings)
    assert deployed.sweep_rule in details
    assert deployed.expiry_rule in details
    assert all(name in details for name in deployed.alarms.values())
    assert "1 key served by this deployment" in details
    # Both rules were listed though EventBridge gives one name a page.
    assert deployed.events_api.requests.count("ListRuleNamesByTarget") >= 2
    # Every deployment of the Region: this module's only, and the JSON is JSON.
    everything = doctor.diagnose(clients, datetime.now(UTC))
    assert [r.stack for r in everything] == [deployed.stack]
    summary = json.loads(json.dumps(everything[0].summary()))
    assert summary["Ok"] is True
    assert summary["Deployment"]["SweepFunction"] == deployed.sweep_function
    assert {"Check", "Ok", "Detail", "Fix"} == set(summary["Findings"][0])


def test_a_stack_without_a_handler_is_a_finding(deployed: Deployed, clients: Clients) -> None:
    (report,) = doctor.diagnose(clients, datetime.now(UTC), stack="no-such-stack")
    assert report.deployment is None
    (finding,) = report.findings
    assert not finding.ok
    assert "no imported-key-cdk handler of stack no-such-stack in ca-central-1" in finding.detail
    assert deployed.stack in finding.detail  # the stacks that do have one
    assert finding.fix is not None
    assert "cdk deploy no-such-stack" in finding.fix


# --- Broken, one thing at a time


@contextmanager
def rule_disabled(deployed: Deployed, name: str) -> Iterator[None]:
    events = deployed.events_api.client()
    events.disable_rule(Name=name)
    try:
        yield
    finally:
        events.enable_rule(Name=name)


@pytest.mark.parametrize("check", [doctor.CHECK_SCHEDULE, doctor.CHECK_EXPIRY_RULE])
def test_a_disabled_rule_is_found_with_the_command_that_enables_it(
    deployed: Deployed, clients: Clients, check: str
) -> None:
    rule = deployed.sweep_rule if check == doctor.CHECK_SCHEDULE else deployed.expiry_rule
    with rule_disabled(deployed, rule):
        (finding,) = problems(deployed, clients)
    assert finding.check == check
    assert rule in finding.detail
    assert "DISABLED" in finding.detail
    assert finding.fix == f"aws events enable-rule --name {rule} --region {REGION}"


def test_a_failed_event_in_the_dead_letter_queue_is_found_with_how_to_read_it(
    deployed: Deployed, clients: Clients
) -> None:
    # What Lambda records for an asynchronous invocation that failed every retry.
    record = {
        "version": "1.0",
        "requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": 3},
        "requestPayload": {contract.SWEEP_EVENT: {}},
        "responsePayload": {"errorMessage": "ThrottlingException", "errorType": "ImportFailure"},
    }
    deployed.sqs.send_message(QueueUrl=deployed.queue_url, MessageBody=json.dumps(record))
    try:
        (finding,) = problems(deployed, clients)
    finally:
        for message in deployed.sqs.receive_message(
            QueueUrl=deployed.queue_url, MaxNumberOfMessages=10
        ).get("Messages", []):
            deployed.sqs.delete_message(
                QueueUrl=deployed.queue_url, ReceiptHandle=message["ReceiptHandle"]
            )
    assert finding.check == doctor.CHECK_DEAD_LETTERS
    assert finding.detail.startswith("1 failed event in the dead-letter queue")
    assert deployed.queue_arn.rsplit(":", 1)[1] in finding.detail
    assert finding.fix is not None
    assert f"aws sqs receive-message --queue-url {deployed.queue_url}" in finding.fix
    assert f"aws sqs purge-queue --queue-url {deployed.queue_url}" in finding.fix
    assert "imported-keys renew" in finding.fix
    assert problems(deployed, clients) == []


@pytest.mark.parametrize(
    ("kind", "advice"),
    [
        (doctor.ERRORS_ALARM, "aws logs tail"),
        (doctor.DEAD_LETTER_ALARM, "aws sqs receive-message --queue-url"),
        (doctor.FLEET_ALARM, "imported-keys renew --due"),
    ],
)
def test_an_alarm_in_alarm_is_found_with_its_reason(
    deployed: Deployed, clients: Clients, kind: str, advice: str
) -> None:
    name = deployed.alarms[kind]
    reason = f"Threshold Crossed: 1 datapoint [{uuid.uuid4().hex}] breached the threshold"
    deployed.cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason=reason)
    try:
        (finding,) = problems(deployed, clients)
    finally:
        deployed.cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="fixed")
    assert finding.check == doctor.CHECK_ALARMS
    assert finding.detail.startswith(f"alarm {name} is in ALARM since ")
    assert finding.detail.endswith(reason)
    assert finding.fix is not None
    assert advice in finding.fix
    if kind == doctor.ERRORS_ALARM:  # the function's own log group, from its configuration
        assert f"aws logs tail {deployed.stack}-{HANDLER}Logs" in finding.fix


def test_a_missing_sweep_function_is_found_and_its_checks_left_out(
    deployed: Deployed, clients: Clients
) -> None:
    deployed.lambda_api.remove(deployed.sweep_function)
    try:
        report = report_of(deployed, clients)
    finally:
        deployed.register(deployed.sweep_function)
    (finding,) = [f for f in report.findings if not f.ok]
    assert finding.check == doctor.CHECK_FUNCTIONS
    assert finding.detail.startswith(f"no sweep function in stack {deployed.stack}: only ")
    assert deployed.function in finding.detail
    assert finding.fix is not None
    assert f"cdk deploy {deployed.stack}" in finding.fix
    # No rule can be looked up by a target that is gone; the queue is read through the other.
    checks = [f.check for f in report.findings]
    assert doctor.CHECK_SCHEDULE not in checks
    assert doctor.CHECK_DEAD_LETTERS in checks


def test_a_function_whose_last_update_failed_is_found(deployed: Deployed, clients: Clients) -> None:
    function = deployed.lambda_api.functions[deployed.function]
    function.last_update_status = "Failed"
    function.last_update_status_reason_code = "InvalidRuntime"
    function.last_update_status_reason = "The runtime python3.9 is no longer supported."
    try:
        (finding,) = problems(deployed, clients)
    finally:
        function.last_update_status = "Successful"
        function.last_update_status_reason_code = function.last_update_status_reason = None
    assert finding.check == doctor.CHECK_FUNCTIONS
    assert finding.detail == (
        f"handler function {deployed.function}: its last update is Failed (InvalidRuntime: "
        "The runtime python3.9 is no longer supported.)"
    )
    assert finding.fix is not None
    assert f"cdk deploy {deployed.stack}" in finding.fix


def test_a_revoked_key_is_found_with_how_to_resume_it(deployed: Deployed, clients: Clients) -> None:
    alias = f"revoked-{uuid.uuid4().hex[:6]}"
    kms = deployed.regional.kms
    key_id = deploy_key(deployed.regional, deployed.stacks, alias)
    assert problems(deployed, clients) == []
    kms.delete_imported_key_material(KeyId=key_id)
    try:
        (finding,) = problems(deployed, clients)
    finally:
        # No longer this deployment's: the other tests see one healthy key again.
        kms.untag_resource(KeyId=key_id, TagKeys=[contract.TAG_HANDLER])
    assert finding.check == doctor.CHECK_KEYS
    assert finding.detail == (
        f"key {alias} ({key_id}): revoked (material deleted before its ValidTo)"
    )
    assert finding.fix is not None
    assert f"imported-keys resume {alias}" in finding.fix
    assert problems(deployed, clients) == []


# --- The command


def operator_env(deployed: Deployed) -> dict[str, str | None]:
    """The environment an operator runs imported-keys in: this Region, every endpoint, an
    80-column terminal."""
    return {
        **deployed.endpoints,
        "AWS_ACCESS_KEY_ID": "operator",
        "AWS_SECRET_ACCESS_KEY": "operator",
        "AWS_REGION": REGION,
        "AWS_PROFILE": None,
        "COLUMNS": "80",
    }


def test_the_doctor_command_at_80_columns_and_as_json(deployed: Deployed) -> None:
    """``imported-keys doctor`` as an operator runs it: exit 0 when all is well; with the
    schedule disabled, exit 1 and the fix, every line within 80 columns."""
    from click.testing import CliRunner

    from imported_key_cli.main import cli

    env = operator_env(deployed)
    healthy = CliRunner().invoke(cli, ["doctor", "--stack", deployed.stack], env=env)
    assert healthy.exit_code == 0, healthy.output
    assert f"{deployed.stack}: ok" in healthy.output
    with rule_disabled(deployed, deployed.sweep_rule):
        shown = CliRunner().invoke(cli, ["doctor", "--stack", deployed.stack], env=env)
        as_json = CliRunner().invoke(cli, ["--json", "doctor", "--stack", deployed.stack], env=env)
    assert shown.exit_code == 1
    assert f"{deployed.stack}: 1 problem" in shown.output
    assert "fix: aws events enable-rule" in shown.output
    assert all(len(line) <= 80 for line in shown.output.splitlines()), shown.output
    (report,) = json.loads(as_json.output)
    failed = [f for f in report["Findings"] if not f["Ok"]]
    assert [f["Check"] for f in failed] == [doctor.CHECK_SCHEDULE]


def test_status_shows_the_alarms_of_the_keys_handler(deployed: Deployed) -> None:
    from click.testing import CliRunner

    from imported_key_cli.main import cli

    env = operator_env(deployed)
    key_id = deploy_key(deployed.regional, deployed.stacks, f"status-{uuid.uuid4().hex[:6]}")
    errors = deployed.alarms[doctor.ERRORS_ALARM]
    try:
        calm = CliRunner().invoke(cli, ["--json", "status", key_id], env=env)
        deployed.cloudwatch.set_alarm_state(
            AlarmName=errors, StateValue="ALARM", StateReason="a renewal failed"
        )
        firing = CliRunner().invoke(cli, ["status", key_id], env=env)
    finally:
        deployed.cloudwatch.set_alarm_state(AlarmName=errors, StateValue="OK", StateReason="ok")
        # No longer this deployment's: the other tests see one healthy key again.
        deployed.regional.kms.untag_resource(KeyId=key_id, TagKeys=[contract.TAG_HANDLER])
    assert calm.exit_code == 0, calm.output
    assert [a["Ok"] for a in json.loads(calm.output)["Alarms"]] == [True]
    assert firing.exit_code == 1
    assert "is in ALARM" in " ".join(firing.output.split())
    assert all(len(line) <= 80 for line in firing.output.splitlines()), firing.output


def test_a_handler_deployed_by_another_version_is_found(
    deployed: Deployed, clients: Clients
) -> None:
    sweep = deployed.lambda_api.functions[deployed.sweep_function]
    recorded = sweep.variables[contract.ENV_LIBRARY_VERSION]
    sweep.variables[contract.ENV_LIBRARY_VERSION] = "0.0.1"
    try:
        (finding,) = problems(deployed, clients)
    finally:
        sweep.variables[contract.ENV_LIBRARY_VERSION] = recorded
    assert finding.check == doctor.CHECK_VERSION
    assert "deployed by imported-key-cdk 0.0.1" in finding.detail
    assert finding.fix is not None
    assert f"cdk deploy {deployed.stack}" in finding.fix
