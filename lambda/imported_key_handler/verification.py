"""Prove after an import that the key holds exactly the secret's material.

Asymmetric keys: the public key KMS reports equals the one derived from the material.
HMAC keys: KMS's MAC over a fresh random message equals the local HMAC with the material.
Symmetric keys: KMS reports the material as current (KeyMaterialId), which the confirmation
already checked; encrypting locally would need the material outside KMS's format.
"""

import hashlib
import hmac
import os
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization

from . import contract
from .contract import KeySpec
from .errors import ImportFailure
from .kms_errors import kms_failure
from .material_format import load_private_key

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

VERIFIED_PUBLIC_KEY = "GetPublicKey"
VERIFIED_MAC = "GenerateMac"
VERIFIED_MATERIAL_ID = "KeyMaterialId"
VERIFIED_STATE_ONLY = "DescribeKey"


def verify_import(
    kms: "KMSClient", spec: KeySpec, key_id: str, material: bytes, material_id_confirmed: bool
) -> str:
    """How the import was proven; an ImportFailure if the proof fails.

    ``material_id_confirmed``: the KeyMaterialId ImportKeyMaterial returned was compared with,
    and equal to, the CurrentKeyMaterialId DescribeKey reports (confirm_import does that).
    """
    if spec.family in (contract.RSA, contract.ECC):
        return _verify_public_key(kms, key_id, material)
    if spec.family == contract.HMAC:
        return _verify_mac(kms, spec, key_id, material)
    return symmetric_proof(material_id_confirmed)


def symmetric_proof(material_id_confirmed: bool) -> str:
    """A symmetric key's proof is KMS's id of the material it just imported, if it gave one."""
    return VERIFIED_MATERIAL_ID if material_id_confirmed else VERIFIED_STATE_ONLY


def _verify_public_key(kms: "KMSClient", key_id: str, material: bytes) -> str:
    try:
        reported = kms.get_public_key(KeyId=key_id)["PublicKey"]
    except ClientError as error:
        raise kms_failure(error, "GetPublicKey", key_id) from None
    derived = (
        load_private_key(material, "", checked=True)  # prepare_material loaded it fully
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    if not hmac.compare_digest(reported, derived):
        raise ImportFailure(
            f"Key {key_id}'s public key (GetPublicKey) differs from the secret's private key: "
            "the import did not take the secret's material. Check the key in the KMS console."
        )
    return VERIFIED_PUBLIC_KEY


def _verify_mac(kms: "KMSClient", spec: KeySpec, key_id: str, material: bytes) -> str:
    message = os.urandom(32)
    algorithm = f"HMAC_SHA_{spec.digest_bits}"
    try:
        reported = kms.generate_mac(
            KeyId=key_id,
            Message=message,
            MacAlgorithm=algorithm,  # type: ignore[arg-type]
        )["Mac"]
    except ClientError as error:
        raise kms_failure(error, "GenerateMac", key_id) from None
    expected = hmac.new(material, message, getattr(hashlib, f"sha{spec.digest_bits}")).digest()
    if not hmac.compare_digest(reported, expected):
        raise ImportFailure(
            f"Key {key_id}'s {algorithm} differs from the HMAC with the secret's material: the "
            "import did not take the secret's material. Check the key in the KMS console."
        )
    return VERIFIED_MAC
