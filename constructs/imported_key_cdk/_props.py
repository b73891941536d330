"""Parsing and checking of ``ImportedKey``'s props and of the option objects.

Every refusal is a ``ValueError`` raised here, at synth, naming the prop, echoing the value and
saying what is allowed. Enum-like props take the enum classes or strings in any case. Values
that are still tokens are left for CloudFormation where the handler checks them again; a value
that decides the template's shape (the key spec, the validity) must be known at synth.
"""

import json
import re
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct, Node

from imported_key_handler import contract

from .handler import SUPPORTED_ARCHITECTURES, SUPPORTED_RUNTIMES
from .renewal import (
    default_expiry_alarm_threshold_s,
    default_interval_s,
    default_renew_before_s,
    schedule_interval_seconds,
)

MIN_PENDING_WINDOW_DAYS = 7
# KMS tag values (TagValue) hold 0 to 256 characters.
MAX_TAG_VALUE_LENGTH = 256
MAX_PENDING_WINDOW_DAYS = 30
_DAY = 86400


def unresolved(value: object) -> bool:
    """``cdk.Token.is_unresolved``, without the jsii round trip for a string that holds no
    token marker: aws-cdk-lib tests for the same marker first, so the answer is the same."""
    if isinstance(value, str) and "Token[" not in value:
        return False
    return cdk.Token.is_unresolved(value)


def _text(value: object) -> str:
    return str(value.value) if isinstance(value, Enum) else str(value)


def choice(prop: str, value: object, allowed: Sequence[str]) -> str:
    """``value`` (an enum member or a string in any case) as spelled in ``allowed``; tokens are
    returned unchanged."""
    text = _text(value)
    if unresolved(text):
        return text
    for spelling in allowed:
        if text.casefold() == spelling.casefold():
            return spelling
    raise ValueError(f"Invalid {prop}: {text!r}. Use one of: {', '.join(allowed)}.")


def _days(prop: str, duration: cdk.Duration, low: int, high: int, why: str) -> int:
    if unresolved(duration.to_string()):
        raise ValueError(f"Invalid {prop}: a token. It must be a Duration known at synth.")
    days, remainder = divmod(duration.to_seconds(), _DAY)
    if remainder or not low <= days <= high:
        raise ValueError(
            f"Invalid {prop}: {duration.to_human_string()}. It must be a whole number of days "
            f"from {low} to {high} ({why})."
        )
    return int(days)


# --- MaterialExpiration ---------------------------------------------------------------------


def validity_days(validity: cdk.Duration) -> int:
    """The days of ``MaterialExpiration.after(validity)``."""
    return _days(
        "MaterialExpiration.after()",
        validity,
        contract.MIN_VALIDITY_DAYS,
        contract.MAX_VALIDITY_DAYS,
        "KMS refuses a ValidTo more than 365 days ahead",
    )


def expiration(expiration_model: str, days: object) -> tuple[str, int | None]:
    """A ``MaterialExpiration``'s model and days, checked against each other."""
    model = choice("expiration_model", expiration_model, contract.EXPIRATION_MODELS)
    if unresolved(model):
        raise ValueError(
            f"Invalid expiration_model: {model!r}. It must be known at synth. Use one of: "
            f"{', '.join(contract.EXPIRATION_MODELS)}."
        )
    if model == contract.KEY_MATERIAL_DOES_NOT_EXPIRE:
        if days is not None:
            raise ValueError(
                f"Invalid validity_days: {days!r}. Material that never expires has no validity "
                "period; use MaterialExpiration.never()."
            )
        return model, None
    valid_range = range(contract.MIN_VALIDITY_DAYS, contract.MAX_VALIDITY_DAYS + 1)
    if isinstance(days, bool) or not isinstance(days, int) or days not in valid_range:
        raise ValueError(
            f"Invalid validity_days: {days!r}. {contract.KEY_MATERIAL_EXPIRES} needs a whole "
            f"number of days from {contract.MIN_VALIDITY_DAYS} to {contract.MAX_VALIDITY_DAYS} "
            "(KMS refuses a ValidTo more than 365 days ahead); use "
            "MaterialExpiration.after(Duration.days(n))."
        )
    return model, days


