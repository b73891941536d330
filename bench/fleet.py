"""Fleet figures: what N ImportedKeys cost next to N plain ``kms.Key``s, from paired runs.

Each run synthesizes one app in its own Python process (``python bench/fleet.py KIND LAYOUT N
OUT [alias]``), as ``cdk synth`` runs an app: N keys, each with a secret known by ARN and an
encrypt/decrypt grant to a consumer role, the same for both kinds. Two layouts:

- ``stack``: every key in one stack with one consumer role (what a single-stack app does);
- ``fleet``: an ``ImportedKeyFleet`` of N keys, next to N plain keys spread over nested stacks
  exactly as the fleet spreads them (``group_of(name, nested_stacks)``, the same names and
  construct paths), one consumer role in each nested stack, so grants stay inside the nested
  stack that holds the key, as in the single stack.

``paired_ratios`` alternates the two kinds (which goes first switches every pair, so drift on
the machine falls on both) and reports the median of the per-pair ratios, of wall time and of
CPU time (see ``synth_seconds``). The bundle cache is warmed first, so no run installs
anything.

Also read from the templates: resources per added key (with and without an alias), the
largest template of a fleet (parent or nested), and the size of the import handler's IAM
policy.
"""

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
KINDS = ("imported", "plain")
# Keys that exist already, adopted by ARN (counted, not timed).
ADOPTED = "adopted"
LAYOUTS = ("stack", "fleet")
PAIRS = 5
STACK = "Fleet"
# The fleet's default, so the plain keys are spread as a default fleet spreads its keys.
NESTED_STACKS = 16


@dataclass(frozen=True)
class Case:
    """One paired comparison: ``keys`` keys laid out as ``layout``, ``pairs`` pairs."""

    layout: str
    keys: int
    pairs: int = PAIRS

    @property
    def name(self) -> str:
        return str(self.keys) if self.layout == "stack" else f"{self.keys}_fleet"


def key_name(index: int) -> str:
    """The fleet key's name (letters, digits and hyphens, as a fleet entry needs)."""
    return f"key-{index:04d}"


def secret_arn(index: int) -> str:
    return f"arn:aws:secretsmanager:eu-west-1:111122223333:secret:fleet/key-{index}-AbCdEf"


def adopted_key_arn(index: int) -> str:
    return f"arn:aws:kms:eu-west-1:111122223333:key/00000000-0000-4000-8000-{index:012d}"


