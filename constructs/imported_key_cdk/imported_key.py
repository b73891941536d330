"""``ImportedKey``: a KMS key with Origin=EXTERNAL whose material comes from Secrets Manager.

It is a ``kms.IKey``: pass it wherever CDK takes a key. Its ARN and id resolve through the
import, so everything that uses the key is created after the key holds its material.
"""

import re
import weakref
from collections.abc import Sequence
from typing import cast

import aws_cdk as cdk
import jsii
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk.interfaces import aws_kms as kms_refs
from constructs import Construct

from imported_key_handler import contract

from . import _nag, _props
from .handler import ImportHandler, stack_of
from .options import MaterialEncoding, MaterialExpiration, WrappingAlgorithm, WrappingKeySpec
from .renewal import FleetRenewal, KeyExpiryAlarm

DEFAULT_VALIDITY_DAYS = 365
_BINDING_TAG_PRIORITY = 1000
# Each stack's StackId, read once: the binding of every key of the stack names it (the token is
# a new one, and a jsii round trip, at each read). Weak: it goes with the stack.
_STACK_IDS: "weakref.WeakKeyDictionary[cdk.Stack, str]" = weakref.WeakKeyDictionary()


def _stack_id(stack: cdk.Stack) -> str:
    stack_id = _STACK_IDS.get(stack)
    if stack_id is None:
        stack_id = _STACK_IDS[stack] = stack.stack_id
    return stack_id


