"""Parse the custom resource's properties into a typed import request."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import contract
from .contract import KEY_SPECS, KeySpec, wrapping_refusal
from .errors import ImportFailure


@dataclass(frozen=True)
class ImportRequest:
    """What to import where. Identifiers and settings only: never material."""

    key_id: str
    secret_arn: str
    key_spec: str
    wrapping_algorithm: str
    wrapping_key_spec: str
    expiration_model: str
    validity_days: int | None
    material_version_id: str | None = None
    rotate_on_material_change: bool = False
    key_usage: str | None = None
    material_encoding: str = "auto"
    json_field: str | None = None

    @property
    def spec(self) -> KeySpec:
        return KEY_SPECS[self.key_spec]

    @classmethod
    def from_properties(cls, properties: Mapping[str, Any]) -> "ImportRequest":
        def required(name: str) -> str:
            value = properties.get(name)
            if not isinstance(value, str) or not value:
                raise ImportFailure(
                    f"Property {name} is missing or not a string; the custom resource must be "
                    "created by the ImportedKey construct."
                )
            return value

        def one_of(name: str, allowed: tuple[str, ...]) -> str:
            value = required(name)
            if value not in allowed:
                raise ImportFailure(
                    f"Property {name}={value[:64]!r} is not supported; use one of "
                    f"{', '.join(allowed)}."
                )
            return value

        key_spec = one_of(contract.PROP_KEY_SPEC, tuple(KEY_SPECS))
        spec = KEY_SPECS[key_spec]
        key_usage = _optional_string(properties, contract.PROP_KEY_USAGE) or spec.usages[0]
        if key_usage not in spec.usages:
            raise ImportFailure(
                f"Property {contract.PROP_KEY_USAGE}={key_usage[:32]!r} does not fit {key_spec}; "
                f"use one of {', '.join(spec.usages)}."
            )
        wrapping_algorithm = one_of(contract.PROP_WRAPPING_ALGORITHM, contract.WRAPPING_ALGORITHMS)
        wrapping_key_spec = one_of(contract.PROP_WRAPPING_KEY_SPEC, contract.WRAPPING_KEY_SPECS)
        refusal = wrapping_refusal(spec, wrapping_algorithm, wrapping_key_spec)
        if refusal:
            raise ImportFailure(refusal)
        rotate = _flag(properties, contract.PROP_ROTATE_ON_MATERIAL_CHANGE)
        if rotate and spec.name != contract.SYMMETRIC_DEFAULT:
            raise ImportFailure(
                f"Property {contract.PROP_ROTATE_ON_MATERIAL_CHANGE}=true does not fit {key_spec}: "
                "KMS rotates imported material of SYMMETRIC_DEFAULT keys only."
            )
        encoding = _optional_string(properties, contract.PROP_MATERIAL_ENCODING) or "auto"
        if encoding not in contract.MATERIAL_ENCODINGS:
            raise ImportFailure(
                f"Property {contract.PROP_MATERIAL_ENCODING}={encoding[:16]!r} is not supported; "
                f"use one of {', '.join(contract.MATERIAL_ENCODINGS)}."
            )
        expiration_model = one_of(contract.PROP_EXPIRATION_MODEL, contract.EXPIRATION_MODELS)
        validity_days: int | None = None
        if expiration_model == contract.KEY_MATERIAL_EXPIRES:
            raw = properties.get(contract.PROP_VALIDITY_DAYS)
            try:
                # CloudFormation turns every property value into a string.
                validity_days = int(str(raw))
            except ValueError:
                validity_days = None
            if validity_days is None or not (
                contract.MIN_VALIDITY_DAYS <= validity_days <= contract.MAX_VALIDITY_DAYS
            ):
                raise ImportFailure(
                    f"Property {contract.PROP_VALIDITY_DAYS}={str(raw)[:32]!r} must be a whole "
                    f"number of days from {contract.MIN_VALIDITY_DAYS} to "
                    f"{contract.MAX_VALIDITY_DAYS} when the material expires."
                )
        return cls(
            key_id=required(contract.PROP_KEY_ID),
            secret_arn=required(contract.PROP_SECRET_ARN),
            key_spec=key_spec,
            wrapping_algorithm=wrapping_algorithm,
            wrapping_key_spec=wrapping_key_spec,
            expiration_model=expiration_model,
            validity_days=validity_days,
            material_version_id=_optional_string(properties, contract.PROP_MATERIAL_VERSION_ID),
            rotate_on_material_change=rotate,
            key_usage=key_usage,
            material_encoding=encoding,
            json_field=_optional_string(properties, contract.PROP_JSON_FIELD),
        )


def _optional_string(properties: Mapping[str, Any], name: str) -> str | None:
    value = properties.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ImportFailure(f"Property {name} must be a string when it is set.")
    return value


def _flag(properties: Mapping[str, Any], name: str) -> bool:
    value = str(properties.get(name, "false")).lower()
    if value not in ("true", "false"):
        raise ImportFailure(f"Property {name}={value[:16]!r} must be true or false.")
    return value == "true"