def build(kind: str, layout: str, keys: int, outdir: Path, alias: bool = False) -> None:
    """The app of one run (in this process): ``keys`` keys of ``kind`` laid out as ``layout``."""
    sys.path[:0] = [str(REPO / "constructs"), str(REPO / "lambda")]
    import aws_cdk as cdk
    from aws_cdk import aws_iam as iam
    from aws_cdk import aws_kms as kms
    from aws_cdk import aws_secretsmanager as secretsmanager
    from constructs import Construct

    from imported_key_cdk import FleetKey, ImportedKey, ImportedKeyFleet
    from imported_key_cdk.fleet import group_of

    app = cdk.App(outdir=str(outdir))
    stack = cdk.Stack(app, STACK, env=cdk.Environment(account="111122223333", region="eu-west-1"))
    if (
        kind not in (*KINDS, ADOPTED)
        or layout not in LAYOUTS
        or (kind, layout) == (ADOPTED, "fleet")
    ):
        raise ValueError(f"kind {kind!r} or layout {layout!r}: choose from {KINDS}, {LAYOUTS}")

    if layout == "stack":
        user = iam.Role(stack, "User", assumed_by=iam.AccountRootPrincipal())
        for index in range(keys):
            arn = secret_arn(index)
            secret = secretsmanager.Secret.from_secret_complete_arn(stack, f"Secret{index}", arn)
            name = f"alias/fleet/key-{index}" if alias else None
            key: kms.IKey
            if kind == "imported":
                key = ImportedKey(stack, f"Key{index}", key_material_secret=secret, alias=name)
            elif kind == ADOPTED:
                key = ImportedKey(
                    stack,
                    f"Key{index}",
                    key_material_secret=secret,
                    alias=name,
                    existing_key_arn=adopted_key_arn(index),
                )
            else:
                key = kms.Key(stack, f"Key{index}", alias=name)
            key.grant_encrypt_decrypt(user)
        app.synth()
        return

    names = [key_name(index) for index in range(keys)]
    aliases = [f"fleet/{name}" if alias else None for name in names]
    grants: list[tuple[cdk.NestedStack, kms.IKey]] = []
    if kind == "imported":
        fleet = ImportedKeyFleet(
            stack,
            "Fleet",
            keys=[
                FleetKey(name=name, secret=secret_arn(index), alias=aliases[index])
                for index, name in enumerate(names)
            ],
            nested_stacks=NESTED_STACKS,
        )
        for name in names:
            grants.append((fleet.stacks[group_of(name, NESTED_STACKS)], fleet.keys[name]))
    else:
        # What ImportedKeyFleet builds, with kms.Key in place of ImportedKey: the same
        # container, nested stacks, construct ids and imported secrets.
        container = Construct(stack, "Fleet")
        nested: dict[int, cdk.NestedStack] = {}
        for index, name in enumerate(names):
            group = group_of(name, NESTED_STACKS)
            if group not in nested:
                nested[group] = cdk.NestedStack(container, f"Keys{group:03d}")
            secretsmanager.Secret.from_secret_complete_arn(
                nested[group], f"{name}Secret", secret_arn(index)
            )
            alias_name = f"alias/{aliases[index]}" if aliases[index] else None
            grants.append((nested[group], kms.Key(nested[group], name, alias=alias_name)))
    users: dict[str, iam.Role] = {}
    for holder, key in grants:
        if holder.node.path not in users:
            users[holder.node.path] = iam.Role(
                holder, "User", assumed_by=iam.AccountRootPrincipal()
            )
        key.grant_encrypt_decrypt(users[holder.node.path])
    app.synth()


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def synth_seconds(
    kind: str, layout: str, keys: int, outdir: Path, cache: Path, alias: bool = False
) -> tuple[float, float]:
    """Wall seconds of one run, and CPU seconds of its process tree (Python and the jsii
    Node.js process it waits for): on a machine shared with other work, wall time grows with
    the others' load, CPU time much less."""
    env = dict(os.environ, IMPORTED_KEY_CDK_CACHE=str(cache))
    env["JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"] = "20"
    command = [sys.executable, __file__, kind, layout, str(keys), str(outdir)]
    cpu, started = _children_cpu_s(), time.perf_counter()
    subprocess.run(
        command + (["alias"] if alias else []),
        env=env, cwd=REPO, check=True, capture_output=True, timeout=3600,
    )  # fmt: skip
    return time.perf_counter() - started, _children_cpu_s() - cpu


def template_of(outdir: Path) -> dict[str, Any]:
    return dict(json.loads((outdir / f"{STACK}.template.json").read_text()))


def stack_sizes(outdir: Path) -> dict[str, int]:
    """Resources in each template of the assembly (the stack and its nested stacks)."""
    return {
        path.name.removesuffix(".template.json"): len(json.loads(path.read_text())["Resources"])
        for path in sorted(outdir.glob("*.template.json"))
    }


def largest_stack(outdir: Path) -> dict[str, Any]:
    sizes = stack_sizes(outdir)
    name = max(sizes, key=lambda n: sizes[n])
    largest_bytes = max(path.stat().st_size for path in outdir.glob("*.template.json"))
    return {
        "stacks": len(sizes),
        "largest": name,
        "largest_resources": sizes[name],
        "parent_resources": sizes[STACK],
        "total_resources": sum(sizes.values()),
        "largest_template_bytes": largest_bytes,
    }


# Roughly what IAM counts once CloudFormation has resolved a reference (IAM counts the policy's
# characters without whitespace): a key ARN, another attribute, a Ref.
_RESOLVED = {"Arn": "arn:aws:kms:eu-west-1:111122223333:key/" + "0" * 36}