@jsii.implements(kms.IKey)
class ImportedKey(cdk.Resource):
    """A KMS key with ``Origin=EXTERNAL`` that holds key material you bring.

    The key may be symmetric, HMAC, RSA or ECC (``key_spec``). On deployment a custom resource
    reads the material from ``key_material_secret`` (by default SecretBinary holds the raw bytes
    and SecretString their base64; see ``material_encoding`` and ``json_field``), wraps it with
    fresh import parameters, imports it and checks the result, so the key ends the deployment
    ``Enabled``. Only the secret's ARN appears in the template; the material never does.

    An ``ImportedKey`` is a ``kms.IKey``: pass it to any construct that takes a key (a bucket's
    ``encryption_key``, a queue's ``encryption_master_key``, ...). ``key_arn`` and ``key_id``
    resolve through the import, so those constructs wait for it. ``grant*`` behave as
    ``kms.Key``'s and ``add_to_resource_policy`` edits the key policy.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        key_material_secret: secretsmanager.ISecret,
        existing_key_arn: str | None = None,
        multi_region: bool = False,
        replica_of: "ImportedKey | str | None" = None,
        alias: str | None = None,
        description: str | None = None,
        admins: Sequence[iam.IPrincipal] | None = None,
        policy: iam.PolicyDocument | None = None,
        removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN,
        pending_window: cdk.Duration | None = None,
        enable_key_rotation: bool = False,
        key_spec: kms.KeySpec | str = kms.KeySpec.SYMMETRIC_DEFAULT,
        key_usage: kms.KeyUsage | str | None = None,
        material_encoding: MaterialEncoding | str | None = None,
        json_field: str | None = None,
        expiration: MaterialExpiration | None = None,
        wrapping_algorithm: WrappingAlgorithm | str | None = None,
        wrapping_key_spec: WrappingKeySpec | str | None = None,
        material_version_id: str | None = None,
        rotation_on_material_change: bool = False,
        delete_material_on_removal: bool = False,
        restrict_import_to_handler: bool | None = None,
        renewal_schedule: events.Schedule | None = None,
        renew_before: cdk.Duration | None = None,
        expiry_alarm_threshold: cdk.Duration | None = None,
        per_key_expiry_alarm: bool = False,
        renewal_imports_per_second: float | None = None,
        alarm_topic: sns.ITopic | None = None,
        handler_runtime: lambda_.Runtime = lambda_.Runtime.PYTHON_3_13,
        handler_architecture: lambda_.Architecture = lambda_.Architecture.ARM_64,
        handler_code_signing_config: lambda_.ICodeSigningConfig | None = None,
        break_glass_principals: Sequence[iam.IPrincipal] | None = None,
        import_handler: ImportHandler | None = None,
    ) -> None:
        """Define an EXTERNAL key and the import of its material.

        :param key_material_secret: The secret that holds the key material, as
            ``material_encoding`` says: by default SecretBinary with the raw bytes, or
            SecretString with their base64 (32 bytes for SYMMETRIC_DEFAULT, the key itself for
            HMAC, a PKCS#8 DER private key for RSA and ECC). Required. The handler may read
            only this secret.
        :param existing_key_arn: Adopt this existing key instead of creating one: the ARN of
            an EXTERNAL key in the stack's account and Region, created by hand or by another
            tool, whose ciphertexts must keep working. The stack then creates only the import
            (and the alias, if asked); the key joins the handler's sweep, expiry rule and fleet
            alarm like the others. Its owner consents by tagging it
            ``imported-key-cdk:adopted-by`` = the handler's stack name (a synth warning gives
            the command); without that tag the import is refused. Props that shape the key
            resource (``description``, ``admins``, ``policy``, ``removal_policy``,
            ``pending_window``, ``restrict_import_to_handler``, ``break_glass_principals``)
            are refused with it. Default: the stack creates the key.
        :param multi_region: Create a multi-Region primary key. KMS copies no imported
            material to replicas: each replica (``replica_of``) imports the same bytes in its
            own Region, with its own ValidTo. With ``rotation_on_material_change``, the key
            rotates in three phases (see there), and its replicas must rotate too. Not with
            ``existing_key_arn``. Default: False.
        :param replica_of: Create this key as a replica, in this stack's Region, of a
            multi-Region primary: an ``ImportedKey`` with ``multi_region=True`` in another
            Region's stack (that stack's ARN then crosses Regions: give this stack
            ``cross_region_references=True``), or the primary's key ARN. This Region's handler
            imports the same material from ``key_material_secret``, a secret in this Region.
            ``key_spec``, ``key_usage`` and ``rotation_on_material_change`` must be the
            primary's (checked at synth for an ``ImportedKey`` primary; a primary known by its
            ARN cannot be checked, so declare the replica with the same
            ``rotation_on_material_change`` as its primary, or its rotations never complete);
            one replica per Region. Default: not a replica.
        :param alias: Alias for the key (``alias/`` is added if missing). Default: no alias.
        :param description: Description of the key. Default: no description.
        :param admins: Principals allowed to administer the key (not to use it or import into
            it); with a custom ``policy`` they are also written into it.
            Default: only the account, through the default key policy.
        :param policy: Key policy. Grants and the import handler's key permissions are then
            also written into it (a custom policy may not let IAM policies decide), besides
            the grantees' own IAM policies. Default: the aws-kms default policy (the account
            root), with which same-account grants go to the grantees' IAM policies only.
        :param removal_policy: What happens to the key when it leaves the stack.
            Default: ``RemovalPolicy.RETAIN``; a destroyed key is scheduled for deletion.
        :param pending_window: Waiting period before a destroyed key is deleted (7 to 30 days).
            Default: 30 days.
        :param enable_key_rotation: Must stay False: KMS refuses automatic rotation for keys
            with imported material. Default: False.
        :param key_spec: The key's spec, a ``kms.KeySpec`` or its name in any case:
            ``SYMMETRIC_DEFAULT``, ``HMAC_224/256/384/512``,
            ``RSA_2048/3072/4096``, ``ECC_NIST_P256/P384/P521`` or ``ECC_SECG_P256K1`` (KMS
            takes no imported material for ML-DSA, SM2 or Ed25519 keys).
            Default: ``KeySpec.SYMMETRIC_DEFAULT``.
        :param key_usage: What the key is for (a ``kms.KeyUsage`` or its name in any case); it
            must be one the spec allows
            (``ENCRYPT_DECRYPT`` or ``SIGN_VERIFY`` for RSA, ``SIGN_VERIFY`` or
            ``KEY_AGREEMENT`` for the NIST curves, ``SIGN_VERIFY`` for secp256k1).
            Default: the spec's first usage (``ENCRYPT_DECRYPT`` for symmetric and RSA keys,
            ``GENERATE_VERIFY_MAC`` for HMAC keys, ``SIGN_VERIFY`` for ECC keys).
        :param material_encoding: How the secret holds the material: ``AUTO``, ``RAW``
            (SecretBinary bytes), ``BASE64``, ``HEX`` or ``PEM`` (a PEM private key, RSA and
            ECC keys only), as ``MaterialEncoding`` or a string in any case.
            Default: ``MaterialEncoding.AUTO`` (SecretBinary raw bytes, SecretString base64).
        :param json_field: The SecretString is a JSON object and this field holds the
            material (encoded as ``material_encoding`` says). Not allowed with ``RAW``.
            Default: the whole secret value is the material.
        :param expiration: When the imported material expires, counted from each import.
            Default: ``MaterialExpiration.after(Duration.days(365))``.
        :param wrapping_algorithm: How the material is wrapped for transport to KMS (a
            ``WrappingAlgorithm`` or its name in any case). Secret
            keys (symmetric, HMAC) go by RSA-OAEP only, RSA private keys by
            ``RSA_AES_KEY_WRAP_*`` only, and ECC private keys by either when they fit.
            Default: ``RSAES_OAEP_SHA_256`` for symmetric and HMAC keys,
            ``RSA_AES_KEY_WRAP_SHA_256`` for RSA and ECC keys.
        :param wrapping_key_spec: Size of KMS's RSA wrapping key (a ``WrappingKeySpec`` or its
            name in any case). Default: ``RSA_4096``.
        :param material_version_id: The secret version (its VersionId) to import. Change it
            after you put new material in the secret: CloudFormation then updates the import,
            and a rollback reads the previous version again. It may not be empty.
            Default: the AWSCURRENT version,
            read at each deployment and renewal.
        :param rotation_on_material_change: Rotate to new material instead of refusing it. The
            secret then holds every material tied to the key as a JSON document
            ``{"materials": ["<base64>", ...]}``, oldest first; a new last entry is imported as
            new material and made current with RotateKeyOnDemand (at most 25 times). Older
            materials stay imported and are renewed, so old ciphertexts still decrypt. Only
            for ``SYMMETRIC_DEFAULT`` keys: KMS rotates no other key on demand. A multi-Region
            key and its replicas must all set it alike, and rotate across their Regions in
            three phases: the primary's stack imports the new material (it waits in KMS state
            ``PENDING_MULTI_REGION_IMPORT_AND_ROTATION``), each replica's stack imports it from
            its own Region's secret, and the primary Region's sweep rotates once every replica
            holds it (within the hour, the sweep's schedule); until then the primary and its
            replicas keep encrypting with the current material. That sweep comes with
            renewal, so a rotating primary's material must expire (not
            ``MaterialExpiration.never()``).
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
            Default: True (False for an adopted key, whose key policy the stack cannot edit:
            the README shows the statement to add by hand).
        :param renewal_schedule: How often, at the longest, the handler's sweep looks for due
            keys; it must fire at least twice inside the renewal window. The sweep is shared by
            the handler's keys and runs as often as the most demanding one asks (and at least
            hourly). Default: four times inside the renewal window, at most hourly. Not used
            when the material never expires.
        :param renew_before: Re-import once the material expires within this window. Each key
            falls due at a fixed point of the window's first quarter (hashed from its id), so
            keys created together are renewed over days, not in one sweep.
            Default: 30 days, or a third of the validity period when that is shorter.
        :param expiry_alarm_threshold: The fleet alarm fires when a key of the handler expires
            within this (the tightest threshold of its keys wins), or when the sweep stops
            reporting. It must be shorter than ``renew_before``, so a renewal normally happens
            first. Default: 14 days, or half the renewal window when that is shorter.
        :param per_key_expiry_alarm: Also give this key an alarm of its own on KMS's
            ``SecondsUntilKeyMaterialExpiration`` (one more resource per key). Default: False
            (the fleet alarm covers it).
        :param renewal_imports_per_second: The share of GetParametersForImport's quota (1
            request/s per account and Region, shared by everything there) the handler's sweep
            may use, above 0 and at most 1. The handler's keys must agree on it.
            Default: 0.2.
        :param alarm_topic: SNS topic for the alarms' actions. Default: no action.
        :param handler_runtime: Python runtime of the import handler (3.13 or 3.14).
            Default: ``Runtime.PYTHON_3_13``.
        :param handler_architecture: Architecture of the import handler.
            Default: ``Architecture.ARM_64``.
        :param handler_code_signing_config: Code signing configuration for the import
            handler: with ``UntrustedArtifactOnDeployment`` set to ``Enforce``, Lambda accepts
            only code and layers signed by its allowed signing profiles, so
            ``lambda:UpdateFunctionCode`` or a new layer alone cannot replace the handler.
            CDK does not sign assets: with ``Enforce``, the handler's bundle must be signed by
            one of the profiles (AWS Signer) or Lambda refuses the deployment. The handler is
            shared by every ImportedKey of the stack with the same runtime and architecture,
            and they must all name the same configuration (or none). Default: none.
        :param break_glass_principals: IAM roles or users (one ARN each, matched by
            ``aws:PrincipalArn``) that may revoke the material at once with
            DeleteImportedKeyMaterial, despite ``restrict_import_to_handler``, or disable the
            key. The key policy allows them exactly that. A revoked key stays revoked: the
            handler refuses to import into a key that lost its material before its recorded
            ValidTo, until someone removes the key's ``imported-key-cdk:valid-to`` tag (see
            README, break-glass revocation). Default: none (only the handler may delete the
            material, and only on removal with ``delete_material_on_removal``).
        :param import_handler: The import handler to share, in this key's stack or in the stack
            this key's nested stack belongs to (``ImportedKeyFleet`` passes its own). Its
            runtime, architecture, code signing and import rate then apply. Default: the
            stack's handler for ``handler_runtime`` and ``handler_architecture``, created on
            first use.
        """
        # Every prop is checked before the construct joins the tree, so a bad value leaves the
        # scope as it was (no half-built ImportedKey holding the id).
        _props.enable_key_rotation(enable_key_rotation)
        stack = stack_of(scope)
        adopted_arn = _props.existing_key_arn(existing_key_arn, stack)
        _props.adopted_key_props(
            adopted_arn is not None,
            {
                "description": description,
                "admins": admins,
                "policy": policy,
                "pending_window": pending_window,
                "removal_policy": None
                if removal_policy == cdk.RemovalPolicy.RETAIN
                else removal_policy,
                "restrict_import_to_handler": restrict_import_to_handler,
                "break_glass_principals": break_glass_principals,
            },
        )
        restrict = restrict_import_to_handler
        if restrict is None:
            restrict = adopted_arn is None
        spec = _props.key_spec(key_spec)
        usage = _props.key_usage(spec, key_usage)
        _props.multi_region(multi_region, replica_of, adopted_arn)
        rotate = _props.rotation_on_material_change(spec, rotation_on_material_change)
        primary_arn = _props.replica_of(replica_of, stack, spec.name, usage, rotate)
        algorithm, wrapping_spec = _props.wrapping(spec, wrapping_algorithm, wrapping_key_spec)
        encoding = _props.material_encoding(spec, material_encoding, json_field)
        version_id = _props.material_version_id(material_version_id)
        _props.binding_literal("json_field", json_field)
        _props.json_field_length(json_field)
        # Read once: each read of an imported secret's attribute is two jsii round trips.
        secret_arn = key_material_secret.secret_arn
        _props.secret_arn_tag(secret_arn)
        break_glass = _props.break_glass_principals(break_glass_principals)
        shared_handler = import_handler or ImportHandler.find(
            stack, handler_runtime, handler_architecture
        )
        if shared_handler is None or not (
            shared_handler.runtime is handler_runtime
            and shared_handler.architecture is handler_architecture
        ):
            # A handler built for these very objects was built with them checked.
            _props.handler_platform(handler_runtime, handler_architecture)
        if import_handler is not None:
            _props.import_handler_stack(import_handler, import_handler.stack, stack)
        _props.secret_reader(
            key_material_secret,
            shared_handler.reader_name if shared_handler else stack.stack_name,
        )
        _props.handler_code_signing_config(
            import_handler.code_signing_config
            if import_handler is not None
            else handler_code_signing_config,
            shared_handler,
            shared_handler.code_signing_config if shared_handler else None,
        )
        imports_per_second = _props.renewal_imports_per_second(
            renewal_imports_per_second,
            shared_handler,
            shared_handler.imports_per_second if shared_handler else None,
        )
        _props.expiration_prop(expiration)
        material_expiration = expiration or MaterialExpiration(
            contract.KEY_MATERIAL_EXPIRES, DEFAULT_VALIDITY_DAYS
        )
        _props.multi_region_rotation(multi_region, rotate, material_expiration.validity_days)
        renewal = _props.renewal(
            material_expiration.validity_days,
            renewal_schedule,
            renew_before,
            expiry_alarm_threshold,
        )
        key_alias = _props.alias(alias)
        waiting_period = _props.pending_window(pending_window)

        super().__init__(scope, construct_id)
        self.expiration = material_expiration
        """When the imported material expires."""

        self.existing_key_arn = adopted_arn
        """The adopted key's ARN (``existing_key_arn``), or None when the stack created it."""
        self.multi_region = multi_region
        """A multi-Region primary (``multi_region``)."""
        self.key_spec_name = spec.name
        """The key's spec, as KMS names it."""
        self.key_usage_name = usage
        """The key's usage, as KMS names it."""
        self.rotates_on_material_change = rotate
        """Rotates to new material (``rotation_on_material_change``); a primary's replicas
        must agree with it."""
        self.replica_regions: dict[str, str] = {}
        """The Regions of this primary's replicas declared in the app, with their paths."""
        self._replica_policy: iam.PolicyDocument | None = None
        self._replica_key: kms.CfnReplicaKey | None = None
        self.external_key: kms.IKey
        """The key itself: the resource, PendingImport until the import has run, or a reference
        to an adopted key. Its references do not wait for the import: use the ImportedKey."""
        cfn_key: kms.CfnKey | kms.CfnReplicaKey | None = None
        if adopted_arn is not None:
            self.external_key = kms.Key.from_key_arn(self, "Key", adopted_arn)
        elif primary_arn is not None:
            cfn_key = self._new_replica(
                primary_arn, description, policy, removal_policy, waiting_period
            )
            self.external_key = kms.Key.from_key_arn(self, "KeyRef", cfn_key.attr_arn)
            _props.register_replica(replica_of, stack, self.node.path)
        else:
            self.external_key, cfn_key = self._new_key(
                key_alias, description, admins, policy, removal_policy, waiting_period, spec, usage
            )
        if key_alias is not None and not isinstance(cfn_key, kms.CfnKey):
            kms.Alias(self, "Alias", alias_name=key_alias, target_key=self.external_key)
        # Where the key policy is written: kms.Key's own, a replica's document (through this
        # construct's add_to_resource_policy), or nowhere for an adopted key.
        policy_holder: kms.IKey = self if self._replica_policy is not None else self.external_key
        # The default key policy lets the account's IAM policies decide, so a same-account grant
        # goes to the grantee's policy as kms.Key's does. A custom policy may not say so: then
        # every grant also writes the key policy, rather than silently granting nothing.
        self._trust_account_identities = policy is None
        self._grants: kms.KeyGrants | None = None
        if policy is not None or self._replica_policy is not None:
            # Administration does not wait for the import: on the key resource itself (kms.Key
            # writes admins itself into its default policy only).
            for admin in admins or []:
                kms.KeyGrants.from_key(policy_holder, False).admin(admin)

        import_handler = shared_handler or ImportHandler.of(
            stack,
            handler_runtime,
            handler_architecture,
            handler_code_signing_config,
            imports_per_second,
        )
        self.handler = import_handler.function
        """The stack's import handler, shared by every ImportedKey with the same runtime."""
        if adopted_arn is not None:
            import_handler.adopt()
        import_handler.grant_import(
            policy_holder,
            key_material_secret,
            spec=spec,
            wrapping_algorithm=algorithm,
            wrapping_key_spec=wrapping_spec,
            expiration_model=self.expiration.expiration_model,
            revoke=delete_material_on_removal,
            rotate=rotate,
            exclusive=restrict,
            through_key_policy=policy is not None,
            break_glass=break_glass,
        )

        properties: dict[str, str] = {
            contract.PROP_KEY_ID: self.external_key.key_id,
            contract.PROP_SECRET_ARN: secret_arn,
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
        properties[contract.PROP_ROTATE_ON_MATERIAL_CHANGE] = str(rotate).lower()
        if version_id is not None:
            properties[contract.PROP_MATERIAL_VERSION_ID] = version_id
        if renewal is not None:
            properties[contract.PROP_RENEW_BEFORE_SECONDS] = str(renewal.renew_before_s)
        self.material_import = cdk.CustomResource(
            self,
            "MaterialImport",
            service_token=import_handler.service_token,
            resource_type=contract.RESOURCE_TYPE,
            properties=properties,
        )
        """The custom resource that imports the material on create and update."""
        self._bind(
            import_handler,
            properties,
            renewal.renew_before_s if renewal is not None else None,
            cfn_key,
            stack,
        )
        # The import's attributes, each made when first read (a round trip each).
        self._attributes: dict[str, str] = {}

        self.renewal: FleetRenewal | None = None
        """The handler's sweep, expiry-event rule and fleet alarm, which renew and watch this
        key with the handler's others (None when the material never expires)."""
        self.key_expiry_alarm: KeyExpiryAlarm | None = None
        """The key's own expiry alarm, with ``per_key_expiry_alarm`` (else None)."""
        if renewal is not None:
            self.renewal = FleetRenewal.of(import_handler)
            self.renewal.add_key(renewal.interval_s, renewal.expiry_alarm_threshold_s)
            if per_key_expiry_alarm:
                self.key_expiry_alarm = KeyExpiryAlarm(
                    self,
                    "Renewal",
                    key=self.external_key,
                    expiry_alarm_threshold=cdk.Duration.seconds(renewal.expiry_alarm_threshold_s),
                )
        self.handler_errors_alarm: cloudwatch.Alarm = import_handler.errors_alarm
        """In alarm when the shared handler fails (shared by the stack's ImportedKeys)."""
        self.dead_letter_alarm: cloudwatch.Alarm = import_handler.dead_letter_alarm
        """In alarm while a failed renewal waits in the dead-letter queue (shared likewise)."""
        if alarm_topic is not None:
            import_handler.notify(alarm_topic)
            if self.renewal is not None:
                self.renewal.notify(alarm_topic)
            if self.key_expiry_alarm is not None:
                self.key_expiry_alarm.notify(alarm_topic)

    def _new_key(
        self,
        key_alias: str | None,
        description: str | None,
        admins: Sequence[iam.IPrincipal] | None,
        policy: iam.PolicyDocument | None,
        removal_policy: cdk.RemovalPolicy,
        waiting_period: cdk.Duration | None,
        spec: contract.KeySpec,
        usage: str,
    ) -> tuple[kms.Key, kms.CfnKey]:
        key = kms.Key(
            self,
            "Key",
            alias=key_alias,
            description=description,
            admins=list(admins) if admins is not None and policy is None else None,
            policy=policy,
            removal_policy=removal_policy,
            pending_window=waiting_period,
            key_spec=kms.KeySpec(spec.name),
            key_usage=kms.KeyUsage(usage),
            multi_region=self.multi_region or None,
        )
        cfn_key = cast(kms.CfnKey, key.node.default_child)
        cfn_key.origin = "EXTERNAL"
        _nag.acknowledge(
            cfn_key,
            {
                rule: "KMS refuses automatic rotation for keys with imported material; "
                "rotation_on_material_change rotates it on demand."
                for rule in ("AwsSolutions-KMS5", "NIST.800.53.R5-KMSBackingKeyRotationEnabled")
            },
        )
        return key, cfn_key

    def _new_replica(
        self,
        primary_arn: str,
        description: str | None,
        policy: iam.PolicyDocument | None,
        removal_policy: cdk.RemovalPolicy,
        waiting_period: cdk.Duration | None,
    ) -> kms.CfnReplicaKey:
        """A replica of the primary, PendingImport until this Region's handler imports into it.
        A replica's key policy is its own (KMS shares none): by default kms.Key's default, the
        account's IAM policies decide."""
        self._replica_policy = policy or iam.PolicyDocument(
            statements=[
                iam.PolicyStatement(
                    actions=["kms:*"], principals=[iam.AccountRootPrincipal()], resources=["*"]
                )
            ]
        )
        replica = kms.CfnReplicaKey(
            self,
            "Key",
            primary_key_arn=primary_arn,
            key_policy=self._replica_policy,
            description=description,
            pending_window_in_days=waiting_period.to_days() if waiting_period else None,
        )
        replica.apply_removal_policy(removal_policy)
        self._replica_key = replica
        return replica

    def _bind(
        self,
        import_handler: ImportHandler,
        properties: dict[str, str],
        renew_before_seconds: int | None,
        cfn_key: kms.CfnKey | kms.CfnReplicaKey | None,
        stack: cdk.Stack,
    ) -> None:
        """Write what the stack declared for the key where only a deployment writes: the
        handler acts on nothing else.

        On a key of the stack, CloudFormation writes these tags from the same template as the
        custom resource's properties, before the import runs (the import depends on the key).
        An adopted key is not the stack's to tag: the same tags go into the import resource's
        Metadata, which the handler reads from CloudFormation. See
        ``imported_key_handler.binding`` for how the handler checks them.
        """
        version = properties.get(contract.PROP_MATERIAL_VERSION_ID)
        import_resource = cast(cdk.CfnResource, self.material_import.node.default_child)
        declared = {
            contract.TAG_HANDLER: import_handler.role_id,
            contract.TAG_SECRET: properties[contract.PROP_SECRET_ARN],
            contract.TAG_SETTINGS: contract.settings_digest(properties),
            contract.TAG_DECLARED: contract.declared_settings(properties, renew_before_seconds),
        }
        if version is not None:
            declared[contract.TAG_MATERIAL_VERSION] = version
        if cfn_key is None:  # an adopted key
            record = {
                contract.METADATA_KEY_ARN: self.existing_key_arn,
                contract.METADATA_TAGS: declared,
            }
            import_resource.add_metadata(contract.METADATA_BINDING, record)
            cdk.Annotations.of(self).add_warning_v2(
                "imported-key-cdk:adopted-key-tag",
                f"The adopted key {self.existing_key_arn} is not this stack's to tag: its owner "
                f"consents by tagging it {contract.TAG_ADOPTED_BY}={import_handler.reader_name} "
                f"(aws kms tag-resource --key-id {self.existing_key_arn} --tags "
                f"TagKey={contract.TAG_ADOPTED_BY},TagValue={import_handler.reader_name}), or "
                "the import is refused.",
            )
            return
        tags = {
            **declared,
            contract.TAG_STACK: _stack_id(stack),
            contract.TAG_RESOURCE: import_resource.logical_id,
            contract.TAG_KEY_RESOURCE: cfn_key.logical_id,
        }
        tag_manager = cfn_key.tags
        for name, value in tags.items():
            # Above any Tags.of(...) aspect: the binding is not a tag users may override.
            tag_manager.set_tag(name, value, _BINDING_TAG_PRIORITY)

    # --- kms.IKey ---------------------------------------------------------------------------

    @property
    def grants(self) -> kms.KeyGrants:
        """kms.Key-style grants on the key, whose resource is the import's key ARN."""
        # Made on first use: many keys are never granted anything here.
        if self._grants is None:
            self._grants = kms.KeyGrants.from_key(self, self._trust_account_identities)
        return self._grants

    def _import_attribute(self, name: str) -> str:
        value = self._attributes.get(name)
        if value is None:
            value = self._attributes[name] = self.material_import.get_att_string(name)
        return value

    @property
    def key_arn(self) -> str:
        """ARN of the key, resolved once the material is imported."""
        return self._import_attribute(contract.ATTR_KEY_ARN)

    @property
    def key_id(self) -> str:
        """ID of the key, resolved once the material is imported."""
        return self._import_attribute(contract.ATTR_KEY_ID)

    @property
    def valid_to(self) -> str:
        """ISO 8601 time the material expires (empty when it never expires), as of the last
        deployment."""
        return self._import_attribute(contract.ATTR_VALID_TO)

    @property
    def key_ref(self) -> kms_refs.KeyReference:
        """The key's ARN and id for L1 properties, both through the import."""
        return kms_refs.KeyReference(key_arn=self.key_arn, key_id=self.key_id)

    @property
    def key(self) -> kms.IKey:
        """The key itself (kept for code written when ImportedKey was not a kms.IKey)."""
        return self

    def add_alias(self, alias: str) -> kms.Alias:
        """Define an alias for the key; it points at the key once the material is imported."""
        name = _props.alias(alias) or alias
        suffix = "" if _props.unresolved(name) else re.sub(r"\W", "", name)
        construct_id = f"Alias{suffix or len(self.node.children)}"
        return kms.Alias(self, construct_id, alias_name=name, target_key=self)

    def add_to_resource_policy(
        self, statement: iam.PolicyStatement, allow_no_op: bool | None = None
    ) -> iam.AddToResourcePolicyResult:
        """Add ``statement`` to the key policy."""
        if self._replica_policy is not None:
            self._replica_policy.add_statements(statement)
            return iam.AddToResourcePolicyResult(statement_added=True)
        return self.external_key.add_to_resource_policy(statement, allow_no_op)

    def apply_removal_policy(self, policy: cdk.RemovalPolicy) -> None:
        """What happens to the key when it leaves the stack."""
        _props.adopted_removal_policy(self.existing_key_arn, policy)
        if self._replica_key is not None:
            self._replica_key.apply_removal_policy(policy)
            return
        self.external_key.apply_removal_policy(policy)

    def grant(self, grantee: iam.IGrantable, *actions: str) -> iam.Grant:
        """Grant ``actions`` on the key to ``grantee``, effective after the import."""
        return self.grants.actions(grantee, *actions)

    def grant_admin(self, grantee: iam.IGrantable) -> iam.Grant:
        """Grant the key's administration (not its use) to ``grantee``."""
        return self.grants.admin(grantee)

    def grant_encrypt_decrypt(self, grantee: iam.IGrantable) -> iam.Grant:
        """Grant encryption and decryption with the key, effective after the import."""
        return self.grants.encrypt_decrypt(grantee)

    def grant_encrypt(self, grantee: iam.IGrantable) -> iam.Grant:
        """Grant encryption with the key, effective after the import."""
        return self.grants.encrypt(grantee)

    def grant_decrypt(self, grantee: iam.IGrantable) -> iam.Grant:
        """Grant decryption with the key, effective after the import."""
        return self.grants.decrypt(grantee)

    def grant_sign(self, grantee: iam.IGrantable) -> iam.Grant:
        """Grant signing with the key (``SIGN_VERIFY`` keys), effective after the import."""
        return self.grants.sign(grantee)

    def grant_verify(self, grantee: iam.IGrantable) -> iam.Grant:
        """Grant signature verification with the key (``SIGN_VERIFY`` keys), effective after
        the import."""
        return self.grants.verify(grantee)

    def grant_sign_verify(self, grantee: iam.IGrantable) -> iam.Grant:
        """Grant signing and verification with the key (``SIGN_VERIFY`` keys), effective after
        the import."""
        return self.grants.sign_verify(grantee)

    def grant_generate_mac(self, grantee: iam.IGrantable) -> iam.Grant:
        """Grant MAC generation with the key (HMAC keys), effective after the import."""
        return self.grants.generate_mac(grantee)

    def grant_verify_mac(self, grantee: iam.IGrantable) -> iam.Grant:
        """Grant MAC verification with the key (HMAC keys), effective after the import."""
        return self.grants.verify_mac(grantee)

    # --- renewal ------------------------------------------------------------------------------

    @property
    def renewal_rule(self) -> events.Rule | None:
        """The handler's sweep, which renews this key when it is due (None when the material
        never expires)."""
        return self.renewal.sweep_rule if self.renewal else None

    @property
    def recovery_rule(self) -> events.Rule | None:
        """Re-imports at once when KMS reports the material expired (None likewise)."""
        return self.renewal.recovery_rule if self.renewal else None

    @property
    def expiry_alarm(self) -> cloudwatch.Alarm | None:
        """The key's own expiry alarm with ``per_key_expiry_alarm``, else the fleet alarm that
        covers it (None when the material never expires)."""
        if self.key_expiry_alarm is not None:
            return self.key_expiry_alarm.expiry_alarm
        return self.renewal.expiry_alarm if self.renewal else None
