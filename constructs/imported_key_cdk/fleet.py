"""``ImportedKeyFleet``: many ImportedKeys at once, from code or a manifest, over nested stacks.

A stack holds 500 resources; each key takes two (three with an alias). The fleet puts each key
in one of ``nested_stacks`` nested stacks chosen by a hash of its name, never by its position:
adding, removing or reordering entries leaves every other key where it was, with the same
construct path and logical id, so no deployment replaces a key (a replaced key is a new key,
and its ciphertexts do not follow). One import handler in the fleet's own stack serves them
all: its sweep, expiry-event rule and fleet alarm cover every key.
"""

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from constructs import Construct

from .handler import ImportHandler
from .imported_key import ImportedKey
from .options import MaterialExpiration

DEFAULT_NESTED_STACKS = 16
# 150 keys with aliases are 450 resources: room below CloudFormation's 500 for what CDK adds.
MAX_KEYS_PER_STACK = 150
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,63}$")
_FIELDS = ("name", "secret", "alias", "description", "key_spec", "validity_days", "tags")


@dataclass(frozen=True)
class FleetKey:
    """One key of a fleet. ``name`` is its identity: it names the construct (and so the
    CloudFormation logical id) and picks its nested stack, so it must never change."""

    name: str
    """Letters, digits and hyphens, starting with a letter (at most 64)."""
    secret: str
    """The material's secret: its full ARN, or its name."""
    alias: str | None = None
    """The key's alias (``alias/`` is added when missing). Default: none."""
    description: str | None = None
    """The key's description. Default: none."""
    key_spec: str = "SYMMETRIC_DEFAULT"
    """Any importable key spec (see ``ImportedKey``). Default: ``SYMMETRIC_DEFAULT``."""
    validity_days: int | None = 365
    """Days the material stays valid after each import, 1 to 365, or None: it never expires.
    Default: 365."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags on the key (the binding's ``imported-key-cdk:`` tags cannot be overridden)."""


def _entry(raw: object, where: str) -> FleetKey:
    """A manifest entry as a FleetKey; ValueError naming ``where`` and the field."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"Invalid fleet entry {where}: {raw!r:.60} is not an object.")
    unknown = sorted(set(map(str, raw)) - set(_FIELDS))
    if unknown:
        raise ValueError(
            f"Invalid fleet entry {where}: unknown field(s) {', '.join(unknown)}; the fields "
            f"are {', '.join(_FIELDS)}."
        )
    for required in ("name", "secret"):
        if not isinstance(raw.get(required), str) or not raw[required]:
            raise ValueError(f"Invalid fleet entry {where}: {required!r} must be a string.")
    validity = raw.get("validity_days", 365)
    if validity is not None and (
        isinstance(validity, bool) or not isinstance(validity, int) or not 1 <= validity <= 365
    ):
        raise ValueError(
            f"Invalid fleet entry {where}: validity_days={validity!r}; give whole days from 1 "
            "to 365, or null for material that never expires."
        )
    tags = raw.get("tags", {})
    if not isinstance(tags, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
    ):
        raise ValueError(f"Invalid fleet entry {where}: tags must map strings to strings.")
    for optional in ("alias", "description", "key_spec"):
        if raw.get(optional) is not None and not isinstance(raw[optional], str):
            raise ValueError(f"Invalid fleet entry {where}: {optional!r} must be a string.")
    return FleetKey(
        name=str(raw["name"]),
        secret=str(raw["secret"]),
        alias=raw.get("alias"),
        description=raw.get("description"),
        key_spec=str(raw.get("key_spec") or "SYMMETRIC_DEFAULT"),
        validity_days=validity,
        tags=dict(tags),
    )


def load_manifest(path: str | Path) -> list[FleetKey]:
    """The keys of a manifest file: JSON, or YAML (``.yaml``/``.yml``, needs PyYAML), holding
    ``{"keys": [{"name": ..., "secret": ..., ...}, ...]}``."""
    source = Path(path)
    text = source.read_text(encoding="utf-8")
    if source.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml  # type: ignore[import-untyped,unused-ignore]
        except ImportError:
            raise ValueError(
                f"Invalid manifest {source}: reading YAML needs PyYAML "
                "(pip install 'imported-key-cdk[yaml]'), or write the manifest as JSON."
            ) from None
        document = yaml.safe_load(text)
    else:
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"Invalid manifest {source}: not JSON ({error.msg}).") from None
    keys = document.get("keys") if isinstance(document, Mapping) else None
    if not isinstance(keys, list):
        raise ValueError(f'Invalid manifest {source}: expected {{"keys": [...]}} at the top.')
    return [
        _entry(raw, f"#{index} ({raw.get('name', '?') if isinstance(raw, Mapping) else '?'})")
        for index, raw in enumerate(keys)
    ]


def group_of(name: str, nested_stacks: int) -> int:
    """The nested stack a key lives in: a hash of its name alone."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") % nested_stacks


def _secret(scope: Construct, key: FleetKey) -> secretsmanager.ISecret:
    construct_id = f"{key.name}Secret"
    if key.secret.startswith("arn:"):
        # A complete ARN ends in the 6-character suffix Secrets Manager adds to the name.
        if re.search(r"-[A-Za-z0-9]{6}$", key.secret):
            return secretsmanager.Secret.from_secret_complete_arn(scope, construct_id, key.secret)
        return secretsmanager.Secret.from_secret_partial_arn(scope, construct_id, key.secret)
    return secretsmanager.Secret.from_secret_name_v2(scope, construct_id, key.secret)


