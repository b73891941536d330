"""Reading and checking key material: GetSecretValue through a Stubber-backed real client."""

from __future__ import annotations

import base64
import json
import logging
from typing import Final

import pytest
import stubbing

from imported_key_handler.contract import KEY_SPECS
from imported_key_handler.errors import ImportFailure
from imported_key_handler.material_format import prepare_material, prepare_materials
from imported_key_handler.secret_source import (
    SecretValue,
    decode_materials,
    read_material,
    read_materials,
)

SYMMETRIC = KEY_SPECS["SYMMETRIC_DEFAULT"]

SENTINEL: Final = stubbing.SENTINEL_MATERIAL
SENTINEL_B64: Final = base64.b64encode(SENTINEL).decode("ascii")


pytestmark = pytest.mark.usefixtures("no_material_in_logs")


def read_failure(secrets: stubbing.SecretsStub, secret_arn: str = stubbing.SECRET_ARN) -> str:
    return stubbing.failure_reason(lambda: read_material(secrets.client, secret_arn), secrets)


# --- the leak check itself ------------------------------------------------------------------


@pytest.mark.parametrize("form", sorted(stubbing.material_forms(SENTINEL)))
def test_the_leak_check_finds_every_encoding_of_the_material(form: str) -> None:
    leaked = "Reason: " + stubbing.material_forms(SENTINEL)[form] + " (end)"
    with pytest.raises(AssertionError, match="key material appears"):
        stubbing.assert_no_material(leaked)


def test_the_log_check_finds_material_in_log_arguments() -> None:
    record = logging.LogRecord("x", logging.DEBUG, __file__, 1, "got %r", (SENTINEL,), None)
    with pytest.raises(AssertionError, match="key material appears"):
        stubbing.assert_records_clean([record])


# --- reading ----------------------------------------------------------------------------------


def test_secret_binary_is_returned_raw(secrets: stubbing.SecretsStub) -> None:
    secrets.add_secret(SecretBinary=SENTINEL)
    assert read_material(secrets.client, stubbing.SECRET_ARN) == SENTINEL
    assert secrets.recorder.operations == ["GetSecretValue"]


def test_secret_binary_wins_over_secret_string(secrets: stubbing.SecretsStub) -> None:
    secrets.add_secret(SecretBinary=SENTINEL, SecretString="bm90IHRoaXM=")
    assert read_material(secrets.client, stubbing.SECRET_ARN) == SENTINEL


@pytest.mark.parametrize(
    "text",
    [
        SENTINEL_B64,
        SENTINEL_B64 + "\n",
        f"  {SENTINEL_B64}  \n",
        f"\r\n{SENTINEL_B64}\r\n",
        "\t" + SENTINEL_B64,
        # `base64 -w 20` / an editor wrapping the line.
        "\n".join(SENTINEL_B64[i : i + 20] for i in range(0, len(SENTINEL_B64), 20)) + "\n",
    ],
    ids=["plain", "newline", "spaces", "crlf", "tab", "wrapped"],
)
def test_secret_string_is_base64_with_surrounding_whitespace_tolerated(
    secrets: stubbing.SecretsStub, text: str
) -> None:
    secrets.add_secret(SecretString=text)
    assert read_material(secrets.client, stubbing.SECRET_ARN) == SENTINEL


@pytest.mark.parametrize(
    "text",
    [
        # The material pasted as plain text: the reason must not echo it.
        SENTINEL.decode("ascii"),
        "not base64!",
        SENTINEL_B64.rstrip("="),  # padding dropped
        base64.urlsafe_b64encode(b"\xfb\xff" * 16).decode("ascii"),  # URL-safe alphabet
    ],
    ids=["plain-text", "garbage", "no-padding", "urlsafe"],
)
def test_secret_string_that_is_not_base64_is_refused_clearly(
    secrets: stubbing.SecretsStub, text: str
) -> None:
    secrets.add_secret(SecretString=text)
    reason = read_failure(secrets)
    assert stubbing.SECRET_ARN in reason
    assert "is not base64" in reason
    assert "SecretBinary" in reason  # the other way to store it
    assert text not in reason


