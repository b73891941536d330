"""A property-based bad-input campaign against the handler (hypothesis).

Four properties, each fed with hostile input, and the examples each one actually ran:

1. Secret contents (every key spec x every material encoding, with or without a JSON field):
   ``importer.import_from_secret`` either raises ``ImportFailure`` or, only for material that
   is genuinely valid, goes on to KMS's DescribeKey (stubbed to fail, which stops it there).
   Never another exception; reasons fit CloudFormation (<= 256 characters); neither the reason
   nor any log line (captured at DEBUG) carries the secret, in any encoding.
2. Custom resource properties: ``ImportRequest.from_properties`` raises ``ImportFailure`` or
   returns a request that keeps every rule of the contract.
3. CloudFormation events through ``entry.handler`` and crhelper for real, answering a local
   HTTPS server: each event is ignored (no PUT) or answered by exactly one PUT, FAILED with a
   reason, or SUCCESS for a Delete that revokes nothing. No exception escapes, no example
   hangs, no material reaches the answer or the logs.
4. Renewal events of every shape: ``entry.handler`` raises ``ImportFailure`` (Lambda counts an
   error) or returns a summary; never another exception.

The totals are printed when the module finishes (run with ``-s`` to see them). Bugs the
campaign and its review turned up are pinned by ``xfail(strict=True)`` regressions at the end;
the strategies leave out the shapes that would only find them again (JSON nested deeper than
300 levels, crhelper's private event keys, rotation for a non-symmetric spec).

A leak is a run of 16 characters of the secret (whole, or its bytes as text, hex in either
case, base64 or base64url) that shows up in a reason or a log record; text that is public
anyway (the handler's own source, the ARN, the key id, the JSON field's name) does not count.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import logging
import random
import socket
import threading
import time
import traceback
import types
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import key_types_support as kts
import pytest
import stubbing
from botocore.stub import Stubber
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from support.binding import TEST_HANDLER_ROLE_ID, binding_tags
from support.cfn_server import CfnResponseServer
from support.events import LOGICAL_ID, cfn_event, import_properties, stack_id_for
from support.lambda_context import FakeLambdaContext

import imported_key_handler
from imported_key_handler import clients, contract, entry, importer, response
from imported_key_handler.contract import KEY_SPECS, KeySpec
from imported_key_handler.errors import MAX_REASON_LENGTH, ImportFailure
from imported_key_handler.request import ImportRequest

# --- budget -------------------------------------------------------------------------------------

# Property 1 runs once per (key spec, encoding): 12 x 5 = 60 runs of this many examples.
SECRET_EXAMPLES_PER_PAIR: Final = 15
PROPERTY_EXAMPLES: Final = 1000
# Every routed example of property 3 builds crhelper and makes a real HTTPS PUT.
EVENT_EXAMPLES: Final = 100
RENEWAL_EXAMPLES: Final = 400

# One handler call may take this long before the example counts as a hang. The Lambda context
# gives crhelper's timeout answer a later deadline, so a hang cannot hide behind it.
HANG_LIMIT_S: Final = 15.0
CONTEXT_S: Final = 60.0
assert CONTEXT_S - response.WORST_CASE_S > HANG_LIMIT_S

NOW: Final = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
DOES_NOT_EXPIRE: Final = contract.KEY_MATERIAL_DOES_NOT_EXPIRE

# --- the tally ----------------------------------------------------------------------------------

SECRETS_P: Final = "1 secret contents -> import_from_secret"
PROPERTIES_P: Final = "2 properties -> ImportRequest.from_properties"
EVENTS_P: Final = "3 CloudFormation events -> entry.handler + crhelper"
RENEWALS_P: Final = "4 renewal events -> entry.handler"


@dataclass
class Tally:
    examples: int = 0
    seconds: float = 0.0
    outcomes: Counter[str] = field(default_factory=Counter)

    def count(self, outcome: str) -> None:
        self.examples += 1
        self.outcomes[outcome] += 1

    def also(self, fact: str) -> None:
        """Something an example showed on the way, counted apart from its outcome."""
        self.outcomes[f"[{fact}]"] += 1


TALLY: Final[dict[str, Tally]] = {
    name: Tally() for name in (SECRETS_P, PROPERTIES_P, EVENTS_P, RENEWALS_P)
}
_TEST_PROPERTY: Final = {
    "test_secret_contents_are_refused_unless_valid": SECRETS_P,
    "test_properties_parse_or_fail_cleanly": PROPERTIES_P,
    "test_cloudformation_events_are_ignored_or_answered_once": EVENTS_P,
    "test_renewal_events_fail_cleanly_or_summarise": RENEWALS_P,
}


@pytest.fixture(scope="module", autouse=True)
def _print_totals() -> Iterator[None]:
    started = time.perf_counter()
    yield
    lines = [f"\nbad-input campaign: {time.perf_counter() - started:.1f} s in all"]
    for name, tally in TALLY.items():
        outcomes = ", ".join(f"{k}: {v}" for k, v in sorted(tally.outcomes.items()))
        lines.append(f"  {name}: {tally.examples} examples in {tally.seconds:.1f} s ({outcomes})")
    print("\n".join(lines))


@pytest.fixture(autouse=True)
def _time_property(request: pytest.FixtureRequest) -> Iterator[None]:
    started = time.perf_counter()
    yield
    name = _TEST_PROPERTY.get(request.node.originalname)
    if name is not None:
        TALLY[name].seconds += time.perf_counter() - started


def campaign(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,
        # No example database: a failure prints its falsifying example, which is enough to
        # reproduce it. (Hypothesis still keeps a self-ignoring cache in .hypothesis/.)
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


# --- stubbed clients, fresh per example ---------------------------------------------------------


@dataclass(frozen=True)
class Clients:
    kms: stubbing.KmsStub
    secrets: stubbing.SecretsStub


@pytest.fixture(scope="module")
def base_clients() -> Clients:
    """One pair of real clients for the module; every example puts its own Stubber on them
    (a new client per example costs 25 ms, a new Stubber almost nothing)."""
    return Clients(stubbing.new_kms(), stubbing.new_secrets())


@contextmanager
def fresh_stubs(base: Clients) -> Iterator[tuple[stubbing.KmsStub, stubbing.SecretsStub]]:
    """The clients behind new, empty Stubbers and cleared call recorders."""
    kms = replace(base.kms, stub=Stubber(base.kms.client))
    secrets = replace(base.secrets, stub=Stubber(base.secrets.client))
    kms.recorder.calls.clear()
    secrets.recorder.calls.clear()
    with kms.stub, secrets.stub:
        yield kms, secrets


def add_any_secret(secrets: stubbing.SecretsStub, **value: Any) -> None:
    """GetSecretValue answered for whatever SecretId the handler asks (random properties)."""
    secrets.stub.add_response(
        "get_secret_value",
        {
            "ARN": stubbing.SECRET_ARN,
            "Name": "byok/material",
            "VersionId": "00000000-0000-4000-8000-000000000001",
            "VersionStages": ["AWSCURRENT"],
            "CreatedDate": stubbing.CREATED,
            **value,
        },
    )


def add_any_error(stubbed: stubbing.KmsStub | stubbing.SecretsStub, method: str, code: str) -> None:
    """``method`` fails with ``code`` (and a message carrying the sentinel) for any params."""
    stubbed.stub.add_client_error(
        method,
        service_error_code=code,
        service_message=f"stubbed {code} for {stubbing.SENTINEL_MATERIAL.hex()}",
        http_status_code=400,
    )


# --- leak checks --------------------------------------------------------------------------------

# Shorter runs of characters cannot be told from chance.
WINDOW: Final = 16
_HANDLER_SOURCE: Final = "\n".join(
    path.read_text() for path in sorted(Path(imported_key_handler.__file__).parent.glob("*.py"))
)
# Text a reason may show that is in no source file verbatim.
_RENDERED: Final = f'{{"{contract.MATERIALS_FIELD}": ["<base64>", ...]}}'


def _windows(text: str, width: int = WINDOW) -> Iterator[str]:
    return (text[i : i + width] for i in range(len(text) - width + 1))


@functools.cache
def _public_windows() -> frozenset[str]:
    """Text that is public: the handler's own source, and the identifiers a reason names."""
    public = [_HANDLER_SOURCE, _RENDERED, stubbing.SECRET_ARN, stubbing.KEY_ARN, stubbing.KEY_ID]
    return frozenset(w for text in public for w in _windows(text))


