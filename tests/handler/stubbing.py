"""Real boto3 clients behind botocore's Stubber, and a real RSA wrapping key pair.

The Stubber validates every request the handler makes against the real service model, checks
the exact parameters a test expects, and raises on any call nobody queued a response for. A
call recorder on each client keeps the operations (and their parameters) in the order they
were made, so a test can also read back what the handler sent: in particular the
``EncryptedKeyMaterial``, which the test unwraps with the private half of the wrapping key
that its stubbed ``GetParametersForImport`` handed out.

The unwrap here is written independently of the handler's ``wrapping`` module.
"""

from __future__ import annotations

import base64
import functools
import logging
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import boto3
import pytest
from botocore.model import OperationModel
from botocore.stub import ANY, Stubber
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from support.binding import binding_tags
from support.events import LOGICAL_ID, stack_id_for

from imported_key_handler import contract
from imported_key_handler.errors import ImportFailure

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_secretsmanager import SecretsManagerClient

REGION: Final = "us-east-1"
ACCOUNT: Final = "111122223333"
KEY_ID: Final = "1234abcd-12ab-34cd-56ef-1234567890ab"
KEY_ARN: Final = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{KEY_ID}"
# A multi-Region key ARN: the longest key identifier the construct passes in practice.
LONG_KEY_ID: Final = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/mrk-1234abcd12ab34cd56ef1234567890ab"
SECRET_ARN: Final = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:byok/material-AbCdEf"
# A realistic long secret name (a path-like name, as teams name them).
LONG_SECRET_ARN: Final = (
    f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:byok/prod/payments/kms-key-material-AbCdEf"
)
CREATED: Final = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
KEY_MATERIAL_ID: Final = "ab" * 32  # 64 hex characters, as KMS reports it.

# CloudFormation keeps at most this many characters of a Reason.
CFN_REASON_LIMIT: Final = 256

# Exactly 32 bytes (a SYMMETRIC_DEFAULT key's material), recognisable in any encoding.
SENTINEL_MATERIAL: Final = b"SENTINEL-MATERIAL-0123456789abcd"
assert len(SENTINEL_MATERIAL) == 32

