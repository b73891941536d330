"""``imported_key_cli.doctor`` without an emulator: the Lambda API stand-in's reads it relies
on, how deployments are told apart, and what the doctor says when a read is refused or a part
is not where the construct puts it (EventBridge, SQS and CloudWatch answered by small fakes
here; tests/e2e/test_cli_doctor_e2e.py has the real ones)."""

import dataclasses
import json
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from botocore.exceptions import ClientError
from support.events import stack_id_for
from support.lambda_api import LambdaApi, handler_environment

from imported_key_cli import doctor
from imported_key_cli.doctor import Clients, Deployment, Finding
from imported_key_cli.inventory import ManagedKey
from imported_key_handler import contract

ROLE_ID = "AROADEMOHANDLER"
DEMO = stack_id_for("demo")
OTHER = stack_id_for("other")
REGION = "us-east-1"
QUEUE_ARN = "arn:aws:sqs:us-east-1:000000000000:demo-ImportedKeyHandlerDeadLetterQueueA-1"
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def refused(operation: str, code: str = "AccessDeniedException") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "not authorized"}}, operation)


def raising(error: ClientError) -> Callable[..., Any]:
    def call(**request: Any) -> Any:
        raise error

    return call


class FakeEvents:
    def __init__(self, rules: list[dict[str, Any]] | None = None) -> None:
        self.rules = rules or []

    def list_rule_names_by_target(self, **request: Any) -> Mapping[str, Any]:
        return {"RuleNames": [rule["Name"] for rule in self.rules]}

    def describe_rule(self, *, Name: str) -> Mapping[str, Any]:
        (rule,) = [rule for rule in self.rules if rule["Name"] == Name]
        return rule


class FakeSqs:
    def __init__(self, messages: int = 0) -> None:
        self.messages = messages

    def get_queue_url(self, **request: Any) -> Mapping[str, Any]:
        return {"QueueUrl": f"https://sqs.{REGION}.amazonaws.com/0/{request['QueueName']}"}

    def get_queue_attributes(self, **request: Any) -> Mapping[str, Any]:
        return {
            "Attributes": {
                "ApproximateNumberOfMessages": str(self.messages),
                "ApproximateNumberOfMessagesNotVisible": "0",
            }
        }


class FakeCloudWatch:
    def __init__(self, by_prefix: list[dict[str, Any]], by_metric: list[dict[str, Any]]) -> None:
        self.by_prefix, self.by_metric = by_prefix, by_metric
        self.metric_requests: list[dict[str, Any]] = []

    def describe_alarms(self, **request: Any) -> Mapping[str, Any]:
        prefix = request["AlarmNamePrefix"]
        return {"MetricAlarms": [a for a in self.by_prefix if a["AlarmName"].startswith(prefix)]}

    def describe_alarms_for_metric(self, **request: Any) -> Mapping[str, Any]:
        self.metric_requests.append(request)
        return {"MetricAlarms": self.by_metric}


def alarm(name: str, state: str = "OK", reason: str = "fine") -> dict[str, Any]:
    return {"AlarmName": name, "StateValue": state, "StateReason": reason}


HEALTHY_ALARMS = [
    alarm(f"demo-ImportedKeyHandler{kind}1A2B3C4D-XYZ")
    for kind in (doctor.ERRORS_ALARM, doctor.DEAD_LETTER_ALARM, doctor.FLEET_ALARM)
]


def rules() -> list[dict[str, Any]]:
    return [
        {"Name": "demo-Sweep", "State": "ENABLED", "ScheduleExpression": "rate(1 hour)"},
        {
            "Name": "demo-Expiry",
            "State": "ENABLED",
            "EventPattern": json.dumps(
                {"source": ["aws.kms"], "detail-type": [contract.KMS_EXPIRATION_EVENT]}
            ),
        },
    ]