def expiration_prop(value: object) -> None:
    """``expiration`` must be a ``MaterialExpiration`` (which checked itself when built)."""
    from .options import MaterialExpiration  # options imports this module for its checks

    if value is not None and not isinstance(value, MaterialExpiration):
        raise ValueError(
            f"Invalid expiration: {value!r}. Use MaterialExpiration.after(Duration.days(n)) "
            "with n from 1 to 365, or MaterialExpiration.never()."
        )


# --- the key --------------------------------------------------------------------------------


def key_spec(value: kms.KeySpec | str) -> contract.KeySpec:
    """The catalog entry of ``key_spec``; a spec must be known at synth (it decides the
    wrapping, the usage and the handler's permissions)."""
    name = _text(value)
    supported = f"Use one of: {', '.join(contract.KEY_SPECS)}."
    if unresolved(name):
        raise ValueError(
            f"Invalid key_spec: {name!r}. It must be known at synth time, not a token. {supported}"
        )
    canonical = name.upper()
    if canonical in contract.KEY_SPECS:
        return contract.KEY_SPECS[canonical]
    reason = contract.REFUSED_KEY_SPECS.get(canonical)
    if reason is not None:
        raise ValueError(f"Invalid key_spec: {name!r}. {reason}. {supported}")
    raise ValueError(f"Invalid key_spec: {name!r}. {supported}")


def key_usage(spec: contract.KeySpec, value: kms.KeyUsage | str | None) -> str:
    """``key_usage`` checked against the spec; None means the spec's first usage."""
    if value is None:
        return spec.usages[0]
    name = _text(value)
    for usage in spec.usages:
        if name.casefold() == usage.casefold():
            return usage
    raise ValueError(
        f"Invalid key_usage: {name!r}. {spec.name} keys allow: {', '.join(spec.usages)}."
    )


_ALIAS = re.compile(r"^alias/[A-Za-z0-9:/_-]{1,250}$")
_RESERVED_ALIAS_PREFIX = "alias/aws/"


def alias(value: str | None) -> str | None:
    """An alias name as KMS takes it (``alias/`` is added if missing, as aws-kms does)."""
    if value is None or unresolved(value):
        return value
    name = value if value.startswith("alias/") else f"alias/{value}"
    if name.startswith(_RESERVED_ALIAS_PREFIX) or not _ALIAS.match(name):
        raise ValueError(
            f"Invalid alias: {value!r}. Use letters, digits and / _ - : after 'alias/' "
            f"(256 characters in all), not starting with {_RESERVED_ALIAS_PREFIX!r}, which "
            "AWS keeps for its own keys."
        )
    return name


def enable_key_rotation(value: bool) -> None:
    if value:
        raise ValueError(
            "Invalid enable_key_rotation: True. KMS refuses automatic rotation for keys "
            "with imported material (Origin=EXTERNAL); leave it False."
        )


def pending_window(value: cdk.Duration | None) -> cdk.Duration | None:
    if value is None:
        return None
    _days(
        "pending_window",
        value,
        MIN_PENDING_WINDOW_DAYS,
        MAX_PENDING_WINDOW_DAYS,
        "KMS's waiting period before it deletes a key",
    )
    return value


# --- an adopted key (existing_key_arn) -------------------------------------------------------

_KEY_ARN = re.compile(
    r"^arn:aws[a-z-]*:kms:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):key/"
    r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})$"
)


def existing_key_arn(value: str | None, stack: cdk.Stack) -> str | None:
    """The ARN of a key to adopt: a key's (not an alias's), in the stack's account and Region,
    where the handler can import into it."""
    if value is None or unresolved(value):
        return value
    found = _KEY_ARN.match(value)
    if found is None:
        raise ValueError(
            f"Invalid existing_key_arn: {value!r:.120}. Give the key's full ARN, "
            "arn:aws:kms:<region>:<account>:key/<key id> (not its id, nor an alias)."
        )
    for part, own in (("account", stack.account), ("region", stack.region)):
        if not unresolved(own) and found[part] != own:
            raise ValueError(
                f"Invalid existing_key_arn: {value!r:.120} is in {part} {found[part]}, the "
                f"stack in {own}. KMS imports material only from the key's own account and "
                "Region: adopt the key from a stack deployed there."
            )
    return value


