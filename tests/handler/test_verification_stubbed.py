"""The proof after an import that the key holds the secret's material, with Stubber clients.

- RSA and EC keys: GetPublicKey must return the public key of the secret's private key.
- HMAC keys: GenerateMac (exact KeyId and MacAlgorithm; the Message is the handler's random
  choice) must equal the local HMAC; the stubbed MAC is computed from the Message the
  handler actually sent, when it sends it.
- Symmetric keys: the KeyMaterialId ImportKeyMaterial returns must be DescribeKey's
  CurrentKeyMaterialId.

Every failure is an ImportFailure with a whole Reason that names the check; no material
appears in a reason or in any log record at DEBUG.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Final

import key_types_support as support
import pytest
import stubbing
from botocore.stub import ANY
from cryptography.hazmat.primitives.asymmetric import ec

from imported_key_handler.contract import KEY_SPECS, default_wrapping
from imported_key_handler.errors import ImportFailure
from imported_key_handler.importer import ImportResult, import_from_secret
from imported_key_handler.request import ImportRequest

DESCRIBE: Final = "DescribeKey"
PARAMETERS: Final = "GetParametersForImport"
IMPORT: Final = "ImportKeyMaterial"
IMPORT_FLOW: Final = [DESCRIBE, PARAMETERS, IMPORT, DESCRIBE]
ASYMMETRIC_SPECS: Final = ("RSA_2048", "ECC_NIST_P256", "ECC_NIST_P521", "ECC_SECG_P256K1")
HMAC_SPECS: Final = ("HMAC_224", "HMAC_256", "HMAC_384", "HMAC_512")
OTHER_MATERIAL_ID: Final = "cd" * 32
sentinel = stubbing.sentinel_of_length


def hmac_material(spec: str, length: int | None = None) -> bytes:
    return sentinel(length or KEY_SPECS[spec].min_material_bytes)


@pytest.fixture(scope="module")
def probes() -> support.LeakProbes:
    found = support.LeakProbes()
    for spec in ASYMMETRIC_SPECS:
        found.add_key(support.key_for(spec))
    found.add_bytes(stubbing.SENTINEL_MATERIAL, sentinel(128))
    found.add_bytes(*(hmac_material(spec) for spec in HMAC_SPECS))
    return found


@pytest.fixture(autouse=True)
def leak_free_logs(caplog: pytest.LogCaptureFixture, probes: support.LeakProbes) -> Iterator[None]:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="imported_key_handler")
    yield
    probes.assert_records_clean([*caplog.get_records("setup"), *caplog.get_records("call")])


def run_import(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub, request: ImportRequest
) -> ImportResult:
    return import_from_secret(kms.client, secrets.client, request)


def failure(
    kms: stubbing.KmsStub,
    secrets: stubbing.SecretsStub,
    request: ImportRequest,
    probes: support.LeakProbes,
) -> str:
    with pytest.raises(ImportFailure) as caught:
        run_import(kms, secrets, request)
    stubbing.assert_all_answered(kms, secrets)
    probes.assert_clean_reason(caught.value.reason)
    # The stubbed service messages carry the sentinel: they must not be forwarded.
    stubbing.assert_clean_reason(caught.value.reason)
    return caught.value.reason


# --- asymmetric: GetPublicKey -----------------------------------------------------------------


def queue_asymmetric(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub, spec: str
) -> ImportRequest:
    """The secret holds the spec's key as PKCS#8 PEM; the import itself succeeds."""
    request = support.request_for(spec, wrapping=default_wrapping(KEY_SPECS[spec]))
    secrets.add_secret(SecretString=support.pkcs8_pem(support.key_for(spec)).decode())
    support.queue_import(kms, request)
    return request


