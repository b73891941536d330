"""How the secret holds the key material (the handler's ``MaterialEncoding`` property)."""

from enum import StrEnum


class MaterialEncoding(StrEnum):
    """How the key material is written in the secret.

    The values are the handler's (``contract.MATERIAL_ENCODINGS``).
    """

    AUTO = "auto"
    """SecretBinary holds the raw bytes; SecretString holds their base64 (or, for a rotating
    key, a ``{"materials": [...]}`` document)."""
    RAW = "raw"
    """SecretBinary holds the raw bytes (no ``json_field``)."""
    BASE64 = "base64"
    """The material is base64 text."""
    HEX = "hex"
    """The material is hexadecimal text."""
    PEM = "pem"
    """The material is a PEM private key (asymmetric keys)."""