def adopted_key_props(adopting: bool, given: Mapping[str, object]) -> None:
    """Props that shape the key resource mean nothing for a key the stack does not create."""
    if not adopting:
        return
    named = sorted(
        name
        for name, value in given.items()
        if value is not None
        and value is not False
        and not (isinstance(value, Sequence) and not value)
    )
    if named:
        raise ValueError(
            f"Invalid {', '.join(named)} with existing_key_arn: an adopted key is not created "
            "by this stack, so they cannot apply. Set them where the key was created (its key "
            "policy, description and deletion settings stay as they are), or leave them out."
        )


def adopted_removal_policy(existing_key_arn: str | None, policy: cdk.RemovalPolicy) -> None:
    if existing_key_arn is not None:
        raise ValueError(
            f"Invalid apply_removal_policy({policy}) on an adopted key: this stack does not "
            "create the key, so it never removes it either."
        )


# --- multi-Region keys ---------------------------------------------------------------------

_MULTI_REGION_KEY_ARN = re.compile(
    r"^arn:aws[a-z-]*:kms:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):key/mrk-[0-9a-f]{32}$"
)


def multi_region(primary: bool, replica_of: object, existing_key_arn: str | None) -> None:
    if not primary and replica_of is None:
        return
    prop = "multi_region" if primary else "replica_of"
    if primary and replica_of is not None:
        raise ValueError(
            "Invalid multi_region=True with replica_of: a replica belongs to its primary's "
            "multi-Region key; declare multi_region on the primary only."
        )
    if existing_key_arn is not None:
        raise ValueError(
            f"Invalid {prop} with existing_key_arn: an adopted key exists already, primary or "
            "replica; adopt each Region's key by its own ARN."
        )


def multi_region_rotation(primary: bool, rotate: bool, validity: int | None) -> None:
    """A rotating primary completes each rotation in its Region's renewal sweep, which only a
    key whose material expires brings (``FleetRenewal``)."""
    if primary and rotate and validity is None:
        raise ValueError(
            "Invalid expiration: MaterialExpiration.never() with multi_region=True and "
            "rotation_on_material_change=True. The primary Region's renewal sweep makes the "
            "new material current once every replica holds it, and a key whose material never "
            "expires has no sweep: use MaterialExpiration.after(Duration.days(n))."
        )


def _region_of(stack: cdk.Stack, what: str) -> str:
    region = stack.region
    if unresolved(region):
        raise ValueError(
            f"Invalid replica_of: {what} has no concrete Region (stack {stack.stack_name}). "
            "Give each Region's stack an env with its region."
        )
    return region


class Primary(Protocol):
    """What a replica reads of its primary ImportedKey (``_props`` cannot import the class)."""

    @property
    def node(self) -> Node: ...

    multi_region: bool
    replica_regions: dict[str, str]
    key_spec_name: str
    key_usage_name: str
    rotates_on_material_change: bool

    @property
    def key_arn(self) -> str: ...