SECRET_ERRORS: Final = [
    ("ResourceNotFoundException", ("was not found", "SecretBinary")),
    ("AccessDeniedException", ("may not read", "secretsmanager:GetSecretValue", "kms:Decrypt")),
    ("DecryptionFailure", ("could not decrypt", "kms:Decrypt")),
    ("InvalidRequestException", ("scheduled for deletion", "RestoreSecret")),
    ("InternalServiceError", ("InternalServiceError", "retry")),
    ("SomeBrandNewException", ("SomeBrandNewException", "retry")),
]


@pytest.mark.parametrize(("code", "fragments"), SECRET_ERRORS)
def test_a_secrets_manager_error_names_the_secret_the_problem_and_the_fix(
    secrets: stubbing.SecretsStub, code: str, fragments: tuple[str, ...]
) -> None:
    # A service message carrying material must not be forwarded into the Reason.
    secrets.add_secret_error(code, message=f"value {SENTINEL.hex()} {SENTINEL_B64}")
    reason = read_failure(secrets)
    assert stubbing.SECRET_ARN in reason
    for fragment in fragments:
        assert fragment in reason


@pytest.mark.parametrize(("code", "fragments"), SECRET_ERRORS)
def test_secret_error_reasons_fit_whole_with_a_long_secret_name(
    secrets: stubbing.SecretsStub, code: str, fragments: tuple[str, ...]
) -> None:
    secrets.add_secret_error(code, stubbing.LONG_SECRET_ARN)
    reason = read_failure(secrets, stubbing.LONG_SECRET_ARN)
    assert stubbing.LONG_SECRET_ARN in reason
    assert not reason.endswith("..."), "the fix at the end was cut off"
    assert fragments[-1] in reason


def test_a_non_base64_reason_fits_whole_with_a_long_secret_name(
    secrets: stubbing.SecretsStub,
) -> None:
    secrets.add_secret(stubbing.LONG_SECRET_ARN, SecretString="%%%")
    reason = read_failure(secrets, stubbing.LONG_SECRET_ARN)
    assert reason.endswith("SecretBinary.")


# --- checking ---------------------------------------------------------------------------------


def test_32_bytes_are_valid_symmetric_material() -> None:
    assert prepare_material(SENTINEL, SYMMETRIC, stubbing.SECRET_ARN) == SENTINEL


@pytest.mark.parametrize("length", [1, 16, 31, 33, 48, 64])
def test_symmetric_material_of_the_wrong_length_is_refused_with_both_lengths(
    length: int,
) -> None:
    material = stubbing.sentinel_of_length(length)
    reason = stubbing.failure_reason(  # checks the 32-byte sentinel's encodings
        lambda: prepare_material(material, SYMMETRIC, stubbing.SECRET_ARN)
    )
    if length >= 8:
        stubbing.assert_no_material(reason, material)
    assert stubbing.SECRET_ARN in reason
    assert f" holds {length} bytes;" in reason
    assert "exactly 32" in reason


def test_hex_text_in_secret_string_is_caught_by_the_length_check(
    secrets: stubbing.SecretsStub,
) -> None:
    # 64 hex digits are valid base64 characters: they decode to 48 bytes, not the 32 meant.
    secrets.add_secret(SecretString=SENTINEL.hex())
    material = read_material(secrets.client, stubbing.SECRET_ARN)
    reason = stubbing.failure_reason(
        lambda: prepare_material(material, SYMMETRIC, stubbing.SECRET_ARN)
    )
    assert " holds 48 bytes;" in reason