@pytest.mark.parametrize("spec", ASYMMETRIC_SPECS)
def test_a_matching_public_key_verifies_the_import(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub, spec: str
) -> None:
    request = queue_asymmetric(kms, secrets, spec)
    support.queue_public_key(kms, spec, support.public_der(support.key_for(spec)))

    result = run_import(kms, secrets, request)

    assert result.verified == "GetPublicKey"
    assert kms.recorder.operations == [*IMPORT_FLOW, "GetPublicKey"]
    assert kms.recorder.params_of("GetPublicKey") == [{"KeyId": stubbing.KEY_ID}]


def other_public_key(spec: str, kind: str) -> bytes:
    """A public key that is not the secret's: same spec, or another family altogether."""
    if kind == "another-key-same-spec":
        bits = KEY_SPECS[spec].modulus_bits
        if bits:
            # Any other RSA key of the size: the wrapping key stands in.
            return stubbing.wrapping_key(f"RSA_{bits}").public_der
        return support.public_der(ec.generate_private_key(support.CURVES[spec]))
    other = "ECC_NIST_P256" if KEY_SPECS[spec].family == "rsa" else "RSA_2048"
    return support.public_der(support.key_for(other))


@pytest.mark.parametrize("kind", ["another-key-same-spec", "another-family"])
@pytest.mark.parametrize("spec", ["RSA_2048", "ECC_NIST_P256"])
def test_a_different_public_key_fails_naming_get_public_key(
    kms: stubbing.KmsStub,
    secrets: stubbing.SecretsStub,
    probes: support.LeakProbes,
    spec: str,
    kind: str,
) -> None:
    request = queue_asymmetric(kms, secrets, spec)
    support.queue_public_key(kms, spec, other_public_key(spec, kind))

    reason = failure(kms, secrets, request, probes)

    assert "GetPublicKey" in reason
    assert "differs" in reason
    assert stubbing.KEY_ID in reason


@pytest.mark.parametrize("spec", ["RSA_2048", "ECC_NIST_P384"])
def test_get_public_key_access_denied_names_the_permission(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub, probes: support.LeakProbes, spec: str
) -> None:
    request = queue_asymmetric(kms, secrets, spec)
    kms.add_error("get_public_key", "AccessDeniedException", {"KeyId": stubbing.KEY_ID})

    reason = failure(kms, secrets, request, probes)

    assert "kms:GetPublicKey" in reason
    assert stubbing.KEY_ID in reason


# --- HMAC: GenerateMac ------------------------------------------------------------------------


def queue_hmac(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub, spec: str, material: bytes
) -> ImportRequest:
    request = support.request_for(spec)
    secrets.add_secret(SecretBinary=material)
    support.queue_import(kms, request)
    return request


@pytest.mark.parametrize(
    ("spec", "length"),
    [(spec, None) for spec in HMAC_SPECS]
    + [("HMAC_256", 64), ("HMAC_384", 128), ("HMAC_512", 100)],
)
def test_a_matching_mac_verifies_the_import(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub, spec: str, length: int | None
) -> None:
    material = hmac_material(spec, length)
    request = queue_hmac(kms, secrets, spec, material)
    responder = support.MacResponder(kms, spec, material)

    result = run_import(kms, secrets, request)

    assert result.verified == "GenerateMac"
    assert kms.recorder.operations == [*IMPORT_FLOW, "GenerateMac"]
    (sent,) = kms.recorder.params_of("GenerateMac")
    assert sent["KeyId"] == stubbing.KEY_ID
    assert sent["MacAlgorithm"] == f"HMAC_SHA_{KEY_SPECS[spec].digest_bits}"
    assert responder.messages == [sent["Message"]]
    assert len(sent["Message"]) >= 16, "the message must be a fresh random challenge"
    assert sent["Message"] not in (material, b""), "the message must not be the material"


def test_each_verification_uses_a_fresh_message(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub
) -> None:
    material = hmac_material("HMAC_256")
    for _ in range(2):
        request = queue_hmac(kms, secrets, "HMAC_256", material)
        support.MacResponder(kms, "HMAC_256", material)
        assert run_import(kms, secrets, request).verified == "GenerateMac"
    messages = [params["Message"] for params in kms.recorder.params_of("GenerateMac")]
    assert len(messages) == 2
    assert messages[0] != messages[1]


