"""Every key spec the handler imports, under every wrapping KMS allows for it.

For each (key spec, WrappingAlgorithm, WrappingKeySpec) in ``allowed_wrappings(spec)``:
``prepare_material`` turns the material into what KMS takes, ``wrap_key_material`` wraps it,
and the OpenSSL 3 CLI (``openssl_cli.openssl_unwrap``, the commands AWS documents) must give
back exactly the prepared bytes. Asymmetric material must come out as PKCS#8 DER of the same
key: checked by public numbers, by a small DER reader (version 0, the algorithm and named
curve OIDs, two-prime RSA) and against ``openssl pkcs8 -topk8 -nocrypt -outform DER``.

The catalog itself is checked against KMS's rules written out by value here (AWS KMS
Developer Guide, GetParametersForImport: RSA private keys go by RSA_AES_KEY_WRAP only,
secret keys by RSAES_OAEP only, ECC by either but not ECC_NIST_P521 with RSAES_OAEP under
RSA_2048), and every combination KMS refuses must be refused with the valid choices named.

All keys are made here, once per module (never committed): the three wrapping key pairs and
the RSA and EC material keys with ``openssl genpkey``, in parallel.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import openssl_cli
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from imported_key_handler.contract import (
    KEY_SPECS,
    allowed_wrappings,
    default_wrapping,
    oaep_capacity,
    wrapping_refusal,
)
from imported_key_handler.errors import ImportFailure
from imported_key_handler.material_format import prepare_material
from imported_key_handler.wrapping import wrap_key_material

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
Combo = tuple[str, str]  # (WrappingAlgorithm, WrappingKeySpec)

SECRET_ARN: Final = "arn:aws:secretsmanager:us-east-1:111122223333:secret:byok/matrix-AbCdEf"
WRAPPING_KEY_SPECS: Final = ("RSA_2048", "RSA_3072", "RSA_4096")
WRAPPING_BITS: Final = {"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}
OAEP: Final = ("RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256")
AES_WRAP: Final = ("RSA_AES_KEY_WRAP_SHA_1", "RSA_AES_KEY_WRAP_SHA_256")
ALGORITHMS: Final = OAEP + AES_WRAP


def combos(algorithms: tuple[str, ...], specs: tuple[str, ...] = WRAPPING_KEY_SPECS) -> set[Combo]:
    return set(itertools.product(algorithms, specs))


# KMS's rules, by value (not computed from the catalog).
_ANY: Final = combos(ALGORITHMS)
_SECRET: Final = combos(OAEP)
_PRIVATE_RSA: Final = combos(AES_WRAP)
EXPECTED_ALLOWED: Final[dict[str, frozenset[Combo]]] = {
    "SYMMETRIC_DEFAULT": frozenset(_SECRET),
    "HMAC_224": frozenset(_SECRET),
    "HMAC_256": frozenset(_SECRET),
    "HMAC_384": frozenset(_SECRET),
    "HMAC_512": frozenset(_SECRET),
    "RSA_2048": frozenset(_PRIVATE_RSA),
    "RSA_3072": frozenset(_PRIVATE_RSA),
    "RSA_4096": frozenset(_PRIVATE_RSA),
    "ECC_NIST_P256": frozenset(_ANY),
    "ECC_NIST_P384": frozenset(_ANY),  # 185 bytes: fits OAEP-SHA-256 under RSA_2048 (190)
    "ECC_NIST_P521": frozenset(_ANY - combos(OAEP, ("RSA_2048",))),
    "ECC_SECG_P256K1": frozenset(_ANY),
}
EXPECTED_COMBINATIONS: Final = 94

# DER: rsaEncryption + NULL; id-ecPublicKey + the named curve.
RSA_ENCRYPTION_OID: Final = bytes.fromhex("2a864886f70d010101")
EC_PUBLIC_KEY_OID: Final = bytes.fromhex("2a8648ce3d0201")
CURVE_OID_TLV: Final = {
    "ECC_NIST_P256": bytes.fromhex("06082a8648ce3d030107"),
    "ECC_NIST_P384": bytes.fromhex("06052b81040022"),
    "ECC_NIST_P521": bytes.fromhex("06052b81040023"),
    "ECC_SECG_P256K1": bytes.fromhex("06052b8104000a"),
}
OPENSSL_CURVE: Final = {
    "ECC_NIST_P256": "P-256",
    "ECC_NIST_P384": "P-384",
    "ECC_NIST_P521": "P-521",
    "ECC_SECG_P256K1": "secp256k1",
}
# PKCS#8 DER size of each curve's key as OpenSSL writes it (fixed: the scalar is padded).
EC_PKCS8_BYTES: Final = {
    "ECC_NIST_P256": 138,
    "ECC_NIST_P384": 185,
    "ECC_NIST_P521": 241,
    "ECC_SECG_P256K1": 135,
}

# The materials: secret keys at the sizes that matter; each private key in one input form
# (all forms are checked separately), so the matrix covers every conversion.
VARIANTS: Final[dict[str, tuple[str, ...]]] = {
    "SYMMETRIC_DEFAULT": ("32-bytes",),
    "HMAC_224": ("28-bytes", "64-bytes"),
    "HMAC_256": ("32-bytes", "64-bytes"),
    "HMAC_384": ("48-bytes", "128-bytes"),
    "HMAC_512": ("64-bytes", "128-bytes"),
    "RSA_2048": ("pkcs1-pem",),
    "RSA_3072": ("pkcs1-der",),
    "RSA_4096": ("pkcs8-pem",),
    "ECC_NIST_P256": ("sec1-pem",),
    "ECC_NIST_P384": ("sec1-der",),
    "ECC_NIST_P521": ("pkcs8-der",),
    "ECC_SECG_P256K1": ("pkcs8-pem",),
}
INPUT_FORMS: Final = ("pkcs8-pem", "pkcs8-der", "traditional-pem", "traditional-der")
ASYMMETRIC_SPECS: Final = tuple(
    name for name, spec in KEY_SPECS.items() if spec.family in ("rsa", "ecc")
)

MATRIX: Final = [
    pytest.param(name, variant, algorithm, wrapping_key_spec,
                 id=f"{name}-{variant}-{algorithm}-{wrapping_key_spec}")
    for name, spec in KEY_SPECS.items()
    for variant in VARIANTS.get(name, ())
    for algorithm, wrapping_key_spec in allowed_wrappings(spec)
]  # fmt: skip
REFUSED: Final = [
    pytest.param(name, algorithm, wrapping_key_spec, id=f"{name}-{algorithm}-{wrapping_key_spec}")
    for name, allowed in EXPECTED_ALLOWED.items()
    for algorithm, wrapping_key_spec in sorted(combos(ALGORITHMS) - allowed)
]


# --- keys -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WrappingPair:
    private_pem: Path
    public_der: bytes


@dataclass(frozen=True)
class MaterialKey:
    """A material private key: the file openssl wrote, the key, and OpenSSL's PKCS#8 DER."""

    pem: Path
    key: PrivateKey
    openssl_pkcs8_der: bytes

    def form(self, name: str) -> bytes:
        encoding = (
            serialization.Encoding.PEM if name.endswith("pem") else serialization.Encoding.DER
        )
        private_format = (
            serialization.PrivateFormat.PKCS8
            if name.startswith("pkcs8")
            else serialization.PrivateFormat.TraditionalOpenSSL  # PKCS#1 or SEC1
        )
        return self.key.private_bytes(encoding, private_format, serialization.NoEncryption())


