"""The value objects users pass to ``ImportedKey``: when material expires, how the secret holds
it and how it is wrapped on its way into KMS.

Each is checked when it is built (by ``_props``), so a bad value fails where it is written.
"""

from enum import StrEnum

import aws_cdk as cdk

from imported_key_handler import contract

from . import _props


class MaterialExpiration:
    """How long KMS keeps imported material before deleting it.

    Use ``MaterialExpiration.after(Duration.days(n))`` (1 to 365 whole days, counted from each
    import) or ``MaterialExpiration.never()``. The constructor takes KMS's own terms
    (``"KEY_MATERIAL_EXPIRES"`` with a number of days, or ``"KEY_MATERIAL_DOES_NOT_EXPIRE"``
    with None) and checks them the same way.
    """

    def __init__(self, expiration_model: str, validity_days: int | None = None) -> None:
        model, days = _props.expiration(expiration_model, validity_days)
        self._expiration_model = model
        self._validity_days = days

    @classmethod
    def after(cls, validity: cdk.Duration) -> "MaterialExpiration":
        """Material expires ``validity`` after each import (whole days, 1 to 365)."""
        return cls(contract.KEY_MATERIAL_EXPIRES, _props.validity_days(validity))

    @classmethod
    def never(cls) -> "MaterialExpiration":
        """Material never expires (``KEY_MATERIAL_DOES_NOT_EXPIRE``)."""
        return cls(contract.KEY_MATERIAL_DOES_NOT_EXPIRE, None)

    @property
    def expiration_model(self) -> str:
        """KMS's ``ExpirationModel``."""
        return self._expiration_model

    @property
    def validity_days(self) -> int | None:
        """Days from each import to the material's ValidTo; None when it never expires."""
        return self._validity_days

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MaterialExpiration):
            return NotImplemented
        return (self.expiration_model, self.validity_days) == (
            other.expiration_model,
            other.validity_days,
        )

    def __hash__(self) -> int:
        return hash((self.expiration_model, self.validity_days))

    def __repr__(self) -> str:
        if self.validity_days is None:
            return "MaterialExpiration.never()"
        return f"MaterialExpiration.after(Duration.days({self.validity_days}))"


class MaterialEncoding(StrEnum):
    """How the key material is written in the secret.

    The values are the handler's (``contract.MATERIAL_ENCODINGS``); ``material_encoding`` also
    takes them as strings in any case (``"BASE64"``, ``"base64"``).
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
    """The material is a PEM private key (RSA and ECC keys only)."""


class WrappingAlgorithm(StrEnum):
    """``WrappingAlgorithm`` of GetParametersForImport (also taken as a string in any case)."""

    RSAES_OAEP_SHA_1 = contract.RSAES_OAEP_SHA_1
    RSAES_OAEP_SHA_256 = contract.RSAES_OAEP_SHA_256
    RSA_AES_KEY_WRAP_SHA_1 = contract.RSA_AES_KEY_WRAP_SHA_1
    RSA_AES_KEY_WRAP_SHA_256 = contract.RSA_AES_KEY_WRAP_SHA_256


class WrappingKeySpec(StrEnum):
    """``WrappingKeySpec`` of GetParametersForImport: the size of KMS's RSA wrapping key (also
    taken as a string in any case)."""

    RSA_2048 = "RSA_2048"
    RSA_3072 = "RSA_3072"
    RSA_4096 = "RSA_4096"