def replica_of(
    replica: "Primary | str | None", stack: cdk.Stack, spec: str, usage: str, rotate: bool
) -> str | None:
    """The primary's ARN for a replica in ``stack``: same account, another Region, the same
    spec, usage and rotation_on_material_change, the only replica of that Region. A primary
    known only by its ARN is checked for its form, Region and account only."""
    if replica is None:
        return None
    region = _region_of(stack, "the replica's stack")
    if isinstance(replica, str):
        if unresolved(replica):
            return replica
        found = _MULTI_REGION_KEY_ARN.match(replica)
        if found is None:
            raise ValueError(
                f"Invalid replica_of: {replica!r:.120} is not the ARN of a multi-Region key "
                "(arn:aws:kms:<region>:<account>:key/mrk-<32 hex digits>)."
            )
        if found["region"] == region:
            raise ValueError(
                f"Invalid replica_of: {replica!r:.120} is in {region}, this stack's own Region; "
                "a replica lives in another Region."
            )
        _same_account(found["account"], stack.account, replica)
        return replica
    path = replica.node.path
    if not replica.multi_region:
        raise ValueError(
            f"Invalid replica_of: {path} is not a multi-Region key; declare it with "
            "multi_region=True (KMS replicates only multi-Region primaries)."
        )
    primary_stack = cdk.Stack.of(replica.node.scope or stack)
    primary_region = _region_of(primary_stack, path)
    _same_account(primary_stack.account, stack.account, path)
    if region == primary_region or region in replica.replica_regions:
        holder = path if region == primary_region else replica.replica_regions[region]
        raise ValueError(
            f"Invalid replica_of: Region {region} is listed twice for {path} (it already holds "
            f"{holder}); one key per Region."
        )
    for prop, mine, primary_value in (
        ("key_spec", spec, replica.key_spec_name),
        ("key_usage", usage, replica.key_usage_name),
    ):
        if mine != primary_value:
            raise ValueError(
                f"Invalid {prop} for a replica of {path}: {mine}, but the primary is "
                f"{primary_value}. A replica has its primary's {prop}: give {primary_value}."
            )
    primary_rotates = replica.rotates_on_material_change
    if rotate != primary_rotates:
        # A replica takes its primary's new material as EXISTING_KEY_MATERIAL, and its handler
        # imports every material the primary's secret lists: one that does not rotate would
        # refuse the primary's new material (the rotation never completes), and one that
        # rotates alone would offer material its primary never took (KMS refuses it).
        raise ValueError(
            f"Invalid rotation_on_material_change for a replica of {path}: {rotate}, but the "
            f"primary has {primary_rotates}. A multi-Region key rotates in every Region or in "
            f"none: declare the replica with rotation_on_material_change={primary_rotates}, "
            "as its primary (or change both)."
        )
    return replica.key_arn


def _same_account(primary: str, replica: str, what: str) -> None:
    if not unresolved(primary) and not unresolved(replica) and primary != replica:
        raise ValueError(
            f"Invalid replica_of: {what:.120} is in account {primary}, this stack in {replica}. "
            "A multi-Region key's replicas live in its own account."
        )


def register_replica(primary: "Primary | str | None", stack: cdk.Stack, path: str) -> None:
    if primary is not None and not isinstance(primary, str):
        primary.replica_regions[stack.region] = path


# --- the import -----------------------------------------------------------------------------


def wrapping(
    spec: contract.KeySpec, algorithm: object, wrapping_key_spec: object
) -> tuple[str, str]:
    """The wrapping to use: the spec's default for what is unset, refused if KMS would refuse
    it (tokens are left for the handler to check)."""
    default_algorithm, default_wrapping_key_spec = contract.default_wrapping(spec)
    chosen_algorithm = choice(
        "wrapping_algorithm",
        default_algorithm if algorithm is None else algorithm,
        contract.WRAPPING_ALGORITHMS,
    )
    chosen_spec = choice(
        "wrapping_key_spec",
        default_wrapping_key_spec if wrapping_key_spec is None else wrapping_key_spec,
        contract.WRAPPING_KEY_SPECS,
    )
    if unresolved(chosen_algorithm) or unresolved(chosen_spec):
        return chosen_algorithm, chosen_spec
    refusal = contract.wrapping_refusal(spec, chosen_algorithm, chosen_spec)
    if refusal is not None:
        if algorithm is None:
            raise ValueError(f"Invalid wrapping_key_spec: {chosen_spec!r}. {refusal}")
        raise ValueError(f"Invalid wrapping_algorithm: {chosen_algorithm!r}. {refusal}")
    return chosen_algorithm, chosen_spec


