"""LocalStack 4.10's symmetric KMS ciphertext format, so tests can check key material offline.

Real KMS ciphertext is opaque; LocalStack's is not, which lets a test prove that a key holds
exactly the material it was given: decrypt a KMS ``Encrypt`` result with the material, and have
KMS ``Decrypt`` a blob made here with it. The format (``localstack/services/kms/models.py``:
``KmsKey.encrypt``, ``_serialize_ciphertext_blob``, ``_serialize_encryption_context``, and
``localstack/utils/crypto.py``: ``encrypt``/``pad``)::

    key_id (36 B, the bare key id, UTF-8) | iv (16 B) | tag (16 B) | ciphertext

where ``ciphertext`` is AES-GCM (key = the 32 bytes of material, 16-byte nonce = ``iv``, 128-bit
tag) over the plaintext with PKCS#7 padding to 16 bytes (always 1..16 pad bytes, so the
ciphertext is never empty), and the associated data is the encryption context sorted by key,
each key then value in UTF-8, concatenated without separators; the key
``aws-crypto-public-key`` is left out, and no context means empty associated data. LocalStack
uses no KMS ciphertext header and no key-material id.
"""

import os
from typing import NamedTuple

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_ID_LEN = 36
IV_LEN = 16
TAG_LEN = 16
HEADER_LEN = KEY_ID_LEN + IV_LEN + TAG_LEN
BLOCK_LEN = 16
# LocalStack drops this reserved pair (the AWS Encryption SDK's signing key) from the AAD.
_IGNORED_CONTEXT_KEYS = frozenset({"aws-crypto-public-key"})


class LocalStackCiphertext(NamedTuple):
    key_id: str
    iv: bytes
    tag: bytes
    ciphertext: bytes


def parse_localstack_ciphertext(blob: bytes) -> LocalStackCiphertext:
    """Split a LocalStack ``CiphertextBlob``; ``ValueError`` if it cannot be one."""
    body_len = len(blob) - HEADER_LEN
    if body_len < BLOCK_LEN or body_len % BLOCK_LEN:
        raise ValueError(
            f"{len(blob)} bytes cannot be a LocalStack ciphertext: expected a {HEADER_LEN}-byte "
            f"header and a non-empty multiple of {BLOCK_LEN} bytes after it"
        )
    try:
        key_id = blob[:KEY_ID_LEN].decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("the first 36 bytes are not a key id") from None
    return LocalStackCiphertext(
        key_id=key_id,
        iv=blob[KEY_ID_LEN : KEY_ID_LEN + IV_LEN],
        tag=blob[KEY_ID_LEN + IV_LEN : HEADER_LEN],
        ciphertext=blob[HEADER_LEN:],
    )


def encryption_context_aad(encryption_context: dict[str, str] | None) -> bytes:
    """The associated data LocalStack derives from an encryption context."""
    if not encryption_context:
        return b""
    return b"".join(
        key.encode("utf-8") + value.encode("utf-8")
        for key, value in sorted(encryption_context.items())
        if key not in _IGNORED_CONTEXT_KEYS
    )


def _pad(plaintext: bytes) -> bytes:
    pad_len = BLOCK_LEN - len(plaintext) % BLOCK_LEN
    return plaintext + bytes([pad_len]) * pad_len


def _unpad(padded: bytes) -> bytes:
    # LocalStack trusts the last byte blindly; checking the padding here means a wrong guess at
    # the format shows up as an error rather than as silently truncated plaintext.
    pad_len = padded[-1] if padded else 0
    if not 1 <= pad_len <= BLOCK_LEN or padded[-pad_len:] != bytes([pad_len]) * pad_len:
        raise ValueError("the decrypted data does not end in valid PKCS#7 padding")
    return padded[:-pad_len]


def decrypt_localstack_ciphertext(
    blob: bytes, material: bytes, encryption_context: dict[str, str] | None = None
) -> bytes:
    """Decrypt a LocalStack KMS ``CiphertextBlob`` with the key material the key should hold.

    Raises ``cryptography.exceptions.InvalidTag`` when ``material`` (or the encryption context)
    is not what the blob was made with, ``ValueError`` when the blob is malformed.
    """
    parsed = parse_localstack_ciphertext(blob)
    padded = AESGCM(material).decrypt(
        parsed.iv, parsed.ciphertext + parsed.tag, encryption_context_aad(encryption_context)
    )
    return _unpad(padded)


def make_localstack_ciphertext(
    key_id: str,
    material: bytes,
    plaintext: bytes,
    encryption_context: dict[str, str] | None = None,
) -> bytes:
    """A ``CiphertextBlob`` that LocalStack KMS decrypts only if ``key_id`` holds ``material``.

    ``key_id`` is the bare key id (a key ARN is reduced to it), as LocalStack looks the key up
    from the blob.
    """
    bare_id = key_id.rsplit(":key/", 1)[-1]
    encoded_id = bare_id.encode("utf-8")
    if len(encoded_id) != KEY_ID_LEN:
        raise ValueError(f"key id {bare_id!r} is not {KEY_ID_LEN} bytes long")
    iv = os.urandom(IV_LEN)
    aad = encryption_context_aad(encryption_context)
    sealed = AESGCM(material).encrypt(iv, _pad(plaintext), aad)
    ciphertext, tag = sealed[:-TAG_LEN], sealed[-TAG_LEN:]
    return encoded_id + iv + tag + ciphertext
