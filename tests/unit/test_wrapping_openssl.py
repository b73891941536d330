"""``wrap_key_material`` against an independent implementation: the OpenSSL 3 CLI.

What KMS does with ``EncryptedKeyMaterial`` is not observable here, so the wraps are checked
against the commands AWS documents for OpenSSL (``openssl_cli``) in both directions, against a
small ``cryptography`` unwrap written below, for their byte layout, and for the RFC 5649
known-answer vectors. Wrapping keys are generated per module with ``openssl genpkey``.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import openssl_cli
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap_with_padding,
    aes_key_wrap_with_padding,
)

from imported_key_handler.errors import ImportFailure
from imported_key_handler.wrapping import oaep_capacity, wrap_key_material

KEY_SIZES: Final = (2048, 3072, 4096)
OAEP_ALGORITHMS: Final = ("RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256")
RSA_AES_ALGORITHMS: Final = ("RSA_AES_KEY_WRAP_SHA_1", "RSA_AES_KEY_WRAP_SHA_256")
ALGORITHMS: Final = OAEP_ALGORITHMS + RSA_AES_ALGORITHMS
# The hash KMS uses for both OAEP and MGF1 under each algorithm (AWS KMS Developer Guide).
HASH_OF: Final[dict[str, openssl_cli.OAEPHash]] = {
    "RSAES_OAEP_SHA_1": "sha1",
    "RSAES_OAEP_SHA_256": "sha256",
    "RSA_AES_KEY_WRAP_SHA_1": "sha1",
    "RSA_AES_KEY_WRAP_SHA_256": "sha256",
}
OTHER_HASH: Final[dict[openssl_cli.OAEPHash, openssl_cli.OAEPHash]] = {
    "sha1": "sha256",
    "sha256": "sha1",
}
# OAEP capacity = k - 2*hLen - 2 (RFC 8017 section 7.1.1); the SHA-256 row is the one the
# design notes list (190 / 318 / 446).
EXPECTED_CAPACITY: Final[dict[tuple[int, openssl_cli.OAEPHash], int]] = {
    (2048, "sha1"): 214,
    (3072, "sha1"): 342,
    (4096, "sha1"): 470,
    (2048, "sha256"): 190,
    (3072, "sha256"): 318,
    (4096, "sha256"): 446,
}
AES_KEY_BYTES: Final = 32  # KMS: a fresh 256-bit AES key per RSA_AES wrap.

MaterialKind = Literal["random-32", "oaep-capacity", "one-byte", "rsa2048-pkcs8", "rsa4096-pkcs8"]
OAEP_MATERIALS: Final[tuple[MaterialKind, ...]] = ("random-32", "oaep-capacity")
RSA_AES_MATERIALS: Final[tuple[MaterialKind, ...]] = (
    *OAEP_MATERIALS,
    "one-byte",
    "rsa2048-pkcs8",
    "rsa4096-pkcs8",
)
ROUND_TRIP_CASES: Final = [
    pytest.param(bits, algorithm, kind, id=f"{bits}-{algorithm}-{kind}")
    for bits in KEY_SIZES
    for algorithm in ALGORITHMS
    for kind in (OAEP_MATERIALS if algorithm in OAEP_ALGORITHMS else RSA_AES_MATERIALS)
]


@dataclass(frozen=True)
class WrappingKey:
    """A stand-in for the key pair behind GetParametersForImport."""

    bits: int
    private_pem: Path
    public_der: bytes
    private_key: rsa.RSAPrivateKey

    @property
    def modulus_bytes(self) -> int:
        return (self.bits + 7) // 8


MaterialFactory = Callable[[MaterialKind, int, str], bytes]


def _make_wrapping_key(directory: Path, bits: int) -> WrappingKey:
    pem = openssl_cli.generate_rsa_private_key(directory / f"wrapping-{bits}.pem", bits)
    private_key = serialization.load_pem_private_key(pem.read_bytes(), password=None)
    assert isinstance(private_key, rsa.RSAPrivateKey)
    assert private_key.key_size == bits
    return WrappingKey(bits, pem, openssl_cli.public_key_der(pem), private_key)


@pytest.fixture(scope="module")
def wrapping_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[int, WrappingKey]:
    directory = tmp_path_factory.mktemp("wrapping-keys")
    # genpkey releases the GIL while it searches for primes: make the three keys at once.
    with ThreadPoolExecutor(max_workers=len(KEY_SIZES)) as pool:
        keys = list(pool.map(lambda bits: _make_wrapping_key(directory, bits), KEY_SIZES))
    return {key.bits: key for key in keys}


def _pkcs8_der(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.fixture(scope="module")
def rsa2048_pkcs8() -> bytes:
    """RSA_2048 key material as KMS takes it: a PKCS#8 DER private key (about 1.2 KB)."""
    return _pkcs8_der(rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture(scope="module")
def material_factory(
    wrapping_keys: dict[int, WrappingKey], rsa2048_pkcs8: bytes
) -> MaterialFactory:
    def make(kind: MaterialKind, bits: int, algorithm: str) -> bytes:
        if kind == "random-32":
            return os.urandom(32)
        if kind == "oaep-capacity":
            return os.urandom(independent_capacity(bits, HASH_OF[algorithm]))
        if kind == "one-byte":
            return os.urandom(1)
        if kind == "rsa2048-pkcs8":
            return rsa2048_pkcs8
        # The largest material KMS takes (about 2.4 KB); any 4096-bit key has its shape.
        return _pkcs8_der(wrapping_keys[4096].private_key)

    return make


def independent_capacity(bits: int, oaep_hash: openssl_cli.OAEPHash) -> int:
    return bits // 8 - 2 * hashlib.new(oaep_hash).digest_size - 2


def local_unwrap(encrypted: bytes, private_key: rsa.RSAPrivateKey, algorithm: str) -> bytes:
    """The KMS side of the exchange, written with ``cryptography``."""
    digest: hashes.HashAlgorithm = (
        hashes.SHA1() if HASH_OF[algorithm] == "sha1" else hashes.SHA256()
    )
    oaep = padding.OAEP(mgf=padding.MGF1(digest), algorithm=digest, label=None)
    if algorithm in OAEP_ALGORITHMS:
        return private_key.decrypt(encrypted, oaep)
    modulus_bytes = (private_key.key_size + 7) // 8
    aes_key = private_key.decrypt(encrypted[:modulus_bytes], oaep)
    assert len(aes_key) == AES_KEY_BYTES
    return aes_key_unwrap_with_padding(aes_key, encrypted[modulus_bytes:])


# --- interoperability -------------------------------------------------------------------


def _project_wrap(material: bytes, key: WrappingKey, algorithm: str) -> bytes:
    return wrap_key_material(material, key.public_der, algorithm)


def _openssl_wrap(material: bytes, key: WrappingKey, algorithm: str) -> bytes:
    return openssl_cli.openssl_wrap(material, key.public_der, algorithm)


def _openssl_unwrap(encrypted: bytes, key: WrappingKey, algorithm: str) -> bytes:
    return openssl_cli.openssl_unwrap(encrypted, key.private_pem, algorithm)


def _local_unwrap(encrypted: bytes, key: WrappingKey, algorithm: str) -> bytes:
    return local_unwrap(encrypted, key.private_key, algorithm)


@pytest.mark.parametrize(("bits", "algorithm", "kind"), ROUND_TRIP_CASES)
@pytest.mark.parametrize(
    ("wrap", "unwrap"),
    [
        pytest.param(_project_wrap, _openssl_unwrap, id="project-wrap-openssl-unwrap"),
        pytest.param(_openssl_wrap, _local_unwrap, id="openssl-wrap-local-unwrap"),
        pytest.param(_project_wrap, _local_unwrap, id="project-wrap-local-unwrap"),
    ],
)
def test_a_wrap_is_unwrapped_by_the_other_side(
    wrapping_keys: dict[int, WrappingKey],
    material_factory: MaterialFactory,
    wrap: Callable[[bytes, WrappingKey, str], bytes],
    unwrap: Callable[[bytes, WrappingKey, str], bytes],
    bits: int,
    algorithm: str,
    kind: MaterialKind,
) -> None:
    """The project's wrap opens with OpenSSL and with the local unwrap; OpenSSL's wrap opens
    with the local unwrap."""
    key = wrapping_keys[bits]
    material = material_factory(kind, bits, algorithm)

    encrypted = wrap(material, key, algorithm)

    assert unwrap(encrypted, key, algorithm) == material


# --- structure --------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", OAEP_ALGORITHMS)
@pytest.mark.parametrize("bits", KEY_SIZES)
def test_oaep_output_is_one_modulus_long(
    wrapping_keys: dict[int, WrappingKey], bits: int, algorithm: str
) -> None:
    key = wrapping_keys[bits]

    encrypted = wrap_key_material(os.urandom(32), key.public_der, algorithm)

    assert len(encrypted) == bits // 8
    # The ciphertext is an integer below the modulus (RFC 8017 RSAEP).
    assert int.from_bytes(encrypted, "big") < key.private_key.public_key().public_numbers().n


@pytest.mark.parametrize("length", [1, 7, 8, 9, 32, 33, 1217])
@pytest.mark.parametrize("algorithm", RSA_AES_ALGORITHMS)
@pytest.mark.parametrize("bits", KEY_SIZES)
def test_rsa_aes_layout(
    wrapping_keys: dict[int, WrappingKey], bits: int, algorithm: str, length: int
) -> None:
    key = wrapping_keys[bits]
    material = os.urandom(length)

    encrypted = wrap_key_material(material, key.public_der, algorithm)

    padded = 8 * -(-length // 8)
    assert len(encrypted) == bits // 8 + padded + 8
    # rsa_part is exactly one modulus and holds a 256-bit AES key that unwraps the rest.
    rsa_part, wrapped = encrypted[: bits // 8], encrypted[bits // 8 :]
    aes_key = openssl_cli.rsa_oaep_decrypt(rsa_part, key.private_pem, HASH_OF[algorithm])
    assert len(aes_key) == AES_KEY_BYTES
    assert openssl_cli.aes_key_unwrap_pad(aes_key, wrapped) == material


def _wrong_parameter_cases() -> list[object]:
    cases: list[object] = []
    for algorithm in ALGORITHMS:
        right = HASH_OF[algorithm]
        wrong = OTHER_HASH[right]
        for oaep_md, mgf1_md in ((wrong, wrong), (right, wrong), (wrong, right)):
            cases.append(
                pytest.param(
                    algorithm, oaep_md, mgf1_md, id=f"{algorithm}-oaep_{oaep_md}-mgf1_{mgf1_md}"
                )
            )
    return cases


@pytest.mark.parametrize("bits", KEY_SIZES)
@pytest.mark.parametrize(("algorithm", "oaep_md", "mgf1_md"), _wrong_parameter_cases())
def test_openssl_refuses_the_other_hash(
    wrapping_keys: dict[int, WrappingKey],
    bits: int,
    algorithm: str,
    oaep_md: openssl_cli.OAEPHash,
    mgf1_md: openssl_cli.OAEPHash,
) -> None:
    """SHA_1 wraps do not open with SHA-256 OAEP/MGF1 parameters, and the reverse."""
    key = wrapping_keys[bits]
    encrypted = wrap_key_material(os.urandom(32), key.public_der, algorithm)
    rsa_part = encrypted[: key.modulus_bytes]
    # The right parameters open it: the failure below is about the hash, not the input.
    right = HASH_OF[algorithm]
    assert openssl_cli.rsa_oaep_decrypt(rsa_part, key.private_pem, right, right)

    with pytest.raises(openssl_cli.OpenSSLError, match="pkeyutl -decrypt"):
        openssl_cli.rsa_oaep_decrypt(rsa_part, key.private_pem, oaep_md, mgf1_md)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("bits", KEY_SIZES)
def test_wraps_are_randomised(
    wrapping_keys: dict[int, WrappingKey], bits: int, algorithm: str
) -> None:
    key = wrapping_keys[bits]
    material = os.urandom(32)

    first = wrap_key_material(material, key.public_der, algorithm)
    second = wrap_key_material(material, key.public_der, algorithm)

    assert first != second
    if algorithm in RSA_AES_ALGORITHMS:
        # A fresh AES key per wrap: both halves change, not only the OAEP seed.
        cut = key.modulus_bytes
        assert first[:cut] != second[:cut]
        assert first[cut:] != second[cut:]
        first_key = openssl_cli.rsa_oaep_decrypt(first[:cut], key.private_pem, HASH_OF[algorithm])
        second_key = openssl_cli.rsa_oaep_decrypt(second[:cut], key.private_pem, HASH_OF[algorithm])
        assert first_key != second_key


# --- capacity and refusals --------------------------------------------------------------


@pytest.mark.parametrize("algorithm", OAEP_ALGORITHMS)
@pytest.mark.parametrize("bits", KEY_SIZES)
def test_oaep_capacity_is_the_real_limit(
    wrapping_keys: dict[int, WrappingKey], bits: int, algorithm: str
) -> None:
    key = wrapping_keys[bits]
    md = HASH_OF[algorithm]
    expected = EXPECTED_CAPACITY[(bits, md)]
    assert independent_capacity(bits, md) == expected

    assert oaep_capacity(bits, algorithm) == expected
    # OpenSSL agrees on the limit: `expected` bytes encrypt, one more does not.
    assert len(openssl_cli.rsa_oaep_encrypt(os.urandom(expected), key.public_der, md)) == bits // 8
    with pytest.raises(openssl_cli.OpenSSLError):
        openssl_cli.rsa_oaep_encrypt(os.urandom(expected + 1), key.public_der, md)


def _secret_renderings(material: bytes) -> list[str]:
    head = material[:12]
    return [
        material.hex(),
        material.hex().upper(),
        head.hex(),
        head.hex().upper(),
        base64.b64encode(material).decode(),
        base64.urlsafe_b64encode(material).decode(),
        base64.b64encode(head).decode(),
        repr(material)[2:26],
    ]


@pytest.mark.parametrize("algorithm", OAEP_ALGORITHMS)
@pytest.mark.parametrize("bits", KEY_SIZES)
def test_one_byte_over_capacity_is_refused_without_leaking(
    wrapping_keys: dict[int, WrappingKey], bits: int, algorithm: str
) -> None:
    key = wrapping_keys[bits]
    capacity = independent_capacity(bits, HASH_OF[algorithm])
    material = os.urandom(capacity + 1)

    with pytest.raises(ImportFailure) as caught:
        wrap_key_material(material, key.public_der, algorithm)

    message = str(caught.value)
    assert algorithm in message
    assert str(capacity) in message
    for rendering in _secret_renderings(material):
        assert rendering not in message
    # Exactly at capacity it wraps, and OpenSSL opens it.
    at_capacity = material[:capacity]
    encrypted = wrap_key_material(at_capacity, key.public_der, algorithm)
    assert openssl_cli.openssl_unwrap(encrypted, key.private_pem, algorithm) == at_capacity


@pytest.mark.parametrize(
    "algorithm",
    [
        "RSAES_PKCS1_V1_5",  # retired by KMS
        "SM2PKE",  # China Regions only, not supported here
        "rsaes_oaep_sha_256",
        "RSAES_OAEP_SHA_256 ",
        "RSA_AES_KEY_WRAP_SHA_384",
        "",
    ],
)
def test_unknown_algorithm_lists_the_valid_ones(
    wrapping_keys: dict[int, WrappingKey], algorithm: str
) -> None:
    with pytest.raises(ImportFailure) as caught:
        wrap_key_material(os.urandom(32), wrapping_keys[2048].public_der, algorithm)

    message = str(caught.value)
    assert repr(algorithm) in message
    for valid in ALGORITHMS:
        assert valid in message


def _ec_p256_public_der(tmp_path: Path, _: WrappingKey) -> bytes:
    pem = openssl_cli.generate_private_key(tmp_path / "ec.pem", "EC")
    return openssl_cli.public_key_der(pem)


def _ed25519_public_der(tmp_path: Path, _: WrappingKey) -> bytes:
    return (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def _rsa_public_pem(tmp_path: Path, rsa_key: WrappingKey) -> bytes:
    return openssl_cli.run_openssl(["pkey", "-in", str(rsa_key.private_pem), "-pubout"])


def _truncated_rsa_der(tmp_path: Path, rsa_key: WrappingKey) -> bytes:
    return rsa_key.public_der[:-20]


def _rsa_private_der(tmp_path: Path, rsa_key: WrappingKey) -> bytes:
    return openssl_cli.run_openssl(["pkey", "-in", str(rsa_key.private_pem), "-outform", "DER"])


@pytest.mark.parametrize(
    ("make_key", "expected"),
    [
        pytest.param(_ec_p256_public_der, "not RSA", id="ec-p256"),
        pytest.param(_ed25519_public_der, "not RSA", id="ed25519"),
        pytest.param(lambda *_: b"", "not DER", id="empty"),
        pytest.param(lambda *_: os.urandom(294), "not DER", id="random-bytes"),
        pytest.param(_rsa_public_pem, "not DER", id="rsa-pem-not-der"),
        pytest.param(_truncated_rsa_der, "not DER", id="truncated-rsa-der"),
        pytest.param(_rsa_private_der, "not DER", id="rsa-private-key-der"),
    ],
)
def test_unusable_wrapping_key_is_refused(
    tmp_path: Path,
    wrapping_keys: dict[int, WrappingKey],
    make_key: Callable[[Path, WrappingKey], bytes],
    expected: str,
) -> None:
    public_der = make_key(tmp_path, wrapping_keys[2048])

    with pytest.raises(ImportFailure, match=expected):
        wrap_key_material(os.urandom(32), public_der, "RSAES_OAEP_SHA_256")


def _sm2_public_der(tmp_path: Path) -> bytes:
    try:
        pem = openssl_cli.generate_private_key(tmp_path / "sm2.pem", "SM2")
    except openssl_cli.OpenSSLError:
        pytest.skip("this OpenSSL build has no SM2")
    return openssl_cli.public_key_der(pem)


def _unknown_oid_spki(tmp_path: Path) -> bytes:
    # SEQUENCE { SEQUENCE { OID 1.2.3.4 }, BIT STRING 00 01 02 }: well-formed DER, unknown key.
    algorithm = bytes.fromhex("300506032a0304")
    subject_public_key = bytes.fromhex("0303000102")
    body = algorithm + subject_public_key
    return bytes([0x30, len(body)]) + body


@pytest.mark.parametrize(
    "make_key",
    [
        pytest.param(_sm2_public_der, id="sm2"),
        pytest.param(_unknown_oid_spki, id="unknown-oid"),
    ],
)
def test_unsupported_key_type_is_refused(tmp_path: Path, make_key: Callable[[Path], bytes]) -> None:
    public_der = make_key(tmp_path)

    with pytest.raises(ImportFailure, match="not RSA"):
        wrap_key_material(os.urandom(32), public_der, "RSAES_OAEP_SHA_256")


# --- AES Key Wrap with Padding ----------------------------------------------------------

RFC5649_KEK: Final = bytes.fromhex("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8")
RFC5649_VECTORS: Final = [
    pytest.param(
        bytes.fromhex("c37b7e6492584340bed12207808941155068f738"),
        bytes.fromhex("138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a"),
        id="20-octets",
    ),
    pytest.param(
        bytes.fromhex("466f7250617369"),
        bytes.fromhex("afbeb0f07dfbf5419200f2ccb50bb24f"),
        id="7-octets",
    ),
]


@pytest.mark.parametrize(("key", "wrapped"), RFC5649_VECTORS)
def test_rfc5649_vectors_with_cryptography(key: bytes, wrapped: bytes) -> None:
    assert aes_key_wrap_with_padding(RFC5649_KEK, key) == wrapped
    assert aes_key_unwrap_with_padding(RFC5649_KEK, wrapped) == key
    tampered = wrapped[:-1] + bytes([wrapped[-1] ^ 0x01])
    with pytest.raises(InvalidUnwrap):
        aes_key_unwrap_with_padding(RFC5649_KEK, tampered)


@pytest.mark.parametrize(("key", "wrapped"), RFC5649_VECTORS)
def test_rfc5649_vectors_with_openssl_cli(key: bytes, wrapped: bytes) -> None:
    # A 24-byte KEK selects -id-aes192-wrap-pad.
    assert openssl_cli.aes_key_wrap_pad(RFC5649_KEK, key) == wrapped
    assert openssl_cli.aes_key_unwrap_pad(RFC5649_KEK, wrapped) == key
    tampered = wrapped[:-1] + bytes([wrapped[-1] ^ 0x01])
    with pytest.raises(openssl_cli.OpenSSLError, match="wrap-pad"):
        openssl_cli.aes_key_unwrap_pad(RFC5649_KEK, tampered)


@pytest.mark.parametrize("length", [1, 8, 20, 32, 1217, openssl_cli.MAX_WRAP_INPUT_BYTES])
def test_openssl_aes256_wrap_pad_matches_cryptography(length: int) -> None:
    kek = os.urandom(32)
    material = os.urandom(length)

    wrapped = openssl_cli.aes_key_wrap_pad(kek, material)

    assert wrapped == aes_key_wrap_with_padding(kek, material)
    assert openssl_cli.aes_key_unwrap_pad(kek, wrapped) == material


def test_openssl_helper_refuses_input_the_cli_would_split() -> None:
    with pytest.raises(openssl_cli.OpenSSLError, match="one piece"):
        openssl_cli.aes_key_wrap_pad(os.urandom(32), os.urandom(openssl_cli.ENC_CHUNK_BYTES))