def material_encoding(spec: contract.KeySpec, value: object, json_field: str | None) -> str:
    """``material_encoding`` (default ``auto``), checked against the key spec and json_field."""
    encoding = choice(
        "material_encoding",
        contract.MATERIAL_ENCODINGS[0] if value is None else value,
        contract.MATERIAL_ENCODINGS,
    )
    if encoding == "pem" and spec.family in (contract.SYMMETRIC, contract.HMAC):
        raise ValueError(
            f"Invalid material_encoding: {_text(value)!r}. PEM holds a private key, and "
            f"{spec.name} material is a secret key of raw bytes; use one of: "
            f"{', '.join(e for e in contract.MATERIAL_ENCODINGS if e != 'pem')}."
        )
    if json_field is not None and not unresolved(json_field):
        if not json_field:
            raise ValueError(
                "Invalid json_field: ''. Name the SecretString field that holds the material, "
                "or leave json_field unset."
            )
        if encoding == "raw":
            raise ValueError(
                f"Invalid json_field: {json_field!r}. material_encoding {encoding!r} reads the "
                "raw bytes of SecretBinary, which has no JSON fields; use one of: "
                f"{', '.join(e for e in contract.MATERIAL_ENCODINGS if e != encoding)}, or "
                "leave json_field unset."
            )
    return encoding


def material_version_id(value: str | None) -> str | None:
    if value is None or unresolved(value):
        return value
    if not value.strip() or value != value.strip():
        raise ValueError(
            f"Invalid material_version_id: {value!r}. Give the VersionId of the secret version "
            "to import (as PutSecretValue returned it), or leave it unset for AWSCURRENT."
        )
    return value


def rotation_on_material_change(spec: contract.KeySpec, value: bool) -> bool:
    if value and spec.family != contract.SYMMETRIC:
        raise ValueError(
            f"Invalid rotation_on_material_change: True with key_spec {spec.name!r}. KMS "
            "rotates only SYMMETRIC_DEFAULT keys on demand; leave it False."
        )
    return value


def handler_platform(runtime: lambda_.Runtime, architecture: lambda_.Architecture) -> None:
    choice("handler_runtime", runtime.name, list(SUPPORTED_RUNTIMES))
    choice("handler_architecture", architecture.name, list(SUPPORTED_ARCHITECTURES))


def _code_signing_name(config: lambda_.ICodeSigningConfig | None) -> str:
    if config is None:
        return "None"
    arn = config.code_signing_config_arn
    return repr(config.node.path) if unresolved(arn) else repr(arn)


def handler_code_signing_config(
    value: lambda_.ICodeSigningConfig | None,
    shared_handler: Construct | None,
    shared_config: lambda_.ICodeSigningConfig | None,
) -> None:
    """The handler is shared per stack, runtime and architecture, and so is its code signing.

    ``shared_handler`` is the handler already built for this ImportedKey's runtime and
    architecture (None: this ImportedKey creates it, with ``value``). Not naming a
    configuration is a choice too: a key that asks for signed code must not get a handler
    built without it, and the other way round.
    """
    if shared_handler is None or value is shared_config:
        return
    if value is not None and shared_config is not None:
        arns = (value.code_signing_config_arn, shared_config.code_signing_config_arn)
        if arns[0] == arns[1]:  # the same configuration, imported twice by its ARN
            return
    raise ValueError(
        f"Invalid handler_code_signing_config: {_code_signing_name(value)}. The handler "
        f"{shared_handler.node.path!r} is shared by every ImportedKey in the stack with the same "
        "handler_runtime and handler_architecture, and was created with "
        f"{_code_signing_name(shared_config)}; name that one (or give this key another "
        "handler_runtime or handler_architecture)."
    )


# --- renewal --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Renewal:
    """Checked renewal settings of a key whose material expires, in seconds."""

    interval_s: int
    """The longest the sweep may wait between two runs for this key."""
    renew_before_s: int
    expiry_alarm_threshold_s: float


def _human(given: cdk.Duration | None, seconds: float) -> str:
    """A window or threshold as its message names it (a default is plain seconds)."""
    return (given or cdk.Duration.seconds(seconds)).to_human_string()


