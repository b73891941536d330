"""Where a key's rotation to new material stands, read from KMS in each of its Regions.

KMS's states for material imported for a rotation (API, KeyMaterialState):
``PENDING_MULTI_REGION_IMPORT_AND_ROTATION`` in a multi-Region primary until every replica
holds it, then ``PENDING_ROTATION``, when RotateKeyOnDemand may make it current (the
primary's handler does, at its next sweep). A replica's copy waits as ``PENDING_ROTATION``.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from imported_key_handler.importer import (
    PENDING_MULTI_REGION,
    PRIMARY,
    list_key_materials,
    pending_material,
)

from .inventory import ROTATION_LIMIT, ManagedKey

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

PHASE_NONE = "none"
PHASE_REPLICAS = "waiting-for-replicas"
PHASE_READY = "ready-to-rotate"
PHASE_UNFINISHED = "unfinished"


@dataclass(frozen=True)
class RotationPlan:
    phase: str
    explanation: str
    pending_material: str | None
    rotations_used: int | None
    regions: dict[str, str] = field(default_factory=dict)  # Region -> its copy's state

    def summary(self) -> dict[str, Any]:
        return {
            "Phase": self.phase,
            "Explanation": self.explanation,
            "PendingKeyMaterialId": self.pending_material,
            "RotationsUsed": self.rotations_used,
            "RotationLimit": ROTATION_LIMIT,
            "Regions": self.regions,
        }


def rotation_plan(key: ManagedKey, kms_in: Callable[[str], "KMSClient"]) -> RotationPlan:
    """The rotation's phase; ``kms_in(region)`` reads a replica's Region."""
    pending = pending_material(
        [{"KeyMaterialId": m.material_id, "KeyMaterialState": m.state} for m in key.materials]
    )
    used = key.rotations_used
    if pending is None:
        return RotationPlan(
            PHASE_NONE,
            "No rotation in progress. To rotate: put a secret version that adds the new "
            "material last, set material_version_id to it and deploy (a multi-Region key: the "
            "primary's stack first, then each replica's).",
            None,
            used,
        )
    material_id = str(pending["KeyMaterialId"])
    if key.multi_region != PRIMARY:
        return RotationPlan(
            PHASE_UNFINISHED,
            f"Material {material_id[:12]}... waits for a rotation that a deployment began "
            "and did not finish: deploy the version that lists it again, or delete it (aws "
            f"kms delete-imported-key-material --key-id {key.key_id} --key-material-id "
            f"{material_id}).",
            material_id,
            used,
        )
    regions = {key.region: str(pending["KeyMaterialState"])}
    for region in key.replica_regions:
        held = [
            entry
            for entry in list_key_materials(kms_in(region), key.key_id)
            if entry.get("KeyMaterialId") == material_id and entry.get("ImportState") == "IMPORTED"
        ]
        regions[region] = str(held[0].get("KeyMaterialState")) if held else "not imported"
    lacking = [region for region, state in regions.items() if state == "not imported"]
    if pending["KeyMaterialState"] == PENDING_MULTI_REGION or lacking:
        return RotationPlan(
            PHASE_REPLICAS,
            f"Material {material_id[:12]}... is in the primary; "
            f"{', '.join(lacking) or 'a replica'} still lack it: deploy those replicas' "
            "stacks with the version that lists it.",
            material_id,
            used,
            regions,
        )
    # Here KMS reports PENDING_ROTATION (pending_material knows no other pending state).
    return RotationPlan(
        PHASE_READY,
        f"Every replica holds material {material_id[:12]}...: the primary's handler makes it "
        "current at its next sweep (within the hour), or now with: imported-keys rotate "
        f"{key.name} --finish",
        material_id,
        used,
        regions,
    )