def _genpkey(path: Path, spec: str) -> Path:
    bits = WRAPPING_BITS.get(spec) or KEY_SPECS[spec].modulus_bits
    if bits:
        return openssl_cli.generate_rsa_private_key(path, bits)
    openssl_cli.run_openssl(
        ["genpkey", "-algorithm", "EC", "-pkeyopt", f"ec_paramgen_curve:{OPENSSL_CURVE[spec]}",
         "-pkeyopt", "ec_param_enc:named_curve", "-out", str(path)]
    )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Wrapping keys (``wrap-RSA_*``) and material keys (by key spec), all made at once:
    ``genpkey`` runs in its own process, so the slow 4096-bit keys are found in parallel."""
    directory = tmp_path_factory.mktemp("key-types-matrix")
    jobs = {f"wrap-{spec}": spec for spec in WRAPPING_KEY_SPECS}
    jobs.update({spec: spec for spec in ASYMMETRIC_SPECS})
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        paths = pool.map(lambda item: _genpkey(directory / f"{item[0]}.pem", item[1]), jobs.items())
        return dict(zip(jobs, paths, strict=True))


@pytest.fixture(scope="module")
def wrapping_keys(generated: dict[str, Path]) -> dict[str, WrappingPair]:
    pairs = {}
    for spec in WRAPPING_KEY_SPECS:
        pem = generated[f"wrap-{spec}"]
        assert openssl_cli.rsa_modulus_bits(pem) == WRAPPING_BITS[spec]
        pairs[spec] = WrappingPair(pem, openssl_cli.public_key_der(pem))
    return pairs


@pytest.fixture(scope="module")
def material_keys(generated: dict[str, Path]) -> dict[str, MaterialKey]:
    keys = {}
    for spec in ASYMMETRIC_SPECS:
        pem = generated[spec]
        key = serialization.load_pem_private_key(pem.read_bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
        # What AWS documents for turning a private key into KMS's format.
        pkcs8 = openssl_cli.run_openssl(
            ["pkcs8", "-topk8", "-nocrypt", "-in", str(pem), "-outform", "DER"]
        )
        keys[spec] = MaterialKey(pem, key, pkcs8)
    return keys


@dataclass(frozen=True)
class Material:
    stored: bytes  # what the secret holds
    key: PrivateKey | None  # asymmetric: the key it must come out as


def material_for(spec: str, variant: str, material_keys: dict[str, MaterialKey]) -> Material:
    if variant.endswith("-bytes"):
        return Material(os.urandom(int(variant.removesuffix("-bytes"))), None)
    key = material_keys[spec]
    form = variant.replace("pkcs1", "traditional").replace("sec1", "traditional")
    return Material(key.form(form), key.key)


Prepared = Callable[[str, str], tuple[Material, bytes]]


@pytest.fixture(scope="module")
def prepared_materials(material_keys: dict[str, MaterialKey]) -> Prepared:
    """Each material and its ``prepare_material`` output, made once: loading a 4096-bit key
    checks its primes, about half a second, and the result is the same for every wrapping."""
    cache: dict[tuple[str, str], tuple[Material, bytes]] = {}

    def get(name: str, variant: str) -> tuple[Material, bytes]:
        if (name, variant) not in cache:
            material = material_for(name, variant, material_keys)
            cache[name, variant] = (
                material,
                prepare_material(material.stored, KEY_SPECS[name], SECRET_ARN),
            )
        return cache[name, variant]

    return get


# --- a small DER reader (independent of cryptography) ---------------------------------------


def _tlv(data: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, start, end) of the value of the DER element at ``offset``."""
    tag, length, start = data[offset], data[offset + 1], offset + 2
    if length & 0x80:
        count = length & 0x7F
        length, start = int.from_bytes(data[start : start + count], "big"), start + count
    return tag, start, start + length