def _resolved(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"Fn::GetAtt"}:
            return _RESOLVED.get(value["Fn::GetAtt"][1], "x" * 40)
        if set(value) == {"Ref"}:
            return "x" * 20
        if set(value) == {"Fn::Join"}:
            return "".join(str(_resolved(part)) for part in value["Fn::Join"][1])
        return {key: _resolved(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolved(item) for item in value]
    return value


def handler_policies(template: dict[str, Any]) -> dict[str, int]:
    """The import handler's IAM policies: how many (CDK spills a long default policy into
    managed "overflow" policies) and their characters once resolved, as IAM counts them."""
    documents = [
        resource["Properties"]["PolicyDocument"]
        for name, resource in template["Resources"].items()
        if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")
        and name.startswith("ImportedKeyHandler")
    ]
    return {
        "policies": len(documents),
        "resolved_chars": sum(
            len(json.dumps(_resolved(document), separators=(",", ":"))) for document in documents
        ),
    }


def paired_ratios(cases: list[Case], work: Path, cache: Path) -> dict[str, Any]:
    """For each case: median seconds of each kind and the median of the pairs' ratios."""
    synth_seconds("imported", "stack", 1, work / "warm-up", cache)  # fills the bundle cache
    figures: dict[str, Any] = {}
    for case in cases:
        times: dict[str, list[float]] = {kind: [] for kind in KINDS}
        cpu: dict[str, list[float]] = {kind: [] for kind in KINDS}
        for pair in range(case.pairs):
            order = KINDS if pair % 2 == 0 else KINDS[::-1]
            for kind in order:
                outdir = work / f"{kind}-{case.name}-{pair}"
                wall, used = synth_seconds(kind, case.layout, case.keys, outdir, cache)
                times[kind].append(wall)
                cpu[kind].append(used)
                if pair > 0:  # the first pair's assemblies are kept for the template figures
                    shutil.rmtree(outdir)
        ratios = [a / b for a, b in zip(times["imported"], times["plain"], strict=True)]
        cpu_ratios = [a / b for a, b in zip(cpu["imported"], cpu["plain"], strict=True)]
        imported = work / f"imported-{case.name}-0"
        plain = work / f"plain-{case.name}-0"
        figure: dict[str, Any] = {
            "layout": case.layout,
            "keys": case.keys,
            "pairs": case.pairs,
            "imported_s": statistics.median(times["imported"]),
            "plain_s": statistics.median(times["plain"]),
            "ratio_median_of_pairs": statistics.median(ratios),
            "ratios": ratios,
            "imported_cpu_s": statistics.median(cpu["imported"]),
            "plain_cpu_s": statistics.median(cpu["plain"]),
            "cpu_ratio_median_of_pairs": statistics.median(cpu_ratios),
            "cpu_ratios": cpu_ratios,
            "imported_resources": sum(stack_sizes(imported).values()),
            "plain_resources": sum(stack_sizes(plain).values()),
            "handler_policy": handler_policies(template_of(imported)),
        }
        if case.layout == "fleet":
            figure["imported_stacks"] = largest_stack(imported)
            figure["plain_stacks"] = largest_stack(plain)
        figures[case.name] = figure
    return figures


def resources_per_added_key(low: int, high: int, work: Path, cache: Path) -> dict[str, float]:
    """Resources one stack gains per key from ``low`` to ``high`` keys, by kind and alias."""
    per_key: dict[str, float] = {}
    for kind in (*KINDS, ADOPTED):
        for alias in (False, True):
            counts = []
            for keys in (low, high):
                outdir = work / f"count-{kind}-{keys}-{alias}"
                synth_seconds(kind, "stack", keys, outdir, cache, alias=alias)
                counts.append(len(template_of(outdir)["Resources"]))
            label = f"{kind}_with_alias" if alias else kind
            per_key[label] = (counts[1] - counts[0]) / (high - low)
    return per_key


def fleet_figures(cases: list[Case], work: Path, cache: Path) -> dict[str, Any]:
    """Everything ``make bench`` reports under ``fleet_vs_plain_keys``."""
    figures = paired_ratios(cases, work, cache)
    stack_sizes_measured = sorted(c.keys for c in cases if c.layout == "stack")
    low, high = stack_sizes_measured[0], stack_sizes_measured[-1]
    figures["resources_per_added_key"] = {
        "from_to": [low, high],
        **resources_per_added_key(low, high, work, cache),
    }
    figures["handler_policy_by_keys"] = {
        str(case.keys): figures[case.name]["handler_policy"] for case in cases
    }
    # Adopted keys add four statements to the handler's policy, once: the same at low and high.
    figures["handler_policy_with_adopted_keys"] = {
        str(keys): handler_policies(template_of(work / f"count-{ADOPTED}-{keys}-False"))
        for keys in (low, high)
    }
    return figures


if __name__ == "__main__":
    build(
        sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]), alias="alias" in sys.argv[5:]
    )
