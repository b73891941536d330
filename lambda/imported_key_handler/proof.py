"""Proof on demand that a key holds exactly its secret's material, for the operator's
``imported-keys verify``; it changes nothing.

The key's settings and secret come from its binding tags, checked as for a renewal (the event
names only a key), and the proof is KMS's own, by key type: an asymmetric key's public key
equals the one derived from the material, an HMAC key's MAC of a fresh message equals the local
HMAC, and a symmetric key takes its material(s) again with the ValidTo it already has. KMS
imports only a key's own material, and answers with its id. The answer names the proof and
counts; it never holds material.
"""

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from . import contract
from .audit import audited
from .errors import ImportFailure
from .importer import (
    describe_key,
    list_key_materials,
    read_declared_materials,
    reimport_unchanged,
)
from .renewal import FleetClients, declared_binding
from .request import ImportRequest
from .verification import VERIFIED_MATERIAL_ID, verify_import


def is_verify_event(event: object) -> bool:
    return isinstance(event, Mapping) and isinstance(event.get(contract.VERIFY_EVENT), Mapping)


def verify_key_id(event: Mapping[str, Any]) -> str:
    key_id = event[contract.VERIFY_EVENT].get(contract.RENEWAL_KEY_ID)
    if not isinstance(key_id, str) or not key_id or len(key_id) > 2048:
        raise ImportFailure(f"Verify event has no {contract.RENEWAL_KEY_ID} string.")
    return key_id


def verify_key(fleet: FleetClients, key_id: str, now: datetime) -> dict[str, Any]:
    _, properties, _ = declared_binding(fleet, key_id)
    request = ImportRequest.from_properties(properties)
    metadata = describe_key(fleet.kms, key_id)
    state = metadata.get("KeyState")
    if state not in ("Enabled", "Disabled"):
        raise ImportFailure(f"Key {key_id} is {state}: it holds no material to verify.")
    if request.spec.family != contract.SYMMETRIC:
        if state != "Enabled":
            raise ImportFailure(
                f"Key {key_id} is Disabled: KMS proves its material only by using it. Enable "
                "it (EnableKey), or verify it after the incident."
            )
        (material,) = read_declared_materials(fleet.secrets, request)
        proof = verify_import(fleet.kms, request.spec, key_id, material, False)
        del material
        return {"KeyId": key_id, "Verified": proof, "Materials": 1}
    valid_to = metadata.get("ValidTo")
    if valid_to is not None and valid_to <= now:
        raise ImportFailure(f"Key {key_id}'s material expired at {valid_to.isoformat()}.")
    materials = read_declared_materials(fleet.secrets, request)
    # The key's ValidTo is its earliest material's: importing each material with it leaves the
    # day the key stops working where it is.
    ids = reimport_unchanged(fleet.kms, request, materials, valid_to)
    count = len(materials)
    del materials
    held = {str(m.get("KeyMaterialId")) for m in list_key_materials(fleet.kms, key_id)}
    # Importing material the key has already changes no current material: the first read holds.
    current = metadata.get("CurrentKeyMaterialId")
    if current is not None and current not in ids:
        raise ImportFailure(
            f"Key {key_id}'s current material {current[:12]}... is not in its secret's "
            "declared version: the key uses material the secret does not hold."
        )
    missing = sorted(held - {str(i) for i in ids})
    if missing:
        raise ImportFailure(
            f"Key {key_id} holds material {missing[0][:12]}... that its secret's declared "
            "version does not list: that material is not in the vault."
        )
    return {"KeyId": key_id, "Verified": VERIFIED_MATERIAL_ID, "Materials": count}


def run_verify(key_id: str) -> dict[str, Any]:
    """Entry for a verify event; a failed proof raises, and Lambda reports the reason."""
    with audited("Verify", key_id) as record:
        result = verify_key(FleetClients.build(), key_id, datetime.now(UTC))
        record.succeeded("VERIFIED")
        return result
