"""When imported key material expires."""

import aws_cdk as cdk

from imported_key_handler import contract


class MaterialExpiration:
    """How long KMS keeps imported material before deleting it.

    Use ``MaterialExpiration.after(Duration.days(n))`` (1 to 365 whole days, counted from each
    import) or ``MaterialExpiration.never()``.
    """

    def __init__(self, expiration_model: str, validity_days: int | None) -> None:
        self.expiration_model = expiration_model
        self.validity_days = validity_days

    @classmethod
    def after(cls, validity: cdk.Duration) -> "MaterialExpiration":
        """Material expires ``validity`` after each import (whole days, 1 to 365)."""
        if cdk.Token.is_unresolved(validity.to_string()):
            raise ValueError("MaterialExpiration.after() needs a concrete Duration, not a token.")
        seconds = validity.to_seconds()
        days, remainder = divmod(seconds, 86400)
        if remainder or not (contract.MIN_VALIDITY_DAYS <= days <= contract.MAX_VALIDITY_DAYS):
            raise ValueError(
                f"MaterialExpiration.after({validity.to_human_string()}): the validity must be "
                f"a whole number of days from {contract.MIN_VALIDITY_DAYS} to "
                f"{contract.MAX_VALIDITY_DAYS} (KMS refuses a ValidTo more than 365 days ahead)."
            )
        return cls(contract.KEY_MATERIAL_EXPIRES, int(days))

    @classmethod
    def never(cls) -> "MaterialExpiration":
        """Material never expires (``KEY_MATERIAL_DOES_NOT_EXPIRE``)."""
        return cls(contract.KEY_MATERIAL_DOES_NOT_EXPIRE, None)

    def __repr__(self) -> str:
        if self.validity_days is None:
            return "MaterialExpiration.never()"
        return f"MaterialExpiration.after(Duration.days({self.validity_days}))"
