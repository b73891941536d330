"""The one import handler per stack (per runtime and architecture) that every ImportedKey shares:
its function, role, dead-letter queue and alarms, and the permissions it gets on each key."""

import importlib.resources
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from imported_key_handler import contract

from . import _nag, _perms
from .bundling import (
    ASSET_EXCLUDES,
    HANDLER_PACKAGE,
    REQUIREMENTS_FILE,
    LocalPipBundling,
    recipe_digest,
)

# Newest first. The bundled cryptography carries a cffi built for one exact Python version, so
# the bundle is built per runtime.
SUPPORTED_RUNTIMES = {
    lambda_.Runtime.PYTHON_3_13.name: "3.13",
    lambda_.Runtime.PYTHON_3_14.name: "3.14",
}
SUPPORTED_ARCHITECTURES = {
    lambda_.Architecture.ARM_64.name: "arm64",
    lambda_.Architecture.X86_64.name: "x86_64",
}
# Leaves room for botocore's bounded retries and for the FAILED answer before Lambda stops
# the function (see imported_key_handler.response).
HANDLER_TIMEOUT = cdk.Duration.minutes(2)


def handler_source_dir() -> Path:
    """The handler package on disk, from a source checkout or an installed wheel."""
    return Path(str(importlib.resources.files(HANDLER_PACKAGE)))


def handler_code(runtime: lambda_.Runtime, architecture: lambda_.Architecture) -> lambda_.Code:
    python_version = SUPPORTED_RUNTIMES[runtime.name]
    arch = SUPPORTED_ARCHITECTURES[architecture.name]
    source = handler_source_dir()
    return lambda_.Code.from_asset(
        str(source),
        exclude=ASSET_EXCLUDES,
        # The source hash covers the handler (its hash-pinned requirements.txt included) and the
        # bundling options, so the target platform and the rest of the recipe are part of them:
        # otherwise an arm64 and an x86_64 bundle of the same folder share one hash, and a
        # change to what bundling keeps would not reach the hash. The wheels' bytes are pinned
        # by requirements.txt; the cached install is checked against its manifest when copied.
        asset_hash_type=cdk.AssetHashType.SOURCE,
        bundling=cdk.BundlingOptions(
            image=runtime.bundling_image,
            command=["local-pip-bundling"],
            environment={
                "TARGET_PYTHON": python_version,
                "TARGET_ARCHITECTURE": arch,
                "BUNDLE_RECIPE": recipe_digest(source / REQUIREMENTS_FILE, python_version, arch),
            },
            # jsii's stub spells the options out as keywords; at run time it passes one
            # positional BundlingOptions, which is what LocalPipBundling takes.
            local=cast(cdk.ILocalBundling, LocalPipBundling(source, python_version, arch)),
        ),
    )


def _principal_arn(principal: iam.IPrincipal) -> str:
    """The one IAM ARN a break-glass principal stands for (checked by _props first)."""
    arns = principal.policy_fragment.principal_json.get("AWS", [])
    return str(arns[0])