@dataclass(frozen=True)
class Pkcs8:
    algorithm_oid: bytes
    parameters: bytes  # the whole parameters element (NULL, or the curve's OID)
    private_key: bytes  # the content of the privateKey OCTET STRING


def parse_pkcs8(der: bytes) -> Pkcs8:
    """PrivateKeyInfo ::= SEQUENCE { version 0, AlgorithmIdentifier, OCTET STRING } (RFC 5208),
    nothing before or after, no attributes."""
    tag, start, end = _tlv(der, 0)
    assert (tag, end) == (0x30, len(der)), "not one DER SEQUENCE"
    tag, start, version_end = _tlv(der, start)
    assert (tag, der[start:version_end]) == (0x02, b"\x00"), "PKCS#8 version must be 0"
    tag, start, algorithm_end = _tlv(der, version_end)
    assert tag == 0x30, "no AlgorithmIdentifier"
    tag, oid_start, oid_end = _tlv(der, start)
    assert tag == 0x06
    parameters = der[oid_end:algorithm_end]
    tag, key_start, key_end = _tlv(der, algorithm_end)
    assert (tag, key_end) == (0x04, len(der)), "privateKey must be the last element"
    return Pkcs8(der[oid_start:oid_end], parameters, der[key_start:key_end])


def assert_pkcs8_of(prepared: bytes, spec: str, key: PrivateKey) -> None:
    """``prepared`` is PKCS#8 DER, of the right algorithm, of ``key`` itself."""
    info = parse_pkcs8(prepared)
    if KEY_SPECS[spec].family == "rsa":
        assert info.algorithm_oid == RSA_ENCRYPTION_OID
        assert info.parameters == b"\x05\x00"
        # RSAPrivateKey version 0 is two-prime (1 would be multi-prime, which KMS refuses).
        tag, start, _ = _tlv(info.private_key, 0)
        assert tag == 0x30
        assert info.private_key[start : start + 3] == b"\x02\x01\x00"
    else:
        assert info.algorithm_oid == EC_PUBLIC_KEY_OID
        assert info.parameters == CURVE_OID_TLV[spec], "KMS takes named curves only"
    # Only the public numbers matter here; skipping the slow prime checks keeps 4096 fast.
    loaded = serialization.load_der_private_key(
        prepared, password=None, unsafe_skip_rsa_key_validation=True
    )
    assert type(loaded.public_key()) is type(key.public_key())
    assert loaded.public_key().public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]


