"""Helpers for the handler tests of every key spec: private keys, their encodings, the full
stubbed import flow, the verification calls, and a leak check that also knows PEM.

Private keys are made in the tests (``cryptography``, or the ``openssl`` CLI for the shapes
``cryptography`` cannot write: three-prime RSA, encrypted PKCS#8) and cached per session:
no key is ever committed. The unwrap here is written independently of the handler's
``wrapping`` module (RSA-OAEP with ``cryptography``, then RFC 5649 for the RSA_AES family).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import subprocess
import tempfile
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import stubbing
from botocore.stub import ANY
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap_with_padding

from imported_key_handler.contract import KEY_SPECS
from imported_key_handler.request import ImportRequest

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

OPENSSL: Final = "/usr/bin/openssl"
DOES_NOT_EXPIRE: Final = "KEY_MATERIAL_DOES_NOT_EXPIRE"
TOKEN: Final = b"import-token-key-types"
OAEP_256: Final = "RSAES_OAEP_SHA_256"
AES_WRAP_256: Final = "RSA_AES_KEY_WRAP_SHA_256"
CURVES: Final[dict[str, ec.EllipticCurve]] = {
    "ECC_NIST_P256": ec.SECP256R1(),
    "ECC_NIST_P384": ec.SECP384R1(),
    "ECC_NIST_P521": ec.SECP521R1(),
    "ECC_SECG_P256K1": ec.SECP256K1(),
}
OPENSSL_CURVES: Final = {
    "ECC_NIST_P256": "P-256",
    "ECC_NIST_P384": "P-384",
    "ECC_NIST_P521": "P-521",
    "ECC_SECG_P256K1": "secp256k1",
}
PEM_LINE_MIN: Final = 16  # shorter PEM lines (a last line of a few characters) prove nothing


# --- keys -----------------------------------------------------------------------------------


@functools.cache
def rsa_key(bits: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@functools.cache
def ec_key(spec: str) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(CURVES[spec])


def key_for(spec: str) -> PrivateKey:
    bits = KEY_SPECS[spec].modulus_bits
    return rsa_key(bits) if bits else ec_key(spec)


def pkcs8_der(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def traditional(key: PrivateKey, encoding: serialization.Encoding) -> bytes:
    """PKCS#1 for RSA, SEC1 for EC."""
    return key.private_bytes(
        encoding, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )


def pkcs8_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_der(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def same_key(der: bytes, key: PrivateKey) -> bool:
    """``der`` is a private key (any DER form) with the same public numbers as ``key``."""
    loaded = serialization.load_der_private_key(der, password=None)
    if isinstance(key, rsa.RSAPrivateKey):
        return (
            isinstance(loaded, rsa.RSAPrivateKey)
            and loaded.public_key().public_numbers() == key.public_key().public_numbers()
        )
    return (
        isinstance(loaded, ec.EllipticCurvePrivateKey)
        and loaded.public_key().public_numbers() == key.public_key().public_numbers()
    )


def run_openssl(*args: str) -> bytes:
    return subprocess.run(
        [OPENSSL, *args], capture_output=True, check=True, timeout=120, stdin=subprocess.DEVNULL
    ).stdout


@functools.cache
def three_prime_rsa_pem() -> bytes:
    """A 2048-bit RSA key with three primes (PKCS#8 PEM): KMS takes two-prime keys only."""
    with tempfile.TemporaryDirectory(prefix="key-types-") as tmp:
        path = Path(tmp, "three-prime.pem")
        run_openssl(
            "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
            "-pkeyopt", "rsa_keygen_primes:3", "-out", str(path),
        )  # fmt: skip
        text = run_openssl("pkey", "-in", str(path), "-noout", "-text")
        assert b"prime3:" in text, "openssl did not make a three-prime key"
        return path.read_bytes()


def pem_to_der(pem: bytes) -> bytes:
    with tempfile.TemporaryDirectory(prefix="key-types-") as tmp:
        path = Path(tmp, "key.pem")
        path.write_bytes(pem)
        return run_openssl("pkey", "-in", str(path), "-outform", "DER")


@functools.cache
def encrypted_pem(spec: str) -> bytes:
    """``openssl pkcs8 -topk8 -v2 aes-256-cbc -passout pass:x`` of ``key_for(spec)``."""
    with tempfile.TemporaryDirectory(prefix="key-types-") as tmp:
        plain = Path(tmp, "plain.pem")
        plain.write_bytes(traditional(key_for(spec), serialization.Encoding.PEM))
        encrypted = run_openssl(
            "pkcs8", "-topk8", "-v2", "aes-256-cbc", "-passout", "pass:x", "-in", str(plain)
        )
    assert encrypted.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    return encrypted


@functools.cache
def explicit_curve_pem() -> bytes:
    """A P-256 key written with explicit curve parameters instead of the curve's name."""
    with tempfile.TemporaryDirectory(prefix="key-types-") as tmp:
        path = Path(tmp, "explicit.pem")
        run_openssl(
            "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-pkeyopt", "ec_param_enc:explicit", "-out", str(path),
        )  # fmt: skip
        # Explicit parameters: the text shows the field prime instead of an "ASN1 OID" line.
        text = run_openssl("pkey", "-in", str(path), "-noout", "-text")
        assert b"ASN1 OID" not in text
        assert b"Prime:" in text
        return path.read_bytes()


def private_scalars(key: PrivateKey) -> list[bytes]:
    """The secret numbers of a key as big-endian bytes (a leak could print them)."""
    if isinstance(key, rsa.RSAPrivateKey):
        numbers = key.private_numbers()
        values = [numbers.d, numbers.p, numbers.q]
    else:
        values = [key.private_numbers().private_value]
    return [value.to_bytes((value.bit_length() + 7) // 8, "big") for value in values]


# --- leak checks ----------------------------------------------------------------------------


@dataclass
class LeakProbes:
    """Everything that must never show up in a Reason or a log line."""

    materials: list[bytes] = field(default_factory=list)
    pem_lines: list[str] = field(default_factory=list)

    def add_bytes(self, *values: bytes) -> None:
        for value in values:
            if len(value) >= 8 and value not in self.materials:
                self.materials.append(value)

    def add_pem(self, *pems: bytes | str) -> None:
        for pem in pems:
            text = pem.decode("ascii") if isinstance(pem, bytes) else pem
            for line in text.splitlines():
                line = line.strip()
                if len(line) >= PEM_LINE_MIN and not line.startswith("-----"):
                    self.pem_lines.append(line)

    def add_key(self, key: PrivateKey) -> None:
        pem = pkcs8_pem(key)
        self.add_bytes(
            pkcs8_der(key), traditional(key, serialization.Encoding.DER), *private_scalars(key)
        )
        self.add_pem(pem, traditional(key, serialization.Encoding.PEM))

    def assert_clean(self, text: str) -> None:
        for material in self.materials:
            stubbing.assert_no_material(text, material)
        leaked = sum(line in text for line in self.pem_lines)
        assert not leaked, f"{leaked} line(s) of a PEM private key appear in the text"

    def assert_records_clean(self, records: Iterable[logging.LogRecord]) -> None:
        for record in records:
            parts = [record.getMessage(), repr(vars(record))]
            if record.exc_info and record.exc_info[0] is not None:
                parts.append("".join(traceback.format_exception(*record.exc_info)))
            self.assert_clean("\n".join(parts))

    def assert_clean_reason(self, reason: str) -> None:
        assert reason
        assert len(reason) <= stubbing.CFN_REASON_LIMIT, f"{len(reason)} characters: {reason}"
        # ImportFailure cuts a longer reason to 256 characters ending in "...": the length
        # check alone would always pass, so the reason must also be whole.
        assert not reason.endswith("..."), f"reason was truncated: {reason}"
        self.assert_clean(reason)


# --- the stubbed import flow ----------------------------------------------------------------


def request_for(
    spec: str,
    *,
    encoding: str = "auto",
    json_field: str | None = None,
    wrapping: tuple[str, str] | None = None,
    secret_arn: str = stubbing.SECRET_ARN,
) -> ImportRequest:
    """A non-rotating request; wrapped by RSA_2048 (SHA-256, the family KMS takes) by default."""
    family = KEY_SPECS[spec].family
    algorithm, wrapping_key_spec = wrapping or (
        (AES_WRAP_256 if family in ("rsa", "ecc") else OAEP_256),
        "RSA_2048",
    )
    return ImportRequest(
        key_id=stubbing.KEY_ID,
        secret_arn=secret_arn,
        key_spec=spec,
        wrapping_algorithm=algorithm,
        wrapping_key_spec=wrapping_key_spec,
        expiration_model=DOES_NOT_EXPIRE,
        validity_days=None,
        key_usage=KEY_SPECS[spec].usages[0],
        material_encoding=encoding,
        json_field=json_field,
    )


def metadata_for(spec: str, **kwargs: Any) -> dict[str, Any]:
    """DescribeKey's KeyMetadata for a key of ``spec`` (usage and algorithms to match)."""
    metadata = stubbing.key_metadata(key_spec=spec, **kwargs)
    family = KEY_SPECS[spec].family
    metadata["KeyUsage"] = KEY_SPECS[spec].usages[0]
    if family == "hmac":
        del metadata["EncryptionAlgorithms"]
        metadata["MacAlgorithms"] = [f"HMAC_SHA_{KEY_SPECS[spec].digest_bits}"]
    elif family == "ecc":
        del metadata["EncryptionAlgorithms"]
        metadata["SigningAlgorithms"] = ["ECDSA_SHA_256"]
    elif family == "rsa":
        metadata["EncryptionAlgorithms"] = ["RSAES_OAEP_SHA_256"]
    return metadata


def queue_import(
    kms: stubbing.KmsStub,
    request: ImportRequest,
    *,
    imported_material_id: str | None = stubbing.KEY_MATERIAL_ID,
    current_material_id: str | None = None,
) -> stubbing.WrappingKey:
    """DescribeKey (check), GetParametersForImport, ImportKeyMaterial, DescribeKey (confirm),
    each with its exact parameters. ``imported_material_id`` is the KeyMaterialId that
    ImportKeyMaterial answers with (None: none); ``current_material_id`` what DescribeKey
    reports as CurrentKeyMaterialId afterwards."""
    kms.add_describe(metadata_for(request.key_spec))
    key = stubbing.wrapping_key(request.wrapping_key_spec)
    kms.add_parameters(
        key=key,
        token=TOKEN,
        wrapping_algorithm=request.wrapping_algorithm,
        wrapping_key_spec=request.wrapping_key_spec,
    )
    expected = {
        "KeyId": stubbing.KEY_ID,
        "ImportToken": TOKEN,
        "EncryptedKeyMaterial": ANY,
        "ExpirationModel": DOES_NOT_EXPIRE,
    }
    response: dict[str, Any] = {"KeyId": stubbing.KEY_ARN}
    if imported_material_id is not None:
        response["KeyMaterialId"] = imported_material_id
    kms.stub.add_response("import_key_material", response, expected)
    kms.add_describe(
        metadata_for(
            request.key_spec,
            state="Enabled",
            expiration_model=DOES_NOT_EXPIRE,
            current_material_id=current_material_id,
        )
    )
    return key


def queue_public_key(kms: stubbing.KmsStub, spec: str, public_key_der: bytes) -> None:
    kms.stub.add_response(
        "get_public_key",
        {
            "KeyId": stubbing.KEY_ARN,
            "PublicKey": public_key_der,
            "KeySpec": spec,
            "KeyUsage": KEY_SPECS[spec].usages[0],
        },
        {"KeyId": stubbing.KEY_ID},
    )


class MacResponder:
    """Queues one GenerateMac with its exact parameters (the Message is the handler's own
    random choice, so ANY) and answers it with the HMAC of the Message under ``mac_key``,
    computed when the handler makes the call (and passed through ``tamper``, if given)."""

    def __init__(
        self,
        kms: stubbing.KmsStub,
        spec: str,
        mac_key: bytes,
        *,
        tamper: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self.tamper = tamper or (lambda mac: mac)
        bits = KEY_SPECS[spec].digest_bits
        self.algorithm = f"HMAC_SHA_{bits}"
        self.digest = getattr(hashlib, f"sha{bits}")
        self.mac_key = mac_key
        self.messages: list[bytes] = []
        # The Stubber hands back this very dict: filled in when the call is made.
        self.response: dict[str, Any] = {
            "KeyId": stubbing.KEY_ARN,
            "Mac": b"\x00",
            "MacAlgorithm": self.algorithm,
        }
        kms.stub.add_response(
            "generate_mac",
            self.response,
            {"KeyId": stubbing.KEY_ID, "MacAlgorithm": self.algorithm, "Message": ANY},
        )
        kms.client.meta.events.register("provide-client-params.kms.GenerateMac", self)

    def __call__(self, params: dict[str, Any], **_: Any) -> None:
        message = bytes(params["Message"])
        self.messages.append(message)
        self.response["Mac"] = self.tamper(hmac.new(self.mac_key, message, self.digest).digest())

    def __repr__(self) -> str:  # botocore logs its handlers at DEBUG: never the key
        return f"MacResponder({self.algorithm})"


def unwrap(encrypted: bytes, key: stubbing.WrappingKey, algorithm: str) -> bytes:
    """Undo any KMS wrapping algorithm with the private half of the wrapping key."""
    digest: hashes.HashAlgorithm = (
        hashes.SHA1() if algorithm.endswith("_SHA_1") else hashes.SHA256()
    )
    oaep = padding.OAEP(mgf=padding.MGF1(digest), algorithm=digest, label=None)
    if algorithm.startswith("RSAES_OAEP_"):
        return key.private_key.decrypt(encrypted, oaep)
    modulus_bytes = key.private_key.key_size // 8
    aes_key = key.private_key.decrypt(encrypted[:modulus_bytes], oaep)
    assert len(aes_key) == 32, "KMS wants a 256-bit AES key"
    return aes_key_unwrap_with_padding(aes_key, encrypted[modulus_bytes:])


def sent_material(kms: stubbing.KmsStub, key: stubbing.WrappingKey, algorithm: str) -> bytes:
    """The material the one ImportKeyMaterial call carried, unwrapped."""
    (encrypted,) = kms.encrypted_materials()
    return unwrap(encrypted, key, algorithm)
