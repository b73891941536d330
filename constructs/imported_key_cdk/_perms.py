"""IAM action lists, kept in one place like aws-kms's private perms module."""

# What the import handler does to each key it was given.
# ListResourceTags reads the key's binding (imported_key_handler.binding).
HANDLER_KEY_READ_ACTIONS = ["kms:DescribeKey", "kms:ListResourceTags"]
# Only ever with the handler's own record tag (aws:TagKeys): never the binding's tags.
HANDLER_RECORD_ACTIONS = ["kms:TagResource"]
# Does the stack (or one nested in it) declare this key; is CloudFormation removing it?
HANDLER_STACK_CHECK_ACTIONS = [
    "cloudformation:DescribeStackResource",
    "cloudformation:DescribeStacks",
]
# The due index (imported_key_handler.registry).
HANDLER_INDEX_LIST_ACTIONS = ["s3:ListBucket"]
HANDLER_INDEX_WRITE_ACTIONS = ["s3:PutObject", "s3:DeleteObject"]
# The fleet's figures, in the fleet's own namespace only.
HANDLER_METRIC_ACTIONS = ["cloudwatch:PutMetricData"]
HANDLER_GET_PARAMETERS_ACTIONS = ["kms:GetParametersForImport"]
HANDLER_IMPORT_ACTIONS = ["kms:ImportKeyMaterial"]
HANDLER_SECRET_ACTIONS = ["secretsmanager:GetSecretValue"]
HANDLER_SECRET_KEY_ACTIONS = ["kms:Decrypt"]
HANDLER_REVOKE_ACTIONS = ["kms:DeleteImportedKeyMaterial", "kms:ListKeyRotations"]
HANDLER_ROTATE_ACTIONS = ["kms:RotateKeyOnDemand", "kms:ListKeyRotations"]
# How the handler proves the import of an asymmetric or HMAC key (nothing extra for symmetric).
HANDLER_VERIFY_PUBLIC_KEY_ACTIONS = ["kms:GetPublicKey"]
HANDLER_VERIFY_MAC_ACTIONS = ["kms:GenerateMac"]
# Denied by the key policy to everyone but the import handler (restrict_import_to_handler):
# every KMS action that puts material into a key, makes staged material current or removes it.
# RotateKeyOnDemand is one of them: on a key with imported material it makes the material
# staged as NEW_KEY_MATERIAL current. Left out on purpose: EnableKeyRotation (KMS refuses it on
# EXTERNAL keys), ReplicateKey (a replica of an imported key gets no material until its own
# import) and ScheduleKeyDeletion (the key's lifecycle, which stays with its administrators).
IMPORT_ONLY_BY_HANDLER_ACTIONS = [
    "kms:GetParametersForImport",
    "kms:ImportKeyMaterial",
    "kms:RotateKeyOnDemand",
]
# Denied likewise, except to the break-glass principals too.
REVOKE_ONLY_BY_HANDLER_ACTIONS = ["kms:DeleteImportedKeyMaterial"]
# What break_glass_principals may do on the key, whatever else they hold: revoke at once, or
# disable (the reversible kill switch), and read what they need to do either.
BREAK_GLASS_ACTIONS = [
    "kms:DeleteImportedKeyMaterial",
    "kms:DisableKey",
    "kms:DescribeKey",
    "kms:ListKeyRotations",
]