class ImportHandler(Construct):
    """The import handler one stack shares between its ImportedKeys (per runtime/architecture).

    Holds the function, the encrypted dead-letter queue that receives renewal events which still
    fail after retries, and the alarms on the function's errors and on that queue.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        runtime: lambda_.Runtime,
        architecture: lambda_.Architecture,
        code_signing_config: lambda_.ICodeSigningConfig | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.code_signing_config = code_signing_config
        """The code signing configuration Lambda checks the function's code and layers against."""
        log_group = logs.LogGroup(
            self,
            "Logs",
            retention=logs.RetentionDays.ONE_YEAR,
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        # Its own role, without AWSLambdaBasicExecutionRole: logs go to this one log group only.
        role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="imported-key-cdk handler: imports key material into its keys only",
        )
        log_group.grant_write(role)
        self.role = role
        """The handler's role: the only principal a restricted key lets import."""
        self.function = lambda_.Function(
            self,
            "Function",
            role=role,
            description="Imports key material from Secrets Manager into EXTERNAL KMS keys",
            runtime=runtime,
            architecture=architecture,
            handler=contract.HANDLER_ENTRY,
            code=handler_code(runtime, architecture),
            timeout=HANDLER_TIMEOUT,
            memory_size=256,
            logging_format=lambda_.LoggingFormat.JSON,
            application_log_level_v2=lambda_.ApplicationLogLevel.INFO,
            system_log_level_v2=lambda_.SystemLogLevel.WARN,
            log_group=log_group,
            code_signing_config=code_signing_config,
            # The handler serves the keys whose binding tag names this RoleId (see
            # imported_key_handler.binding); a re-created role of the same name has another.
            environment={contract.ENV_HANDLER_ROLE_ID: role.role_id},
        )
        """The handler function."""
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            # SSE-SQS: EventBridge cannot deliver to a queue under the AWS managed KMS key.
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=cdk.Duration.days(14),
        )
        """Renewal events that failed every retry (with their error, from Lambda)."""
        # Renewal events arrive asynchronously: Lambda retries a failed one twice with backoff,
        # then records it here.
        self.function.configure_async_invoke(
            retry_attempts=2,
            max_event_age=cdk.Duration.hours(6),
            on_failure=destinations.SqsDestination(self.dead_letter_queue),
        )
        self.errors_alarm = cloudwatch.Alarm(
            self,
            "ErrorsAlarm",
            alarm_description="An ImportedKey renewal or import failed: read the handler's log.",
            metric=self.function.metric_errors(period=cdk.Duration.minutes(5), statistic="Sum"),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        """In alarm when the handler fails (an import or a renewal)."""
        self.dead_letter_alarm = cloudwatch.Alarm(
            self,
            "DeadLetterAlarm",
            alarm_description=(
                "A renewal failed after every retry; its event is in the dead-letter queue. "
                "Until it succeeds the key's material is not renewed."
            ),
            metric=self.dead_letter_queue.metric_approximate_number_of_messages_visible(
                period=cdk.Duration.minutes(5), statistic="Maximum"
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        """In alarm while the dead-letter queue holds a failed renewal."""
        self._acknowledge_findings(role, log_group)
        self._topic_arns: set[str] = set()
        self._shared_statements: dict[str, iam.PolicyStatement] = {}

    def _acknowledge_findings(self, role: iam.Role, log_group: logs.LogGroup) -> None:
        _nag.acknowledge(
            self.function,
            {
                "AwsSolutions-L1": "Python 3.13 is the default on purpose: the newest runtime "
                "whose bundle the tests can load; handler_runtime selects 3.14.",
                "NIST.800.53.R5-LambdaInsideVPC": "The handler only calls the KMS and Secrets "
                "Manager APIs over TLS; it reaches no resource in a VPC.",
                "NIST.800.53.R5-LambdaDLQ": "Failed asynchronous invocations go to the "
                "encrypted dead-letter queue through the on-failure destination.",
                "NIST.800.53.R5-LambdaConcurrency": "Reserved concurrency would take from the "
                "account's pool and fail deployments in small accounts; throttling is retried.",
            },
        )
        policy = role.node.try_find_child("DefaultPolicy")
        if policy is not None:
            _nag.acknowledge(
                policy,
                {
                    "NIST.800.53.R5-IAMNoInlinePolicy": "The policy names exact key, secret, "
                    "queue and log group ARNs; a managed policy would be no narrower.",
                },
            )
        _nag.acknowledge(
            log_group,
            {
                "NIST.800.53.R5-CloudWatchLogGroupEncrypted": "The handler never logs key "
                "material; CloudWatch Logs encrypts the log at rest.",
            },
        )
        _nag.acknowledge(
            self.dead_letter_queue,
            {"AwsSolutions-SQS3": "This queue is itself the dead-letter queue."},
        )
        for alarm in (self.errors_alarm, self.dead_letter_alarm):
            _nag.acknowledge(alarm, {"NIST.800.53.R5-CloudWatchAlarmAction": _nag.NO_ALARM_ACTION})

    def notify(self, topic: sns.ITopic) -> None:
        """Send both alarms to ``topic`` (once, however many keys name it)."""
        # By ARN: the same topic may reach two keys as two imported ITopic objects.
        if topic.topic_arn in self._topic_arns:
            return
        self._topic_arns.add(topic.topic_arn)
        for alarm in (self.errors_alarm, self.dead_letter_alarm):
            alarm.add_alarm_action(cloudwatch_actions.SnsAction(topic))

    def grant_import(
        self,
        key: kms.Key,
        secret: secretsmanager.ISecret,
        *,
        spec: contract.KeySpec,
        wrapping_algorithm: str,
        wrapping_key_spec: str,
        expiration_model: str,
        revoke: bool,
        rotate: bool,
        exclusive: bool,
        through_key_policy: bool,
        break_glass: Sequence[iam.IPrincipal] = (),
    ) -> None:
        """Let this handler import into ``key`` only, from ``secret`` only, with exactly the
        declared wrapping and expiration model.

        ``exclusive`` denies the import actions to every other principal in the key policy.
        ``through_key_policy`` also grants the key actions in the key policy, for a custom key
        policy that does not let the account's IAM policies decide. ``break_glass`` principals
        may revoke or disable the key, exclusive or not.
        """
        key_arn = key.key_arn
        key_statements = [
            iam.PolicyStatement(actions=_perms.HANDLER_KEY_READ_ACTIONS, resources=[key_arn]),
            # The handler's record of the ValidTo it imported, and no other tag: the binding's
            # tags are written by the deployment alone.
            iam.PolicyStatement(
                actions=_perms.HANDLER_RECORD_ACTIONS,
                resources=[key_arn],
                conditions={
                    "ForAllValues:StringEquals": {"aws:TagKeys": [contract.TAG_VALID_TO]},
                    "Null": {"aws:TagKeys": "false"},
                },
            ),
            iam.PolicyStatement(
                actions=_perms.HANDLER_GET_PARAMETERS_ACTIONS,
                resources=[key_arn],
                conditions={
                    "StringEquals": {
                        "kms:WrappingAlgorithm": wrapping_algorithm,
                        "kms:WrappingKeySpec": wrapping_key_spec,
                    }
                },
            ),
            iam.PolicyStatement(
                actions=_perms.HANDLER_IMPORT_ACTIONS,
                resources=[key_arn],
                conditions={"StringEquals": {"kms:ExpirationModel": expiration_model}},
            ),
        ]
        # Proof of the import: the public key of a private key, a MAC of an HMAC key.
        if spec.family in (contract.RSA, contract.ECC):
            key_statements.append(
                iam.PolicyStatement(
                    actions=_perms.HANDLER_VERIFY_PUBLIC_KEY_ACTIONS, resources=[key_arn]
                )
            )
        elif spec.family == contract.HMAC:
            key_statements.append(
                iam.PolicyStatement(actions=_perms.HANDLER_VERIFY_MAC_ACTIONS, resources=[key_arn])
            )
        if rotate:
            key_statements.append(
                iam.PolicyStatement(actions=_perms.HANDLER_ROTATE_ACTIONS, resources=[key_arn])
            )
        if revoke:
            key_statements.append(
                iam.PolicyStatement(actions=_perms.HANDLER_REVOKE_ACTIONS, resources=[key_arn])
            )
        statements = [
            *key_statements,
            *(
                [
                    iam.PolicyStatement(
                        actions=_perms.HANDLER_REMOVAL_CHECK_ACTIONS,
                        resources=[cdk.Stack.of(key).stack_id],
                    )
                ]
                if revoke
                else []
            ),
            iam.PolicyStatement(
                actions=_perms.HANDLER_SECRET_ACTIONS,
                # A secret known only by name has a random 6-character suffix in its ARN.
                resources=[secret.secret_full_arn or f"{secret.secret_arn}-??????"],
            ),
        ]
        if secret.encryption_key is not None:
            statements.append(
                iam.PolicyStatement(
                    actions=_perms.HANDLER_SECRET_KEY_ACTIONS,
                    resources=[secret.encryption_key.key_arn],
                    conditions={
                        "StringEquals": {
                            "kms:ViaService": f"secretsmanager.{cdk.Stack.of(self).region}."
                            f"{cdk.Aws.URL_SUFFIX}"
                        }
                    },
                )
            )
        for statement in statements:
            self._allow(statement)
        if through_key_policy:
            for statement in key_statements:
                key.add_to_resource_policy(
                    iam.PolicyStatement(
                        actions=statement.actions,
                        principals=[self.role],
                        resources=["*"],
                        conditions=statement.conditions or None,
                    )
                )
        if exclusive:
            # The exemption names the role by its unique id, not its ARN: the key is retained
            # when the stack goes, and anyone who may create roles could re-create one with
            # this name and ARN, but never with this RoleId. For a session of an assumed role
            # (Lambda's included) aws:userid is "<RoleId>:<session name>", per the principal
            # table of https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html
            # No aws:PrincipalArn beside it: two negated conditions in one Deny both have to
            # hold for it to deny, so a matching ARN alone would exempt the caller again.
            # The key depends on the role (GetAtt RoleId) as it did on its ARN; the role's
            # grants on the key live in its separate DefaultPolicy, so there is no cycle.
            not_handler = {"StringNotLike": {"aws:userid": f"{self.role.role_id}:*"}}
            # Break-glass principals are matched by ARN (they may live in another account or
            # be users); every condition of a Deny must hold, so either exemption suffices.
            break_glass_arns = [_principal_arn(principal) for principal in break_glass]
            not_break_glass = (
                {"ArnNotEquals": {"aws:PrincipalArn": break_glass_arns}} if break_glass_arns else {}
            )
            for sid, actions, conditions in (
                ("OnlyTheImportHandlerImports", _perms.IMPORT_ONLY_BY_HANDLER_ACTIONS, not_handler),
                (
                    "OnlyTheImportHandlerOrBreakGlassRevokes",
                    _perms.REVOKE_ONLY_BY_HANDLER_ACTIONS,
                    {**not_handler, **not_break_glass},
                ),
            ):
                key.add_to_resource_policy(
                    iam.PolicyStatement(
                        sid=sid,
                        effect=iam.Effect.DENY,
                        principals=[iam.AnyPrincipal()],
                        actions=actions,
                        resources=["*"],
                        conditions=conditions,
                    )
                )
        if break_glass:
            key.add_to_resource_policy(
                iam.PolicyStatement(
                    sid="BreakGlassRevokesOrDisables",
                    principals=list(break_glass),
                    actions=_perms.BREAK_GLASS_ACTIONS,
                    resources=["*"],
                )
            )

    def _allow(self, statement: iam.PolicyStatement) -> None:
        """Add ``statement`` to the role's policy, into an earlier statement with the same
        actions and conditions when there is one: a key then adds its ARN, not a statement,
        and the policy grows by one ARN per statement it shares (IAM counts every character)."""
        signature = json.dumps(
            [sorted(statement.actions), statement.conditions], sort_keys=True, default=str
        )
        shared = self._shared_statements.get(signature)
        if shared is None:
            self._shared_statements[signature] = statement
            self.function.add_to_role_policy(statement)
        else:
            shared.add_resources(*statement.resources)

    @staticmethod
    def _construct_id(runtime: lambda_.Runtime, architecture: lambda_.Architecture) -> str:
        return "ImportedKeyHandler" + re.sub(
            r"[^A-Za-z0-9]", "", f"{runtime.name}{architecture.name}".title()
        )

    @classmethod
    def find(
        cls, scope: Construct, runtime: lambda_.Runtime, architecture: lambda_.Architecture
    ) -> "ImportHandler | None":
        """The stack's handler for this runtime and architecture, if one exists already."""
        existing = cdk.Stack.of(scope).node.try_find_child(cls._construct_id(runtime, architecture))
        return existing if isinstance(existing, cls) else None

    @classmethod
    def of(
        cls,
        scope: Construct,
        runtime: lambda_.Runtime,
        architecture: lambda_.Architecture,
        code_signing_config: lambda_.ICodeSigningConfig | None = None,
    ) -> "ImportHandler":
        """The stack's handler for this runtime and architecture, created on first use.

        ``code_signing_config`` applies when the handler is created; ImportedKey checks
        (``_props.handler_code_signing_config``) that later users of it name the same one.
        """
        existing = cls.find(scope, runtime, architecture)
        if existing is not None:
            return existing
        stack = cdk.Stack.of(scope)
        construct_id = cls._construct_id(runtime, architecture)
        return cls(stack, construct_id, runtime, architecture, code_signing_config)