class ImportedKeyFleet(Construct):
    """Many ImportedKeys, declared from code (``keys``) or a manifest file (``manifest``),
    spread over nested stacks and served by one import handler."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        keys: Sequence[FleetKey] = (),
        manifest: str | Path | None = None,
        nested_stacks: int = DEFAULT_NESTED_STACKS,
        alarm_topic: sns.ITopic | None = None,
        renewal_imports_per_second: float | None = None,
        handler_runtime: lambda_.Runtime = lambda_.Runtime.PYTHON_3_13,
        handler_architecture: lambda_.Architecture = lambda_.Architecture.ARM_64,
        removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN,
    ) -> None:
        """Declare the keys.

        :param keys: The fleet's keys as ``FleetKey`` objects. Default: none.
        :param manifest: A JSON or YAML file with more keys (``{"keys": [...]}``, the fields
            of ``FleetKey``). Default: none.
        :param nested_stacks: How many nested stacks the keys are spread over (each holds at
            most 150 keys). Fix it when the fleet is first deployed: a key's nested stack is a
            hash of its name modulo this number, so changing it moves keys to other nested
            stacks, which replaces them. Default: 16 (room for about 2,000 keys).
        :param alarm_topic: SNS topic for the fleet's alarms. Default: no action.
        :param renewal_imports_per_second: The sweep's share of GetParametersForImport's
            quota (see ``ImportedKey``). Default: 0.2.
        :param handler_runtime: Python runtime of the import handler. Default: 3.13.
        :param handler_architecture: Architecture of the import handler. Default: ARM_64.
        :param removal_policy: What happens to a key that leaves the fleet.
            Default: ``RemovalPolicy.RETAIN``.
        """
        if (
            isinstance(nested_stacks, bool)
            or not isinstance(nested_stacks, int)
            or not (1 <= nested_stacks <= 200)
        ):
            raise ValueError(
                f"Invalid nested_stacks: {nested_stacks!r}. Give a whole number from 1 to 200 "
                "(a stack holds at most 500 resources, including its nested stacks)."
            )
        entries = list(keys) + (load_manifest(manifest) if manifest is not None else [])
        _check_entries(entries, nested_stacks)
        super().__init__(scope, construct_id)
        self.handler = ImportHandler.of(
            self,
            handler_runtime,
            handler_architecture,
            imports_per_second=renewal_imports_per_second or 0.2,
        )
        """The import handler every key of the fleet shares, in the fleet's own stack."""
        self.stacks: dict[int, cdk.NestedStack] = {}
        """The nested stacks that hold keys, by group number."""
        self.keys: dict[str, ImportedKey] = {}
        """Every key of the fleet, by name."""
        for entry in entries:
            group = group_of(entry.name, nested_stacks)
            stack = self.stacks.get(group)
            if stack is None:
                stack = self.stacks[group] = cdk.NestedStack(self, f"Keys{group:03d}")
            key = ImportedKey(
                stack,
                entry.name,
                key_material_secret=_secret(stack, entry),
                alias=entry.alias,
                description=entry.description,
                key_spec=entry.key_spec,
                expiration=(
                    MaterialExpiration.never()
                    if entry.validity_days is None
                    else MaterialExpiration.after(cdk.Duration.days(entry.validity_days))
                ),
                removal_policy=removal_policy,
                alarm_topic=alarm_topic,
                handler_runtime=handler_runtime,
                handler_architecture=handler_architecture,
                import_handler=self.handler,
            )
            for name, value in entry.tags.items():
                cdk.Tags.of(key).add(name, value)
            self.keys[entry.name] = key


def _check_entries(entries: Sequence[FleetKey], nested_stacks: int) -> None:
    """Names unique and well formed, aliases unique, no nested stack over its capacity."""
    seen: dict[str, int] = {}
    aliases: dict[str, str] = {}
    counts: dict[int, list[str]] = {}
    for index, entry in enumerate(entries):
        if not _NAME.match(entry.name):
            raise ValueError(
                f"Invalid fleet entry #{index}: name {entry.name!r:.70}. Use letters, digits and "
                "hyphens, starting with a letter, at most 64 characters."
            )
        if entry.name in seen:
            raise ValueError(
                f"Invalid fleet entry #{index}: name {entry.name!r} is also entry "
                f"#{seen[entry.name]}; each key needs its own name."
            )
        seen[entry.name] = index
        if entry.alias is not None:
            alias = entry.alias if entry.alias.startswith("alias/") else f"alias/{entry.alias}"
            if alias in aliases:
                raise ValueError(
                    f"Invalid fleet entry #{index} ({entry.name}): alias {alias!r} is also "
                    f"{aliases[alias]!r}'s."
                )
            aliases[alias] = entry.name
        counts.setdefault(group_of(entry.name, nested_stacks), []).append(entry.name)
    for group, names in counts.items():
        if len(names) > MAX_KEYS_PER_STACK:
            raise ValueError(
                f"Invalid fleet: nested stack Keys{group:03d} would hold {len(names)} keys (at "
                f"most {MAX_KEYS_PER_STACK}). For a new fleet, raise nested_stacks; a deployed "
                "fleet's keys would move (and be replaced), so split it into a second fleet."
            )
