"""Synthesizing stacks and the example app for tests, with real bundling where asked."""

import importlib.util
from pathlib import Path
from types import ModuleType

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager

from imported_key_cdk import ImportedKey

REPO = Path(__file__).resolve().parents[2]
ARCHITECTURES = {"arm64": lambda_.Architecture.ARM_64, "x86_64": lambda_.Architecture.X86_64}
# The context key (cx-api's BUNDLING_STACKS) naming the stacks whose assets are bundled.
BUNDLING_STACKS = "aws:cdk:bundling-stacks"
BUNDLE_SECRET_ARN = "arn:aws:secretsmanager:us-east-1:000000000000:secret:bundle-AbCdEf"


def _synth_keys(app: cdk.App) -> tuple[cdk.Stack, dict[str, str]]:
    """One key per architecture; the handler asset's hash per architecture."""
    stack = cdk.Stack(app, "Bundles")
    secret = secretsmanager.Secret.from_secret_complete_arn(stack, "S", BUNDLE_SECRET_ARN)
    for name, architecture in ARCHITECTURES.items():
        ImportedKey(stack, name, key_material_secret=secret, handler_architecture=architecture)
    assembly = app.synth()
    template = assembly.get_stack_by_name("Bundles").template
    hashes: dict[str, str] = {}
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Lambda::Function":
            (arch,) = resource["Properties"]["Architectures"]
            hashes[arch] = resource["Properties"]["Code"]["S3Key"].removesuffix(".zip")
    return stack, hashes


def synth_with_bundling(outdir: Path) -> tuple[cdk.Stack, dict[str, str]]:
    """Synthesize one key per architecture with real bundling; return asset dir per arch."""
    stack, hashes = _synth_keys(cdk.App(outdir=str(outdir)))
    return stack, {arch: str(outdir / f"asset.{digest}") for arch, digest in hashes.items()}


def asset_hashes_without_bundling(outdir: Path) -> dict[str, str]:
    """The handler asset's hash per architecture, from a synth that skips bundling (no pip).

    The handler asset is hashed from its source and bundling options, so skipping the bundling
    leaves the hash as a bundling synth computes it.
    """
    app = cdk.App(outdir=str(outdir), context={BUNDLING_STACKS: []})
    return _synth_keys(app)[1]


def example_app() -> ModuleType:
    """The repository's app.py as a module (the repo root is never put on sys.path)."""
    spec = importlib.util.spec_from_file_location("example_app", REPO / "app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