def managed_key(
    key_id: str = "1234abcd-12ab-34cd-56ef-1234567890ab",
    *,
    role_id: str = ROLE_ID,
    state: str = "Enabled",
    expires: bool = True,
) -> ManagedKey:
    return ManagedKey(
        key_id=key_id,
        arn=f"arn:aws:kms:{REGION}:000000000000:key/{key_id}",
        region=REGION,
        aliases=("alias/payments",),
        spec=contract.SYMMETRIC_DEFAULT,
        usage="ENCRYPT_DECRYPT",
        state=state,
        current_material="m",
        expiration_model=contract.KEY_MATERIAL_EXPIRES
        if expires
        else contract.KEY_MATERIAL_DOES_NOT_EXPIRE,
        valid_to=NOW + timedelta(days=300) if expires else None,
        renew_before=timedelta(days=10) if expires else None,
        multi_region=None,
        replica_regions=(),
        primary_region=None,
        tags={contract.TAG_HANDLER: role_id, contract.TAG_STACK: DEMO},
    )


@pytest.fixture
def api() -> Iterator[LambdaApi]:
    with LambdaApi(None, page_size=1) as stand_in:
        yield stand_in


def lambda_client(api: LambdaApi) -> Any:
    return api.client()


def register(
    api: LambdaApi,
    prefix: str = "demo",
    *,
    stack_id: str = DEMO,
    role_id: str = ROLE_ID,
    on_failure: str | None = QUEUE_ARN,
) -> None:
    variables = handler_environment(role_id, stack_id, "due-index")
    for name, timeout in (
        (f"{prefix}-ImportedKeyHandlerFunction1A2B-X", 120),
        (f"{prefix}-ImportedKeyHandlerSweepF", 900),  # cut short, as CloudFormation may
    ):
        api.register(name, timeout_s=timeout, variables=variables, on_failure=on_failure)


def clients_for(
    api: LambdaApi,
    *,
    events: Any = None,
    sqs: Any = None,
    cloudwatch: Any = None,
) -> Clients:
    return Clients(
        lambda_=lambda_client(api),
        events=events or FakeEvents(rules()),
        sqs=sqs or FakeSqs(),
        cloudwatch=cast(Any, cloudwatch or FakeCloudWatch(HEALTHY_ALARMS, [])),
        kms=cast(Any, None),  # the keys are given
        region=REGION,
    )


def the_deployment(api: LambdaApi) -> Deployment:
    (deployment,) = doctor.deployments(lambda_client(api), stack="demo")
    return deployment


def not_ok(findings: list[Finding]) -> list[Finding]:
    return [finding for finding in findings if not finding.ok]


# --- The stand-in's reads


def test_the_stand_in_answers_the_two_reads_as_lambda_does(api: LambdaApi) -> None:
    register(api)
    client = lambda_client(api)
    function = api.functions["demo-ImportedKeyHandlerSweepF"]
    function.state, function.state_reason_code = "Failed", "InvalidZipFileException"
    configuration = client.get_function_configuration(FunctionName=function.name)
    assert (configuration["State"], configuration["StateReasonCode"]) == (
        "Failed",
        "InvalidZipFileException",
    )
    assert configuration["LastUpdateStatus"] == "Successful"
    assert configuration["LoggingConfig"]["LogGroup"] == f"/aws/lambda/{function.name}"
    # ListFunctions shows what it showed before, whatever the state.
    listed = client.list_functions()["Functions"][0]
    assert listed["State"] == "Active"
    assert "LastUpdateStatus" not in listed
    invoke_config = client.get_function_event_invoke_config(FunctionName=function.name)
    assert invoke_config["DestinationConfig"]["OnFailure"]["Destination"] == QUEUE_ARN
    assert invoke_config["FunctionArn"] == f"{function.arn}:$LATEST"
    assert isinstance(invoke_config["LastModified"], datetime)
    assert api.requests == [
        "GetFunctionConfiguration",
        "ListFunctions",
        "GetFunctionEventInvokeConfig",
    ]