def renewal(
    validity: int | None,
    schedule: events.Schedule | None,
    renew_before: cdk.Duration | None,
    expiry_alarm_threshold: cdk.Duration | None,
) -> Renewal | None:
    """The renewal settings with their defaults filled in; None when nothing expires.

    The window must fit inside the validity, the schedule fire at least twice inside the window
    (the default one fires four times), and the alarm threshold fall inside the window. The
    defaults are worked out in plain seconds; only given Durations and schedules go to jsii.
    """
    if validity is None:
        if any(p is not None for p in (schedule, renew_before, expiry_alarm_threshold)):
            raise ValueError(
                "Invalid renewal_schedule/renew_before/expiry_alarm_threshold: the material "
                "never expires (MaterialExpiration.never()), so there is nothing to renew."
            )
        return None
    seconds = (
        default_renew_before_s(validity) if renew_before is None else renew_before.to_seconds()
    )
    if seconds <= 0 or seconds >= validity * _DAY:
        raise ValueError(
            f"Invalid renew_before: {_human(renew_before, seconds)}. It must be longer than "
            f"zero and shorter than the material's validity ({validity} days)."
        )
    if schedule is None:
        interval = default_interval_s(int(seconds))
        if 2 * interval > seconds:
            # The schedule was derived from the window, so the window is what to change.
            raise ValueError(
                f"Invalid renew_before: {_human(renew_before, seconds)}. It is too short for "
                "a renewal to run twice inside it; use at least 2 minutes."
            )
    else:
        interval = _schedule_interval(schedule, renew_before, seconds)
    threshold = (
        default_expiry_alarm_threshold_s(int(seconds))
        if expiry_alarm_threshold is None
        else expiry_alarm_threshold.to_seconds()
    )
    if not 0 < threshold < seconds:
        raise ValueError(
            f"Invalid expiry_alarm_threshold: {_human(expiry_alarm_threshold, threshold)}. It "
            f"must be shorter than the renewal window ({_human(renew_before, seconds)}), or the "
            "alarm fires before every renewal."
        )
    return Renewal(interval, int(seconds), threshold)


def _schedule_interval(
    schedule: events.Schedule, renew_before: cdk.Duration | None, window_s: float
) -> int:
    """How often a given ``renewal_schedule`` fires; it must fire twice inside the window."""
    interval = schedule_interval_seconds(schedule)
    if interval is None:
        raise ValueError(
            f"Invalid renewal_schedule: {schedule.expression_string!r}. Cannot tell how often it "
            "fires; use events.Schedule.rate(...) or a daily/hourly cron."
        )
    if 2 * interval > window_s:
        raise ValueError(
            f"Invalid renewal_schedule: {schedule.expression_string!r} fires every "
            f"{interval // 3600} h {interval % 3600 // 60} min, so not twice inside the renewal "
            f"window of {_human(renew_before, window_s)}. Use a rate of at most half the window "
            "or a longer renew_before."
        )
    return interval


def break_glass_principals(
    principals: Sequence[iam.IPrincipal] | None,
) -> list[iam.IPrincipal]:
    """Each one an IAM identity named by one ARN: the key policy matches it by aws:PrincipalArn."""
    checked: list[iam.IPrincipal] = []
    for principal in principals or []:
        fragment = principal.policy_fragment
        arns = fragment.principal_json.get("AWS", [])
        others = sorted(name for name in fragment.principal_json if name != "AWS")
        named = len(arns) == 1 and (unresolved(arns[0]) or str(arns[0]).startswith("arn:"))
        if not named or others or fragment.conditions:
            raise ValueError(
                f"Invalid break_glass_principals entry: {principal}. Give IAM roles or users "
                "(iam.Role, iam.User, iam.ArnPrincipal, iam.AccountRootPrincipal): one ARN "
                "each, no service principal and no conditions."
            )
        checked.append(principal)
    return checked


