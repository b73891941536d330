"""The forms in which key material could leak into text, and the check that none did."""

import base64


def leak_forms(material: bytes) -> list[str]:
    """Every way the material could be written out: text, hex, base64 and Python's repr."""
    forms = [
        material.decode("latin-1"),
        material.hex(),
        material.hex().upper(),
        base64.b64encode(material).decode(),
        base64.urlsafe_b64encode(material).decode(),
        repr(material)[2:-1],
    ]
    # A 24-character stretch of a form is long enough to be the material and nothing else.
    return [form[:24] for form in forms] + [form[-24:] for form in forms]


def assert_no_leak(text: str, material: bytes) -> None:
    for form in leak_forms(material):
        assert form not in text, f"material leaked as {form!r}"
