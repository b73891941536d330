"""Key material of every key spec through the whole import, with Stubber-backed clients.

Bad material: the import stops with an ImportFailure that names the secret and what is wrong,
before any KMS call (the KMS Stubber has nothing queued, and raises on any call), with a
whole Reason CloudFormation can show and no material in it or in any log line at DEBUG.

Good material in every supported shape (PEM PKCS#1 / SEC1 / PKCS#8, DER, hex, base64, a JSON
field): what ImportKeyMaterial carries, unwrapped with the wrapping private key, is PKCS#8
DER of the same key (asymmetric) or exactly the raw bytes (symmetric, HMAC).
"""

from __future__ import annotations

import base64
import functools
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import key_types_support as support
import pytest
import stubbing
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from imported_key_handler.contract import KEY_SPECS
from imported_key_handler.errors import ImportFailure
from imported_key_handler.importer import import_from_secret

PEM: Final = serialization.Encoding.PEM
DER: Final = serialization.Encoding.DER
ARN: Final = stubbing.LONG_SECRET_ARN  # the longest realistic name: reasons must still fit
sentinel = stubbing.sentinel_of_length
# DER of the named-curve OID of P-256 (1.2.840.10045.3.1.7), as PKCS#8 carries it.
P256_OID_DER: Final = bytes.fromhex("06082a8648ce3d030107")


@dataclass(frozen=True)
class Stored:
    """What GetSecretValue returns."""

    binary: bytes | None = None
    text: str | None = None

    def value(self) -> dict[str, Any]:
        value: dict[str, Any] = {}
        if self.binary is not None:
            value["SecretBinary"] = self.binary
        if self.text is not None:
            value["SecretString"] = self.text
        return value


def as_text(data: bytes) -> Stored:
    return Stored(text=data.decode("ascii"))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@functools.cache