def binding_literal(prop: str, value: str | None) -> None:
    """The key's binding digests this setting at synth, so it must be known then."""
    if value is not None and unresolved(value):
        raise ValueError(
            f"Invalid {prop}: {value!r} is a token. The import handler's binding digests it "
            "at synth (see README, trust model): give a literal string."
        )


def secret_arn_tag(secret_arn: str) -> None:
    if not unresolved(secret_arn) and len(secret_arn) > MAX_TAG_VALUE_LENGTH:
        raise ValueError(
            f"Invalid key_material_secret: its ARN {secret_arn[:60]!r}... is {len(secret_arn)} "
            f"characters; the key's binding tag holds at most {MAX_TAG_VALUE_LENGTH}. Use a "
            "secret with a shorter name."
        )


def json_field_length(value: str | None) -> None:
    """The key's declared-settings tag carries the field name (base64) within 256 characters."""
    size = len(value.encode()) if value is not None else 0
    if size > contract.MAX_JSON_FIELD_BYTES:
        raise ValueError(
            f"Invalid json_field: {str(value)[:40]!r} is {size} bytes of UTF-8; the key's binding "
            f"tag holds a field name of at most {contract.MAX_JSON_FIELD_BYTES}. Use a shorter "
            "field name."
        )


def renewal_imports_per_second(
    value: float | None, shared_handler: Construct | None, shared_value: float | None
) -> float:
    """The sweep's share of GetParametersForImport's quota: one per handler, so keys agree."""
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1
    ):
        raise ValueError(
            f"Invalid renewal_imports_per_second: {value!r}. Give requests per second above 0 "
            "and at most 1 (GetParametersForImport allows 1 per second per account and Region, "
            f"shared by everything there); default {contract.DEFAULT_IMPORTS_PER_SECOND}."
        )
    if shared_handler is None or shared_value is None:
        return float(value) if value is not None else contract.DEFAULT_IMPORTS_PER_SECOND
    if value is not None and float(value) != shared_value:
        raise ValueError(
            f"Invalid renewal_imports_per_second: {value!r}. The handler "
            f"{shared_handler.node.path!r} is "
            f"shared by every ImportedKey in the stack with the same handler_runtime and "
            f"handler_architecture, and sweeps at {shared_value}; give that (or leave it unset)."
        )
    return shared_value


# Each key stack's parent, read once per stack rather than once per key (a round trip each).
_NESTED_STACK_PARENTS: "weakref.WeakKeyDictionary[cdk.Stack, cdk.Stack | None]" = (
    weakref.WeakKeyDictionary()
)


def import_handler_stack(
    handler: Construct, handler_stack: cdk.Stack, key_stack: cdk.Stack
) -> None:
    """The handler confirms a key through CloudFormation's record of its own stack and of the
    stacks nested directly in it; a key anywhere else would be refused at deploy time."""
    if handler_stack is key_stack:
        return
    if key_stack not in _NESTED_STACK_PARENTS:
        _NESTED_STACK_PARENTS[key_stack] = key_stack.nested_stack_parent
    parent = _NESTED_STACK_PARENTS[key_stack]
    if parent is not None and handler_stack is parent:
        return
    raise ValueError(
        f"Invalid import_handler: {handler.node.path!r} is in stack {handler_stack.node.path!r}; "
        f"a key in {key_stack.node.path!r} can share only a handler of its own stack, or of the "
        "stack its nested stack belongs to."
    )


# The stack whose handlers each secret created in the app is tagged for (one tag per secret).
_SECRET_READERS: "weakref.WeakKeyDictionary[secretsmanager.Secret, str]" = (
    weakref.WeakKeyDictionary()
)


def secret_reader(secret: secretsmanager.ISecret, reader: str) -> None:
    """A secret created in the app carries one reader tag: the keys reading it must all be in
    one stack (their handlers' reader name)."""
    if not isinstance(secret, secretsmanager.Secret):
        return
    tagged_for = _SECRET_READERS.setdefault(secret, reader)
    if tagged_for != reader:
        raise ValueError(
            f"Invalid key_material_secret: {secret.node.path!r} is read by keys of stack "
            f"{tagged_for!r} and of stack {reader!r}; a secret holds one reader tag. Give each "
            "stack its own secret, or import the secret into the second stack and tag it there."
        )


