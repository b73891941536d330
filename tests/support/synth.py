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


def example_app() -> ModuleType:
    """The repository's app.py as a module (the repo root is never put on sys.path)."""
    spec = importlib.util.spec_from_file_location("example_app", REPO / "app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