@pytest.mark.parametrize(
    ("encoding", "fragment"),
    [
        ("auto", "has no SecretString, but material_encoding is auto"),
        ("base64", "has no SecretString, but material_encoding is base64"),
        ("raw", "has no SecretBinary, but material_encoding is raw"),
    ],
)
def test_a_secret_with_no_value_is_refused_when_it_is_read(
    secrets: stubbing.SecretsStub, encoding: str, fragment: str
) -> None:
    secrets.add_secret()  # neither SecretBinary nor SecretString
    reason = stubbing.failure_reason(
        lambda: read_material(secrets.client, stubbing.SECRET_ARN, encoding=encoding), secrets
    )
    assert reason.startswith(f"Secret {stubbing.SECRET_ARN} {fragment}")


@pytest.mark.parametrize(
    "value",
    [
        SecretValue(binary=b"", text=None),
        SecretValue(binary=None, text=""),
        SecretValue(binary=None, text=" \n"),
    ],
    ids=["empty-binary", "empty-string", "blank-string"],
)
def test_an_empty_secret_value_decodes_as_empty_and_is_refused_as_empty(
    value: SecretValue,
) -> None:
    (material,) = decode_materials(value, stubbing.SECRET_ARN)
    assert material == b""
    reason = stubbing.failure_reason(
        lambda: prepare_material(material, KEY_SPECS["SYMMETRIC_DEFAULT"], stubbing.SECRET_ARN)
    )
    assert reason == (
        f"Secret {stubbing.SECRET_ARN} is empty: put the key material in it (see the README's "
        "table of encodings)."
    )


@pytest.mark.parametrize(
    "text",
    [
        '{"material": "' + SENTINEL_B64 + '"}',  # a key/value secret, not our document
        '{"materials": []}',
        '{"materials": "' + SENTINEL_B64 + '"}',
        '{"materials": [42]}',
        '{"materials": ["' + SENTINEL_B64 + '"',  # broken JSON
    ],
    ids=["other-field", "empty-list", "not-a-list", "not-strings", "broken"],
)
def test_json_that_is_not_a_materials_document_is_refused_clearly(
    secrets: stubbing.SecretsStub, text: str
) -> None:
    secrets.add_secret(SecretString=text)
    reason = read_failure(secrets)
    assert stubbing.SECRET_ARN in reason
    assert '{"materials": ["<base64>", ...]}' in reason
    stubbing.assert_clean_reason(reason)


def test_a_materials_document_lists_every_material_oldest_first(
    secrets: stubbing.SecretsStub,
) -> None:
    older, newer = bytes(range(32)), SENTINEL
    document = {"materials": [base64.b64encode(m).decode() for m in (older, newer)]}
    secrets.add_secret(SecretString=json.dumps(document))
    assert read_materials(secrets.client, stubbing.SECRET_ARN) == [older, newer]


def test_a_materials_document_is_refused_where_one_material_is_expected(
    secrets: stubbing.SecretsStub,
) -> None:
    document = {"materials": [base64.b64encode(m).decode() for m in (bytes(32), SENTINEL)]}
    secrets.add_secret(SecretString=json.dumps(document))
    reason = read_failure(secrets)
    assert "holds 2 materials" in reason
    assert "rotation_on_material_change=True" in reason


def test_a_secret_version_is_read_when_asked(secrets: stubbing.SecretsStub) -> None:
    secrets.stub.add_response(
        "get_secret_value",
        {"ARN": stubbing.SECRET_ARN, "Name": "n", "SecretBinary": SENTINEL},
        {"SecretId": stubbing.SECRET_ARN, "VersionId": "v" * 32},
    )
    assert read_materials(secrets.client, stubbing.SECRET_ARN, "v" * 32) == [SENTINEL]


def test_duplicate_or_too_many_materials_are_refused() -> None:
    with pytest.raises(ImportFailure, match="lists the same material twice"):
        prepare_materials([SENTINEL, SENTINEL], SYMMETRIC, stubbing.SECRET_ARN)
    many = [bytes([i]) * 32 for i in range(27)]
    with pytest.raises(ImportFailure, match="lists 27 materials; KMS allows a key 25"):
        prepare_materials(many, SYMMETRIC, stubbing.SECRET_ARN)
