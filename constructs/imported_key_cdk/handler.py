"""The one import handler per stack (per runtime and architecture) that every ImportedKey shares:
its function, role, dead-letter queue and alarms, and the permissions it gets on each key."""

import importlib.metadata
import importlib.resources
import re
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import aws_cdk as cdk
import jsii
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct, IConstruct

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
# Lambda's longest: each sweep renews what it can within it and leaves the rest due.
SWEEP_TIMEOUT = cdk.Duration.minutes(15)


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


@jsii.implements(cdk.IStableListProducer)
class _Sorted:
    """The values of a set as a sorted list, read at synth (keys add to it until then)."""

    def __init__(self, values: set[str]) -> None:
        self._values = values

    def produce(self) -> list[str]:
        return sorted(self._values)


def stack_of(scope: IConstruct) -> cdk.Stack:
    """``cdk.Stack.of(scope)``, without the jsii round trip when ``scope`` is the stack."""
    return scope if isinstance(scope, cdk.Stack) else cdk.Stack.of(scope)


def _add_to_key_policy(key: kms.IKey, statements: list[iam.PolicyStatement]) -> None:
    """``key.add_to_resource_policy`` for each statement, in order.

    A ``kms.Key``'s own document (its protected ``policy``) takes them all in one jsii round
    trip, which is what add_to_resource_policy does with each: its returned struct alone costs
    two more round trips per statement. Any other key goes through add_to_resource_policy.
    """
    if not statements:
        return
    document = key._policy if isinstance(key, kms.Key) else None
    if document is None:
        for statement in statements:
            key.add_to_resource_policy(statement)
        return
    document.add_statements(*statements)


def _principal_arn(principal: iam.IPrincipal) -> str:
    """The one IAM ARN a break-glass principal stands for (checked by _props first)."""
    arns = principal.policy_fragment.principal_json.get("AWS", [])
    return str(arns[0])


