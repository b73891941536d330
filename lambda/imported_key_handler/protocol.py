"""The contract between the ``ImportedKey`` construct and this handler.

The construct writes these property names and values into the custom resource at synth time;
the handler reads them at deploy time. Keeping both sides on one module means they cannot drift.
Nothing here may import boto3 or crhelper: the construct imports this module during ``cdk synth``.
"""

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

# Attributes returned in the response ``Data`` (readable with Fn::GetAtt).
ATTR_KEY_ARN: Final = "KeyArn"
ATTR_KEY_ID: Final = "KeyId"
ATTR_VALID_TO: Final = "ValidTo"
ATTR_KEY_MATERIAL_ID: Final = "KeyMaterialId"
# How the import was proven: GetPublicKey, GenerateMac or KeyMaterialId.
ATTR_VERIFIED: Final = "Verified"

MATERIAL_ENCODINGS: Final = ("auto", "raw", "base64", "hex", "pem")

SYMMETRIC_DEFAULT: Final = "SYMMETRIC_DEFAULT"
SUPPORTED_KEY_SPECS: Final = (SYMMETRIC_DEFAULT,)

RSAES_OAEP_SHA_1: Final = "RSAES_OAEP_SHA_1"
RSAES_OAEP_SHA_256: Final = "RSAES_OAEP_SHA_256"
RSA_AES_KEY_WRAP_SHA_1: Final = "RSA_AES_KEY_WRAP_SHA_1"
RSA_AES_KEY_WRAP_SHA_256: Final = "RSA_AES_KEY_WRAP_SHA_256"
OAEP_ALGORITHMS: Final = (RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256)
RSA_AES_ALGORITHMS: Final = (RSA_AES_KEY_WRAP_SHA_1, RSA_AES_KEY_WRAP_SHA_256)
WRAPPING_ALGORITHMS: Final = OAEP_ALGORITHMS + RSA_AES_ALGORITHMS
# Symmetric material is 32 bytes: it always fits OAEP, and KMS wants OAEP for it.
SYMMETRIC_WRAPPING_ALGORITHMS: Final = OAEP_ALGORITHMS

WRAPPING_KEY_SPECS: Final = ("RSA_2048", "RSA_3072", "RSA_4096")

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

# The renewal event that the construct's EventBridge rules send (routed before crhelper):
#   {"ImportedKeyRenewal": {"Trigger": ..., "RenewBeforeSeconds": "...", "Properties": {...}}}
# where Properties are the custom resource's own properties.
RENEWAL_EVENT: Final = "ImportedKeyRenewal"
RENEWAL_TRIGGER: Final = "Trigger"
RENEWAL_RENEW_BEFORE_SECONDS: Final = "RenewBeforeSeconds"
RENEWAL_PROPERTIES: Final = "Properties"
TRIGGER_SCHEDULE: Final = "schedule"
TRIGGER_MATERIAL_EXPIRED: Final = "material-expired"
RENEWAL_TRIGGERS: Final = (TRIGGER_SCHEDULE, TRIGGER_MATERIAL_EXPIRED)
