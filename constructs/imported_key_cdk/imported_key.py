"""``ImportedKey``: a KMS key with Origin=EXTERNAL whose material comes from Secrets Manager."""

from collections.abc import Sequence
from typing import cast

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from constructs import Construct

from imported_key_handler import contract

from . import _nag, _perms
from .expiration import MaterialExpiration
from .handler_function import SUPPORTED_ARCHITECTURES, SUPPORTED_RUNTIMES, ImportHandler
from .material_encoding import MaterialEncoding
from .renewal_schedule import DEFAULT_RENEWAL_SCHEDULE, check_renewal, default_renew_before
from .wrapping_options import WrappingAlgorithm, WrappingKeySpec

DEFAULT_VALIDITY = cdk.Duration.days(365)
DEFAULT_EXPIRY_ALARM_THRESHOLD = cdk.Duration.days(14)
KMS_EXPIRATION_EVENT = "KMS Imported Key Material Expiration"


def _choice(prop: str, value: str, allowed: Sequence[str]) -> str:
    """Validate a KMS enum value eagerly; tokens are left for CloudFormation to resolve."""
    if cdk.Token.is_unresolved(value) or value in allowed:
        return str(value)
    raise ValueError(f"Invalid {prop}: {value!r}. Use one of: {', '.join(allowed)}.")


def _key_spec(value: kms.KeySpec | str) -> contract.KeySpec:
    """The catalog entry of ``key_spec``; a spec must be known at synth (it decides the
    wrapping, the usage and the handler's permissions)."""
    name = value.value if isinstance(value, kms.KeySpec) else str(value)
    if name in contract.KEY_SPECS:
        return contract.KEY_SPECS[name]
    supported = f"Use one of: {', '.join(contract.KEY_SPECS)}."
    if cdk.Token.is_unresolved(name):
        raise ValueError(
            f"Invalid key_spec: {name!r}. It must be known at synth time, not a token. {supported}"
        )
    reason = contract.REFUSED_KEY_SPECS.get(name)
    if reason is not None:
        raise ValueError(f"Invalid key_spec: {name!r}. {reason}. {supported}")
    raise ValueError(f"Invalid key_spec: {name!r}. {supported}")


def _key_usage(spec: contract.KeySpec, value: kms.KeyUsage | str | None) -> str:
    """``key_usage`` checked against the spec; None means the spec's first usage."""
    if value is None:
        return spec.usages[0]
    name = value.value if isinstance(value, kms.KeyUsage) else str(value)
    if name in spec.usages:
        return name
    raise ValueError(
        f"Invalid key_usage: {name!r}. {spec.name} keys allow: {', '.join(spec.usages)}."
    )


def _wrapping(
    spec: contract.KeySpec,
    wrapping_algorithm: WrappingAlgorithm | str | None,
    wrapping_key_spec: WrappingKeySpec | str | None,
) -> tuple[str, str]:
    """The wrapping to use: the spec's default for what is unset, refused if KMS would refuse
    it (tokens are left for the handler to check)."""
    default_algorithm, default_wrapping_key_spec = contract.default_wrapping(spec)
    algorithm = _choice(
        "wrapping_algorithm",
        default_algorithm if wrapping_algorithm is None else str(wrapping_algorithm),
        contract.WRAPPING_ALGORITHMS,
    )
    wrapping_spec = _choice(
        "wrapping_key_spec",
        default_wrapping_key_spec if wrapping_key_spec is None else str(wrapping_key_spec),
        contract.WRAPPING_KEY_SPECS,
    )
    if cdk.Token.is_unresolved(algorithm) or cdk.Token.is_unresolved(wrapping_spec):
        return algorithm, wrapping_spec
    refusal = contract.wrapping_refusal(spec, algorithm, wrapping_spec)
    if refusal is not None:
        if wrapping_algorithm is None:
            raise ValueError(f"Invalid wrapping_key_spec: {wrapping_spec!r}. {refusal}")
        raise ValueError(f"Invalid wrapping_algorithm: {algorithm!r}. {refusal}")
    return algorithm, wrapping_spec


