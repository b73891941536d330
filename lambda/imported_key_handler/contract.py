"""The contract between the ``ImportedKey`` construct and this handler.

The construct writes these property names and values into the custom resource at synth time;
the handler reads them at deploy time. Keeping both sides on one module means they cannot drift.
Nothing here may import boto3 or crhelper: the construct imports this module during ``cdk synth``.
"""

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

# ``module.function`` inside the Lambda asset. The asset root holds the ``imported_key_handler``
# package, so this is also importable from a wheel install.
HANDLER_ENTRY: Final = "imported_key_handler.entry.handler"
RESOURCE_TYPE: Final = "Custom::ImportedKeyMaterial"

# Custom resource property names (CloudFormation passes every value as a string).
PROP_KEY_ID: Final = "KeyId"
PROP_SECRET_ARN: Final = "SecretArn"  # noqa: S105 - a property name
PROP_KEY_SPEC: Final = "KeySpec"
PROP_KEY_USAGE: Final = "KeyUsage"
# How the secret holds the material: "auto" (SecretBinary raw bytes, SecretString base64 or a
# materials document), or explicitly "raw", "base64", "hex" or "pem"; optionally inside a JSON
# SecretString under the field PROP_JSON_FIELD names.
PROP_MATERIAL_ENCODING: Final = "MaterialEncoding"
PROP_JSON_FIELD: Final = "JsonField"
PROP_WRAPPING_ALGORITHM: Final = "WrappingAlgorithm"
PROP_WRAPPING_KEY_SPEC: Final = "WrappingKeySpec"
PROP_EXPIRATION_MODEL: Final = "ExpirationModel"
PROP_VALIDITY_DAYS: Final = "ValidityDays"
# Optional: the secret version (VersionId) to import; absent means AWSCURRENT. A new value makes
# CloudFormation send an Update; a rollback sends the old one back, which still holds the
# material the key had.
PROP_MATERIAL_VERSION_ID: Final = "MaterialVersionId"
# "true" or "false": new material in the secret is imported as NEW_KEY_MATERIAL and rotated to.
PROP_ROTATE_ON_MATERIAL_CHANGE: Final = "RotateOnMaterialChange"
# "true" or "false": on Delete, revoke with DeleteImportedKeyMaterial.
PROP_DELETE_MATERIAL_ON_REMOVAL: Final = "DeleteMaterialOnRemoval"
# The renewal window in seconds (expiring material only). The handler does not read it: the key's
# TAG_DECLARED holds the window it indexes the key by. It is a property so that a changed window,
# and the upgrade that brought the due index, reach the handler as an Update that re-indexes.
PROP_RENEW_BEFORE_SECONDS: Final = "RenewBeforeSeconds"

# Attributes returned in the response ``Data`` (readable with Fn::GetAtt).
ATTR_KEY_ARN: Final = "KeyArn"
ATTR_KEY_ID: Final = "KeyId"
ATTR_VALID_TO: Final = "ValidTo"
ATTR_KEY_MATERIAL_ID: Final = "KeyMaterialId"
# How the import was proven: GetPublicKey, GenerateMac or KeyMaterialId.
ATTR_VERIFIED: Final = "Verified"

MATERIAL_ENCODINGS: Final = ("auto", "raw", "base64", "hex", "pem")

SYMMETRIC_DEFAULT: Final = "SYMMETRIC_DEFAULT"

RSAES_OAEP_SHA_1: Final = "RSAES_OAEP_SHA_1"
RSAES_OAEP_SHA_256: Final = "RSAES_OAEP_SHA_256"
RSA_AES_KEY_WRAP_SHA_1: Final = "RSA_AES_KEY_WRAP_SHA_1"
RSA_AES_KEY_WRAP_SHA_256: Final = "RSA_AES_KEY_WRAP_SHA_256"
OAEP_ALGORITHMS: Final = (RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256)
RSA_AES_ALGORITHMS: Final = (RSA_AES_KEY_WRAP_SHA_1, RSA_AES_KEY_WRAP_SHA_256)
WRAPPING_ALGORITHMS: Final = OAEP_ALGORITHMS + RSA_AES_ALGORITHMS

