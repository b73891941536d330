"""``ImportedKeyFleet``: many ImportedKeys at once, from code or a manifest, over nested stacks.

A stack holds 500 resources; each key takes two (three with an alias). The fleet puts each key
in one of ``nested_stacks`` nested stacks chosen by a hash of its name, never by its position:
adding, removing or reordering entries leaves every other key where it was, with the same
construct path and logical id, so no deployment replaces a key (a replaced key is a new key,
and its ciphertexts do not follow). One import handler in the fleet's own stack serves them
all: its sweep, expiry-event rule and fleet alarm cover every key.
"""

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from constructs import Construct

from imported_key_handler import contract

from . import _props
from .handler import ImportHandler
from .imported_key import ImportedKey
from .options import MaterialExpiration

DEFAULT_NESTED_STACKS = 16
# 150 keys with aliases are 450 resources: room below CloudFormation's 500 for what CDK adds.
MAX_KEYS_PER_STACK = 150


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
    key_arn: str | None = None
    """Adopt this existing EXTERNAL key instead of creating one (``ImportedKey``'s
    ``existing_key_arn``); ``description`` and ``tags`` then stay where the key was created.
    Default: the fleet creates the key."""


def load_manifest(path: str | Path) -> list[FleetKey]:
    """The keys of a manifest file: JSON, or YAML (``.yaml``/``.yml``, needs PyYAML), holding
    ``{"keys": [{"name": ..., "secret": ..., ...}, ...]}``."""
    return [FleetKey(**fields) for fields in _props.fleet_manifest(Path(path))]


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
        _props.nested_stacks(nested_stacks)
        for index, declared in enumerate(keys):
            # Entries from code are held to the manifest's rules, named the same way.
            _props.fleet_entry(asdict(declared), f"#{index} ({declared.name})")
        entries = list(keys) + (load_manifest(manifest) if manifest is not None else [])
        _props.fleet_entries(
            [(entry.name, entry.alias) for entry in entries],
            [group_of(entry.name, nested_stacks) for entry in entries],
            MAX_KEYS_PER_STACK,
        )
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
                existing_key_arn=entry.key_arn,
                alias=entry.alias,
                description=entry.description,
                key_spec=entry.key_spec,
                # Whole days already (fleet_entry checked them): no Duration to convert.
                expiration=(
                    MaterialExpiration.never()
                    if entry.validity_days is None
                    else MaterialExpiration(contract.KEY_MATERIAL_EXPIRES, entry.validity_days)
                ),
                removal_policy=cdk.RemovalPolicy.RETAIN if entry.key_arn else removal_policy,
                alarm_topic=alarm_topic,
                handler_runtime=handler_runtime,
                handler_architecture=handler_architecture,
                import_handler=self.handler,
            )
            for name, value in entry.tags.items():
                cdk.Tags.of(key).add(name, value)
            self.keys[entry.name] = key