def _material_encoding(
    material_encoding: MaterialEncoding | str | None, json_field: str | None
) -> str:
    encoding = _choice(
        "material_encoding",
        MaterialEncoding.AUTO.value if material_encoding is None else str(material_encoding),
        contract.MATERIAL_ENCODINGS,
    )
    if json_field is not None and not cdk.Token.is_unresolved(json_field):
        if not json_field:
            raise ValueError(
                "Invalid json_field: ''. Name the SecretString field that holds the material, "
                "or leave json_field unset."
            )
        if encoding == MaterialEncoding.RAW:
            raise ValueError(
                f"Invalid json_field: {json_field!r}. material_encoding {encoding!r} reads the "
                "raw bytes of SecretBinary, which has no JSON fields; use one of: "
                f"{', '.join(e for e in contract.MATERIAL_ENCODINGS if e != encoding)}, or "
                "leave json_field unset."
            )
    return encoding


class ImportedKey(Construct):
    """A KMS key with ``Origin=EXTERNAL`` that holds key material you bring.

    The key may be symmetric, HMAC, RSA or ECC (``key_spec``). On deployment a custom resource
    reads the material from ``key_material_secret`` (by default SecretBinary holds the raw bytes
    and SecretString their base64; see ``material_encoding`` and ``json_field``), wraps it with
    fresh import parameters, imports it and checks the result, so the key ends the deployment
    ``Enabled``. Only the secret's ARN appears in the template; the material never does.

    Use ``key`` (or ``key_arn``/``key_id`` and the ``grant*`` methods) for anything that uses the
    key: they resolve through the import, so CloudFormation creates their users after it.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        key_material_secret: secretsmanager.ISecret,
        alias: str | None = None,
        description: str | None = None,
        admins: Sequence[iam.IPrincipal] | None = None,
        policy: iam.PolicyDocument | None = None,
        removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN,
        pending_window: cdk.Duration | None = None,
        enable_key_rotation: bool = False,
        key_spec: kms.KeySpec = kms.KeySpec.SYMMETRIC_DEFAULT,
        key_usage: kms.KeyUsage | None = None,
        material_encoding: MaterialEncoding | str | None = None,
        json_field: str | None = None,
        expiration: MaterialExpiration | None = None,
        wrapping_algorithm: WrappingAlgorithm | str | None = None,
        wrapping_key_spec: WrappingKeySpec | str | None = None,
        material_version_id: str | None = None,
        rotation_on_material_change: bool = False,
        delete_material_on_removal: bool = False,
        restrict_import_to_handler: bool = True,
        renewal_schedule: events.Schedule | None = None,
        renew_before: cdk.Duration | None = None,
        expiry_alarm_threshold: cdk.Duration | None = None,
        alarm_topic: sns.ITopic | None = None,
        handler_runtime: lambda_.Runtime = lambda_.Runtime.PYTHON_3_13,
        handler_architecture: lambda_.Architecture = lambda_.Architecture.ARM_64,
    ) -> None:
        """Define an EXTERNAL key and the import of its material.

        :param key_material_secret: The secret that holds the key material, as
            ``material_encoding`` says: by default SecretBinary with the raw bytes, or
            SecretString with their base64 (32 bytes for SYMMETRIC_DEFAULT, the key itself for
            HMAC, a PKCS#8 DER private key for RSA and ECC). Required. The handler may read
            only this secret.
        :param alias: Alias for the key (``alias/`` is added if missing). Default: no alias.
        :param description: Description of the key. Default: no description.
        :param admins: Principals allowed to administer the key (not to use it or import into
            it). Default: only the account, through the default key policy.
        :param policy: Key policy. Default: the aws-kms default policy (the account root).
        :param removal_policy: What happens to the key when it leaves the stack.
            Default: ``RemovalPolicy.RETAIN``; a destroyed key is scheduled for deletion.
        :param pending_window: Waiting period before a destroyed key is deleted (7 to 30 days).
            Default: 30 days.
        :param enable_key_rotation: Must stay False: KMS refuses automatic rotation for keys
            with imported material. Default: False.
        :param key_spec: The key's spec: ``SYMMETRIC_DEFAULT``, ``HMAC_224/256/384/512``,
            ``RSA_2048/3072/4096``, ``ECC_NIST_P256/P384/P521`` or ``ECC_SECG_P256K1`` (KMS
            takes no imported material for ML-DSA, SM2 or Ed25519 keys).
            Default: ``KeySpec.SYMMETRIC_DEFAULT``.
        :param key_usage: What the key is for; it must be one the spec allows
            (``ENCRYPT_DECRYPT`` or ``SIGN_VERIFY`` for RSA, ``SIGN_VERIFY`` or
            ``KEY_AGREEMENT`` for the NIST curves, ``SIGN_VERIFY`` for secp256k1).
            Default: the spec's first usage (``ENCRYPT_DECRYPT`` for symmetric and RSA keys,
            ``GENERATE_VERIFY_MAC`` for HMAC keys, ``SIGN_VERIFY`` for ECC keys).
        :param material_encoding: How the secret holds the material: ``AUTO``, ``RAW``
            (SecretBinary bytes), ``BASE64``, ``HEX`` or ``PEM`` (a PEM private key).
            Default: ``MaterialEncoding.AUTO`` (SecretBinary raw bytes, SecretString base64).
        :param json_field: The SecretString is a JSON object and this field holds the
            material (encoded as ``material_encoding`` says). Not allowed with ``RAW``.
            Default: the whole secret value is the material.
        :param expiration: When the imported material expires, counted from each import.
            Default: ``MaterialExpiration.after(Duration.days(365))``.
        :param wrapping_algorithm: How the material is wrapped for transport to KMS. Secret
            keys (symmetric, HMAC) go by RSA-OAEP only, RSA private keys by
            ``RSA_AES_KEY_WRAP_*`` only, and ECC private keys by either when they fit.
            Default: ``RSAES_OAEP_SHA_256`` for symmetric and HMAC keys,
            ``RSA_AES_KEY_WRAP_SHA_256`` for RSA and ECC keys.
        :param wrapping_key_spec: Size of KMS's RSA wrapping key. Default: ``RSA_4096``.
        :param material_version_id: The secret version (its VersionId) to import. Change it
            after you put new material in the secret: CloudFormation then updates the import,
            and a rollback reads the previous version again. Default: the AWSCURRENT version,
            read at each deployment and renewal.
        :param rotation_on_material_change: Rotate to new material instead of refusing it. The
            secret then holds every material tied to the key as a JSON document
            ``{"materials": ["<base64>", ...]}``, oldest first; a new last entry is imported as
            new material and made current with RotateKeyOnDemand (at most 25 times). Older
            materials stay imported and are renewed, so old ciphertexts still decrypt. Only
            for ``SYMMETRIC_DEFAULT`` keys: KMS rotates no other key on demand.
            Default: False (the key accepts only its original material; a different one fails
            the update and changes nothing).
        :param delete_material_on_removal: When the ImportedKey leaves the stack (or the stack
            is deleted), revoke the material with DeleteImportedKeyMaterial, so the key is
            unusable at once instead of after its deletion window. Default: False (the
            material stays; the key's removal policy alone decides).
        :param restrict_import_to_handler: Add a key policy statement that denies
            GetParametersForImport, ImportKeyMaterial and DeleteImportedKeyMaterial to every
            principal except the import handler's role. Administrators keep every other
            permission, PutKeyPolicy included, so they are not locked out.
            Default: True.
        :param renewal_schedule: When to check the material and re-import it if it is due.
            It must fire at least twice inside the renewal window. Default: once a day
            (``Schedule.rate(Duration.days(1))``). Not used when the material never expires.
        :param renew_before: Re-import once the material expires within this window.
            Default: 30 days, or a third of the validity period when that is shorter.
        :param expiry_alarm_threshold: Alarm when KMS reports less than this left before the
            material expires (``SecondsUntilKeyMaterialExpiration``). It must be shorter than
            ``renew_before``, so a renewal normally happens first. Default: 14 days, or half
            the renewal window when that is shorter.
        :param alarm_topic: SNS topic for the alarms' actions. Default: no action.
        :param handler_runtime: Python runtime of the import handler (3.13 or 3.14).
            Default: ``Runtime.PYTHON_3_13``.
        :param handler_architecture: Architecture of the import handler.
            Default: ``Architecture.ARM_64``.
        """
        super().__init__(scope, construct_id)

        if enable_key_rotation:
            raise ValueError(
                "Invalid enable_key_rotation: True. KMS refuses automatic rotation for keys "
                "with imported material (Origin=EXTERNAL); leave it False."
            )
        spec = _key_spec(key_spec)
        usage = _key_usage(spec, key_usage)
        algorithm, wrapping_spec = _wrapping(spec, wrapping_algorithm, wrapping_key_spec)
        encoding = _material_encoding(material_encoding, json_field)
        if rotation_on_material_change and spec.family != contract.SYMMETRIC:
            raise ValueError(
                f"Invalid rotation_on_material_change: True with key_spec {spec.name!r}. KMS "
                "rotates only SYMMETRIC_DEFAULT keys on demand; leave it False."
            )
        _choice("handler_runtime", handler_runtime.name, list(SUPPORTED_RUNTIMES))
        _choice("handler_architecture", handler_architecture.name, list(SUPPORTED_ARCHITECTURES))
        self.expiration = expiration or MaterialExpiration.after(DEFAULT_VALIDITY)
        validity_days = self.expiration.validity_days
        schedule = renewal_schedule or DEFAULT_RENEWAL_SCHEDULE
        window: cdk.Duration | None = None
        if validity_days is not None:
            window = renew_before or default_renew_before(validity_days)
            check_renewal(schedule, window, validity_days)
            threshold = expiry_alarm_threshold or cdk.Duration.seconds(
                min(DEFAULT_EXPIRY_ALARM_THRESHOLD.to_seconds(), window.to_seconds() // 2)
            )
            if not 0 < threshold.to_seconds() < window.to_seconds():
                raise ValueError(
                    f"Invalid expiry_alarm_threshold: {threshold.to_human_string()}. It must be "
                    f"shorter than the renewal window ({window.to_human_string()}), or the "
                    "alarm fires before every renewal."
                )
        elif any(p is not None for p in (renewal_schedule, renew_before, expiry_alarm_threshold)):
            raise ValueError(
                "Invalid renewal_schedule/renew_before/expiry_alarm_threshold: the material "
                "never expires (MaterialExpiration.never()), so there is nothing to renew."
            )

        self.external_key = kms.Key(
            self,
            "Key",
            alias=alias,
            description=description,
            admins=list(admins) if admins is not None else None,
            policy=policy,
            removal_policy=removal_policy,
            pending_window=pending_window,
            key_spec=kms.KeySpec(spec.name),
            key_usage=kms.KeyUsage(usage),
        )
        """The key resource itself, which is PendingImport until the import has run.

        Prefer ``key``: references through it wait for the import.
        """
        cast(kms.CfnKey, self.external_key.node.default_child).origin = "EXTERNAL"
        _nag.acknowledge(
            self.external_key,
            {
                rule: "KMS refuses automatic rotation for keys with imported material; "
                "rotation_on_material_change rotates it on demand."
                for rule in ("AwsSolutions-KMS5", "NIST.800.53.R5-KMSBackingKeyRotationEnabled")
            },
        )

        self._import_handler = ImportHandler.of(self, handler_runtime, handler_architecture)
        self.handler = self._import_handler.function
        """The stack's import handler, shared by every ImportedKey with the same runtime."""
        if restrict_import_to_handler:
            self.external_key.add_to_resource_policy(
                iam.PolicyStatement(
                    sid="OnlyTheImportHandlerImports",
                    effect=iam.Effect.DENY,
                    principals=[iam.AnyPrincipal()],
                    actions=_perms.IMPORT_ONLY_BY_HANDLER_ACTIONS,
                    resources=["*"],
                    conditions={
                        "ArnNotEquals": {"aws:PrincipalArn": self._import_handler.role.role_arn}
                    },
                )
            )
        self._grant_handler(
            key_material_secret,
            spec,
            algorithm,
            wrapping_spec,
            revoke=delete_material_on_removal,
            rotate=rotation_on_material_change,
        )

        properties: dict[str, str] = {
            contract.PROP_KEY_ID: self.external_key.key_id,
            contract.PROP_SECRET_ARN: key_material_secret.secret_arn,
            contract.PROP_KEY_SPEC: spec.name,
            contract.PROP_KEY_USAGE: usage,
            contract.PROP_MATERIAL_ENCODING: encoding,
            contract.PROP_WRAPPING_ALGORITHM: algorithm,
            contract.PROP_WRAPPING_KEY_SPEC: wrapping_spec,
            contract.PROP_EXPIRATION_MODEL: self.expiration.expiration_model,
        }
        if json_field is not None:
            properties[contract.PROP_JSON_FIELD] = json_field
        if self.expiration.validity_days is not None:
            properties[contract.PROP_VALIDITY_DAYS] = str(self.expiration.validity_days)
        properties[contract.PROP_DELETE_MATERIAL_ON_REMOVAL] = str(
            delete_material_on_removal
        ).lower()
        properties[contract.PROP_ROTATE_ON_MATERIAL_CHANGE] = str(
            rotation_on_material_change
        ).lower()
        if material_version_id is not None:
            properties[contract.PROP_MATERIAL_VERSION_ID] = material_version_id
        self.material_import = cdk.CustomResource(
            self,
            "MaterialImport",
            service_token=self.handler.function_arn,
            resource_type=contract.RESOURCE_TYPE,
            properties=properties,
        )
        """The custom resource that imports the material on create and update."""

        self.key_arn: str = self.material_import.get_att_string(contract.ATTR_KEY_ARN)
        """ARN of the key, available once the material is imported."""
        self.key_id: str = self.material_import.get_att_string(contract.ATTR_KEY_ID)
        """ID of the key, available once the material is imported."""
        self.valid_to: str = self.material_import.get_att_string(contract.ATTR_VALID_TO)
        """ISO 8601 time the material expires (empty when it never expires), as of the last
        deployment."""
        self.key: kms.IKey = kms.Key.from_key_arn(self, "ImportedKeyRef", self.key_arn)
        """The key, as seen after the import: use it for grants and references."""

        self.renewal_rule: events.Rule | None = None
        """Runs the renewal on ``renewal_schedule`` (None when the material never expires)."""
        self.recovery_rule: events.Rule | None = None
        """Re-imports at once when KMS reports the material expired (None likewise)."""
        self.expiry_alarm: cloudwatch.Alarm | None = None
        """In alarm when the material expires within ``expiry_alarm_threshold``, or when KMS
        stops reporting the time left (None when the material never expires)."""
        if window is not None:
            self._add_renewal(properties, schedule, window, threshold)
        self.handler_errors_alarm: cloudwatch.Alarm = self._import_handler.errors_alarm
        """In alarm when the shared handler fails (shared by the stack's ImportedKeys)."""
        self.dead_letter_alarm: cloudwatch.Alarm = self._import_handler.dead_letter_alarm
        """In alarm while a failed renewal waits in the dead-letter queue (shared likewise)."""
        if alarm_topic is not None:
            self._import_handler.notify(alarm_topic)
            if self.expiry_alarm is not None:
                self.expiry_alarm.add_alarm_action(cloudwatch_actions.SnsAction(alarm_topic))

    def _add_renewal(
        self,
        properties: dict[str, str],
        schedule: events.Schedule,
        window: cdk.Duration,
        alarm_threshold: cdk.Duration,
    ) -> None:
        function = self._import_handler.function
        queue = self._import_handler.dead_letter_queue

        def target(trigger: str) -> targets.LambdaFunction:
            return targets.LambdaFunction(
                function,
                event=events.RuleTargetInput.from_object(
                    {
                        contract.RENEWAL_EVENT: {
                            contract.RENEWAL_TRIGGER: trigger,
                            contract.RENEWAL_RENEW_BEFORE_SECONDS: str(int(window.to_seconds())),
                            contract.RENEWAL_PROPERTIES: properties,
                        }
                    }
                ),
                # Delivery failures (throttling, a missing permission) are retried with
                # backoff for a day, then recorded in the dead-letter queue.
                retry_attempts=185,
                max_event_age=cdk.Duration.hours(24),
                dead_letter_queue=queue,
            )

        self.renewal_rule = events.Rule(
            self,
            "RenewalSchedule",
            description="Re-imports the key material before it expires (imported-key-cdk)",
            schedule=schedule,
            targets=[target(contract.TRIGGER_SCHEDULE)],
        )
        self.recovery_rule = events.Rule(
            self,
            "ExpirationRecovery",
            description="Re-imports the key material at once if it expired (imported-key-cdk)",
            event_pattern=events.EventPattern(
                source=["aws.kms"],
                detail_type=[KMS_EXPIRATION_EVENT],
                resources=[self.external_key.key_arn],
            ),
            targets=[target(contract.TRIGGER_MATERIAL_EXPIRED)],
        )
        self.expiry_alarm = cloudwatch.Alarm(
            self,
            "MaterialExpiryAlarm",
            alarm_description=(
                "Imported key material expires soon, or KMS no longer reports its expiry: the "
                "renewal is not working."
            ),
            metric=cloudwatch.Metric(
                namespace="AWS/KMS",
                metric_name="SecondsUntilKeyMaterialExpiration",
                dimensions_map={"KeyId": self.external_key.key_id},
                statistic="Minimum",
                period=cdk.Duration.hours(1),
            ),
            threshold=alarm_threshold.to_seconds(),
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            # An expiring key always has this metric; its absence means the material is gone.
            treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
        )
        _nag.acknowledge(
            self.expiry_alarm, {"NIST.800.53.R5-CloudWatchAlarmAction": _nag.NO_ALARM_ACTION}
        )

    def _grant_handler(
        self,
        secret: secretsmanager.ISecret,
        spec: contract.KeySpec,
        algorithm: str,
        wrapping_spec: str,
        *,
        revoke: bool,
        rotate: bool,
    ) -> None:
        """Let the shared handler import into this key only, from this secret only."""
        key_arn = self.external_key.key_arn
        statements = [
            iam.PolicyStatement(actions=_perms.HANDLER_KEY_READ_ACTIONS, resources=[key_arn]),
            iam.PolicyStatement(
                actions=_perms.HANDLER_GET_PARAMETERS_ACTIONS,
                resources=[key_arn],
                conditions={
                    "StringEquals": {
                        "kms:WrappingAlgorithm": algorithm,
                        "kms:WrappingKeySpec": wrapping_spec,
                    }
                },
            ),
            iam.PolicyStatement(
                actions=_perms.HANDLER_IMPORT_ACTIONS,
                resources=[key_arn],
                conditions={
                    "StringEquals": {"kms:ExpirationModel": self.expiration.expiration_model}
                },
            ),
            iam.PolicyStatement(
                actions=_perms.HANDLER_SECRET_ACTIONS,
                # A secret known only by name has a random 6-character suffix in its ARN.
                resources=[secret.secret_full_arn or f"{secret.secret_arn}-??????"],
            ),
        ]
        # Proof of the import: the public key of a private key, a MAC of an HMAC key.
        if spec.family in (contract.RSA, contract.ECC):
            statements.append(
                iam.PolicyStatement(
                    actions=_perms.HANDLER_VERIFY_PUBLIC_KEY_ACTIONS, resources=[key_arn]
                )
            )
        elif spec.family == contract.HMAC:
            statements.append(
                iam.PolicyStatement(actions=_perms.HANDLER_VERIFY_MAC_ACTIONS, resources=[key_arn])
            )
        if rotate:
            statements.append(
                iam.PolicyStatement(actions=_perms.HANDLER_ROTATE_ACTIONS, resources=[key_arn])
            )
        if revoke:
            statements.append(
                iam.PolicyStatement(actions=_perms.HANDLER_REVOKE_ACTIONS, resources=[key_arn])
            )
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
            self.handler.add_to_role_policy(statement)

    def grant(self, grantee: iam.IGrantable, *actions: str) -> iam.Grant:
        """Grant ``actions`` on the key to ``grantee``, effective after the import."""
        return self.key.grant(grantee, *actions)

    def grant_encrypt_decrypt(self, grantee: iam.IGrantable) -> iam.Grant:
        """Grant encryption and decryption with the key, effective after the import."""
        return self.key.grant_encrypt_decrypt(grantee)

    def grant_encrypt(self, grantee: iam.IGrantable) -> iam.Grant:
        """Grant encryption with the key, effective after the import."""
        return self.key.grant_encrypt(grantee)

    def grant_decrypt(self, grantee: iam.IGrantable) -> iam.Grant:
        """Grant decryption with the key, effective after the import."""
        return self.key.grant_decrypt(grantee)

    def grant_sign(self, grantee: iam.IGrantable) -> iam.Grant:
        """Grant signing with the key (``SIGN_VERIFY`` keys), effective after the import."""
        return self.key.grant_sign(grantee)

    def grant_verify(self, grantee: iam.IGrantable) -> iam.Grant:
        """Grant signature verification with the key (``SIGN_VERIFY`` keys), effective after
        the import."""
        return self.key.grant_verify(grantee)

    def grant_sign_verify(self, grantee: iam.IGrantable) -> iam.Grant:
        """Grant signing and verification with the key (``SIGN_VERIFY`` keys), effective after
        the import."""
        return self.key.grant_sign_verify(grantee)

    def grant_generate_mac(self, grantee: iam.IGrantable) -> iam.Grant:
        """Grant MAC generation with the key (HMAC keys), effective after the import."""
        return self.key.grant_generate_mac(grantee)

    def grant_verify_mac(self, grantee: iam.IGrantable) -> iam.Grant:
        """Grant MAC verification with the key (HMAC keys), effective after the import."""
        return self.key.grant_verify_mac(grantee)