def record_text(records: Iterable[logging.LogRecord]) -> str:
    """Everything a log record carries: message, attributes (extras) and traceback."""
    parts: list[str] = []
    for record in records:
        parts += [record.getMessage(), repr(vars(record))]
        if record.exc_info and record.exc_info[0] is not None:
            parts.append("".join(traceback.format_exception(*record.exc_info)))
    return "\n".join(parts)


_STANDARD_RECORD_FIELDS: Final = frozenset(
    [*vars(logging.LogRecord("", 0, "", 0, "", (), None)), "message", "asctime"]
)


def rendered_text(records: Iterable[logging.LogRecord]) -> str:
    """What a log line can show of a record: its message, its extras (a JSON formatter prints
    them) and its formatted traceback. Unlike ``record_text`` it leaves out the repr of the
    exception object itself, which no formatter prints."""
    parts: list[str] = []
    for record in records:
        extras = {k: v for k, v in vars(record).items() if k not in _STANDARD_RECORD_FIELDS}
        parts += [record.getMessage(), repr(extras)]
        if record.exc_info and record.exc_info[0] is not None:
            parts.append("".join(traceback.format_exception(*record.exc_info)))
    return "\n".join(parts)


def secret_leaks(haystack: str, forms: Mapping[str, str], public: Iterable[str] = ()) -> list[str]:
    """The names of ``forms`` of which a run of WINDOW characters shows up in ``haystack``.
    The haystack's windows are also lowercased, so the lowercase hex form finds HEX too."""
    extra = {w for text in public for w in _windows(text)}
    exposed = set(_windows(haystack)) - _public_windows() - extra
    exposed |= {w.lower() for w in exposed}
    return [name for name, form in forms.items() if not exposed.isdisjoint(_windows(form))]


# Encoded forms (hex, base64) are scanned over the encoding of the first 8 KiB: a leak shows
# the start of a value, and scanning every window of a 64 KiB secret's hex in every example
# would cost seconds. Raw forms are scanned whole.
ENCODED_SCAN: Final = 8192


def byte_forms(name: str, value: bytes, *, raw_in_full: bool = True) -> dict[str, str]:
    """The ways bytes could show up in a text: raw, hex (any case), base64, base64url.
    Python's repr is the raw form with escapes, which a window of the raw text still finds."""
    head = value[:ENCODED_SCAN]
    return {
        f"{name} as text": (value if raw_in_full else head).decode("latin-1"),
        f"{name} as hex": head.hex(),
        f"{name} as base64": base64.b64encode(head).decode("ascii"),
        f"{name} as base64url": base64.urlsafe_b64encode(head).decode("ascii"),
    }


# --- JSON-shaped values (what a Lambda event can hold) ------------------------------------------

JSON_SCALARS: Final = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
JSON_VALUES: Final = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
WRONG_TYPES: Final = (
    st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.booleans()
    | st.none()
    | st.lists(JSON_SCALARS, max_size=3)
    | st.dictionaries(st.text(max_size=8), JSON_SCALARS, max_size=3)
)
SEEDS: Final = st.integers(min_value=0, max_value=2**32 - 1)
_UNICODE_SOUP: Final = (
    "aZ09+/=-_ \t\n\r\x00\x07\x1b\x7f\x85\xa0\xad\u200b\u202e\u2028\ufeff\ufffd"
    "é€ß漢字🔑😀\U0010fffd"
)