# --- the catalog, by value ------------------------------------------------------------------


def test_the_matrix_covers_every_spec_and_only_importable_ones() -> None:
    assert set(KEY_SPECS) == set(EXPECTED_ALLOWED)
    assert set(VARIANTS) == set(KEY_SPECS), "every key spec needs material in the matrix"
    assert sum(len(allowed) for allowed in EXPECTED_ALLOWED.values()) == EXPECTED_COMBINATIONS
    assert sum(len(allowed_wrappings(spec)) for spec in KEY_SPECS.values()) == 94


@pytest.mark.parametrize("name", sorted(EXPECTED_ALLOWED))
def test_allowed_wrappings_are_exactly_what_kms_takes(name: str) -> None:
    allowed = allowed_wrappings(KEY_SPECS[name])
    assert len(allowed) == len(set(allowed)), "a combination is listed twice"
    assert set(allowed) == EXPECTED_ALLOWED[name]
    for algorithm, wrapping_key_spec in allowed:
        assert wrapping_refusal(KEY_SPECS[name], algorithm, wrapping_key_spec) is None


@pytest.mark.parametrize("name", ["RSA_2048", "RSA_3072", "RSA_4096"])
def test_rsa_private_keys_go_by_rsa_aes_key_wrap_only(name: str) -> None:
    allowed = set(allowed_wrappings(KEY_SPECS[name]))
    assert {algorithm for algorithm, _ in allowed} == {
        "RSA_AES_KEY_WRAP_SHA_1",
        "RSA_AES_KEY_WRAP_SHA_256",
    }
    assert {spec for _, spec in allowed} == {"RSA_2048", "RSA_3072", "RSA_4096"}


@pytest.mark.parametrize(
    "name", ["SYMMETRIC_DEFAULT", "HMAC_224", "HMAC_256", "HMAC_384", "HMAC_512"]
)
def test_secret_keys_go_by_rsaes_oaep_only(name: str) -> None:
    allowed = set(allowed_wrappings(KEY_SPECS[name]))
    assert {algorithm for algorithm, _ in allowed} == {"RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"}
    assert {spec for _, spec in allowed} == {"RSA_2048", "RSA_3072", "RSA_4096"}


def test_p521_does_not_fit_oaep_under_rsa_2048_but_does_under_rsa_3072() -> None:
    p521 = KEY_SPECS["ECC_NIST_P521"]
    allowed = allowed_wrappings(p521)
    assert ("RSAES_OAEP_SHA_256", "RSA_2048") not in allowed
    assert ("RSAES_OAEP_SHA_1", "RSA_2048") not in allowed
    assert ("RSAES_OAEP_SHA_256", "RSA_3072") in allowed
    assert ("RSA_AES_KEY_WRAP_SHA_256", "RSA_2048") in allowed
    reason = wrapping_refusal(p521, "RSAES_OAEP_SHA_256", "RSA_2048")
    assert reason is not None
    assert "241 bytes" in reason
    assert "190" in reason


def test_p384_is_the_largest_curve_that_fits_oaep_sha256_under_rsa_2048() -> None:
    assert ("RSAES_OAEP_SHA_256", "RSA_2048") in allowed_wrappings(KEY_SPECS["ECC_NIST_P384"])


@pytest.mark.parametrize(
    ("bits", "algorithm", "capacity"),
    [
        (2048, "RSAES_OAEP_SHA_256", 190),
        (3072, "RSAES_OAEP_SHA_256", 318),
        (4096, "RSAES_OAEP_SHA_256", 446),
        (2048, "RSAES_OAEP_SHA_1", 214),
        (3072, "RSAES_OAEP_SHA_1", 342),
        (4096, "RSAES_OAEP_SHA_1", 470),
    ],
)
def test_oaep_capacity(bits: int, algorithm: str, capacity: int) -> None:
    assert oaep_capacity(bits, algorithm) == capacity


@pytest.mark.parametrize("name", sorted(EXPECTED_ALLOWED))
def test_the_default_wrapping_is_the_strongest_allowed(name: str) -> None:
    private = KEY_SPECS[name].family in ("rsa", "ecc")
    expected = ("RSA_AES_KEY_WRAP_SHA_256" if private else "RSAES_OAEP_SHA_256", "RSA_4096")
    assert default_wrapping(KEY_SPECS[name]) == expected
    assert expected in EXPECTED_ALLOWED[name]