# GetParametersForImport's WrappingKeySpec values, with the RSA modulus each one names.
WRAPPING_KEY_BITS: Final = {"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}
WRAPPING_KEY_SPECS: Final = tuple(WRAPPING_KEY_BITS)

KEY_MATERIAL_EXPIRES: Final = "KEY_MATERIAL_EXPIRES"
KEY_MATERIAL_DOES_NOT_EXPIRE: Final = "KEY_MATERIAL_DOES_NOT_EXPIRE"
EXPIRATION_MODELS: Final = (KEY_MATERIAL_EXPIRES, KEY_MATERIAL_DOES_NOT_EXPIRE)
MIN_VALIDITY_DAYS: Final = 1
MAX_VALIDITY_DAYS: Final = 365  # KMS refuses a ValidTo more than 365 days ahead.

SYMMETRIC_MATERIAL_BYTES: Final = 32
# A SecretString that is a JSON object holds every material tied to a rotating key, oldest
# first: {"materials": ["<base64>", ...]}. The last one is the current material.
MATERIALS_FIELD: Final = "materials"
MAX_ON_DEMAND_ROTATIONS: Final = 25

# A renewal of one key (the sweep sends one per due key; an operator or a test may too):
#   {"ImportedKeyRenewal": {"Trigger": ..., "KeyId": "..."}}
# Everything else the renewal needs it reads from the key's binding tags, never from the event.
RENEWAL_EVENT: Final = "ImportedKeyRenewal"
RENEWAL_TRIGGER: Final = "Trigger"
RENEWAL_KEY_ID: Final = "KeyId"
TRIGGER_SCHEDULE: Final = "schedule"
TRIGGER_MATERIAL_EXPIRED: Final = "material-expired"
TRIGGER_SWEEP: Final = "sweep"
# An operator's ``imported-keys renew KEY``: re-import now, due or not (the same material, so
# nothing but the ValidTo changes; a revoked key is still refused).
TRIGGER_OPERATOR: Final = "operator"
RENEWAL_TRIGGERS: Final = (
    TRIGGER_SCHEDULE,
    TRIGGER_MATERIAL_EXPIRED,
    TRIGGER_SWEEP,
    TRIGGER_OPERATOR,
)
# Proof on demand that a key holds its secret's material (an operator's ``imported-keys
# verify``): {"ImportedKeyVerify": {"KeyId": "..."}}; the settings come from the binding tags.
VERIFY_EVENT: Final = "ImportedKeyVerify"
# The handler's one schedule: {"ImportedKeySweep": {}} finds every key that is due and renews it.
SWEEP_EVENT: Final = "ImportedKeySweep"
# What KMS sends to EventBridge when imported material expires (source aws.kms; the key's ARN is
# the event's only resource).
KMS_EXPIRATION_EVENT: Final = "KMS Imported Key Material Expiration"
# The sweep's figures, one set per handler (fleet), in this CloudWatch namespace.
FLEET_METRIC_NAMESPACE: Final = "ImportedKeyCdk/Fleet"
# Seconds until the earliest recorded ValidTo of the fleet: the fleet alarm's metric.
METRIC_MIN_SECONDS_TO_EXPIRY: Final = "MinSecondsUntilExpiration"
METRIC_KEYS: Final = "Keys"
METRIC_DUE: Final = "KeysDue"
METRIC_RENEWED: Final = "KeysRenewed"
METRIC_FAILED: Final = "KeysFailed"
METRIC_DIMENSION: Final = "Handler"


# --- The binding: what the stack declared for each key, where only a deployment writes it.
# CloudFormation writes these tags on each key from the same template that holds the custom
# resource's properties; the handler acts on an event only when the event matches them. The
# handler can invoke nothing that writes them: its role may tag a key with TAG_VALID_TO only.
TAG_PREFIX: Final = "imported-key-cdk:"
# The RoleId of the handler's role (unique: a role re-created with the same name gets another).
TAG_HANDLER: Final = "imported-key-cdk:handler"
TAG_SECRET: Final = "imported-key-cdk:secret"  # noqa: S105 - a tag key
# BINDING_VERSION + "-" + the SHA-256 of the key's bound settings (settings_digest).
TAG_SETTINGS: Final = "imported-key-cdk:settings"
# The VersionId, whenever one is declared (a token at synth cannot be in the digest, and the
# declared settings leave it out for length).
TAG_MATERIAL_VERSION: Final = "imported-key-cdk:material-version"
# The key's stack (AWS::StackId) and the custom resource's logical id: a Delete that revokes
# must come from CloudFormation removing exactly that resource.
TAG_STACK: Final = "imported-key-cdk:stack"
TAG_RESOURCE: Final = "imported-key-cdk:resource"
# Written by the handler after each import: the ValidTo it asked for (ISO 8601, UTC) or
# VALID_TO_NEVER. A key that is PendingImport before that time lost its material on purpose.
TAG_VALID_TO: Final = "imported-key-cdk:valid-to"
VALID_TO_NEVER: Final = "never"
# The key's own logical id in TAG_STACK: CloudFormation, asked about it, must name this key, or
# the handler does not import into it (a tag alone can be copied onto any key).
TAG_KEY_RESOURCE: Final = "imported-key-cdk:key-resource"
# The renewal settings of the key in clear (declared_settings): the sweep and the expiration
# rule renew from the key's tags alone. TAG_SETTINGS (the digest) is what they are checked by.
TAG_DECLARED: Final = "imported-key-cdk:declared"
# --- Adopted keys: created outside the stack (by hand, by Terraform) and declared by ARN.
# CloudFormation cannot tag a key it does not hold, so the binding lives in its record instead:
# the import resource's Metadata (METADATA_BINDING) holds the key's ARN and the tags a key of the
# stack would carry (TAG_HANDLER, TAG_SECRET, TAG_SETTINGS, TAG_DECLARED, TAG_MATERIAL_VERSION),
# and the handler reads it with DescribeStackResource. The key's owner consents by tagging the
# key TAG_ADOPTED_BY = the handler's stack name; the handler's policy reaches adopted keys by
# that tag. After each confirmed import the handler writes TAG_STACK and TAG_RESOURCE on the
# key: pointers for the sweep to that record, which decides.
TAG_ADOPTED_BY: Final = "imported-key-cdk:adopted-by"
METADATA_BINDING: Final = "ImportedKeyCdk::Binding"
METADATA_KEY_ARN: Final = "KeyArn"
METADATA_TAGS: Final = "Tags"
ADOPTED_DECLARED_TAGS: Final = (
    TAG_HANDLER,
    TAG_SECRET,
    TAG_SETTINGS,
    TAG_DECLARED,
    TAG_MATERIAL_VERSION,
)
ADOPTED_POINTER_TAGS: Final = (TAG_STACK, TAG_RESOURCE)
# The function's environment names its own role's RoleId (the construct sets it).
ENV_HANDLER_ROLE_ID: Final = "IMPORTED_KEY_HANDLER_ROLE_ID"
# ... its own stack's id: keys declared there, or in a stack nested in it, are the ones it serves.
ENV_HANDLER_STACK_ID: Final = "IMPORTED_KEY_HANDLER_STACK_ID"
# ... the bucket holding the due index (imported_key_handler.registry).
ENV_REGISTRY_BUCKET: Final = "IMPORTED_KEY_REGISTRY_BUCKET"
# ... the share of GetParametersForImport's 1 request/s a sweep may use.
ENV_IMPORTS_PER_SECOND: Final = "IMPORTED_KEY_IMPORTS_PER_SECOND"
# ... the name the fleet's metrics carry (METRIC_DIMENSION).
ENV_FLEET_NAME: Final = "IMPORTED_KEY_FLEET_NAME"
# ... the imported-key-cdk version that deployed it (the operator's doctor compares its own).
ENV_LIBRARY_VERSION: Final = "IMPORTED_KEY_CDK_VERSION"
LIBRARY_DISTRIBUTION: Final = "imported-key-cdk"
# The tag a secret carries so that a handler may read it (its value: the handler's fleet name).
SECRET_READER_TAG: Final = "imported-key-cdk:reader"  # noqa: S105 - a tag key
# GetParametersForImport: 1 request/s per account and Region, shared with everything else there.
DEFAULT_IMPORTS_PER_SECOND: Final = 0.2
# The JSON field's name travels in TAG_DECLARED as base64: 64 bytes of UTF-8 keep the tag within
# 256 characters whatever the other settings are.
MAX_JSON_FIELD_BYTES: Final = 64
BINDING_VERSION: Final = "v2"
# Every property but the key and the secret (which have tags of their own). An absent property
# and an empty one are the same to the handler, so both digest as "".
BOUND_SETTINGS: Final = (
    PROP_KEY_SPEC,
    PROP_KEY_USAGE,
    PROP_MATERIAL_ENCODING,
    PROP_JSON_FIELD,
    PROP_WRAPPING_ALGORITHM,
    PROP_WRAPPING_KEY_SPEC,
    PROP_EXPIRATION_MODEL,
    PROP_VALIDITY_DAYS,
    PROP_MATERIAL_VERSION_ID,
    PROP_ROTATE_ON_MATERIAL_CHANGE,
    PROP_DELETE_MATERIAL_ON_REMOVAL,
)
# Stands for the VersionId in the digest: TAG_MATERIAL_VERSION carries it.
VERSION_IN_TAG: Final = "@" + TAG_MATERIAL_VERSION


def settings_digest(properties: Mapping[str, object]) -> str:
    """The TAG_SETTINGS value for these custom resource properties.

    Canonical JSON of the bound settings as CloudFormation sends them (strings), hashed: the
    construct computes it at synth from its literal properties, the handler from the event. A
    declared version stands as VERSION_IN_TAG: TAG_MATERIAL_VERSION holds it.
    """
    values = {name: str(properties.get(name) or "") for name in BOUND_SETTINGS}
    if values[PROP_MATERIAL_VERSION_ID]:
        values[PROP_MATERIAL_VERSION_ID] = VERSION_IN_TAG
    canonical = json.dumps(values, sort_keys=True, separators=(",", ":"))
    return f"{BINDING_VERSION}-{hashlib.sha256(canonical.encode()).hexdigest()}"


# --- The KMS catalog: which key specs take imported material, and how each may be wrapped.
ENCRYPT_DECRYPT: Final = "ENCRYPT_DECRYPT"
SIGN_VERIFY: Final = "SIGN_VERIFY"
GENERATE_VERIFY_MAC: Final = "GENERATE_VERIFY_MAC"
KEY_AGREEMENT: Final = "KEY_AGREEMENT"

SYMMETRIC: Final = "symmetric"
HMAC: Final = "hmac"
RSA: Final = "rsa"
ECC: Final = "ecc"


@dataclass(frozen=True)
class KeySpec:
    name: str
    family: str
    usages: tuple[str, ...]  # the first is the default
    min_material_bytes: int
    # The largest material KMS takes for the spec: the raw key for symmetric and HMAC keys, the
    # PKCS#8 DER private key (with its public key, as OpenSSL writes it) for asymmetric ones.
    max_material_bytes: int
    digest_bits: int | None = None  # HMAC
    curve: str | None = None  # ECC, as `cryptography` names it
    modulus_bits: int | None = None  # RSA


# KMS developer guide, "Requirements for imported key material": HMAC_224 takes 28 to 64 bytes,
# HMAC_256 32 to 64, HMAC_384 48 to 128 and HMAC_512 64 to 128 (from the digest size up to the
# hash's block size).
HMAC_MAX_MATERIAL_BYTES: Final = {224: 64, 256: 64, 384: 128, 512: 128}


def _hmac(bits: int) -> KeySpec:
    return KeySpec(
        f"HMAC_{bits}",
        HMAC,
        (GENERATE_VERIFY_MAC,),
        bits // 8,
        HMAC_MAX_MATERIAL_BYTES[bits],
        digest_bits=bits,
    )


def _rsa(bits: int) -> KeySpec:
    # A PKCS#8 RSA key is about 0.6 bytes per modulus bit; RSA keys only go by RSA_AES_KEY_WRAP.
    return KeySpec(f"RSA_{bits}", RSA, (ENCRYPT_DECRYPT, SIGN_VERIFY), 64, bits, modulus_bits=bits)


def _ecc(name: str, curve: str, der_bytes: int, usages: tuple[str, ...]) -> KeySpec:
    return KeySpec(name, ECC, usages, 32, der_bytes, curve=curve)


KEY_SPECS: Final = {
    spec.name: spec
    for spec in (
        KeySpec(SYMMETRIC_DEFAULT, SYMMETRIC, (ENCRYPT_DECRYPT,), 32, 32),
        _hmac(224),
        _hmac(256),
        _hmac(384),
        _hmac(512),
        _rsa(2048),
        _rsa(3072),
        _rsa(4096),
        _ecc("ECC_NIST_P256", "secp256r1", 138, (SIGN_VERIFY, KEY_AGREEMENT)),
        _ecc("ECC_NIST_P384", "secp384r1", 185, (SIGN_VERIFY, KEY_AGREEMENT)),
        _ecc("ECC_NIST_P521", "secp521r1", 241, (SIGN_VERIFY, KEY_AGREEMENT)),
        _ecc("ECC_SECG_P256K1", "secp256k1", 135, (SIGN_VERIFY,)),
    )
}

# Specs KMS has but that cannot take imported material here, with the reason to show.
REFUSED_KEY_SPECS: Final = {
    "ML_DSA_44": "ML-DSA keys cannot take imported material",
    "ML_DSA_65": "ML-DSA keys cannot take imported material",
    "ML_DSA_87": "ML-DSA keys cannot take imported material",
    "SM2": "SM2 is for the China Regions only, which this library does not support",
    "ECC_NIST_EDWARDS25519": "KMS does not take imported material for Ed25519 keys",
}


def oaep_capacity(modulus_bits: int, algorithm: str) -> int:
    """Largest plaintext in bytes that RSA-OAEP with this algorithm's hash can encrypt."""
    digest_bytes = 20 if algorithm.endswith("_SHA_1") else 32
    return modulus_bits // 8 - 2 * digest_bytes - 2


def allowed_wrappings(spec: KeySpec) -> list[tuple[str, str]]:
    """Every (WrappingAlgorithm, WrappingKeySpec) that KMS takes for this key spec."""
    pairs: list[tuple[str, str]] = []
    for wrapping_key_spec, bits in WRAPPING_KEY_BITS.items():
        for algorithm in WRAPPING_ALGORITHMS:
            if algorithm in OAEP_ALGORITHMS:
                fits = spec.max_material_bytes <= oaep_capacity(bits, algorithm)
                if spec.family != RSA and fits:
                    pairs.append((algorithm, wrapping_key_spec))
            elif spec.family in (RSA, ECC):
                # AES key wrap is for private keys; KMS takes OAEP only for secret keys.
                pairs.append((algorithm, wrapping_key_spec))
    return pairs


def default_wrapping(spec: KeySpec) -> tuple[str, str]:
    """The strongest choice: RSA_4096, with OAEP-SHA-256 for secret keys and AES key wrap
    with SHA-256 for private keys."""
    if spec.family in (RSA, ECC):
        return RSA_AES_KEY_WRAP_SHA_256, "RSA_4096"
    return RSAES_OAEP_SHA_256, "RSA_4096"


def wrapping_refusal(spec: KeySpec, algorithm: str, wrapping_key_spec: str) -> str | None:
    """Why KMS would refuse this wrapping for this key spec, or None if it takes it."""
    if (algorithm, wrapping_key_spec) in allowed_wrappings(spec):
        return None
    valid = sorted({a for a, s in allowed_wrappings(spec) if s == wrapping_key_spec})
    if spec.family == RSA and algorithm in OAEP_ALGORITHMS:
        why = "an RSA private key does not fit RSA-OAEP"
    elif spec.family in (SYMMETRIC, HMAC) and algorithm in RSA_AES_ALGORITHMS:
        why = "KMS takes secret-key material by RSA-OAEP only"
    elif algorithm in OAEP_ALGORITHMS:
        capacity = oaep_capacity(WRAPPING_KEY_BITS.get(wrapping_key_spec, 0), algorithm)
        why = f"{spec.max_material_bytes} bytes of material exceed its capacity of {capacity}"
    else:
        why = "the combination is not supported"
    return (
        f"{spec.name} material cannot be wrapped with {algorithm} under {wrapping_key_spec}: "
        f"{why}. Valid algorithms for {wrapping_key_spec}: {', '.join(valid) or 'none'}."
    )


# --- The declared settings in clear, for renewals that start from a key id alone.
# One tag value (at most 256 characters of letters, digits, spaces and _.:/=+-@): the version,
# then every bound setting but the version in DECLARED_FIELDS order, "-" for an absent one,
# then the renewal window in seconds. The JSON field, free text, travels as URL-safe base64.
DECLARED_VERSION: Final = "d1"
DECLARED_FIELDS: Final = (
    PROP_KEY_SPEC,
    PROP_KEY_USAGE,
    PROP_MATERIAL_ENCODING,
    PROP_WRAPPING_ALGORITHM,
    PROP_WRAPPING_KEY_SPEC,
    PROP_EXPIRATION_MODEL,
    PROP_VALIDITY_DAYS,
    PROP_ROTATE_ON_MATERIAL_CHANGE,
    PROP_DELETE_MATERIAL_ON_REMOVAL,
    PROP_JSON_FIELD,
)
_ABSENT: Final = "-"


def declared_settings(properties: Mapping[str, object], renew_before_seconds: int | None) -> str:
    """The TAG_DECLARED value for these properties and renewal window."""
    values = [DECLARED_VERSION]
    for name in DECLARED_FIELDS:
        value = str(properties.get(name) or "")
        if name == PROP_JSON_FIELD and value:
            value = base64.urlsafe_b64encode(value.encode()).decode()
        values.append(value or _ABSENT)
    values.append(str(renew_before_seconds) if renew_before_seconds else _ABSENT)
    return " ".join(values)


def parse_declared(value: str) -> tuple[dict[str, str], int | None]:
    """The properties (without key, secret and version) and the renewal window in a
    TAG_DECLARED value; ValueError when it is not one."""
    parts = value.split(" ")
    if len(parts) != len(DECLARED_FIELDS) + 2 or parts[0] != DECLARED_VERSION:
        raise ValueError("not a declared-settings value of this version")
    properties: dict[str, str] = {}
    for name, raw in zip(DECLARED_FIELDS, parts[1:-1], strict=True):
        if raw == _ABSENT:
            continue
        properties[name] = (
            base64.urlsafe_b64decode(raw.encode()).decode() if name == PROP_JSON_FIELD else raw
        )
    window = parts[-1]
    return properties, (None if window == _ABSENT else int(window))