@pytest.mark.parametrize(
    ("spec", "wrong"),
    [
        ("HMAC_256", "other-key"),
        ("HMAC_384", "other-key"),
        ("HMAC_256", "truncated"),
        ("HMAC_512", "other-key"),
    ],
)
def test_a_wrong_mac_fails(
    kms: stubbing.KmsStub,
    secrets: stubbing.SecretsStub,
    probes: support.LeakProbes,
    spec: str,
    wrong: str,
) -> None:
    material = hmac_material(spec)
    request = queue_hmac(kms, secrets, spec, material)
    if wrong == "other-key":
        # One bit off: KMS holding other material.
        support.MacResponder(kms, spec, material[:-1] + bytes([material[-1] ^ 1]))
    else:
        support.MacResponder(kms, spec, material, tamper=lambda mac: mac[:-1])

    reason = failure(kms, secrets, request, probes)

    assert f"HMAC_SHA_{KEY_SPECS[spec].digest_bits}" in reason
    assert "differs" in reason
    assert stubbing.KEY_ID in reason
    assert kms.recorder.operations[-1] == "GenerateMac"


def test_generate_mac_access_denied_names_the_permission(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub, probes: support.LeakProbes
) -> None:
    request = queue_hmac(kms, secrets, "HMAC_256", hmac_material("HMAC_256"))
    kms.add_error(
        "generate_mac",
        "AccessDeniedException",
        {"KeyId": stubbing.KEY_ID, "MacAlgorithm": "HMAC_SHA_256", "Message": ANY},
    )

    reason = failure(kms, secrets, request, probes)

    assert "kms:GenerateMac" in reason


# --- symmetric: KeyMaterialId -----------------------------------------------------------------


def queue_symmetric(
    kms: stubbing.KmsStub,
    secrets: stubbing.SecretsStub,
    *,
    imported: str | None,
    current: str | None,
) -> ImportRequest:
    request = support.request_for("SYMMETRIC_DEFAULT")
    secrets.add_secret(SecretBinary=stubbing.SENTINEL_MATERIAL)
    support.queue_import(kms, request, imported_material_id=imported, current_material_id=current)
    return request


def test_the_imported_material_id_reported_current_verifies_the_import(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub
) -> None:
    request = queue_symmetric(
        kms, secrets, imported=stubbing.KEY_MATERIAL_ID, current=stubbing.KEY_MATERIAL_ID
    )

    result = run_import(kms, secrets, request)

    assert result.verified == "KeyMaterialId"
    assert result.key_material_id == stubbing.KEY_MATERIAL_ID
    # No extra call: the confirming DescribeKey is the proof.
    assert kms.recorder.operations == IMPORT_FLOW


def test_another_current_material_id_fails(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub, probes: support.LeakProbes
) -> None:
    request = queue_symmetric(
        kms, secrets, imported=stubbing.KEY_MATERIAL_ID, current=OTHER_MATERIAL_ID
    )

    reason = failure(kms, secrets, request, probes)

    assert OTHER_MATERIAL_ID in reason
    assert stubbing.KEY_MATERIAL_ID in reason
    assert kms.recorder.operations == IMPORT_FLOW


def test_without_any_material_id_only_the_key_state_is_claimed(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub
) -> None:
    request = queue_symmetric(kms, secrets, imported=None, current=None)

    assert run_import(kms, secrets, request).verified == "DescribeKey"


def test_a_current_material_id_alone_is_not_claimed_as_proof(
    kms: stubbing.KmsStub, secrets: stubbing.SecretsStub
) -> None:
    request = queue_symmetric(kms, secrets, imported=None, current=OTHER_MATERIAL_ID)

    assert run_import(kms, secrets, request).verified != "KeyMaterialId"
