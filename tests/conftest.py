"""Shared fixtures. Kept out of the repo root on purpose: a root conftest would put the repo
root on sys.path, where the ``constructs/`` source folder could shadow the PyPI package."""

import os
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager

from imported_key_cdk import ImportedKey

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

REPO = Path(__file__).resolve().parents[1]
ARCHITECTURES = {"arm64": lambda_.Architecture.ARM_64, "x86_64": lambda_.Architecture.X86_64}
BUNDLE_SECRET_ARN = "arn:aws:secretsmanager:us-east-1:000000000000:secret:bundle-AbCdEf"


def synth_with_bundling(outdir: Path) -> tuple[cdk.Stack, dict[str, str]]:
    """Synthesize one key per architecture with real bundling; return asset dir per arch."""
    app = cdk.App(outdir=str(outdir))
    stack = cdk.Stack(app, "Bundles")
    secret = secretsmanager.Secret.from_secret_complete_arn(stack, "S", BUNDLE_SECRET_ARN)
    for name, architecture in ARCHITECTURES.items():
        ImportedKey(stack, name, key_material_secret=secret, handler_architecture=architecture)
    assembly = app.synth()
    template = assembly.get_stack_by_name("Bundles").template
    assets: dict[str, str] = {}
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Lambda::Function":
            (arch,) = resource["Properties"]["Architectures"]
            asset_hash = resource["Properties"]["Code"]["S3Key"].removesuffix(".zip")
            assets[arch] = str(outdir / f"asset.{asset_hash}")
    return stack, assets


@pytest.fixture(scope="session")
def lambda_bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The handler's Lambda asset for each architecture, bundled once per session."""
    _, assets = synth_with_bundling(tmp_path_factory.mktemp("bundles"))
    return {arch: Path(path) for arch, path in assets.items()}
