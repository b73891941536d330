"""``ImportedKey``: a KMS key with Origin=EXTERNAL whose material comes from Secrets Manager."""

from collections.abc import Sequence
from typing import cast

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from imported_key_handler import protocol

from . import _perms
from .expiration import MaterialExpiration
from .handler_function import SUPPORTED_ARCHITECTURES, SUPPORTED_RUNTIMES, shared_handler
from .wrapping_options import WrappingAlgorithm, WrappingKeySpec

DEFAULT_VALIDITY = cdk.Duration.days(365)


def _choice(prop: str, value: str, allowed: Sequence[str]) -> str:
    """Validate a KMS enum value eagerly; tokens are left for CloudFormation to resolve."""
    if cdk.Token.is_unresolved(value) or value in allowed:
        return str(value)
    raise ValueError(f"Invalid {prop}: {value!r}. Use one of: {', '.join(allowed)}.")


class ImportedKey(Construct):
    """A KMS key with ``Origin=EXTERNAL`` that holds key material you bring.

    On deployment a custom resource reads the material from ``key_material_secret`` (SecretBinary
    holds the raw bytes; SecretString holds their base64), wraps it with fresh import parameters
    and imports it, so the key ends the deployment ``Enabled``. Only the secret's ARN appears in
    the template; the material never does.

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
        expiration: MaterialExpiration | None = None,
        wrapping_algorithm: WrappingAlgorithm | str = WrappingAlgorithm.RSAES_OAEP_SHA_256,
        wrapping_key_spec: WrappingKeySpec | str = WrappingKeySpec.RSA_4096,
        handler_runtime: lambda_.Runtime = lambda_.Runtime.PYTHON_3_13,
        handler_architecture: lambda_.Architecture = lambda_.Architecture.ARM_64,
    ) -> None:
        """Define an EXTERNAL key and the import of its material.

        :param key_material_secret: The secret that holds the key material: SecretBinary with
            the raw bytes, or SecretString with their base64 (32 bytes for SYMMETRIC_DEFAULT).
            Required. The handler may read only this secret.
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
        :param key_spec: The key's spec. Default: ``KeySpec.SYMMETRIC_DEFAULT`` (the only spec
            supported so far).
        :param expiration: When the imported material expires, counted from each import.
            Default: ``MaterialExpiration.after(Duration.days(365))``.
        :param wrapping_algorithm: How the material is wrapped for transport to KMS.
            Default: ``RSAES_OAEP_SHA_256`` (``RSAES_OAEP_SHA_1`` is also accepted).
        :param wrapping_key_spec: Size of KMS's RSA wrapping key. Default: ``RSA_4096``.
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
        spec = kms.KeySpec(key_spec).value if isinstance(key_spec, str) else key_spec.value
        _choice("key_spec", spec, protocol.SUPPORTED_KEY_SPECS)
        algorithm = _choice(
            "wrapping_algorithm", str(wrapping_algorithm), protocol.SYMMETRIC_WRAPPING_ALGORITHMS
        )
        wrapping_spec = _choice(
            "wrapping_key_spec", str(wrapping_key_spec), protocol.WRAPPING_KEY_SPECS
        )
        if handler_runtime.name not in SUPPORTED_RUNTIMES:
            raise ValueError(
                f"Invalid handler_runtime: {handler_runtime.name!r}. Use one of: "
                f"{', '.join(SUPPORTED_RUNTIMES)}."
            )
        if handler_architecture.name not in SUPPORTED_ARCHITECTURES:
            raise ValueError(
                f"Invalid handler_architecture: {handler_architecture.name!r}. Use one of: "
                f"{', '.join(SUPPORTED_ARCHITECTURES)}."
            )
        self.expiration = expiration or MaterialExpiration.after(DEFAULT_VALIDITY)

        self.external_key = kms.Key(
            self,
            "Key",
            alias=alias,
            description=description,
            admins=list(admins) if admins is not None else None,
            policy=policy,
            removal_policy=removal_policy,
            pending_window=pending_window,
            key_spec=kms.KeySpec.SYMMETRIC_DEFAULT,
            key_usage=kms.KeyUsage.ENCRYPT_DECRYPT,
        )
        """The key resource itself, which is PendingImport until the import has run.

        Prefer ``key``: references through it wait for the import.
        """
        cast(kms.CfnKey, self.external_key.node.default_child).origin = "EXTERNAL"

        self.handler = shared_handler(self, handler_runtime, handler_architecture)
        """The stack's import handler, shared by every ImportedKey with the same runtime."""
        self._grant_handler(key_material_secret, algorithm, wrapping_spec)

        properties: dict[str, str] = {
            protocol.PROP_KEY_ID: self.external_key.key_id,
            protocol.PROP_SECRET_ARN: key_material_secret.secret_arn,
            protocol.PROP_KEY_SPEC: spec,
            protocol.PROP_WRAPPING_ALGORITHM: algorithm,
            protocol.PROP_WRAPPING_KEY_SPEC: wrapping_spec,
            protocol.PROP_EXPIRATION_MODEL: self.expiration.expiration_model,
        }
        if self.expiration.validity_days is not None:
            properties[protocol.PROP_VALIDITY_DAYS] = str(self.expiration.validity_days)
        self.material_import = cdk.CustomResource(
            self,
            "MaterialImport",
            service_token=self.handler.function_arn,
            resource_type=protocol.RESOURCE_TYPE,
            properties=properties,
        )
        """The custom resource that imports the material on create and update."""

        self.key_arn: str = self.material_import.get_att_string(protocol.ATTR_KEY_ARN)
        """ARN of the key, available once the material is imported."""
        self.key_id: str = self.material_import.get_att_string(protocol.ATTR_KEY_ID)
        """ID of the key, available once the material is imported."""
        self.valid_to: str = self.material_import.get_att_string(protocol.ATTR_VALID_TO)
        """ISO 8601 time the material expires (empty when it never expires), as of the last
        deployment."""
        self.key: kms.IKey = kms.Key.from_key_arn(self, "ImportedKeyRef", self.key_arn)
        """The key, as seen after the import: use it for grants and references."""

    def _grant_handler(
        self, secret: secretsmanager.ISecret, algorithm: str, wrapping_spec: str
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
