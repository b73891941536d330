"""Wrap key material for ``ImportKeyMaterial``: bytes in, bytes out, no AWS calls.

KMS documents two families (AWS KMS Developer Guide, "Encrypt key material"):

* ``RSAES_OAEP_SHA_*``: the material is encrypted directly with RSA-OAEP (the same hash for
  OAEP and MGF1, empty label). It only fits material up to the OAEP capacity of the key.
* ``RSA_AES_KEY_WRAP_SHA_*``: a fresh 256-bit AES key wraps the material with AES Key Wrap
  with Padding (RFC 5649); RSA-OAEP encrypts the AES key; KMS takes ``rsa_part || wrapped``.
"""

import os

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

from . import contract
from .contract import oaep_capacity
from .errors import ImportFailure

_AES_KEY_BYTES = 32


def _oaep(algorithm: str) -> padding.OAEP:
    digest: hashes.HashAlgorithm = (
        hashes.SHA1() if algorithm.endswith("_SHA_1") else hashes.SHA256()  # noqa: S303 - KMS-defined
    )
    return padding.OAEP(mgf=padding.MGF1(digest), algorithm=digest, label=None)


def load_wrapping_key(public_key_der: bytes) -> rsa.RSAPublicKey:
    """Parse the DER SubjectPublicKeyInfo that GetParametersForImport returns."""
    try:
        key = serialization.load_der_public_key(public_key_der)
    except UnsupportedAlgorithm:
        key = None  # a well-formed key of a type cryptography cannot use (e.g. SM2)
    except ValueError:
        raise ImportFailure(
            "KMS returned a wrapping public key that is not DER SubjectPublicKeyInfo; "
            "retry the deployment, and report it if it persists."
        ) from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ImportFailure(
            "KMS returned a wrapping key that is not RSA; only RSA_2048/3072/4096 wrapping "
            "keys are supported."
        )
    return key


def require_wrapping_key_spec(public_key_der: bytes, wrapping_key_spec: str) -> None:
    """Refuse a wrapping key that is not the RSA size asked for, before anything is wrapped.

    A smaller modulus than asked for (or a key that is not RSA) means the parameters did not
    come from the KMS that was asked: the material is never wrapped for it.
    """
    public_key = load_wrapping_key(public_key_der)
    expected = contract.WRAPPING_KEY_BITS.get(wrapping_key_spec)
    if public_key.key_size != expected:
        raise ImportFailure(
            f"KMS returned an RSA_{public_key.key_size} wrapping key where {wrapping_key_spec} "
            "was asked for; the material was not wrapped. Check that the function talks to "
            "AWS KMS itself, then retry."
        )


def wrap_key_material(material: bytes, public_key_der: bytes, wrapping_algorithm: str) -> bytes:
    """Return ``EncryptedKeyMaterial`` for ``material`` under the KMS wrapping public key."""
    public_key = load_wrapping_key(public_key_der)
    if wrapping_algorithm in contract.OAEP_ALGORITHMS:
        capacity = oaep_capacity(public_key.key_size, wrapping_algorithm)
        if len(material) > capacity:
            raise ImportFailure(
                f"{len(material)} bytes of key material do not fit {wrapping_algorithm} under "
                f"an RSA_{public_key.key_size} wrapping key (at most {capacity}); use a larger "
                "wrapping_key_spec or an RSA_AES_KEY_WRAP algorithm."
            )
        return public_key.encrypt(material, _oaep(wrapping_algorithm))
    if wrapping_algorithm in contract.RSA_AES_ALGORITHMS:
        aes_key = os.urandom(_AES_KEY_BYTES)
        wrapped = aes_key_wrap_with_padding(aes_key, material)
        return public_key.encrypt(aes_key, _oaep(wrapping_algorithm)) + wrapped
    raise ImportFailure(
        f"Unknown wrapping algorithm {wrapping_algorithm!r}; use one of "
        f"{', '.join(contract.WRAPPING_ALGORITHMS)}."
    )
