"""The keys imported-key-cdk manages in a Region, read with the operator's own credentials.

A key is managed when a deployment bound it (``imported-key-cdk:handler``) or its owner
adopted it for a stack (``imported-key-cdk:adopted-by``): the same tags the handler's policy
and the fleet's sweep go by. Every figure comes from KMS itself (DescribeKey, the tags,
ListKeyRotations); when the next renewal falls due is the due index's own arithmetic
(``registry.entry_for``), so the command line and the sweep cannot disagree about it.
Reading needs ``kms:ListKeys``, ``ListAliases``, ``DescribeKey``, ``ListResourceTags`` and
``ListKeyRotations``; nothing here reads a secret or changes a key.
"""

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from imported_key_handler import contract, registry
from imported_key_handler.binding import Binding, read_tags, stack_name
from imported_key_handler.errors import ImportFailure
from imported_key_handler.importer import list_key_materials

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

# KMS's limit of on-demand rotations per key (API, RotateKeyOnDemand), not adjustable.
ROTATION_LIMIT = 25
# The sweep runs hourly: a key still due a day after its renewal fell due is being missed.
OVERDUE_AFTER = timedelta(days=1)


@dataclass(frozen=True)
class Material:
    material_id: str
    state: str  # KeyMaterialState: CURRENT, NON_CURRENT, PENDING_ROTATION, ...
    import_state: str
    valid_to: datetime | None
    rotation_type: str | None = None  # ON_DEMAND for material a rotation made current


@dataclass(frozen=True)
class ManagedKey:
    key_id: str
    arn: str
    region: str
    aliases: tuple[str, ...]
    spec: str
    usage: str
    state: str
    current_material: str | None
    expiration_model: str | None
    valid_to: datetime | None
    renew_before: timedelta | None
    multi_region: str | None  # PRIMARY, REPLICA, or None
    replica_regions: tuple[str, ...]
    primary_region: str | None
    tags: Mapping[str, str] = field(repr=False)
    materials: tuple[Material, ...] = ()

    @property
    def name(self) -> str:
        """What a person calls the key: its first alias, else its id."""
        return self.aliases[0].removeprefix("alias/") if self.aliases else self.key_id

    @property
    def adopted(self) -> bool:
        return contract.TAG_ADOPTED_BY in self.tags and contract.TAG_HANDLER not in self.tags

    @property
    def stack(self) -> str | None:
        stack_id = self.tags.get(contract.TAG_STACK)
        if stack_id:
            return stack_name(stack_id)
        return self.tags.get(contract.TAG_ADOPTED_BY)

    @property
    def rotations_used(self) -> int | None:
        """On-demand rotations so far (of ``ROTATION_LIMIT``); None where KMS rotates none."""
        if self.spec != contract.SYMMETRIC_DEFAULT:
            return None
        return sum(material.rotation_type == "ON_DEMAND" for material in self.materials)

    def days_left(self, now: datetime) -> float | None:
        if self.valid_to is None:
            return None
        return (self.valid_to - now).total_seconds() / 86400

    def next_renewal(self) -> datetime | None:
        """When the sweep renews it next: the due index's own arithmetic, jitter included."""
        if self.valid_to is None or not self.renew_before:
            return None
        return registry.entry_for(self.key_id, self.valid_to, self.renew_before).due

    def is_due(self, now: datetime) -> bool:
        """What the handler's renewal would take now: a key awaiting its material (and not
        revoked), or one inside its renewal window."""
        if self.state == "PendingImport":
            return not self.revoked(now)
        due = self.next_renewal()
        return due is not None and due <= now

    def revoked(self, now: datetime) -> bool:
        """Material deleted before the ValidTo the handler recorded: the handler's own test."""
        try:
            Binding(self.key_id, self.tags).refuse_if_revoked(
                {"KeyState": self.state},  # type: ignore[typeddict-item]
                now,
            )
        except ImportFailure:
            return True
        return False

    def attention(self, now: datetime) -> str | None:
        """What needs a person, or None when the key is as it should be."""
        if self.state == "PendingDeletion":
            return "pending deletion"
        if self.revoked(now):
            return "revoked (material deleted before its ValidTo)"
        if self.state == "PendingImport":
            return "material missing: expired or never imported"
        if self.state not in ("Enabled", "Disabled"):
            return f"key is {self.state}"
        due = self.next_renewal()
        if due is not None and now - due > OVERDUE_AFTER:
            return f"renewal overdue since {due:%Y-%m-%d}"
        return None

    def summary(self, now: datetime) -> dict[str, Any]:
        """The key as JSON: references, states and dates only."""
        days = self.days_left(now)
        due = self.next_renewal()
        return {
            "KeyId": self.key_id,
            "Arn": self.arn,
            "Region": self.region,
            "Aliases": list(self.aliases),
            "KeySpec": self.spec,
            "KeyUsage": self.usage,
            "KeyState": self.state,
            "CurrentKeyMaterialId": self.current_material,
            "ExpirationModel": self.expiration_model,
            "ValidTo": self.valid_to.isoformat() if self.valid_to else None,
            "DaysLeft": round(days, 2) if days is not None else None,
            "NextRenewal": due.isoformat() if due else None,
            "RotationsUsed": self.rotations_used,
            "RotationLimit": ROTATION_LIMIT if self.rotations_used is not None else None,
            "MultiRegion": self.multi_region,
            "Stack": self.stack,
            "Adopted": self.adopted,
            "Attention": self.attention(now),
        }


def is_managed(tags: Mapping[str, str]) -> bool:
    return contract.TAG_HANDLER in tags or contract.TAG_ADOPTED_BY in tags