def ed25519_pem() -> bytes:
    return ed25519.Ed25519PrivateKey.generate().private_bytes(
        PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def rsa2048() -> rsa.RSAPrivateKey:
    return support.rsa_key(2048)


def rsa3072() -> rsa.RSAPrivateKey:
    return support.rsa_key(3072)


def p256() -> ec.EllipticCurvePrivateKey:
    return support.ec_key("ECC_NIST_P256")


def p384() -> ec.EllipticCurvePrivateKey:
    return support.ec_key("ECC_NIST_P384")


def p521() -> ec.EllipticCurvePrivateKey:
    return support.ec_key("ECC_NIST_P521")


def k1() -> ec.EllipticCurvePrivateKey:
    return support.ec_key("ECC_SECG_P256K1")


# --- leak probes: every material this module stores anywhere -----------------------------


@pytest.fixture(scope="module")
def probes() -> support.LeakProbes:
    found = support.LeakProbes()
    for key in (rsa2048(), rsa3072(), p256(), p384(), p521(), k1()):
        found.add_key(key)
    for pem in (support.three_prime_rsa_pem(), support.explicit_curve_pem(), ed25519_pem()):
        found.add_pem(pem)
        found.add_bytes(support.pem_to_der(pem))
    found.add_pem(support.encrypted_pem("RSA_2048"), support.encrypted_pem("ECC_NIST_P256"))
    found.add_bytes(*(sentinel(n) for n in (16, 27, 31, 32, 33, 48, 63, 64, 128, 129)))
    return found


@pytest.fixture(autouse=True)
def leak_free_logs(caplog: pytest.LogCaptureFixture, probes: support.LeakProbes) -> Iterator[None]:
    """Every log record of the test, at DEBUG, is free of every probe."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="imported_key_handler")
    yield
    probes.assert_records_clean([*caplog.get_records("setup"), *caplog.get_records("call")])


def test_the_probes_find_a_pem_line_and_der_in_any_encoding(probes: support.LeakProbes) -> None:
    der = support.pkcs8_der(p384())
    pem_line = support.pkcs8_pem(p384()).decode().splitlines()[2]
    for leaked in (f"x {der.hex()} y", f"x {pem_line} y", f"x {b64(der)[:20]} y"):
        with pytest.raises(AssertionError):
            probes.assert_clean(leaked)
    with pytest.raises(AssertionError, match="truncated"):
        probes.assert_clean_reason(ImportFailure("x" * 300).reason)
    probes.assert_clean_reason("Secret arn:... holds 31 bytes.")


# --- bad material ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Bad:
    spec: str
    stored: Callable[[], Stored]
    words: tuple[str, ...]  # each must appear in the reason
    encoding: str = "auto"
    json_field: str | None = None


BAD: Final[dict[str, Bad]] = {
    "symmetric-31-bytes": Bad(
        "SYMMETRIC_DEFAULT",
        lambda: Stored(binary=sentinel(31)),
        ("31 bytes", "SYMMETRIC_DEFAULT", "exactly 32"),
    ),
    "symmetric-33-bytes": Bad(
        "SYMMETRIC_DEFAULT", lambda: Stored(binary=sentinel(33)), ("33 bytes", "exactly 32")
    ),
    "symmetric-16-bytes-china-size": Bad(
        "SYMMETRIC_DEFAULT",
        lambda: Stored(text=b64(sentinel(16))),
        ("16 bytes", "exactly 32"),
    ),
    "hmac256-31-bytes": Bad(
        "HMAC_256", lambda: Stored(binary=sentinel(31)), ("31 bytes", "HMAC_256", "32 to 64")
    ),
    "hmac256-65-bytes": Bad(
        "HMAC_256", lambda: Stored(binary=sentinel(65)), ("65 bytes", "HMAC_256", "32 to 64")
    ),
    "hmac224-27-bytes": Bad(
        "HMAC_224", lambda: Stored(binary=sentinel(27)), ("27 bytes", "HMAC_224", "28 to 64")
    ),
    "hmac224-65-bytes": Bad(
        "HMAC_224", lambda: Stored(binary=sentinel(65)), ("65 bytes", "HMAC_224", "28 to 64")
    ),
    "hmac384-129-bytes": Bad(
        "HMAC_384", lambda: Stored(binary=sentinel(129)), ("129 bytes", "HMAC_384", "48 to 128")
    ),
    "hmac512-63-bytes-hex": Bad(
        "HMAC_512",
        lambda: Stored(text=sentinel(63).hex()),
        ("63 bytes", "HMAC_512", "64 to 128"),
        encoding="hex",
    ),
    "rsa2048-spec-3072-bit-key": Bad(
        "RSA_2048",
        lambda: as_text(support.traditional(rsa3072(), PEM)),
        ("3072-bit", "RSA_2048", "2048-bit"),
    ),
    "rsa3072-spec-2048-bit-der": Bad(
        "RSA_3072",
        lambda: Stored(binary=support.pkcs8_der(rsa2048())),
        ("2048-bit", "RSA_3072", "3072-bit"),
    ),
    "p256-spec-p384-key": Bad(
        "ECC_NIST_P256",
        lambda: as_text(support.traditional(p384(), PEM)),
        ("secp384r1", "ECC_NIST_P256", "secp256r1"),
    ),
    "p521-spec-secp256k1-key": Bad(
        "ECC_NIST_P521",
        lambda: Stored(binary=support.pkcs8_der(k1())),
        ("secp256k1", "ECC_NIST_P521", "secp521r1"),
    ),
    "rsa-spec-ec-key": Bad(
        "RSA_2048",
        lambda: as_text(support.pkcs8_pem(p256())),
        ("EC key", "RSA_2048"),
    ),
    "ec-spec-rsa-key": Bad(
        "ECC_NIST_P256",
        lambda: Stored(binary=support.traditional(rsa2048(), DER)),
        ("RSA key", "ECC_NIST_P256"),
    ),
    "three-prime-rsa-pem": Bad(
        "RSA_2048", lambda: as_text(support.three_prime_rsa_pem()), ("two-prime",)
    ),
    "three-prime-rsa-der": Bad(
        "RSA_2048",
        lambda: Stored(binary=support.pem_to_der(support.three_prime_rsa_pem())),
        ("two-prime",),
    ),
    "encrypted-pem-rsa": Bad(
        "RSA_2048",
        lambda: as_text(support.encrypted_pem("RSA_2048")),
        ("encrypted private key", "unencrypted", "-nocrypt"),
    ),
    "encrypted-pem-ec-explicit-pem-encoding": Bad(
        "ECC_NIST_P256",
        lambda: as_text(support.encrypted_pem("ECC_NIST_P256")),
        ("encrypted private key", "-nocrypt"),
        encoding="pem",
    ),
    "ed25519-key-for-ecc-spec": Bad(
        "ECC_NIST_P256",
        lambda: as_text(ed25519_pem()),
        ("Ed25519", "only RSA and elliptic-curve"),
    ),
    "not-a-key-der-for-rsa-spec": Bad(
        "RSA_2048",
        lambda: Stored(binary=sentinel(64)),
        ("does not hold a private key", "PKCS#8"),
    ),
    "pem-for-symmetric": Bad(
        "SYMMETRIC_DEFAULT",
        lambda: as_text(support.pkcs8_pem(p256())),
        ("PEM", "SYMMETRIC_DEFAULT", "raw secret bytes"),
    ),
    "pem-for-hmac": Bad(
        "HMAC_256",
        lambda: as_text(support.traditional(rsa2048(), PEM)),
        ("PEM", "HMAC_256", "raw secret bytes"),
    ),
    "not-base64-auto": Bad(
        "SYMMETRIC_DEFAULT",
        lambda: Stored(text=f"{sentinel(32).decode()}!? not base64"),
        ("not base64",),
    ),
    "not-base64-explicit": Bad(
        "HMAC_256",
        lambda: Stored(text=b64(sentinel(48)) + "$$"),
        ("not base64",),
        encoding="base64",
    ),
    "not-hex": Bad(
        "SYMMETRIC_DEFAULT",
        lambda: Stored(text=sentinel(32).hex()[:-2] + "zz"),
        ("not hex",),
        encoding="hex",
    ),
    "hex-odd-length": Bad(
        "SYMMETRIC_DEFAULT",
        lambda: Stored(text=sentinel(32).hex() + "a"),
        ("not hex",),
        encoding="hex",
    ),
    "json-without-the-field": Bad(
        "SYMMETRIC_DEFAULT",
        lambda: Stored(text=json.dumps({"other": b64(sentinel(32))})),
        ("JSON object", "'material'", "json_field"),
        json_field="material",
    ),
    "json-field-not-text": Bad(
        "SYMMETRIC_DEFAULT",
        lambda: Stored(text=json.dumps({"material": [b64(sentinel(32))]})),
        ("JSON object", "'material'", "json_field"),
        json_field="material",
    ),
    "json-field-but-not-json": Bad(
        "SYMMETRIC_DEFAULT",
        lambda: Stored(text=b64(sentinel(32))),
        ("JSON object", "'material'", "json_field"),
        json_field="material",
    ),
    "raw-encoding-with-only-a-secret-string": Bad(
        "SYMMETRIC_DEFAULT",
        lambda: Stored(text=b64(sentinel(32))),
        ("no SecretBinary", "raw"),
        encoding="raw",
    ),
    "pem-encoding-with-only-a-secret-binary": Bad(
        "ECC_NIST_P256",
        lambda: Stored(binary=support.pkcs8_der(p256())),
        ("no SecretString", "pem"),
        encoding="pem",
    ),
    "whitespace-only-secret-string": Bad(
        "SYMMETRIC_DEFAULT", lambda: Stored(text="\n"), ("is empty", "key material")
    ),
    "whitespace-only-secret-string-rsa-spec": Bad(
        "RSA_2048", lambda: Stored(text=" \n"), ("is empty", "key material")
    ),
}


def refused_before_kms(
    kms: stubbing.KmsStub,
    secrets: stubbing.SecretsStub,
    probes: support.LeakProbes,
    case: Bad,
    secret: dict[str, Any],
) -> str:
    secrets.add_secret(ARN, **secret)
    request = support.request_for(
        case.spec, encoding=case.encoding, json_field=case.json_field, secret_arn=ARN
    )
    with pytest.raises(ImportFailure) as caught:
        import_from_secret(kms.client, secrets.client, request)
    # Nothing reached KMS: no call was even attempted (the Stubber would also have raised).
    assert kms.recorder.operations == []
    assert secrets.recorder.operations == ["GetSecretValue"]
    stubbing.assert_all_answered(kms, secrets)
    reason = caught.value.reason
    probes.assert_clean_reason(reason)
    assert ARN in reason, "the reason must name the secret"
    missing = [word for word in case.words if word not in reason]
    assert not missing, f"reason lacks {missing}: {reason}"
    return reason


@pytest.mark.parametrize("case_id", sorted(BAD))
def test_bad_material_fails_with_a_clear_reason_before_any_kms_call(
    kms: stubbing.KmsStub,
    secrets: stubbing.SecretsStub,
    probes: support.LeakProbes,
    case_id: str,
) -> None:
    case = BAD[case_id]
    refused_before_kms(kms, secrets, probes, case, case.stored().value())


@pytest.mark.parametrize("spec", ["SYMMETRIC_DEFAULT", "HMAC_256", "RSA_2048", "ECC_NIST_P256"])
def test_an_empty_secret_string_fails_before_any_kms_call(
    kms: stubbing.KmsStub,
    secrets: stubbing.SecretsStub,
    probes: support.LeakProbes,
    monkeypatch: pytest.MonkeyPatch,
    spec: str,
) -> None:
    """SecretString "" (the service model says at least one character, so the Stubber's
    response check is lifted for this one answer: the handler must not rely on it)."""
    monkeypatch.setattr(secrets.stub, "_validate_operation_response", lambda *_: None)
    words = ("is empty", "key material")
    case = Bad(spec, lambda: Stored(text=""), words)
    refused_before_kms(kms, secrets, probes, case, {"SecretString": ""})


# --- good material --------------------------------------------------------------------------


@dataclass(frozen=True)
class Good:
    spec: str
    # What the secret holds, and the key (asymmetric) or raw bytes that KMS must receive.
    make: Callable[[], tuple[Stored, support.PrivateKey | bytes]]
    encoding: str = "auto"
    json_field: str | None = None


def explicit_curve_case() -> tuple[Stored, support.PrivateKey | bytes]:
    pem = support.explicit_curve_pem()
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return as_text(pem), key


GOOD: Final[dict[str, Good]] = {
    "rsa-pkcs1-pem": Good(
        "RSA_2048", lambda: (as_text(support.traditional(rsa2048(), PEM)), rsa2048())
    ),
    "rsa-pkcs8-pem-explicit-encoding": Good(
        "RSA_2048", lambda: (as_text(support.pkcs8_pem(rsa2048())), rsa2048()), encoding="pem"
    ),
    "rsa-pkcs1-pem-crlf-and-blank-lines": Good(
        "RSA_3072",
        lambda: (
            Stored(
                text="\r\n"
                + support.traditional(rsa3072(), PEM).decode().replace("\n", "\r\n")
                + "\r\n"
            ),
            rsa3072(),
        ),
    ),
    "rsa-pkcs8-der-binary": Good(
        "RSA_2048", lambda: (Stored(binary=support.pkcs8_der(rsa2048())), rsa2048())
    ),
    "rsa-pkcs1-der-raw-encoding": Good(
        "RSA_3072",
        lambda: (Stored(binary=support.traditional(rsa3072(), DER)), rsa3072()),
        encoding="raw",
    ),
    "rsa-pkcs8-der-base64": Good(
        "RSA_2048", lambda: (Stored(text=b64(support.pkcs8_der(rsa2048()))), rsa2048())
    ),
    "rsa-json-field-base64": Good(
        "RSA_2048",
        lambda: (
            Stored(text=json.dumps({"kid": "k1", "key": b64(support.pkcs8_der(rsa2048()))})),
            rsa2048(),
        ),
        json_field="key",
    ),
    "ec-sec1-pem": Good(
        "ECC_NIST_P256", lambda: (as_text(support.traditional(p256(), PEM)), p256())
    ),
    "ec-sec1-der-binary": Good(
        "ECC_NIST_P384", lambda: (Stored(binary=support.traditional(p384(), DER)), p384())
    ),
    "ec-pkcs8-pem": Good("ECC_NIST_P521", lambda: (as_text(support.pkcs8_pem(p521())), p521())),
    "ec-secp256k1-sec1-der-hex": Good(
        "ECC_SECG_P256K1",
        lambda: (Stored(text=support.traditional(k1(), DER).hex()), k1()),
        encoding="hex",
    ),
    "ec-json-field-pem": Good(
        "ECC_NIST_P521",
        lambda: (
            Stored(text=json.dumps({"privateKey": support.traditional(p521(), PEM).decode()})),
            p521(),
        ),
        json_field="privateKey",
    ),
    "ec-explicit-curve-pem-becomes-named-curve": Good("ECC_NIST_P256", explicit_curve_case),
    "symmetric-binary": Good(
        "SYMMETRIC_DEFAULT", lambda: (Stored(binary=sentinel(32)), sentinel(32))
    ),
    "symmetric-base64-with-line-breaks": Good(
        "SYMMETRIC_DEFAULT",
        lambda: (
            Stored(text=b64(sentinel(32))[:20] + "\n" + b64(sentinel(32))[20:] + "\n"),
            sentinel(32),
        ),
    ),
    "symmetric-hex-0x-and-spaces": Good(
        "SYMMETRIC_DEFAULT",
        lambda: (
            Stored(text="0x" + " ".join(sentinel(32).hex()[i : i + 8] for i in range(0, 64, 8))),
            sentinel(32),
        ),
        encoding="hex",
    ),
    "symmetric-json-field-base64": Good(
        "SYMMETRIC_DEFAULT",
        lambda: (Stored(text=json.dumps({"material": b64(sentinel(32))})), sentinel(32)),
        json_field="material",
    ),
    "hmac256-base64-explicit": Good(
        "HMAC_256", lambda: (Stored(text=b64(sentinel(32))), sentinel(32)), encoding="base64"
    ),
    "hmac384-json-field-base64": Good(
        "HMAC_384",
        lambda: (Stored(text=json.dumps({"mac": b64(sentinel(48))})), sentinel(48)),
        json_field="mac",
    ),
    "hmac512-128-bytes-hex": Good(
        "HMAC_512",
        lambda: (Stored(text=sentinel(128).hex().upper()), sentinel(128)),
        encoding="hex",
    ),
    "hmac224-binary": Good("HMAC_224", lambda: (Stored(binary=sentinel(28)), sentinel(28))),
}

VERIFIED_BY: Final = {
    "rsa": "GetPublicKey",
    "ecc": "GetPublicKey",
    "hmac": "GenerateMac",
    "symmetric": "KeyMaterialId",
}


@pytest.mark.parametrize("case_id", sorted(GOOD))
def test_good_material_is_normalised_imported_and_verified(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub, case_id: str
) -> None:
    case = GOOD[case_id]
    stored, original = case.make()
    request = support.request_for(case.spec, encoding=case.encoding, json_field=case.json_field)
    family = KEY_SPECS[case.spec].family
    secrets.add_secret(**stored.value())
    wrapping_key = support.queue_import(kms, request, current_material_id=stubbing.KEY_MATERIAL_ID)
    if isinstance(original, bytes):
        expected = original
        if family == "hmac":
            support.MacResponder(kms, case.spec, original)
    else:
        expected = support.pkcs8_der(original)
        support.queue_public_key(kms, case.spec, support.public_der(original))

    result = import_from_secret(kms.client, secrets.client, request)

    stubbing.assert_all_answered(kms, secrets)
    sent = support.sent_material(kms, wrapping_key, request.wrapping_algorithm)
    assert sent == expected
    assert result.verified == VERIFIED_BY[family]
    assert result.key_material_id == stubbing.KEY_MATERIAL_ID
    if not isinstance(original, bytes):
        # PKCS#8: SEQUENCE { INTEGER 0, AlgorithmIdentifier ... } - and the same key.
        assert sent[0] == 0x30
        assert b"\x02\x01\x00\x30" in sent[2:8]
        assert support.same_key(sent, original)
    if case_id == "ec-explicit-curve-pem-becomes-named-curve":
        assert P256_OID_DER in sent[:32], "KMS takes named curves only"