@pytest.mark.parametrize(("name", "algorithm", "wrapping_key_spec"), REFUSED)
def test_every_refused_combination_names_the_valid_choices(
    name: str, algorithm: str, wrapping_key_spec: str
) -> None:
    spec = KEY_SPECS[name]
    reason = wrapping_refusal(spec, algorithm, wrapping_key_spec)
    assert reason is not None, "KMS refuses this combination"
    assert len(reason) <= 256
    for word in (name, algorithm, wrapping_key_spec):
        assert word in reason
    marker = f"Valid algorithms for {wrapping_key_spec}: "
    assert marker in reason
    named = {choice.strip() for choice in reason.split(marker, 1)[1].rstrip(".").split(",")}
    valid = {a for a, s in EXPECTED_ALLOWED[name] if s == wrapping_key_spec}
    assert named == valid
    capacity = oaep_capacity(WRAPPING_BITS[wrapping_key_spec], algorithm)
    why = {
        "rsa": "does not fit RSA-OAEP",
        "symmetric": "RSA-OAEP only",
        "hmac": "RSA-OAEP only",
        "ecc": f"{spec.max_material_bytes} bytes of material exceed its capacity of {capacity}",
    }[spec.family]
    assert why in reason


@pytest.mark.parametrize(
    ("name", "algorithm", "wrapping_key_spec"),
    [param for param in REFUSED if param.values[1] in OAEP],
)
def test_wrap_itself_refuses_material_that_does_not_fit_oaep(
    prepared_materials: Prepared,
    wrapping_keys: dict[str, WrappingPair],
    name: str,
    algorithm: str,
    wrapping_key_spec: str,
) -> None:
    """Defence in depth: the refused OAEP combinations are the ones whose material is too big."""
    _, prepared = prepared_materials(name, VARIANTS[name][0])
    with pytest.raises(ImportFailure, match="do not fit"):
        wrap_key_material(prepared, wrapping_keys[wrapping_key_spec].public_der, algorithm)


# --- material formats -----------------------------------------------------------------------


@pytest.mark.parametrize("form", INPUT_FORMS)
@pytest.mark.parametrize("name", ASYMMETRIC_SPECS)
def test_every_private_key_form_becomes_what_openssl_pkcs8_writes(
    material_keys: dict[str, MaterialKey], name: str, form: str
) -> None:
    key = material_keys[name]
    stored = key.form(form)
    prepared = prepare_material(stored, KEY_SPECS[name], SECRET_ARN)
    assert prepared == key.openssl_pkcs8_der
    assert_pkcs8_of(prepared, name, key.key)


@pytest.mark.parametrize("name", ASYMMETRIC_SPECS)
def test_prepared_private_keys_fit_the_catalog_sizes(
    material_keys: dict[str, MaterialKey], name: str
) -> None:
    prepared = material_keys[name].openssl_pkcs8_der
    spec = KEY_SPECS[name]
    assert len(prepared) <= spec.max_material_bytes
    if spec.family == "ecc":
        assert len(prepared) == EC_PKCS8_BYTES[name] == spec.max_material_bytes


# --- the matrix -----------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "variant", "algorithm", "wrapping_key_spec"), MATRIX)
def test_material_round_trips_through_the_openssl_cli(
    material_keys: dict[str, MaterialKey],
    prepared_materials: Prepared,
    wrapping_keys: dict[str, WrappingPair],
    name: str,
    variant: str,
    algorithm: str,
    wrapping_key_spec: str,
) -> None:
    spec = KEY_SPECS[name]
    assert (algorithm, wrapping_key_spec) in EXPECTED_ALLOWED[name]
    material, prepared = prepared_materials(name, variant)  # prepare_material, once per material
    pair = wrapping_keys[wrapping_key_spec]

    encrypted = wrap_key_material(prepared, pair.public_der, algorithm)
    recovered = openssl_cli.openssl_unwrap(encrypted, pair.private_pem, algorithm)

    assert recovered == prepared
    modulus_bytes = WRAPPING_BITS[wrapping_key_spec] // 8
    if algorithm in OAEP:
        assert len(encrypted) == modulus_bytes
    else:
        # RSA part, then RFC 5649: the material padded to 8 bytes, plus the 8-byte AIV block.
        assert len(encrypted) == modulus_bytes + -(-len(prepared) // 8) * 8 + 8
    if material.key is None:
        assert prepared == material.stored
        assert spec.min_material_bytes <= len(prepared) <= spec.max_material_bytes
    else:
        assert prepared == material_keys[name].openssl_pkcs8_der
        assert_pkcs8_of(recovered, name, material.key)