def library_version() -> str:
    """This library's installed version, recorded in the handler's environment (``doctor``
    tells a handler deployed by another version); "unknown" when run from a source tree that
    was never installed."""
    try:
        return importlib.metadata.version(contract.LIBRARY_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


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
        imports_per_second: float = contract.DEFAULT_IMPORTS_PER_SECOND,
    ) -> None:
        super().__init__(scope, construct_id)
        self.runtime = runtime
        """The runtime the handler was built for."""
        self.architecture = architecture
        """The architecture the handler was built for."""
        self.imports_per_second = imports_per_second
        """The share of GetParametersForImport's quota (1 request/s) the sweep uses."""
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
        # Read once: every key's binding and key policy name it (a round trip per read).
        self.role_id = role.role_id
        """The role's RoleId, which names the handler in its keys' binding and key policies."""
        stack = cdk.Stack.of(self)
        self.stack = stack
        """The stack the handler is in."""
        self.fleet_name = f"{stack.stack_name}/{construct_id}"
        """Names the fleet in its metrics."""
        self.reader_name = stack.stack_name
        """The value of the tag (``SECRET_READER_TAG``) that lets the stack's handlers read a
        secret: per stack, not per handler, since one secret holds one such tag and keys of two
        handlers of a stack (two architectures) may share it."""
        self.registry = s3.Bucket(
            self,
            "DueIndex",
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            # Kept when the stack goes: a Delete that CloudFormation did not confirm leaves its
            # entry, and a bucket that still holds one would fail the stack's removal.
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        """The due index (empty objects named for when each key's renewal falls due)."""
        environment = {
            # The handler serves the keys whose binding tag names this RoleId (see
            # imported_key_handler.binding); a re-created role of the same name has another.
            contract.ENV_HANDLER_ROLE_ID: self.role_id,
            contract.ENV_HANDLER_STACK_ID: stack.stack_id,
            contract.ENV_REGISTRY_BUCKET: self.registry.bucket_name,
            contract.ENV_IMPORTS_PER_SECOND: str(imports_per_second),
            contract.ENV_FLEET_NAME: self.fleet_name,
            contract.ENV_LIBRARY_VERSION: library_version(),
        }

        def new_function(
            construct_id: str, description: str, timeout: cdk.Duration
        ) -> lambda_.Function:
            # The same code, role, log group and environment for both: they serve one fleet.
            return lambda_.Function(
                self,
                construct_id,
                role=role,
                description=description,
                runtime=runtime,
                architecture=architecture,
                handler=contract.HANDLER_ENTRY,
                code=handler_code(runtime, architecture),
                timeout=timeout,
                memory_size=256,
                logging_format=lambda_.LoggingFormat.JSON,
                application_log_level_v2=lambda_.ApplicationLogLevel.INFO,
                system_log_level_v2=lambda_.SystemLogLevel.WARN,
                log_group=log_group,
                code_signing_config=code_signing_config,
                environment=environment,
            )

        self.function = new_function(
            "Function",
            "Imports key material from Secrets Manager into EXTERNAL KMS keys",
            HANDLER_TIMEOUT,
        )
        """The handler function (CloudFormation's requests)."""
        self.service_token = self.function.function_arn
        """The function's ARN, the service token of every key's import (read once)."""
        # A sweep renews keys while it has time and leaves the rest due for the next one.
        self.sweep_function = new_function(
            "SweepFunction",
            "Renews the imported key material of every ImportedKey that is due",
            SWEEP_TIMEOUT,
        )
        """The sweep and the expiration events' function: same code and role, a longer timeout."""
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
        for function in (self.function, self.sweep_function):
            function.configure_async_invoke(
                retry_attempts=2,
                max_event_age=cdk.Duration.hours(6),
                on_failure=destinations.SqsDestination(self.dead_letter_queue),
            )
        self.errors_alarm = cloudwatch.Alarm(
            self,
            "ErrorsAlarm",
            alarm_description="An ImportedKey renewal or import failed: read the handler's log.",
            metric=cloudwatch.MathExpression(
                expression="FILL(imports, 0) + FILL(sweeps, 0)",
                using_metrics={
                    "imports": self.function.metric_errors(statistic="Sum"),
                    "sweeps": self.sweep_function.metric_errors(statistic="Sum"),
                },
                period=cdk.Duration.minutes(5),
                label="Errors of the import and sweep functions",
            ),
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
        self._secret_keys: set[str] = set()
        self._wrapping_algorithms: set[str] = set()
        self._wrapping_key_specs: set[str] = set()
        self._expiration_models: set[str] = set()
        self._deny_statements: dict[tuple[str, ...], list[iam.PolicyStatement]] = {}
        # One for every warning the handler gives (each Annotations.of is a round trip).
        self._annotations = cdk.Annotations.of(self)
        self._grant_fleet(stack)

    def _grant_fleet(self, stack: cdk.Stack) -> None:
        """The role's permissions, whatever the number of keys: attribute-based.

        On keys: those whose binding tag names this role's RoleId (``aws:ResourceTag``), and
        adopted keys tagged for this stack (``adopt``). Anyone who may tag a key can copy those
        tags, so the handler also asks CloudFormation whether its stack declared the key before
        it reads a secret (``require_in_stack``, ``key_binding_tags``).
        On secrets: those tagged ``SECRET_READER_TAG`` = ``reader_name``.
        """
        mine = {f"aws:ResourceTag/{contract.TAG_HANDLER}": self.role_id}
        self._key_read_statements: list[iam.PolicyStatement] = []
        # The actions of every read statement, kept here: reading them back is a round trip.
        self._key_read_actions = set(_perms.HANDLER_KEY_READ_ACTIONS)
        self._adopting = False
        statements = [
            *self._key_statements(mine, [contract.TAG_VALID_TO]),
            iam.PolicyStatement(
                actions=_perms.HANDLER_SECRET_ACTIONS,
                resources=[
                    stack.format_arn(
                        service="secretsmanager",
                        resource="secret",
                        resource_name="*",
                        arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
                conditions={
                    "StringEquals": {
                        f"secretsmanager:ResourceTag/{contract.SECRET_READER_TAG}": self.reader_name
                    }
                },
            ),
            # Is the key declared by this stack, or a stack nested in it (require_in_stack), and
            # is CloudFormation removing it (require_removal)? Nested stacks are named
            # "<parent>-<id>-<suffix>".
            iam.PolicyStatement(
                actions=_perms.HANDLER_STACK_CHECK_ACTIONS,
                resources=[
                    stack.format_arn(
                        service="cloudformation",
                        resource="stack",
                        resource_name=f"{stack.stack_name}{suffix}/*",
                    )
                    for suffix in ("", "-*")
                ],
            ),
            iam.PolicyStatement(
                actions=_perms.HANDLER_INDEX_LIST_ACTIONS, resources=[self.registry.bucket_arn]
            ),
            iam.PolicyStatement(
                actions=_perms.HANDLER_INDEX_WRITE_ACTIONS,
                resources=[self.registry.arn_for_objects("due/*")],
            ),
            iam.PolicyStatement(
                actions=_perms.HANDLER_METRIC_ACTIONS,
                resources=["*"],
                conditions={
                    "StringEquals": {"cloudwatch:namespace": contract.FLEET_METRIC_NAMESPACE}
                },
            ),
        ]
        for statement in statements:
            self.function.add_to_role_policy(statement)
        self._acknowledge_wildcards(statements)
        # The index is the handler's alone to write: a planted or removed entry could only
        # cost a renewal (each key is checked), but no one else has a reason to write it.
        self.registry.add_to_resource_policy(
            iam.PolicyStatement(
                sid="OnlyTheImportHandlerWrites",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["s3:PutObject", "s3:DeleteObject"],
                resources=[self.registry.arn_for_objects("*")],
                conditions={"StringNotLike": {"aws:userid": f"{self.role_id}:*"}},
            )
        )

    def _key_statements(
        self, tagged: dict[str, str], record_tags: list[str]
    ) -> list[iam.PolicyStatement]:
        """The key actions on keys tagged ``tagged``: read (more actions join as keys need
        them: proofs, rotation, revocation), record ``record_tags`` and no other tag (the
        binding is written by the deployment alone), and import as declared."""
        keys = cdk.Stack.of(self).format_arn(service="kms", resource="key", resource_name="*")

        def lazy(values: set[str]) -> list[str]:
            return cdk.Lazy.list(_Sorted(values))

        actions = (
            self._key_read_statements[0].actions
            if self._key_read_statements
            else list(_perms.HANDLER_KEY_READ_ACTIONS)
        )
        read = iam.PolicyStatement(
            actions=list(actions), resources=[keys], conditions={"StringEquals": tagged}
        )
        self._key_read_statements.append(read)
        return [
            read,
            iam.PolicyStatement(
                actions=_perms.HANDLER_RECORD_ACTIONS,
                resources=[keys],
                conditions={
                    "StringEquals": tagged,
                    "ForAllValues:StringEquals": {"aws:TagKeys": record_tags},
                    "Null": {"aws:TagKeys": "false"},
                },
            ),
            iam.PolicyStatement(
                actions=_perms.HANDLER_GET_PARAMETERS_ACTIONS,
                resources=[keys],
                conditions={
                    "StringEquals": {
                        **tagged,
                        "kms:WrappingAlgorithm": lazy(self._wrapping_algorithms),
                        "kms:WrappingKeySpec": lazy(self._wrapping_key_specs),
                    }
                },
            ),
            iam.PolicyStatement(
                actions=_perms.HANDLER_IMPORT_ACTIONS,
                resources=[keys],
                conditions={
                    "StringEquals": {
                        **tagged,
                        "kms:ExpirationModel": lazy(self._expiration_models),
                    }
                },
            ),
        ]

    def adopt(self) -> None:
        """Reach adopted keys too (``ImportedKey(existing_key_arn=...)``): those whose owner
        tagged them ``TAG_ADOPTED_BY`` = this stack's name. Four more statements, once, however
        many keys are adopted. The handler may also note on such a key where its binding is
        recorded (``ADOPTED_POINTER_TAGS``): a pointer only, CloudFormation's record decides."""
        if self._adopting:
            return
        self._adopting = True
        for statement in self._key_statements(
            {f"aws:ResourceTag/{contract.TAG_ADOPTED_BY}": self.reader_name},
            [contract.TAG_VALID_TO, *contract.ADOPTED_POINTER_TAGS],
        ):
            self.function.add_to_role_policy(statement)

    def _acknowledge_findings(self, role: iam.Role, log_group: logs.LogGroup) -> None:
        for function in (self.function, self.sweep_function):
            _nag.acknowledge(
                function,
                {
                    "AwsSolutions-L1": "Python 3.13 is the default on purpose: the newest "
                    "runtime whose bundle the tests can load; handler_runtime selects 3.14.",
                    "NIST.800.53.R5-LambdaInsideVPC": "The handler only calls AWS APIs (KMS, "
                    "Secrets Manager, CloudFormation, S3, CloudWatch) over TLS; it reaches no "
                    "resource in a VPC.",
                    "NIST.800.53.R5-LambdaDLQ": "Failed asynchronous invocations go to the "
                    "encrypted dead-letter queue through the on-failure destination.",
                    "NIST.800.53.R5-LambdaConcurrency": "Reserved concurrency would take from "
                    "the account's pool and fail deployments in small accounts; throttling is "
                    "retried.",
                },
            )
        policy = role.node.try_find_child("DefaultPolicy")
        if policy is not None:
            _nag.acknowledge(
                policy,
                {
                    "NIST.800.53.R5-IAMNoInlinePolicy": "The policy is this role's alone, and "
                    "each statement names its resources or limits them by tag or namespace; a "
                    "managed policy would be no narrower.",
                },
            )
        # The index holds no data: empty objects whose names are a key id and two times, a
        # hint the handler checks against each key's own tags and rewrites after each import.
        _nag.acknowledge(
            self.registry,
            {
                "AwsSolutions-S1": "The due index holds only empty objects (a key id and two "
                "times in each name); only the handler's role may write it, and the handler "
                "logs every renewal. Access logs would need a second bucket and record nothing "
                "worth auditing.",
                "NIST.800.53.R5-S3BucketLoggingEnabled": "The due index holds only empty "
                "objects (a key id and two times in each name); only the handler's role may "
                "write it, and the handler logs every renewal.",
                "NIST.800.53.R5-S3BucketVersioningEnabled": "The due index is a hint, never an "
                "authority: the handler checks each key it names against the key's own tags "
                "and writes a new entry after each import; old versions would only keep stale "
                "times.",
                "NIST.800.53.R5-S3BucketReplicationEnabled": "The due index is a hint the "
                "handler rebuilds after each import, for the keys of this Region only; a "
                "replica in another Region would serve no key.",
                "NIST.800.53.R5-S3DefaultEncryptionKMS": "The objects are empty and their "
                "names hold no secret; S3-managed encryption applies, and a KMS key would add "
                "a key to manage for nothing.",
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

    def _acknowledge_wildcards(self, statements: list[iam.PolicyStatement]) -> None:
        """Say why each wildcard resource of the fleet's statements is as narrow as it gets."""
        stack_check = (
            "This stack and the stacks nested in it (named '<stack>-<id>-<suffix>'), whatever "
            "their stack id: the handler asks whether they declare a key."
        )
        keys = (
            "Attribute-based, so the policy does not grow with the keys: only keys whose "
            "imported-key-cdk:handler tag is this role's RoleId, or adopted keys whose owner "
            "tagged them imported-key-cdk:adopted-by with this stack's name (aws:ResourceTag); "
            "the handler also asks CloudFormation whether its stack declares the key."
        )
        reasons = {
            **dict.fromkeys(
                [
                    *_perms.HANDLER_KEY_READ_ACTIONS,
                    *_perms.HANDLER_RECORD_ACTIONS,
                    *_perms.HANDLER_GET_PARAMETERS_ACTIONS,
                    *_perms.HANDLER_IMPORT_ACTIONS,
                ],
                keys,
            ),
            "secretsmanager:GetSecretValue": "Attribute-based, so the policy does not grow with "
            "the keys: only secrets tagged imported-key-cdk:reader with this handler's fleet "
            "name (secretsmanager:ResourceTag).",
            "cloudformation:DescribeStackResource": stack_check,
            "s3:PutObject": "The entries of this handler's own due index, under due/.",
            "cloudwatch:PutMetricData": "PutMetricData has no resource-level permissions; the "
            "condition limits it to the fleet's namespace.",
        }
        findings: dict[str, str] = {}
        for statement in statements:
            for resource in statement.resources:
                finding = _nag.wildcard_resource(self, resource)
                if "*" in finding.split("[", 1)[1]:
                    # The key statements share one wildcard ARN (their conditions differ).
                    findings.setdefault(finding, reasons[statement.actions[0]])
        _nag.acknowledge(self.role.node.find_child("DefaultPolicy"), findings)

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
        key: kms.IKey,
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
        self._wrapping_algorithms.add(wrapping_algorithm)
        self._wrapping_key_specs.add(wrapping_key_spec)
        self._expiration_models.add(expiration_model)
        key_actions: list[str] = []
        # Proof of the import: the public key of a private key, a MAC of an HMAC key.
        if spec.family in (contract.RSA, contract.ECC):
            key_actions += _perms.HANDLER_VERIFY_PUBLIC_KEY_ACTIONS
        elif spec.family == contract.HMAC:
            key_actions += _perms.HANDLER_VERIFY_MAC_ACTIONS
        if rotate:
            key_actions += _perms.HANDLER_ROTATE_ACTIONS
        if revoke:
            key_actions += _perms.HANDLER_REVOKE_ACTIONS
        missing = sorted(set(key_actions) - self._key_read_actions)
        if missing:
            self._key_read_actions.update(missing)
            for statement in self._key_read_statements:
                statement.add_actions(*missing)
        self._let_read(secret)
        statements: list[iam.PolicyStatement] = []
        if through_key_policy:
            statements += self._key_policy_grants(
                key_actions, wrapping_algorithm, wrapping_key_spec, expiration_model
            )
        if exclusive:
            # Break-glass principals are matched by ARN (they may live in another account or
            # be users).
            break_glass_arns = tuple(_principal_arn(principal) for principal in break_glass)
            statements += self._exclusive_statements(break_glass_arns)
        if break_glass:
            statements.append(
                iam.PolicyStatement(
                    sid="BreakGlassRevokesOrDisables",
                    principals=list(break_glass),
                    actions=_perms.BREAK_GLASS_ACTIONS,
                    resources=["*"],
                )
            )
        _add_to_key_policy(key, statements)

    def _exclusive_statements(self, break_glass_arns: tuple[str, ...]) -> list[iam.PolicyStatement]:
        """The key policy's Deny statements that leave the import to this handler alone.

        Built once per set of break-glass principals and shared by the keys' policies: a
        policy document only reads its statements (it freezes them when it renders).
        """
        shared = self._deny_statements.get(break_glass_arns)
        if shared is not None:
            return shared
        # The exemption names the role by its unique id, not its ARN: the key is retained
        # when the stack goes, and anyone who may create roles could re-create one with
        # this name and ARN, but never with this RoleId. For a session of an assumed role
        # (Lambda's included) aws:userid is "<RoleId>:<session name>", per the principal
        # table of https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html
        # No aws:PrincipalArn beside it: two negated conditions in one Deny both have to
        # hold for it to deny, so a matching ARN alone would exempt the caller again.
        # The key depends on the role (GetAtt RoleId) as it did on its ARN; the role's
        # grants on the key live in its separate DefaultPolicy, so there is no cycle.
        not_handler = {"StringNotLike": {"aws:userid": f"{self.role_id}:*"}}
        # Every condition of a Deny must hold, so either exemption suffices.
        not_break_glass = (
            {"ArnNotEquals": {"aws:PrincipalArn": list(break_glass_arns)}}
            if break_glass_arns
            else {}
        )
        shared = self._deny_statements[break_glass_arns] = [
            iam.PolicyStatement(
                sid=sid,
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=actions,
                resources=["*"],
                conditions=conditions,
            )
            for sid, actions, conditions in (
                ("OnlyTheImportHandlerImports", _perms.IMPORT_ONLY_BY_HANDLER_ACTIONS, not_handler),
                (
                    "OnlyTheImportHandlerOrBreakGlassRevokes",
                    _perms.REVOKE_ONLY_BY_HANDLER_ACTIONS,
                    {**not_handler, **not_break_glass},
                ),
            )
        ]
        return shared

    def _key_policy_grants(
        self,
        key_actions: list[str],
        wrapping_algorithm: str,
        wrapping_key_spec: str,
        expiration_model: str,
    ) -> list[iam.PolicyStatement]:
        """The role's key statements for one key, as key policy statements: for a custom key
        policy, which may not let the account's IAM policies decide."""
        statements: list[tuple[list[str], dict[str, dict[str, object]] | None]] = [
            ([*_perms.HANDLER_KEY_READ_ACTIONS, *key_actions], None),
            (
                _perms.HANDLER_RECORD_ACTIONS,
                {
                    "ForAllValues:StringEquals": {"aws:TagKeys": [contract.TAG_VALID_TO]},
                    "Null": {"aws:TagKeys": "false"},
                },
            ),
            (
                _perms.HANDLER_GET_PARAMETERS_ACTIONS,
                {
                    "StringEquals": {
                        "kms:WrappingAlgorithm": wrapping_algorithm,
                        "kms:WrappingKeySpec": wrapping_key_spec,
                    }
                },
            ),
            (
                _perms.HANDLER_IMPORT_ACTIONS,
                {"StringEquals": {"kms:ExpirationModel": expiration_model}},
            ),
        ]
        return [
            iam.PolicyStatement(
                actions=actions, principals=[self.role], resources=["*"], conditions=conditions
            )
            for actions, conditions in statements
        ]

    def _let_read(self, secret: secretsmanager.ISecret) -> None:
        """Let the handler read ``secret``: by its tag, which this stack writes on a secret it
        creates; a secret created elsewhere must carry it already (a warning says so)."""
        if isinstance(secret, secretsmanager.Secret):
            cdk.Tags.of(secret).add(contract.SECRET_READER_TAG, self.reader_name)
        else:
            self._annotations.add_warning_v2(
                "imported-key-cdk:secret-reader-tag",
                f"The secret {secret.node.path} was not created by this app, so the stack "
                "cannot tag it: tag it with "
                f"{contract.SECRET_READER_TAG}={self.reader_name} (aws secretsmanager "
                "tag-resource), or the import is refused (AccessDenied on GetSecretValue).",
            )
        key = secret.encryption_key
        if key is None or key.key_arn in self._secret_keys:
            return
        self._secret_keys.add(key.key_arn)
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=_perms.HANDLER_SECRET_KEY_ACTIONS,
                resources=[key.key_arn],
                conditions={
                    "StringEquals": {
                        "kms:ViaService": f"secretsmanager.{cdk.Stack.of(self).region}."
                        f"{cdk.Aws.URL_SUFFIX}"
                    }
                },
            )
        )

    @staticmethod
    def _construct_id(runtime: lambda_.Runtime, architecture: lambda_.Architecture) -> str:
        return "ImportedKeyHandler" + re.sub(
            r"[^A-Za-z0-9]", "", f"{runtime.name}{architecture.name}".title()
        )

    @classmethod
    def find(
        cls, scope: Construct, runtime: lambda_.Runtime, architecture: lambda_.Architecture
    ) -> "ImportHandler | None":
        """The stack's handler for this runtime and architecture, if one exists already.

        Keys mostly pass the very same runtime and architecture objects (the parameters'
        defaults): the handler last found for them is remembered per stack, and only other
        objects are looked up by name in the construct tree (five jsii round trips).
        """
        stack = stack_of(scope)
        seen = _SEEN_HANDLERS.setdefault(stack, {})
        for seen_runtime, seen_architecture, handler in seen.values():
            if seen_runtime is runtime and seen_architecture is architecture:
                return handler
        construct_id = cls._construct_id(runtime, architecture)
        existing = stack.node.try_find_child(construct_id)
        if not isinstance(existing, cls):
            return None
        seen[construct_id] = (runtime, architecture, existing)
        return existing

    @classmethod
    def of(
        cls,
        scope: Construct,
        runtime: lambda_.Runtime,
        architecture: lambda_.Architecture,
        code_signing_config: lambda_.ICodeSigningConfig | None = None,
        imports_per_second: float = contract.DEFAULT_IMPORTS_PER_SECOND,
    ) -> "ImportHandler":
        """The stack's handler for this runtime and architecture, created on first use.

        ``code_signing_config`` applies when the handler is created; ImportedKey checks
        (``_props.handler_code_signing_config``) that later users of it name the same one.
        """
        existing = cls.find(scope, runtime, architecture)
        if existing is not None:
            return existing
        stack = stack_of(scope)
        construct_id = cls._construct_id(runtime, architecture)
        return cls(
            stack, construct_id, runtime, architecture, code_signing_config, imports_per_second
        )


_Seen = tuple[lambda_.Runtime, lambda_.Architecture, ImportHandler]
# Per stack, by construct id: each handler with the runtime and architecture objects it was last
# found for (ImportHandler.find). Weak: it goes with the stack.
_SEEN_HANDLERS: "weakref.WeakKeyDictionary[cdk.Stack, dict[str, _Seen]]" = (
    weakref.WeakKeyDictionary()
)