# --- ImportedKeyFleet -------------------------------------------------------------------------

_FLEET_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,63}$")
FLEET_FIELDS = (
    "name",
    "secret",
    "alias",
    "description",
    "key_spec",
    "validity_days",
    "tags",
    "key_arn",
)


def nested_stacks(value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 200:
        raise ValueError(
            f"Invalid nested_stacks: {value!r}. Give a whole number from 1 to 200 (a stack "
            "holds at most 500 resources, including its nested stacks)."
        )


def fleet_entry(raw: object, where: str) -> dict[str, Any]:
    """A manifest entry's fields, checked; ValueError naming ``where`` and the field."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"Invalid fleet entry {where}: {raw!r:.60} is not an object.")
    unknown = sorted(set(map(str, raw)) - set(FLEET_FIELDS))
    if unknown:
        raise ValueError(
            f"Invalid fleet entry {where}: unknown field(s) {', '.join(unknown)}; the fields "
            f"are {', '.join(FLEET_FIELDS)}."
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
    for optional in ("alias", "description", "key_spec", "key_arn"):
        if raw.get(optional) is not None and not isinstance(raw[optional], str):
            raise ValueError(f"Invalid fleet entry {where}: {optional!r} must be a string.")
    if raw.get("key_arn") is not None:
        shaping = [name for name in ("description", "tags") if raw.get(name)]
        if shaping:
            raise ValueError(
                f"Invalid fleet entry {where}: {' and '.join(shaping)} with key_arn. An adopted "
                "key is not created by the fleet: set them where the key was created."
            )
    return {
        "name": str(raw["name"]),
        "secret": str(raw["secret"]),
        "alias": raw.get("alias"),
        "description": raw.get("description"),
        "key_spec": str(raw.get("key_spec") or "SYMMETRIC_DEFAULT"),
        "validity_days": validity,
        "tags": dict(tags),
        "key_arn": raw.get("key_arn"),
    }


def fleet_manifest(source: Path) -> list[dict[str, Any]]:
    """Every entry of a manifest file, checked (JSON, or YAML with PyYAML)."""
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
        fleet_entry(raw, f"#{index} ({raw.get('name', '?') if isinstance(raw, Mapping) else '?'})")
        for index, raw in enumerate(keys)
    ]


def fleet_entries(
    entries: Sequence[tuple[str, str | None]], groups: Sequence[int], capacity: int
) -> None:
    """Names unique and well formed, aliases unique, no nested stack over its capacity."""
    seen: dict[str, int] = {}
    aliases: dict[str, str] = {}
    counts: dict[int, int] = {}
    for index, ((name, alias), group) in enumerate(zip(entries, groups, strict=True)):
        if not _FLEET_NAME.match(name):
            raise ValueError(
                f"Invalid fleet entry #{index}: name {name!r:.70}. Use letters, digits and "
                "hyphens, starting with a letter, at most 64 characters."
            )
        if name in seen:
            raise ValueError(
                f"Invalid fleet entry #{index}: name {name!r} is also entry #{seen[name]}; each "
                "key needs its own name."
            )
        seen[name] = index
        if alias is not None:
            full = alias if alias.startswith("alias/") else f"alias/{alias}"
            if full in aliases:
                raise ValueError(
                    f"Invalid fleet entry #{index} ({name}): alias {full!r} is also "
                    f"{aliases[full]!r}'s."
                )
            aliases[full] = name
        counts[group] = counts.get(group, 0) + 1
    for group, count in sorted(counts.items()):
        if count > capacity:
            raise ValueError(
                f"Invalid fleet: nested stack Keys{group:03d} would hold {count} keys (at most "
                f"{capacity}). For a new fleet, raise nested_stacks; a deployed fleet's keys "
                "would move (and be replaced), so split it into a second fleet."
            )