def _huge_text(seed: int, size: int, alphabet: str) -> str:
    """``size`` characters: a random kilo-character chunk of ``alphabet``, repeated."""
    chunk = "".join(random.Random(seed).choices(alphabet, k=1024))
    return (chunk * (size // len(chunk) + 1))[:size]


HUGE_TEXTS: Final = st.builds(
    _huge_text,
    SEEDS,
    st.integers(min_value=4096, max_value=65536),
    st.sampled_from(
        [
            _UNICODE_SOUP,
            "0123456789abcdef",
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz+/=",
        ]
    ),
)
HUGE_BYTES: Final = st.builds(
    lambda seed, size: random.Random(seed).randbytes(size),
    SEEDS,
    st.integers(min_value=4096, max_value=65536),
)
BINARIES: Final = st.binary(max_size=300) | HUGE_BYTES | st.just(b"") | st.just(bytes(65536))
CONTROL_TEXT: Final = st.text(
    alphabet=st.characters(categories=["Cc", "Cf", "Zl", "Zp", "Zs"]), max_size=60
)

# --- secret contents (property 1) ---------------------------------------------------------------

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
ASYMMETRIC_SPECS: Final = tuple(
    name for name, spec in KEY_SPECS.items() if spec.family in (contract.RSA, contract.ECC)
)
# Keys that are cheap to parse, for the wrong-key garbage: loading an RSA 3072 or 4096 key
# checks its primes (a quarter of a second each), so only the valid secrets of those specs
# carry them.
CHEAP_KEY_SPECS: Final = tuple(
    name for name in ASYMMETRIC_SPECS if name not in ("RSA_3072", "RSA_4096")
)


@dataclass(frozen=True)
class Secret:
    """One GetSecretValue answer, and what the test knows about it."""

    label: str
    binary: bytes | None = None
    text: str | None = None
    # Made as material the request's spec, encoding and JSON field take: it must reach KMS.
    valid: bool = False
    # Real private keys inside (valid or not): their numbers and PEM lines must not leak.
    keys: tuple[Any, ...] = ()

    def response_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if self.binary is not None:
            fields["SecretBinary"] = self.binary
        if self.text is not None:
            fields["SecretString"] = self.text
        return fields


@functools.cache
def other_keys() -> tuple[Any, ...]:
    """Private keys KMS cannot import here: Ed25519, X25519, and EC on an unsupported curve."""
    return (
        ed25519.Ed25519PrivateKey.generate(),
        x25519.X25519PrivateKey.generate(),
        ec.generate_private_key(ec.SECP224R1()),
    )


def pem_of(key: Any, traditional: bool = False) -> str:
    private_format = (
        serialization.PrivateFormat.TraditionalOpenSSL
        if traditional
        else serialization.PrivateFormat.PKCS8
    )
    return str(
        key.private_bytes(
            serialization.Encoding.PEM, private_format, serialization.NoEncryption()
        ).decode("ascii")
    )


def der_of(key: Any, traditional: bool = False) -> bytes:
    private_format = (
        serialization.PrivateFormat.TraditionalOpenSSL
        if traditional
        else serialization.PrivateFormat.PKCS8
    )
    return bytes(
        key.private_bytes(serialization.Encoding.DER, private_format, serialization.NoEncryption())
    )


@st.composite
def base64_texts(draw: st.DrawFn) -> str:
    """base64 of random bytes of any length, as people paste it: wrapped, unpadded, url-safe,
    with spaces, or one character off."""
    raw = draw(st.binary(max_size=200) | st.sampled_from([bytes(31), bytes(33), bytes(64)]))
    encode = draw(st.sampled_from([base64.b64encode, base64.urlsafe_b64encode]))
    text = encode(raw).decode("ascii")
    mangle = draw(st.sampled_from(["none", "unpadded", "wrapped", "spaced", "bad-char", "cut"]))
    if mangle == "unpadded":
        text = text.rstrip("=")
    elif mangle == "wrapped":
        width = draw(st.integers(min_value=1, max_value=76))
        text = "\n".join(text[i : i + width] for i in range(0, len(text), width))
    elif mangle == "spaced":
        text = f"  {text}\r\n"
    elif mangle == "bad-char" and text:
        at = draw(st.integers(min_value=0, max_value=len(text) - 1))
        text = text[:at] + draw(st.sampled_from("!*.é\x00")) + text[at + 1 :]
    elif mangle == "cut":
        text = text[: draw(st.integers(min_value=0, max_value=len(text)))]
    return text


@st.composite
def hex_texts(draw: st.DrawFn) -> str:
    text = draw(st.binary(max_size=160)).hex()
    mangle = draw(st.sampled_from(["none", "upper", "0x", "spaced", "odd", "bad-char"]))
    if mangle == "upper":
        text = text.upper()
    elif mangle == "0x":
        text = "0x" + text
    elif mangle == "spaced":
        text = " ".join(text[i : i + 2] for i in range(0, len(text), 2))
    elif mangle == "odd":
        text += "f"
    elif mangle == "bad-char":
        text += draw(st.sampled_from("gz-é"))
    return text


@st.composite
def pem_garbage(draw: st.DrawFn) -> tuple[str, tuple[Any, ...]]:
    """PEM-looking text: random bodies, real keys cut or corrupted, keys of another spec or
    kind, encrypted keys, public keys. Returns the text and the private keys inside it."""
    kind = draw(
        st.sampled_from(
            ["random", "corrupted", "truncated", "real", "other-kind", "encrypted", "public"]
        )
    )
    if kind in ("random", "public"):
        label = draw(
            st.sampled_from(["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "PUBLIC KEY"])
            | st.text(max_size=20)
        )
        if kind == "random":
            body = base64.b64encode(draw(st.binary(max_size=400))).decode("ascii")
        else:
            key = kts.key_for(draw(st.sampled_from(CHEAP_KEY_SPECS)))
            body = base64.b64encode(kts.public_der(key)).decode("ascii")
        lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
        return f"-----BEGIN {label}-----\n{lines}\n-----END {label}-----\n", ()
    key = (
        draw(st.sampled_from(other_keys()))
        if kind == "other-kind"
        else kts.key_for(draw(st.sampled_from(CHEAP_KEY_SPECS)))
    )
    if kind == "encrypted":
        encrypted = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"correct horse battery staple"),
        )
        return encrypted.decode("ascii"), (key,)
    traditional = kind != "other-kind" and draw(st.booleans())
    text = pem_of(key, traditional)
    if kind == "corrupted":
        at = draw(st.integers(min_value=40, max_value=len(text) - 40))
        replacement = "A" if text[at] != "A" else "B"
        text = text[:at] + replacement + text[at + 1 :]
    elif kind == "truncated":
        text = text[: draw(st.integers(min_value=0, max_value=len(text) - 1))]
    return text, (key,)


@st.composite
def json_documents(draw: st.DrawFn, json_field: str | None) -> tuple[str, tuple[Any, ...]]:
    """JSON text of random shapes: random values, materials documents with wrong entries, the
    JSON field holding anything, nesting (kept under the recursion limit: see the regression
    for deeper nesting at the end)."""
    shape = draw(st.sampled_from(["random", "materials", "field", "nested"]))
    keys: tuple[Any, ...] = ()
    if shape == "nested":
        depth = draw(st.integers(min_value=1, max_value=300))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        closed = draw(st.booleans())
        return opener * depth + "1" + (closer * depth if closed else ""), ()
    document: Any
    if shape == "random":
        document = draw(JSON_VALUES)
    elif shape == "materials":
        entries = draw(
            st.lists(st.text(max_size=60) | base64_texts() | JSON_SCALARS, max_size=30)
            | JSON_VALUES
        )
        document = {contract.MATERIALS_FIELD: entries}
    else:
        name = json_field if json_field is not None else draw(st.text(max_size=12))
        inner: Any
        if draw(st.booleans()):
            inner, keys = draw(pem_garbage())
        else:
            inner = draw(JSON_VALUES | base64_texts() | hex_texts() | st.text())
        document = {name: inner}
    if isinstance(document, dict) and draw(st.booleans()):
        extra = draw(st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=3))
        document = {**extra, **document}
    text = json.dumps(
        document,
        indent=draw(st.sampled_from([None, 0, 2, "\t"])),
        ensure_ascii=draw(st.booleans()),
    )
    return draw(st.sampled_from(["", "  ", "\n"])) + text, keys


@st.composite
def garbage_secrets(draw: st.DrawFn, json_field: str | None) -> Secret:
    kind = draw(
        st.sampled_from(
            [
                "binary",
                "text",
                "control",
                "huge-text",
                "json",
                "pem",
                "base64",
                "hex",
                "both",
                "neither",
            ]
        )
    )
    if kind == "binary":
        return Secret(kind, binary=draw(BINARIES))
    if kind == "both":
        return Secret(kind, binary=draw(BINARIES), text=draw(st.text() | base64_texts()))
    if kind == "neither":
        return Secret(kind)
    keys: tuple[Any, ...] = ()
    if kind == "text":
        text = draw(st.text())
    elif kind == "control":
        text = draw(CONTROL_TEXT)
    elif kind == "huge-text":
        text = draw(HUGE_TEXTS)
    elif kind == "json":
        text, keys = draw(json_documents(json_field))
    elif kind == "pem":
        text, keys = draw(pem_garbage())
    elif kind == "base64":
        text = draw(base64_texts())
    else:
        text = draw(hex_texts())
    return Secret(kind, text=text, keys=keys)


def _not_pem(material: bytes) -> bool:
    return not material.lstrip().startswith(b"-----BEGIN")


@st.composite
def valid_secrets(
    draw: st.DrawFn, spec: KeySpec, encoding: str, json_field: str | None, rotate: bool
) -> Secret:
    """Material the spec takes, stored the way the encoding (and JSON field) says."""
    keys: tuple[Any, ...] = ()
    if spec.family in (contract.SYMMETRIC, contract.HMAC):
        size = st.integers(min_value=spec.min_material_bytes, max_value=spec.max_material_bytes)
        one = size.flatmap(lambda n: st.binary(min_size=n, max_size=n)).filter(_not_pem)
        materials = draw(st.lists(one, min_size=1, max_size=4, unique=True)) if rotate else []
        material = materials[-1] if materials else draw(one)
        pem_forms: list[bytes] = []
    else:
        key = kts.key_for(spec.name)
        keys = (key,)
        traditional = draw(st.booleans())
        pem_forms = [pem_of(key, traditional).encode("ascii")]
        material = draw(st.sampled_from([der_of(key, traditional), pem_forms[0]]))
        materials = []

    def in_field(text: str) -> str:
        if json_field is None:
            return text
        return json.dumps(
            {"note": "BYOK", json_field: text}, indent=draw(st.sampled_from([None, 2]))
        )

    def b64(value: bytes) -> str:
        text = base64.b64encode(value).decode("ascii")
        return "\n".join(text[i : i + 64] for i in range(0, len(text), 64))

    if encoding == "raw":
        return Secret("valid raw", binary=material, valid=True, keys=keys)
    if encoding == "base64":
        return Secret("valid base64", text=in_field(b64(material)), valid=True, keys=keys)
    if encoding == "hex":
        text = draw(st.sampled_from([material.hex(), "0x" + material.hex().upper()]))
        return Secret("valid hex", text=in_field(text), valid=True, keys=keys)
    if encoding == "pem":
        if not pem_forms:
            # Secret-key material has no PEM form: armour it; the handler must refuse it.
            body = b64(material)
            return Secret("pem-armoured secret key", text=in_field(f"-----BEGIN KEY-----\n{body}"))
        return Secret("valid pem", text=in_field(pem_forms[0].decode()), valid=True, keys=keys)
    # auto: SecretBinary, base64, PEM text or a materials document.
    forms = ["base64"]
    if json_field is None:
        forms += ["binary", "document"]
    if pem_forms:
        forms.append("pem")
    form = draw(st.sampled_from(forms))
    if form == "binary":
        return Secret("valid auto binary", binary=material, valid=True, keys=keys)
    if form == "pem":
        return Secret("valid auto pem", text=in_field(pem_forms[0].decode()), valid=True, keys=keys)
    if form == "document":
        entries = [b64(m) for m in (materials or [material])]
        text = json.dumps({contract.MATERIALS_FIELD: entries})
        return Secret("valid auto document", text=text, valid=True, keys=keys)
    return Secret("valid auto base64", text=in_field(b64(material)), valid=True, keys=keys)


JSON_FIELDS: Final = st.none() | st.just("material") | st.text(min_size=1, max_size=30)
SECRET_ERRORS: Final = (
    "ResourceNotFoundException",
    "AccessDeniedException",
    "DecryptionFailure",
    "InvalidRequestException",
    "InternalServiceError",
    "SomethingNew",
)

# --- the oracle: what "genuinely valid" means, written without the handler's code ---------------


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return None


def _hex(text: str) -> bytes | None:
    try:
        return bytes.fromhex("".join(text.split()).removeprefix("0x").removeprefix("0X"))
    except ValueError:
        return None


def readings(secret: Secret) -> list[list[bytes]]:
    """Every way a reasonable importer could read materials out of the secret, generously."""
    found: list[list[bytes]] = []
    if secret.binary is not None:
        found.append([secret.binary])
    if secret.text is None:
        return found
    texts = [secret.text]
    try:
        document = json.loads(secret.text)
    except (ValueError, RecursionError):
        document = None
    if isinstance(document, dict):
        texts += [value for value in document.values() if isinstance(value, str)]
        entries = document.get(contract.MATERIALS_FIELD)
        if isinstance(entries, list) and all(isinstance(entry, str) for entry in entries):
            decoded = [_b64(entry) for entry in entries]
            if all(value is not None for value in decoded):
                found.append([value for value in decoded if value is not None])
    for text in texts:
        found += [[text.strip().encode("utf-8")], [text.strip().encode("ascii", "replace")]]
        for decode in (_b64, _hex):
            value = decode(text)
            if value is not None:
                found.append([value])
    return found


@functools.lru_cache(maxsize=256)
def genuinely_valid(material: bytes, spec: KeySpec) -> bool:
    """Cached: the campaign meets the same few private keys again and again."""
    if spec.family == contract.SYMMETRIC:
        return len(material) == contract.SYMMETRIC_MATERIAL_BYTES
    if spec.family == contract.HMAC:
        return spec.min_material_bytes <= len(material) <= spec.max_material_bytes
    try:
        if material.lstrip().startswith(b"-----BEGIN"):
            key = serialization.load_pem_private_key(material, password=None)
        else:
            key = serialization.load_der_private_key(material, password=None)
    except Exception:
        return False
    if spec.family == contract.RSA:
        return isinstance(key, rsa.RSAPrivateKey) and key.key_size == spec.modulus_bits
    return isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == spec.curve


def holds_valid_material(secret: Secret, spec: KeySpec, rotate: bool) -> bool:
    for materials in readings(secret):
        if rotate:
            if (
                1 <= len(materials) <= contract.MAX_ON_DEMAND_ROTATIONS + 1
                and len(set(materials)) == len(materials)
                and all(genuinely_valid(m, spec) for m in materials)
            ):
                return True
        elif len(materials) == 1 and genuinely_valid(materials[0], spec):
            return True
    return False


def secret_forms(secret: Secret) -> dict[str, str]:
    """The secret as stored (whole), and every reading of it, encoded."""
    forms: dict[str, str] = {}
    seen: set[bytes] = set()
    if secret.text is not None:
        forms["SecretString"] = secret.text
        utf8 = secret.text.encode("utf-8")
        forms.update(byte_forms("SecretString bytes", utf8, raw_in_full=False))
        seen |= {utf8, secret.text.strip().encode("utf-8")}
    if secret.binary is not None:
        forms.update(byte_forms("SecretBinary", secret.binary))
        seen.add(secret.binary)
    for index, materials in enumerate(readings(secret)):
        for number, material in enumerate(materials):
            if material not in seen:
                seen.add(material)
                forms.update(byte_forms(f"reading {index}.{number}", material, raw_in_full=False))
    return forms


@pytest.fixture(scope="module")
def private_keys() -> None:
    """Make the session's keys before hypothesis times anything (RSA 4096 takes a while)."""
    for name in ASYMMETRIC_SPECS:
        kts.key_for(name)
    other_keys()


def queue_secret(secrets: stubbing.SecretsStub, secret: Secret) -> None:
    """GetSecretValue for the campaign's secret, as ``stubbing`` queues it. Secrets Manager
    keeps no empty value (its model says min length 1, which the Stubber enforces), but the
    handler must not trip over one either: an empty value is put in after the check."""
    fields = secret.response_fields()
    placeholders = {
        name: b"-" if isinstance(value, bytes) else "-" for name, value in fields.items()
    }
    answer: dict[str, Any] = {
        "ARN": stubbing.SECRET_ARN,
        "Name": "byok/material-AbCdEf",
        "VersionId": "00000000-0000-4000-8000-000000000001",
        "VersionStages": ["AWSCURRENT"],
        "CreatedDate": stubbing.CREATED,
        **fields,
        **{name: placeholders[name] for name, value in fields.items() if not value},
    }
    secrets.stub.add_response("get_secret_value", answer, {"SecretId": stubbing.SECRET_ARN})
    answer.update(fields)


# --- property 1 ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("private_keys")
@pytest.mark.parametrize("encoding", contract.MATERIAL_ENCODINGS)
@pytest.mark.parametrize("spec_name", tuple(KEY_SPECS))
@campaign(SECRET_EXAMPLES_PER_PAIR)
@given(data=st.data())
def test_secret_contents_are_refused_unless_valid(
    spec_name: str,
    encoding: str,
    data: st.DataObject,
    base_clients: Clients,
    caplog: pytest.LogCaptureFixture,
) -> None:
    tally = TALLY[SECRETS_P]
    spec = KEY_SPECS[spec_name]
    json_field = data.draw(JSON_FIELDS, label="json_field")
    # The construct refuses rotation for every other spec (see the regression at the end).
    rotate = spec.family == contract.SYMMETRIC and data.draw(st.booleans(), label="rotate")
    request = replace(
        kts.request_for(spec_name, encoding=encoding, json_field=json_field),
        rotate_on_material_change=rotate,
    )
    made_valid = data.draw(st.sampled_from([True, False, False]), label="made valid")
    secret = data.draw(
        valid_secrets(spec, encoding, json_field, rotate)
        if made_valid
        else garbage_secrets(json_field),
        label="secret",
    )
    secret_error = data.draw(
        st.none() | st.none() | st.none() | st.sampled_from(SECRET_ERRORS), label="secret error"
    )
    caplog.set_level(logging.DEBUG)
    caplog.clear()

    with fresh_stubs(base_clients) as (kms, secrets):
        if secret_error is None:
            queue_secret(secrets, secret)
        else:
            secrets.add_secret_error(secret_error)
        kms.add_error("describe_key", "NotFoundException", {"KeyId": stubbing.KEY_ID})
        try:
            importer.import_from_secret(kms.client, secrets.client, request, now=NOW)
        except ImportFailure as failure:
            reason = failure.reason
        else:
            pytest.fail("the import went on although DescribeKey failed")
    reached_kms = "DescribeKey" in kms.recorder.operations
    note(f"reason: {reason!r}; reached DescribeKey: {reached_kms}")

    assert reason
    assert len(reason) <= MAX_REASON_LENGTH
    if secret_error is not None:
        assert not reached_kms
        assert stubbing.SECRET_ARN in reason
    elif reached_kms:
        assert holds_valid_material(secret, spec, rotate), "invalid material reached KMS"
        assert stubbing.KEY_ID in reason
        assert "does not exist" in reason
    if secret.valid and secret_error is None:
        assert reached_kms, f"valid material was refused: {reason}"

    haystack = reason + "\n" + record_text(caplog.records)
    public = [] if json_field is None else [json_field, repr(json_field[:40])]
    leaked = secret_leaks(haystack, secret_forms(secret), public)
    assert not leaked, f"the secret shows up in the reason or the logs as {leaked}"
    # Neither the service message of a stubbed error (it carries the sentinel) nor any key.
    stubbing.assert_no_material(haystack)
    probes = kts.LeakProbes()
    for key in secret.keys:
        if isinstance(key, PrivateKey):
            probes.add_key(key)
    probes.assert_clean(haystack)

    if secret_error is not None:
        tally.count("secret read failed")
    elif reached_kms:
        tally.count("valid: reached DescribeKey")
    else:
        tally.count("refused before KMS")


# --- property 2 ---------------------------------------------------------------------------------

PROPERTY_NAMES: Final = (
    contract.PROP_KEY_ID,
    contract.PROP_SECRET_ARN,
    contract.PROP_KEY_SPEC,
    contract.PROP_KEY_USAGE,
    contract.PROP_MATERIAL_ENCODING,
    contract.PROP_JSON_FIELD,
    contract.PROP_WRAPPING_ALGORITHM,
    contract.PROP_WRAPPING_KEY_SPEC,
    contract.PROP_EXPIRATION_MODEL,
    contract.PROP_VALIDITY_DAYS,
    contract.PROP_MATERIAL_VERSION_ID,
    contract.PROP_ROTATE_ON_MATERIAL_CHANGE,
    contract.PROP_DELETE_MATERIAL_ON_REMOVAL,
)
# Every value some property takes, and near misses of them.
_TOKENS: Final = (
    *KEY_SPECS,
    *contract.REFUSED_KEY_SPECS,
    *contract.WRAPPING_ALGORITHMS,
    *contract.WRAPPING_KEY_SPECS,
    *contract.EXPIRATION_MODELS,
    *contract.MATERIAL_ENCODINGS,
    contract.ENCRYPT_DECRYPT,
    contract.SIGN_VERIFY,
    contract.GENERATE_VERIFY_MAC,
    contract.KEY_AGREEMENT,
    "true",
    "false",
    "True",
    "0",
    "1",
    "365",
    "366",
    "-1",
    " 30 ",
    "1e2",
    "3_0",
    "\u0663\u0660",
    "",
)
NEAR_MISSES: Final = st.sampled_from(_TOKENS).flatmap(
    lambda token: st.sampled_from([token, token.lower(), f" {token}", f"{token}\x00", token[:-1]])
)
PROPERTY_VALUES: Final = (
    NEAR_MISSES
    | WRONG_TYPES
    | st.text(max_size=50)
    | HUGE_TEXTS
    | st.builds(json.dumps, JSON_VALUES)
    | st.builds(lambda value: json.dumps({"Fn::GetAtt": value}), JSON_VALUES)
)


@st.composite
def mutated_properties(draw: st.DrawFn) -> dict[str, Any]:
    """The construct's properties for a random spec; half the time up to four of them dropped
    or replaced by hostile values; random extra keys."""
    spec = KEY_SPECS[draw(st.sampled_from(tuple(KEY_SPECS)))]
    algorithm, wrapping_key_spec = draw(st.sampled_from(contract.allowed_wrappings(spec)))
    expiring = draw(st.booleans())
    properties: dict[str, Any] = import_properties(
        stubbing.KEY_ID,
        stubbing.SECRET_ARN,
        KeySpec=spec.name,
        KeyUsage=draw(st.sampled_from(spec.usages)),
        WrappingAlgorithm=algorithm,
        WrappingKeySpec=wrapping_key_spec,
        ExpirationModel=contract.KEY_MATERIAL_EXPIRES if expiring else DOES_NOT_EXPIRE,
        MaterialEncoding=draw(st.sampled_from(contract.MATERIAL_ENCODINGS)),
        RotateOnMaterialChange="true" if spec.family == contract.SYMMETRIC else "false",
    )
    mutated = draw(
        st.just(frozenset[str]())
        | st.frozensets(st.sampled_from(PROPERTY_NAMES), min_size=1, max_size=4)
    )
    for name in sorted(mutated):
        if draw(st.booleans()):
            properties.pop(name, None)
        else:
            properties[name] = draw(PROPERTY_VALUES)
    extra = draw(st.dictionaries(st.text(max_size=30), JSON_VALUES, max_size=4))
    return {**extra, **properties} if draw(st.booleans()) else {**properties, **extra}


RANDOM_PROPERTIES: Final = st.dictionaries(
    st.sampled_from(PROPERTY_NAMES) | st.text(max_size=20), PROPERTY_VALUES, max_size=15
)
PROPERTY_MAPS: Final = mutated_properties() | RANDOM_PROPERTIES


def check_request(request: ImportRequest, properties: Mapping[str, Any]) -> None:
    """An accepted request keeps every rule of the contract. (Not yet this one: rotation only
    for SYMMETRIC_DEFAULT; see the regression at the end.)"""
    assert request.key_spec in KEY_SPECS
    spec = request.spec
    assert request.key_id == properties[contract.PROP_KEY_ID]
    assert request.key_id
    assert request.secret_arn == properties[contract.PROP_SECRET_ARN]
    assert request.secret_arn
    assert request.key_usage in spec.usages
    assert request.wrapping_algorithm in contract.WRAPPING_ALGORITHMS
    assert request.wrapping_key_spec in contract.WRAPPING_KEY_SPECS
    refusal = contract.wrapping_refusal(spec, request.wrapping_algorithm, request.wrapping_key_spec)
    assert refusal is None
    assert request.material_encoding in contract.MATERIAL_ENCODINGS
    assert request.expiration_model in contract.EXPIRATION_MODELS
    if request.expiration_model == contract.KEY_MATERIAL_EXPIRES:
        assert request.validity_days is not None
        assert contract.MIN_VALIDITY_DAYS <= request.validity_days <= contract.MAX_VALIDITY_DAYS
    else:
        assert request.validity_days is None
    for optional in (request.json_field, request.material_version_id):
        assert optional is None or (isinstance(optional, str) and optional)
    assert isinstance(request.rotate_on_material_change, bool)


@campaign(PROPERTY_EXAMPLES)
@given(properties=PROPERTY_MAPS)
def test_properties_parse_or_fail_cleanly(properties: dict[str, Any]) -> None:
    try:
        request = ImportRequest.from_properties(properties)
    except ImportFailure as failure:
        reason = failure.reason
    else:
        check_request(request, properties)
        TALLY[PROPERTIES_P].count("accepted")
        return
    assert reason
    assert len(reason) <= MAX_REASON_LENGTH
    TALLY[PROPERTIES_P].count("ImportFailure")


# --- running the handler, bounded ---------------------------------------------------------------


@dataclass
class Invocation:
    result: Any = None
    error: BaseException | None = None


def invoke(event: Any, context: Any) -> Invocation:
    """``entry.handler`` in a thread; an example that outlives HANG_LIMIT_S is a hang."""
    outcome = Invocation()

    def run() -> None:
        try:
            outcome.result = entry.handler(event, context)
        except BaseException as error:
            outcome.error = error

    worker = threading.Thread(target=run, name="bad-input-handler", daemon=True)
    worker.start()
    worker.join(HANG_LIMIT_S)
    assert not worker.is_alive(), f"entry.handler did not return within {HANG_LIMIT_S} s"
    return outcome


@pytest.fixture(scope="module")
def cfn_server() -> Iterator[CfnResponseServer]:
    with CfnResponseServer() as server:
        yield server


def puts_received(server: CfnResponseServer) -> int:
    return sum(len(server.all_responses(url)) for url in server.responses)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def handler_env(
    monkeypatch: pytest.MonkeyPatch, cfn_server: CfnResponseServer, base_clients: Clients
) -> None:
    """The handler as Lambda runs it, with the stubbed clients and the local HTTPS server."""
    for name, value in {
        "SSL_CERT_FILE": str(cfn_server.ca_file),
        "AWS_REGION": stubbing.REGION,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "LOG_LEVEL": "DEBUG",
        contract.ENV_HANDLER_ROLE_ID: TEST_HANDLER_ROLE_ID,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setattr(clients, "kms_client", lambda: base_clients.kms.client)
    monkeypatch.setattr(clients, "secretsmanager_client", lambda: base_clients.secrets.client)
    monkeypatch.setattr(entry, "_helper", None)
    # An unreachable ResponseURL would otherwise pause 1 + 2 s between upload attempts; only
    # the upload's clock is replaced, not the time module everyone shares.
    monkeypatch.setattr(response, "time", types.SimpleNamespace(sleep=lambda _seconds: None))


# --- property 3 ---------------------------------------------------------------------------------

MISSING: Final[Any] = object()
REQUIRED_FIELDS: Final = ("StackId", "RequestId", "LogicalResourceId")
CFN_FIELDS: Final = ("RequestType", "ResponseURL", *REQUIRED_FIELDS)
# Keys the campaign does not add at random: they route the event elsewhere, or (crhelper's
# private ones) change what crhelper does; see the regression at the end.
RESERVED_KEYS: Final = frozenset(
    {*CFN_FIELDS, "PhysicalResourceId", "ResourceProperties", contract.RENEWAL_EVENT}
)
EXTRA_KEYS: Final = st.text(max_size=20).filter(
    lambda key: key not in RESERVED_KEYS and not key.startswith("CrHelper")
)
WEIRD_REQUEST_TYPES: Final = (
    st.sampled_from(["create", "DELETE", "Create ", "", "Poll", "Rollback"])
    | st.text(max_size=10)
    | WRONG_TYPES
)
# https:// URLs that no answer can reach: a closed port, and malformed ones (bad host or port,
# non-ASCII path or query, an over-long host label).
UNDELIVERABLE_URL_KINDS: Final = (
    *("closed", "bad IPv6 host", "port not a number", "non-ASCII path", "non-ASCII query"),
    "host label too long",
)
URL_KINDS: Final = (
    *("http", "ftp", "upper", "space", "empty", "int", "none", "missing"),
    *UNDELIVERABLE_URL_KINDS,
)
PHYSICAL_IDS: Final = (
    st.just(stubbing.KEY_ID)
    | st.just("demo_ImportedKeyMaterial_ABCDEFGH")
    | st.just(MISSING)
    | st.text(max_size=40)
    | WRONG_TYPES
)


@st.composite
def resource_properties(draw: st.DrawFn) -> Any:
    """ResourceProperties, drawn by kind first: hypothesis flattens nested one_of()s, which
    would drown the construct's own properties among the scalar branches."""
    kind = draw(
        st.sampled_from(["construct", "construct, revoking", "mutated", "random", "not an object"])
    )
    if kind.startswith("construct"):
        spec = draw(
            st.sampled_from([contract.SYMMETRIC_DEFAULT, contract.SYMMETRIC_DEFAULT, "HMAC_256"])
        )
        algorithm, wrapping_key_spec = contract.default_wrapping(KEY_SPECS[spec])
        properties = import_properties(
            stubbing.KEY_ID,
            stubbing.SECRET_ARN,
            KeySpec=spec,
            KeyUsage=KEY_SPECS[spec].usages[0],
            WrappingAlgorithm=algorithm,
            WrappingKeySpec=wrapping_key_spec,
            DeleteMaterialOnRemoval="true" if kind.endswith("revoking") else "false",
        )
        return {"ServiceToken": "arn:aws:lambda:us-east-1:0:function:f", **properties}
    if kind == "mutated":
        return draw(mutated_properties())
    if kind == "random":
        return draw(RANDOM_PROPERTIES)
    return draw(JSON_SCALARS | st.lists(JSON_SCALARS, max_size=3))


def response_url(kind: str, server: CfnResponseServer) -> Any:
    url = server.response_url("campaign")
    signed = f"X-Amz-Signature={uuid.uuid4().hex}"  # must never show up in a log
    return {
        "server": url,
        "http": url.replace("https://", "http://", 1),
        "ftp": url.replace("https://", "ftp://", 1),
        "upper": url.replace("https://", "HTTPS://", 1),
        "space": " " + url,
        "empty": "",
        "int": 443,
        "none": None,
        "missing": MISSING,
        "closed": f"https://127.0.0.1:{closed_port()}/response?{signed}",
        "bad IPv6 host": f"https://[::1/response?{signed}",
        "port not a number": f"https://127.0.0.1:https/response?{signed}",
        "non-ASCII path": f"https://127.0.0.1:{closed_port()}/r\u00e9ponse?{signed}",
        "non-ASCII query": f"https://127.0.0.1:{closed_port()}/response?{signed}\u00e9",
        "host label too long": "https://" + "a" * 64 + f".example/response?{signed}",
    }[kind]


def routed_to_crhelper(event: Mapping[str, Any]) -> bool:
    url = event.get("ResponseURL")
    return (
        event.get("RequestType") in ("Create", "Update", "Delete")
        and isinstance(url, str)
        and url.startswith("https://")
        and all(isinstance(event.get(name), str) for name in REQUIRED_FIELDS)
    )


def expected_status(event: Mapping[str, Any], kms_mode: str) -> str:
    """Create and Update cannot succeed here (no stub lets an import through). A Delete
    succeeds unless it asks for revocation of the key its PhysicalResourceId names (any other
    resource never imported into that key) that KMS does not settle (a gone key settles it),
    or crhelper has no PhysicalResourceId to answer with and cannot make one from the StackId
    (only a malformed event, never CloudFormation's)."""
    if event["RequestType"] != "Delete":
        return "FAILED"
    properties = event.get("ResourceProperties") or {}
    if not isinstance(properties, Mapping):
        return "FAILED"
    key_id = str(properties.get(contract.PROP_KEY_ID, ""))
    revocation = str(properties.get(contract.PROP_DELETE_MATERIAL_ON_REMOVAL, "")).lower()
    revokes = revocation == "true" and key_id and event.get("PhysicalResourceId") == key_id
    if revokes and kms_mode != "key gone":
        return "FAILED"
    if "PhysicalResourceId" not in event and "/" not in event["StackId"]:
        return "FAILED"
    return "SUCCESS"


@pytest.mark.usefixtures("handler_env")
@campaign(EVENT_EXAMPLES)
@given(data=st.data())
def test_cloudformation_events_are_ignored_or_answered_once(
    data: st.DataObject,
    base_clients: Clients,
    cfn_server: CfnResponseServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    tally = TALLY[EVENTS_P]
    request_type = data.draw(st.sampled_from(["Create", "Update", "Delete"]), label="type")
    # Deliverable: well-formed, answered to the local server. Undeliverable: well-formed, but
    # its https:// ResponseURL reaches nothing. Mangled: 1 to 3 of the fields the routing
    # looks at are missing or wrong.
    scenario = data.draw(
        st.sampled_from(["deliverable", "deliverable", "deliverable", "undeliverable", "mangled"]),
        label="scenario",
    )
    event = cfn_event(
        "Create", {}, cfn_server.response_url("campaign"), stack_name="campaign-stack"
    )
    event["RequestType"] = request_type
    physical_id = data.draw(PHYSICAL_IDS, label="PhysicalResourceId")
    if physical_id is not MISSING:
        event["PhysicalResourceId"] = physical_id
    if data.draw(st.integers(min_value=0, max_value=9), label="drop properties") == 0:
        del event["ResourceProperties"]
    else:
        event["ResourceProperties"] = data.draw(resource_properties(), label="ResourceProperties")
    if request_type == "Update" and data.draw(st.booleans(), label="old properties"):
        event["OldResourceProperties"] = data.draw(resource_properties(), label="old")
    if scenario == "undeliverable":
        kind = data.draw(st.sampled_from(UNDELIVERABLE_URL_KINDS), label="ResponseURL")
        event["ResponseURL"] = response_url(kind, cfn_server)
    mangled = frozenset[str]()
    if scenario == "mangled":
        mangled = data.draw(
            st.frozensets(st.sampled_from(CFN_FIELDS), min_size=1, max_size=3),
            label="mangled fields",
        )
    for name in sorted(mangled):
        if name == "RequestType":
            value = data.draw(WEIRD_REQUEST_TYPES | st.just(MISSING), label=name)
        elif name == "ResponseURL":
            value = response_url(data.draw(st.sampled_from(URL_KINDS), label=name), cfn_server)
        else:
            value = data.draw(st.just(MISSING) | st.text(max_size=30) | WRONG_TYPES, label=name)
        if value is MISSING:
            event.pop(name, None)
        else:
            event[name] = value
    event.update(data.draw(st.dictionaries(EXTRA_KEYS, JSON_VALUES, max_size=3), label="extra"))
    kms_mode = data.draw(st.sampled_from(["nothing queued", "key gone", "kms error"]), label="kms")
    secrets_mode = data.draw(
        st.sampled_from(["nothing queued", "secret error", "sentinel material"]), label="secrets"
    )

    entry._helper = None
    caplog.set_level(logging.DEBUG)
    caplog.clear()
    before = puts_received(cfn_server)
    with fresh_stubs(base_clients) as (kms, secrets):
        if kms_mode == "key gone":
            add_any_error(kms, "describe_key", "NotFoundException")
        elif kms_mode == "kms error":
            add_any_error(kms, "describe_key", "KMSInternalException")
        if secrets_mode == "secret error":
            add_any_error(secrets, "get_secret_value", "AccessDeniedException")
        elif secrets_mode == "sentinel material":
            add_any_secret(secrets, SecretBinary=stubbing.SENTINEL_MATERIAL)
        outcome = invoke(event, FakeLambdaContext(CONTEXT_S))
    if outcome.error is not None:
        raise outcome.error
    if secrets_mode == "sentinel material" and secrets.recorder.operations:
        tally.also("sentinel material read by the handler")
    url = event.get("ResponseURL")
    logs = record_text(caplog.records)
    stubbing.assert_no_material(logs)

    if not routed_to_crhelper(event):
        assert outcome.result == {
            "Status": "IGNORED",
            "Reason": "not a CloudFormation custom resource request",
        }
        assert puts_received(cfn_server) == before
        tally.count("ignored")
        return
    assert outcome.result is None
    assert isinstance(url, str)
    # Not urlsplit: some of these URLs are malformed on purpose.
    signature = url.partition("X-Amz-Signature=")[2]
    assert signature
    leaking = [
        f"{record.name}:{record.levelname}: {record.getMessage()[:300]}"
        for record in caplog.records
        if signature in rendered_text([record])
    ]
    assert not leaking, f"the presigned ResponseURL was logged: {leaking}"
    if not url.startswith(f"https://127.0.0.1:{cfn_server.port}/"):
        assert puts_received(cfn_server) == before
        tally.count("answer undeliverable (closed port, malformed https URL)")
        return
    bodies = cfn_server.all_responses(url)
    assert len(bodies) == 1, f"{len(bodies)} answers"
    assert puts_received(cfn_server) == before + 1
    (body,) = bodies
    note(f"answer: {body!r}")
    stubbing.assert_no_material(json.dumps(body))
    for name in REQUIRED_FIELDS:
        assert body[name] == event[name]
    assert isinstance(body["PhysicalResourceId"], str)
    existing = event.get("PhysicalResourceId")
    if isinstance(existing, str) and existing:
        assert body["PhysicalResourceId"] == existing
    assert body["Status"] == expected_status(event, kms_mode)
    if body["Status"] == "FAILED":
        assert body["Reason"]
        assert len(body["Reason"]) <= MAX_REASON_LENGTH
    assert body["Data"] == {}
    tally.count(f"{event['RequestType']} answered {body['Status']}")


# --- property 4 ---------------------------------------------------------------------------------

KEY_IDS: Final = (
    st.just(stubbing.KEY_ID)
    | st.text(max_size=40)
    | st.sampled_from(["", "alias/x", f"arn:aws:kms:us-east-1:000000000000:key/{stubbing.KEY_ID}"])
    | JSON_SCALARS
)
TRIGGERS: Final = (
    st.sampled_from(contract.RENEWAL_TRIGGERS)
    | st.sampled_from(["Schedule", "material_expired", ""])
    | st.text(max_size=20)
    | WRONG_TYPES
)


@st.composite
def renewal_bodies(draw: st.DrawFn) -> Any:
    shape = draw(st.sampled_from(["mutated", "mutated", "random map", "not a map"]))
    if shape == "not a map":
        return draw(JSON_SCALARS | st.lists(JSON_VALUES, max_size=3))
    if shape == "random map":
        names = st.sampled_from([contract.RENEWAL_TRIGGER, contract.RENEWAL_KEY_ID])
        return draw(st.dictionaries(names | st.text(max_size=15), JSON_VALUES, max_size=5))
    body: dict[str, Any] = {
        contract.RENEWAL_TRIGGER: contract.TRIGGER_SCHEDULE,
        contract.RENEWAL_KEY_ID: stubbing.KEY_ID,
    }
    replacements = {contract.RENEWAL_TRIGGER: TRIGGERS, contract.RENEWAL_KEY_ID: KEY_IDS}
    mutated = draw(
        st.just(frozenset[str]()) | st.frozensets(st.sampled_from(sorted(replacements)), min_size=1)
    )
    for name in sorted(mutated):
        if draw(st.booleans()):
            del body[name]
        else:
            body[name] = draw(replacements[name])
    body.update(draw(st.dictionaries(st.text(max_size=15), JSON_VALUES, max_size=3)))
    return body


def add_declared_tags(kms: stubbing.KmsStub) -> None:
    """The stubbed key's binding, whatever key the event names (the event may be mutated)."""
    tags = binding_tags(
        import_properties(stubbing.KEY_ID, stubbing.SECRET_ARN),
        stack_id=stack_id_for("demo"),
        logical_id=LOGICAL_ID,
    )
    kms.stub.add_response(
        "list_resource_tags",
        {"Tags": [{"TagKey": k, "TagValue": v} for k, v in tags.items()], "Truncated": False},
    )


def not_due_metadata() -> dict[str, Any]:
    return stubbing.key_metadata(
        state="Enabled",
        expiration_model=contract.KEY_MATERIAL_EXPIRES,
        valid_to=datetime.now(UTC) + timedelta(days=contract.MAX_VALIDITY_DAYS + 35),
    )


@pytest.mark.usefixtures("handler_env")
@campaign(RENEWAL_EXAMPLES)
@given(
    body=renewal_bodies(),
    extra=st.dictionaries(EXTRA_KEYS, JSON_VALUES, max_size=3),
    kms_mode=st.sampled_from(["nothing queued", "kms error", "not due", "pending import"]),
    secrets_mode=st.sampled_from(["nothing queued", "secret error", "sentinel material"]),
)
def test_renewal_events_fail_cleanly_or_summarise(
    body: Any,
    extra: dict[str, Any],
    kms_mode: str,
    secrets_mode: str,
    base_clients: Clients,
    caplog: pytest.LogCaptureFixture,
) -> None:
    tally = TALLY[RENEWALS_P]
    event = {**extra, contract.RENEWAL_EVENT: body}
    entry._helper = None
    caplog.set_level(logging.DEBUG)
    caplog.clear()
    with fresh_stubs(base_clients) as (kms, secrets):
        if kms_mode == "kms error":
            add_any_error(kms, "list_resource_tags", "AccessDeniedException")
        elif kms_mode == "not due":
            add_declared_tags(kms)
            kms.stub.add_response("describe_key", {"KeyMetadata": not_due_metadata()})
        elif kms_mode == "pending import":
            add_declared_tags(kms)
            kms.stub.add_response(
                "describe_key", {"KeyMetadata": stubbing.key_metadata(state="PendingImport")}
            )
        if secrets_mode == "secret error":
            add_any_error(secrets, "get_secret_value", "DecryptionFailure")
        elif secrets_mode == "sentinel material":
            add_any_secret(secrets, SecretBinary=stubbing.SENTINEL_MATERIAL)
        outcome = invoke(event, None)
    assert entry._helper is None, "a renewal event reached crhelper"
    if secrets_mode == "sentinel material" and secrets.recorder.operations:
        tally.also("sentinel material read by the handler")
    stubbing.assert_no_material(record_text(caplog.records))

    if outcome.error is not None:
        if not isinstance(outcome.error, ImportFailure):
            raise outcome.error
        stubbing.assert_clean_reason(outcome.error.reason)
        tally.count("ImportFailure (Lambda error)")
        return
    if not isinstance(body, Mapping):
        assert outcome.result["Status"] == "IGNORED"
        tally.count("ignored (body not an object)")
        return
    summary = outcome.result
    assert set(summary) == {"KeyId", "Renewed", "Why", "ValidTo"}
    # No stub lets an import through, so a summary can only say "not due".
    assert summary["Renewed"] is False
    assert summary["Why"] == "not due"
    assert kms_mode == "not due"
    stubbing.assert_no_material(json.dumps(summary))
    tally.count("summary: not due")


# --- regressions: bugs found by the campaign and its review -------------------------------------

DEEP_JSON: Final = {
    "materials document": ('{"materials": ' + "[" * 20_000, None),
    "JSON field": ('{"material": ' + "[" * 20_000, "material"),
}


@pytest.mark.parametrize(("text", "json_field"), DEEP_JSON.values(), ids=DEEP_JSON.keys())
def test_deeply_nested_json_secret_is_an_import_failure(
    text: str, json_field: str | None, kms: stubbing.KmsStub, secrets: stubbing.SecretsStub
) -> None:
    secrets.add_secret(SecretString=text)
    request = kts.request_for(contract.SYMMETRIC_DEFAULT, json_field=json_field)
    reason = stubbing.failure_reason(
        lambda: importer.import_from_secret(kms.client, secrets.client, request, now=NOW),
        kms,
        secrets,
    )
    assert "JSON" in reason


@pytest.mark.usefixtures("handler_env")
def test_crhelper_private_keys_do_not_skip_the_import(
    cfn_server: CfnResponseServer, base_clients: Clients
) -> None:
    url = cfn_server.response_url("crhelper-poll")
    event = cfn_event("Create", import_properties(stubbing.KEY_ID, stubbing.SECRET_ARN), url)
    event["CrHelperPoll"] = True
    event["CrHelperData"] = {contract.ATTR_KEY_ARN: "arn:aws:kms:us-east-1:1:key/not-imported"}
    with fresh_stubs(base_clients) as (kms, _secrets):
        outcome = invoke(event, FakeLambdaContext(CONTEXT_S))
    assert outcome.error is None
    (body,) = cfn_server.all_responses(url)
    assert body["Status"] == "FAILED", f"answered {body['Status']} with Data {body['Data']}"
    # It went to AWS (the key's binding is its first read) instead of answering from the event.
    assert kms.recorder.operations == ["ListResourceTags"]


@pytest.mark.parametrize("spec_name", ["RSA_2048", "ECC_NIST_P256", "HMAC_256"])
def test_rotation_on_a_non_symmetric_spec_is_refused_before_kms(
    spec_name: str, base_clients: Clients
) -> None:
    spec = KEY_SPECS[spec_name]
    algorithm, wrapping_key_spec = contract.default_wrapping(spec)
    properties = import_properties(
        stubbing.KEY_ID,
        stubbing.SECRET_ARN,
        KeySpec=spec_name,
        KeyUsage=spec.usages[0],
        WrappingAlgorithm=algorithm,
        WrappingKeySpec=wrapping_key_spec,
        RotateOnMaterialChange="true",
    )
    with fresh_stubs(base_clients) as (kms, secrets):
        secrets.add_secret(SecretBinary=b"not a key")
        kms.add_error("describe_key", "NotFoundException", {"KeyId": stubbing.KEY_ID})

        def parse_and_import() -> None:
            request = ImportRequest.from_properties(properties)
            importer.import_from_secret(kms.client, secrets.client, request, now=NOW)

        with pytest.raises(ImportFailure):
            parse_and_import()
    assert "DescribeKey" not in kms.recorder.operations, "unchecked material went on to KMS"