def test_the_stand_in_refuses_what_lambda_would(api: LambdaApi) -> None:
    api.register("plain", timeout_s=3, variables={})
    client = lambda_client(api)
    with pytest.raises(ClientError) as no_config:
        client.get_function_event_invoke_config(FunctionName="plain")
    assert no_config.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert "doesn't have an EventInvokeConfig" in str(no_config.value)
    api.remove("plain")
    for read in (client.get_function_configuration, client.get_function_event_invoke_config):
        with pytest.raises(ClientError) as gone:
            read(FunctionName="plain")
        assert gone.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError):
        client.get_function_configuration(FunctionName="plain", Qualifier="1")


# --- Deployments


def test_deployments_are_told_apart_by_stack_and_role_and_their_functions_by_timeout(
    api: LambdaApi,
) -> None:
    register(api)
    register(api, "other", stack_id=OTHER)
    # A second handler of the demo stack (another architecture): its own role.
    register(api, "demo-arm", role_id="AROASECONDHANDLER")
    api.register("billing", timeout_s=900, variables={"TABLE": "billing"})
    found = doctor.deployments(lambda_client(api))
    assert [(d.stack, d.role_id) for d in found] == [
        ("demo", ROLE_ID),
        ("demo", "AROASECONDHANDLER"),
        ("other", ROLE_ID),
    ]
    demo = found[0]
    assert demo.function == "demo-ImportedKeyHandlerFunction1A2B-X"
    assert demo.sweep_function == "demo-ImportedKeyHandlerSweepF"
    assert demo.others == ()
    assert [d.stack for d in doctor.deployments(lambda_client(api), stack="other")] == ["other"]
    assert doctor.deployments(lambda_client(api), stack="nope") == []
    # Each key goes to the deployment its tags name.
    assert demo.serves(managed_key())
    assert not found[1].serves(managed_key())


def test_a_copy_of_a_function_is_a_finding(api: LambdaApi) -> None:
    register(api)
    api.register(
        "impostor",
        timeout_s=900,
        variables=handler_environment(ROLE_ID, DEMO, "due-index"),
        role="arn:aws:iam::000000000000:role/impostor",
        on_failure=QUEUE_ARN,
    )
    deployment = the_deployment(api)
    assert deployment.others == ("impostor",)
    (finding,) = not_ok(doctor.check(deployment, clients_for(api), NOW, [managed_key()]))
    assert finding.check == doctor.CHECK_FUNCTIONS
    assert "3 functions carry the environment" in finding.detail
    assert "under 2 roles" in finding.detail
    assert finding.fix is not None
    assert "aws cloudformation describe-stack-resources --stack-name demo" in finding.fix


# --- Checks with fakes


def test_a_healthy_deployment_with_fakes_has_no_finding(api: LambdaApi) -> None:
    register(api)
    cloudwatch = FakeCloudWatch(HEALTHY_ALARMS, [])
    findings = doctor.check(
        the_deployment(api), clients_for(api, cloudwatch=cloudwatch), NOW, [managed_key()]
    )
    assert not_ok(findings) == []
    # The fleet alarm is also looked for by its metric and the fleet's name.
    assert cloudwatch.metric_requests == [
        {
            "Namespace": contract.FLEET_METRIC_NAMESPACE,
            "MetricName": contract.METRIC_MIN_SECONDS_TO_EXPIRY,
            "Dimensions": [{"Name": contract.METRIC_DIMENSION, "Value": "demo/ImportedKeyHandler"}],
        }
    ]