def _pages(call: Any, key: str, **request: Any) -> Iterator[dict[str, Any]]:
    while True:
        page = call(**request)
        yield from page.get(key, [])
        if not page.get("Truncated") or not page.get("NextMarker"):
            return
        request["Marker"] = page["NextMarker"]


def aliases_by_key(kms: "KMSClient") -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for alias in _pages(kms.list_aliases, "Aliases"):
        target = alias.get("TargetKeyId")
        if target:
            found.setdefault(target, []).append(alias["AliasName"])
    return {key: sorted(names) for key, names in found.items()}


def describe(
    kms: "KMSClient", key_id: str, tags: Mapping[str, str], aliases: list[str]
) -> ManagedKey:
    """One managed key from KMS's own answers (and its materials, for a symmetric key)."""
    metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    window = None
    declared = tags.get(contract.TAG_DECLARED)
    if declared:
        try:
            seconds = contract.parse_declared(declared)[1]
        except ValueError:
            seconds = None
        window = timedelta(seconds=seconds) if seconds else None
    configuration = metadata.get("MultiRegionConfiguration", {})
    materials: tuple[Material, ...] = ()
    if metadata.get("KeySpec") == contract.SYMMETRIC_DEFAULT and metadata.get("KeyState") != (
        "PendingDeletion"
    ):
        materials = tuple(
            Material(
                str(entry.get("KeyMaterialId", "")),
                str(entry.get("KeyMaterialState", "")),
                str(entry.get("ImportState", "")),
                entry.get("ValidTo"),
                entry.get("RotationType"),
            )
            for entry in list_key_materials(kms, key_id)
        )
    return ManagedKey(
        key_id=metadata["KeyId"],
        arn=metadata["Arn"],
        region=metadata["Arn"].split(":")[3],
        aliases=tuple(aliases),
        spec=str(metadata.get("KeySpec", "")),
        usage=str(metadata.get("KeyUsage", "")),
        state=str(metadata.get("KeyState", "")),
        current_material=metadata.get("CurrentKeyMaterialId"),
        expiration_model=metadata.get("ExpirationModel"),
        valid_to=metadata.get("ValidTo"),
        renew_before=window,
        multi_region=configuration.get("MultiRegionKeyType")
        if metadata.get("MultiRegion")
        else None,
        replica_regions=tuple(r["Region"] for r in configuration.get("ReplicaKeys", [])),
        primary_region=configuration.get("PrimaryKey", {}).get("Region"),
        tags=dict(tags),
        materials=materials,
    )


def managed_keys(kms: "KMSClient") -> list[ManagedKey]:
    """Every managed key of the client's Region (keys being deleted included: they need a
    person). Keys the caller may not read are skipped: they are not the caller's to manage."""
    aliases = aliases_by_key(kms)
    found = []
    for entry in _pages(kms.list_keys, "Keys"):
        key_id = entry["KeyId"]
        try:
            tags = read_tags(kms, key_id)
            if not is_managed(tags):
                continue
            found.append(describe(kms, key_id, tags, aliases.get(key_id, [])))
        except ImportFailure as failure:
            if "AccessDenied" in failure.reason:
                continue
            raise
    return found


def find_key(kms: "KMSClient", reference: str) -> ManagedKey:
    """A key by id, ARN or alias (with or without ``alias/``); LookupError when it is not a
    managed key."""
    key_ref = (
        reference
        if reference.startswith(("arn:", "alias/")) or _is_key_id(reference)
        else (f"alias/{reference}")
    )
    try:
        key_id = kms.describe_key(KeyId=key_ref)["KeyMetadata"]["KeyId"]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "NotFoundException":
            raise LookupError(f"No KMS key {reference} in this Region.") from None
        raise
    tags = read_tags(kms, key_id)
    if not is_managed(tags):
        raise LookupError(
            f"Key {key_id} is not managed by imported-key-cdk (it has neither the "
            f"{contract.TAG_HANDLER} nor the {contract.TAG_ADOPTED_BY} tag)."
        )
    return describe(kms, key_id, tags, aliases_by_key(kms).get(key_id, []))


def _is_key_id(reference: str) -> bool:
    bare = reference.removeprefix("mrk-")
    return len(bare) in (32, 36) and all(c in "0123456789abcdef-" for c in bare.lower())


@dataclass(frozen=True)
class RelatedKey:
    """The same multi-Region key in another Region: its own state, material and ValidTo."""

    region: str
    state: str
    current_material: str | None
    valid_to: datetime | None

    def summary(self) -> dict[str, Any]:
        return {
            "Region": self.region,
            "KeyState": self.state,
            "CurrentKeyMaterialId": self.current_material,
            "ValidTo": self.valid_to.isoformat() if self.valid_to else None,
        }


def related_keys(key: ManagedKey, kms_in: Callable[[str], "KMSClient"]) -> list[RelatedKey]:
    """The key's primary or replicas in their own Regions (KMS keeps each Region's state and
    ValidTo apart); a Region that cannot be read says so in its state."""
    regions = list(key.replica_regions)
    if key.multi_region == "REPLICA" and key.primary_region:
        regions = [key.primary_region]
    related = []
    for region in regions:
        try:
            metadata = kms_in(region).describe_key(KeyId=key.key_id)["KeyMetadata"]
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "?")
            related.append(RelatedKey(region, f"unreadable ({code})", None, None))
            continue
        related.append(
            RelatedKey(
                region,
                str(metadata.get("KeyState", "")),
                metadata.get("CurrentKeyMaterialId"),
                metadata.get("ValidTo"),
            )
        )
    return related