_OAEP_HASHES: Final[Mapping[str, type[hashes.SHA1] | type[hashes.SHA256]]] = {
    "RSAES_OAEP_SHA_1": hashes.SHA1,
    "RSAES_OAEP_SHA_256": hashes.SHA256,
}
_SPEC_BITS: Final[Mapping[str, int]] = {"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}


def sentinel_of_length(length: int) -> bytes:
    """Sentinel-derived material of any length, still recognisable when leaked."""
    return (SENTINEL_MATERIAL * (length // len(SENTINEL_MATERIAL) + 1))[:length]


# --- leak checks -----------------------------------------------------------------------------


def material_forms(material: bytes) -> dict[str, str]:
    """Every way material could show up in a text: raw, repr, hex, base64, and their starts."""
    if len(material) < 8:
        raise ValueError("too short to recognise reliably; use sentinel material")
    forms = {
        "text": material.decode("latin-1"),
        "repr": repr(material),
        "hex": material.hex(),
        "HEX": material.hex().upper(),
        "base64": base64.b64encode(material).decode("ascii"),
        "base64url": base64.urlsafe_b64encode(material).decode("ascii"),
    }
    # A leak cut short (a Reason truncated to 256 characters) still shows its beginning.
    forms.update({f"{name}-start": value[:16] for name, value in list(forms.items())})
    return forms


def assert_no_material(text: str, material: bytes = SENTINEL_MATERIAL) -> None:
    leaked = [name for name, form in material_forms(material).items() if form in text]
    # The message names the encodings only, so a failing test does not print the material.
    assert not leaked, f"key material appears in the text (as {', '.join(leaked)})"


def assert_records_clean(
    records: Sequence[logging.LogRecord], material: bytes = SENTINEL_MATERIAL
) -> None:
    """No log record carries the material: message, arguments, extras or traceback."""
    for record in records:
        parts = [record.getMessage(), repr(vars(record))]
        if record.exc_info and record.exc_info[0] is not None:
            parts.append("".join(traceback.format_exception(*record.exc_info)))
        assert_no_material("\n".join(parts), material)


def assert_clean_reason(reason: str, material: bytes = SENTINEL_MATERIAL) -> None:
    """A Reason CloudFormation shows in full, without material."""
    assert reason
    assert len(reason) <= CFN_REASON_LIMIT, f"{len(reason)} characters: {reason}"
    assert_no_material(reason, material)


# --- wrapping keys -------------------------------------------------------------------------


@dataclass(frozen=True)
class WrappingKey:
    """The key pair behind a stubbed GetParametersForImport."""

    private_key: rsa.RSAPrivateKey

    @property
    def public_der(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def unwrap(self, encrypted: bytes, wrapping_algorithm: str) -> bytes:
        """Undo an RSAES_OAEP_SHA_* wrap; raises ValueError for the wrong key or hash."""
        digest = _OAEP_HASHES[wrapping_algorithm]()
        return self.private_key.decrypt(
            encrypted, padding.OAEP(mgf=padding.MGF1(digest), algorithm=digest, label=None)
        )


@functools.cache
def wrapping_key(wrapping_key_spec: str = "RSA_2048", index: int = 0) -> WrappingKey:
    """A real RSA key pair per (spec, index), generated once per test session."""
    return WrappingKey(
        rsa.generate_private_key(public_exponent=65537, key_size=_SPEC_BITS[wrapping_key_spec])
    )


# --- stubbed clients -----------------------------------------------------------------------


@dataclass
class CallRecorder:
    """Registered on ``provide-client-params``: sees every call before the Stubber does."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def __call__(self, params: dict[str, Any], model: OperationModel, **_: Any) -> None:
        self.calls.append((model.name, dict(params)))

    @property
    def operations(self) -> list[str]:
        return [name for name, _ in self.calls]

    def params_of(self, operation: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == operation]


@dataclass
class KmsStub:
    client: KMSClient
    stub: Stubber
    recorder: CallRecorder

    def add_binding(
        self, properties: Mapping[str, Any], *, extra: Mapping[str, str] | None = None
    ) -> None:
        """Queue ListResourceTags answering with the tags a deployment of ``properties``
        writes on the key (plus ``extra``), as the entry points read them first."""
        tags = {
            **binding_tags(properties, stack_id=stack_id_for("demo"), logical_id=LOGICAL_ID),
            **(extra or {}),
        }
        self.stub.add_response(
            "list_resource_tags",
            {
                "Tags": [{"TagKey": k, "TagValue": v} for k, v in tags.items()],
                "Truncated": False,
            },
            {"KeyId": str(properties[contract.PROP_KEY_ID])},
        )

    def add_record(self, valid_to: datetime | None, *, key_id: str = KEY_ID) -> None:
        """Queue the TagResource that records the ValidTo just imported."""
        value = valid_to.isoformat() if valid_to else contract.VALID_TO_NEVER
        self.stub.add_response(
            "tag_resource",
            {},
            {"KeyId": key_id, "Tags": [{"TagKey": contract.TAG_VALID_TO, "TagValue": value}]},
        )

    def add_describe(self, metadata: Mapping[str, Any], *, key_id: str = KEY_ID) -> None:
        self.stub.add_response("describe_key", {"KeyMetadata": metadata}, {"KeyId": key_id})

    def add_parameters(
        self,
        *,
        key: WrappingKey,
        token: bytes,
        wrapping_algorithm: str,
        wrapping_key_spec: str,
        key_id: str = KEY_ID,
    ) -> None:
        self.stub.add_response(
            "get_parameters_for_import",
            {
                "KeyId": KEY_ARN,
                "ImportToken": token,
                "PublicKey": key.public_der,
                "ParametersValidTo": CREATED + timedelta(hours=24),
            },
            {
                "KeyId": key_id,
                "WrappingAlgorithm": wrapping_algorithm,
                "WrappingKeySpec": wrapping_key_spec,
            },
        )

    def add_import(
        self,
        *,
        token: bytes,
        expiration_model: str,
        valid_to: datetime | None,
        key_id: str = KEY_ID,
        error_code: str | None = None,
        error_message: str = "",
        import_type: str | None = None,
        key_material_id: str = KEY_MATERIAL_ID,
    ) -> None:
        """Queue ImportKeyMaterial with its exact parameters; only the ciphertext is ANY.

        ``import_type`` is the ImportType the handler must send (None: it must send none);
        ``key_material_id`` is the KeyMaterialId KMS answers with.
        """
        expected: dict[str, Any] = {
            "KeyId": key_id,
            "ImportToken": token,
            "EncryptedKeyMaterial": ANY,
            "ExpirationModel": expiration_model,
        }
        if valid_to is not None:
            expected["ValidTo"] = valid_to
        if import_type is not None:
            expected["ImportType"] = import_type
        if error_code is None:
            self.stub.add_response(
                "import_key_material",
                {"KeyId": KEY_ARN, "KeyMaterialId": key_material_id},
                expected,
            )
        else:
            self.add_error("import_key_material", error_code, expected, message=error_message)

    def add_rotate(
        self, *, key_id: str = KEY_ID, error_code: str | None = None, error_message: str = ""
    ) -> None:
        """Queue RotateKeyOnDemand for ``key_id``, answered or failing with ``error_code``."""
        expected = {"KeyId": key_id}
        if error_code is None:
            self.stub.add_response("rotate_key_on_demand", {"KeyId": KEY_ARN}, expected)
        else:
            self.add_error("rotate_key_on_demand", error_code, expected, message=error_message)

    def add_list_rotations(
        self,
        rotations: Sequence[Mapping[str, Any]],
        *,
        key_id: str = KEY_ID,
        marker: str | None = None,
        next_marker: str | None = None,
    ) -> None:
        """Queue one ListKeyRotations page (IncludeKeyMaterial=ALL_KEY_MATERIAL).

        ``marker`` is the Marker the handler must send; ``next_marker`` makes the page
        truncated.
        """
        expected: dict[str, Any] = {"KeyId": key_id, "IncludeKeyMaterial": "ALL_KEY_MATERIAL"}
        if marker is not None:
            expected["Marker"] = marker
        response: dict[str, Any] = {
            "Rotations": [dict(entry) for entry in rotations],
            "Truncated": next_marker is not None,
        }
        if next_marker is not None:
            response["NextMarker"] = next_marker
        self.stub.add_response("list_key_rotations", response, expected)

    def add_error(
        self, method: str, code: str, expected_params: Mapping[str, Any], *, message: str = ""
    ) -> None:
        self.stub.add_client_error(
            method,
            service_error_code=code,
            service_message=message or _leaky_message(code),
            http_status_code=500
            if code in ("KMSInternalException", "InternalServiceError")
            else 400,
            expected_params=dict(expected_params),
        )

    def encrypted_materials(self) -> list[bytes]:
        """The EncryptedKeyMaterial of every ImportKeyMaterial call, in order."""
        return [
            bytes(p["EncryptedKeyMaterial"]) for p in self.recorder.params_of("ImportKeyMaterial")
        ]


@dataclass
class SecretsStub:
    client: SecretsManagerClient
    stub: Stubber
    recorder: CallRecorder

    def add_secret(
        self, secret_arn: str = SECRET_ARN, *, version_id: str | None = None, **value: Any
    ) -> None:
        """Queue GetSecretValue returning ``SecretBinary=...`` and/or ``SecretString=...``.

        ``version_id`` is the VersionId the handler must ask for (None: it must ask for none).
        """
        expected = {"SecretId": secret_arn}
        if version_id is not None:
            expected["VersionId"] = version_id
        self.stub.add_response(
            "get_secret_value",
            {
                "ARN": secret_arn,
                "Name": secret_arn.rsplit(":", 1)[-1],
                "VersionId": version_id or "00000000-0000-4000-8000-000000000001",
                "VersionStages": ["AWSCURRENT"],
                "CreatedDate": CREATED,
                **value,
            },
            expected,
        )

    def add_secret_error(
        self, code: str, secret_arn: str = SECRET_ARN, *, message: str = ""
    ) -> None:
        self.stub.add_client_error(
            "get_secret_value",
            service_error_code=code,
            service_message=message or _leaky_message(code),
            http_status_code=500 if code == "InternalServiceError" else 400,
            expected_params={"SecretId": secret_arn},
        )


def _leaky_message(code: str) -> str:
    """A service message that carries the material: the leak checks fail if it is forwarded."""
    return f"stubbed {code} for {SENTINEL_MATERIAL.hex()}"


def _recorded(client: KMSClient | SecretsManagerClient, event_service: str) -> CallRecorder:
    recorder = CallRecorder()
    client.meta.events.register(f"provide-client-params.{event_service}", recorder)
    return recorder


def assert_all_answered(*stubs: KmsStub | SecretsStub) -> None:
    """Every response queued on these clients was asked for."""
    for stubbed in stubs:
        stubbed.stub.assert_no_pending_responses()


def failure_reason(
    call: Callable[[], object],
    *answered: KmsStub | SecretsStub,
    materials: Sequence[bytes] = (SENTINEL_MATERIAL,),
) -> str:
    """Run ``call`` expecting an ImportFailure; return its reason, checked to be a clean
    CloudFormation Reason for every one of ``materials``, once every response queued on the
    ``answered`` clients was used."""
    with pytest.raises(ImportFailure) as caught:
        call()
    assert_all_answered(*answered)
    for material in materials:
        assert_clean_reason(caught.value.reason, material)
    return caught.value.reason


def new_kms() -> KmsStub:
    """A real KMS client, not yet activated: use ``with stubbed.stub:``."""
    client = boto3.client(
        "kms", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    return KmsStub(client, Stubber(client), _recorded(client, "kms"))


def new_secrets() -> SecretsStub:
    client = boto3.client(
        "secretsmanager", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    return SecretsStub(client, Stubber(client), _recorded(client, "secrets-manager"))


# --- KMS responses -------------------------------------------------------------------------


def key_metadata(
    *,
    key_id: str = KEY_ID,
    state: str = "PendingImport",
    origin: str | None = "EXTERNAL",
    key_spec: str = "SYMMETRIC_DEFAULT",
    expiration_model: str | None = None,
    valid_to: datetime | None = None,
    current_material_id: str | None = None,
) -> dict[str, Any]:
    """DescribeKey's KeyMetadata for a customer managed key, as KMS reports it."""
    metadata: dict[str, Any] = {
        "AWSAccountId": ACCOUNT,
        "KeyId": key_id,
        "Arn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{key_id}",
        "CreationDate": CREATED,
        "Enabled": state == "Enabled",
        "Description": "imported key",
        "KeyUsage": "ENCRYPT_DECRYPT",
        "KeyState": state,
        "KeyManager": "CUSTOMER",
        "CustomerMasterKeySpec": key_spec,
        "KeySpec": key_spec,
        "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"],
        "MultiRegion": False,
    }
    if origin is not None:
        metadata["Origin"] = origin
    if expiration_model is not None:
        metadata["ExpirationModel"] = expiration_model
    if valid_to is not None:
        metadata["ValidTo"] = valid_to
    if current_material_id is not None:
        metadata["CurrentKeyMaterialId"] = current_material_id
    return metadata


def rotation_entry(
    key_material_id: str,
    *,
    material_state: str,
    import_state: str = "IMPORTED",
    expiration_model: str | None = None,
    valid_to: datetime | None = None,
    key_id: str = KEY_ID,
) -> dict[str, Any]:
    """One entry of ListKeyRotations(IncludeKeyMaterial=ALL_KEY_MATERIAL) for imported material."""
    entry: dict[str, Any] = {
        "KeyId": key_id,
        "KeyMaterialId": key_material_id,
        "ImportState": import_state,
        "KeyMaterialState": material_state,
    }
    if expiration_model is not None:
        entry["ExpirationModel"] = expiration_model
    if valid_to is not None:
        entry["ValidTo"] = valid_to
    return entry