def test_every_refused_read_is_a_finding_naming_its_permission(api: LambdaApi) -> None:
    register(api)
    events, sqs = FakeEvents(), FakeSqs()
    events.list_rule_names_by_target = raising(refused("ListRuleNamesByTarget"))  # type: ignore[method-assign]
    sqs.get_queue_url = raising(refused("GetQueueUrl", "AccessDenied"))  # type: ignore[method-assign]
    cloudwatch = FakeCloudWatch([], [])
    cloudwatch.describe_alarms = raising(refused("DescribeAlarms", "AccessDenied"))  # type: ignore[method-assign]
    clients = clients_for(api, events=events, sqs=sqs, cloudwatch=cloudwatch)
    findings = doctor.check(the_deployment(api), clients, NOW, [managed_key()])
    problems = {f.check: f for f in not_ok(findings)}
    assert set(problems) == {
        doctor.CHECK_SCHEDULE,
        doctor.CHECK_EXPIRY_RULE,
        doctor.CHECK_DEAD_LETTERS,
        doctor.CHECK_ALARMS,
    }
    for check, permission in (
        (doctor.CHECK_SCHEDULE, "events:ListRuleNamesByTarget"),
        (doctor.CHECK_DEAD_LETTERS, "sqs:GetQueueUrl"),
        (doctor.CHECK_ALARMS, "cloudwatch:DescribeAlarms"),
    ):
        assert f"{permission} was refused" in problems[check].detail
        assert problems[check].fix == (
            f"Allow {permission} to the identity running imported-keys (doctor only reads), "
            "then run doctor again."
        )


def test_refused_listings_of_functions_and_keys_are_findings(api: LambdaApi) -> None:
    register(api)

    class NoKeys:
        list_aliases = list_keys = staticmethod(raising(refused("ListAliases")))

    clients = dataclasses.replace(clients_for(api), kms=cast(Any, NoKeys()))
    (report,) = doctor.diagnose(clients, NOW)
    (finding,) = not_ok(list(report.findings))
    assert (finding.check, finding.detail) == (
        doctor.CHECK_KEYS,
        "cannot check the keys it serves: kms:ListAliases was refused (AccessDeniedException)",
    )
    # Without the keys, whether rules are needed is not known: they are there, all is well.
    assert {f.check for f in report.findings if f.ok} >= {doctor.CHECK_SCHEDULE, "alarms"}

    class NoListing:
        def get_paginator(self, name: str) -> Any:
            class Pages:
                def paginate(self) -> Any:
                    raise refused("ListFunctions")

            return Pages()

    blind = dataclasses.replace(clients, lambda_=cast(Any, NoListing()))
    (report,) = doctor.diagnose(blind, NOW, stack="demo")
    assert report.deployment is None
    (finding,) = report.findings
    assert "lambda:ListFunctions was refused" in finding.detail


def test_the_fleet_alarm_is_found_by_its_metric_whatever_its_name(api: LambdaApi) -> None:
    register(api)
    renamed = alarm("fleet-expiry", "ALARM", "Threshold Crossed: no datapoints were received")
    cloudwatch = FakeCloudWatch(HEALTHY_ALARMS[:2], [renamed])
    findings = doctor.check(
        the_deployment(api), clients_for(api, cloudwatch=cloudwatch), NOW, [managed_key()]
    )
    (finding,) = not_ok(findings)
    assert finding.detail == (
        "alarm fleet-expiry is in ALARM: Threshold Crossed: no datapoints were received"
    )
    assert finding.fix is not None
    assert "imported-keys ls --stack demo --problems" in finding.fix


def test_without_expiring_keys_no_rule_or_fleet_alarm_is_needed_but_the_others_are(
    api: LambdaApi,
) -> None:
    register(api)
    clients = clients_for(api, events=FakeEvents(), cloudwatch=FakeCloudWatch([], []))
    findings = doctor.check(the_deployment(api), clients, NOW, [managed_key(expires=False)])
    by_check = {f.check: f for f in findings if f.check in (doctor.CHECK_SCHEDULE,)}
    assert by_check[doctor.CHECK_SCHEDULE].ok
    assert "no key of this deployment has material that expires" in (
        by_check[doctor.CHECK_SCHEDULE].detail
    )
    missing = [f.detail.split(" of the")[0] for f in not_ok(findings)]
    assert missing == [f"no {doctor.ERRORS_ALARM}", f"no {doctor.DEAD_LETTER_ALARM}"]
    # With a key that expires, the rules and the fleet alarm are missing too.
    findings = doctor.check(the_deployment(api), clients, NOW, [managed_key()])
    assert [f.check for f in not_ok(findings)] == [
        doctor.CHECK_SCHEDULE,
        doctor.CHECK_EXPIRY_RULE,
        doctor.CHECK_ALARMS,
        doctor.CHECK_ALARMS,
        doctor.CHECK_ALARMS,
    ]
    assert all(f.fix and "cdk deploy demo" in f.fix for f in not_ok(findings))


