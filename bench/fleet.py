"""Fleet figures: what N ImportedKeys cost next to N plain ``kms.Key``s, from paired runs.

Each run synthesizes one stack in its own Python process (``python bench/fleet.py KIND N OUT``),
as ``cdk synth`` runs an app: N keys, each with a secret known by ARN and an encrypt/decrypt
grant to one role, the same for both kinds. ``paired_ratios`` alternates the two kinds (which
goes first switches every pair, so drift on the machine falls on both) and reports the median
of the per-pair ratios. The bundle cache is warmed first, so no run installs anything.

Also read from the templates: resources per added key, the largest template, and the size of
the import handler's IAM policy.
"""

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
KINDS = ("imported", "plain")
PAIRS = 5


def build(kind: str, keys: int, outdir: Path) -> None:
    """The stack of one run (in this process): ``keys`` keys of ``kind``."""
    sys.path[:0] = [str(REPO / "constructs"), str(REPO / "lambda")]
    import aws_cdk as cdk
    from aws_cdk import aws_iam as iam
    from aws_cdk import aws_kms as kms
    from aws_cdk import aws_secretsmanager as secretsmanager

    from imported_key_cdk import ImportedKey

    app = cdk.App(outdir=str(outdir))
    stack = cdk.Stack(app, "Fleet", env=cdk.Environment(account="111122223333", region="eu-west-1"))
    user = iam.Role(stack, "User", assumed_by=iam.AccountRootPrincipal())
    for index in range(keys):
        arn = f"arn:aws:secretsmanager:eu-west-1:111122223333:secret:fleet/key-{index}-AbCdEf"
        secret = secretsmanager.Secret.from_secret_complete_arn(stack, f"Secret{index}", arn)
        key: kms.IKey
        if kind == "imported":
            key = ImportedKey(stack, f"Key{index}", key_material_secret=secret)
        else:
            key = kms.Key(stack, f"Key{index}")
        key.grant_encrypt_decrypt(user)
    app.synth()


def synth_seconds(kind: str, keys: int, outdir: Path, cache: Path) -> float:
    env = dict(os.environ, IMPORTED_KEY_CDK_CACHE=str(cache))
    env["JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"] = "20"
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, __file__, kind, str(keys), str(outdir)],
        env=env, cwd=REPO, check=True, capture_output=True, timeout=1800,
    )  # fmt: skip
    return time.perf_counter() - started


def template_of(outdir: Path) -> dict[str, Any]:
    return dict(json.loads((outdir / "Fleet.template.json").read_text()))


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


def paired_ratios(sizes: list[int], work: Path, cache: Path) -> dict[str, Any]:
    """For each size: median seconds of each kind and the median of the pairs' ratios."""
    synth_seconds("imported", 1, work / "warm-up", cache)  # fills the bundle cache
    figures: dict[str, Any] = {}
    for keys in sizes:
        times: dict[str, list[float]] = {kind: [] for kind in KINDS}
        for pair in range(PAIRS):
            order = KINDS if pair % 2 == 0 else KINDS[::-1]
            for kind in order:
                outdir = work / f"{kind}-{keys}-{pair}"
                times[kind].append(synth_seconds(kind, keys, outdir, cache))
        ratios = [a / b for a, b in zip(times["imported"], times["plain"], strict=True)]
        imported = template_of(work / f"imported-{keys}-0")
        plain = template_of(work / f"plain-{keys}-0")
        figures[str(keys)] = {
            "imported_s": statistics.median(times["imported"]),
            "plain_s": statistics.median(times["plain"]),
            "ratio_median_of_pairs": statistics.median(ratios),
            "ratios": ratios,
            "imported_resources": len(imported["Resources"]),
            "plain_resources": len(plain["Resources"]),
            "handler_policy": handler_policies(imported),
        }
    if len(sizes) > 1:
        low, high = str(sizes[0]), str(sizes[-1])
        added = sizes[-1] - sizes[0]
        for kind in KINDS:
            grown = figures[high][f"{kind}_resources"] - figures[low][f"{kind}_resources"]
            figures[f"{kind}_resources_per_added_key"] = grown / added
    figures["pairs"] = PAIRS
    return figures


if __name__ == "__main__":
    build(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))