@pytest.mark.parametrize(
    ("state", "fix"),
    [
        ("Failed", "cdk deploy demo"),
        ("Inactive", "aws lambda invoke --function-name demo-ImportedKeyHandlerSweepF"),
        ("Pending", "run doctor again in a minute"),
    ],
)
def test_a_function_that_is_not_active_is_a_finding(api: LambdaApi, state: str, fix: str) -> None:
    register(api)
    function = api.functions["demo-ImportedKeyHandlerSweepF"]
    function.state, function.state_reason = state, "The function could not be set up."
    findings = doctor.check(the_deployment(api), clients_for(api), NOW, [managed_key()])
    (finding,) = not_ok(findings)
    assert finding.detail == (
        f"sweep function {function.name} is {state} (The function could not be set up.)"
    )
    assert finding.fix is not None
    assert fix in finding.fix


def test_no_on_failure_destination_another_one_and_a_gone_queue_are_findings(
    api: LambdaApi,
) -> None:
    register(api, on_failure=None)
    (finding,) = not_ok(doctor.check(the_deployment(api), clients_for(api), NOW, [managed_key()]))
    assert finding.check == doctor.CHECK_DEAD_LETTERS
    assert "keeps them nowhere" in finding.detail

    api.functions.clear()
    topic = "arn:aws:sns:us-east-1:000000000000:renewals"
    register(api, on_failure=topic)
    (finding,) = not_ok(doctor.check(the_deployment(api), clients_for(api), NOW, [managed_key()]))
    assert f"sends them to {topic}, not to a queue" in finding.detail

    api.functions.clear()
    register(api)
    sqs = FakeSqs()
    sqs.get_queue_url = raising(refused("GetQueueUrl", "AWS.SimpleQueueService.NonExistentQueue"))  # type: ignore[method-assign]
    findings = doctor.check(the_deployment(api), clients_for(api, sqs=sqs), NOW, [managed_key()])
    (finding,) = not_ok(findings)
    assert finding.detail.startswith(f"the dead-letter queue {QUEUE_ARN} does not exist")


@pytest.mark.parametrize(
    ("state", "says", "fix"),
    [
        ("PendingDeletion", "pending deletion", "aws kms cancel-key-deletion --key-id"),
        ("PendingImport", "material missing", "imported-keys renew payments"),
        ("Unavailable", "key is Unavailable", "aws kms describe-key --key-id"),
    ],
)
def test_each_key_in_trouble_is_a_finding_of_its_own(
    api: LambdaApi, state: str, says: str, fix: str
) -> None:
    register(api)
    keys = [
        managed_key("1" * 32, state=state),
        managed_key("2" * 32),
        managed_key("3" * 32, role_id="AROAANOTHERHANDLER", state=state),  # not this one's
    ]
    (finding,) = not_ok(doctor.check(the_deployment(api), clients_for(api), NOW, keys))
    assert finding.detail.startswith(f"key payments ({'1' * 32}): {says}")
    assert finding.fix is not None
    assert fix in finding.fix


def test_findings_and_reports_as_json(api: LambdaApi) -> None:
    finding = Finding(doctor.CHECK_KEYS, False, "detail", "fix")
    assert finding.summary() == {"Check": "keys", "Ok": False, "Detail": "detail", "Fix": "fix"}
    report = doctor.Report("demo", None, (finding, Finding(doctor.CHECK_ALARMS, True, "fine")))
    assert not report.ok
    assert json.loads(json.dumps(report.summary()))["Findings"][1]["Fix"] is None
