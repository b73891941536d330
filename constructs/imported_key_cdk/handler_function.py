"""The one import handler per stack (per runtime and architecture) that every ImportedKey shares."""

import importlib.resources
import re
from pathlib import Path
from typing import cast

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from imported_key_handler import protocol

from .bundling import ASSET_EXCLUDES, HANDLER_PACKAGE, LocalPipBundling

# Newest first. The bundled cryptography carries a cffi built for one exact Python version, so
# the bundle is built per runtime.
SUPPORTED_RUNTIMES = {
    lambda_.Runtime.PYTHON_3_13.name: "3.13",
    lambda_.Runtime.PYTHON_3_14.name: "3.14",
}
SUPPORTED_ARCHITECTURES = {
    lambda_.Architecture.ARM_64.name: "arm64",
    lambda_.Architecture.X86_64.name: "x86_64",
}
# Leaves room for botocore's bounded retries and for the FAILED answer before Lambda stops
# the function (see imported_key_handler.response).
HANDLER_TIMEOUT = cdk.Duration.minutes(2)


def handler_source_dir() -> Path:
    """The handler package on disk, from a source checkout or an installed wheel."""
    return Path(str(importlib.resources.files(HANDLER_PACKAGE)))


def handler_code(runtime: lambda_.Runtime, architecture: lambda_.Architecture) -> lambda_.Code:
    python_version = SUPPORTED_RUNTIMES[runtime.name]
    arch = SUPPORTED_ARCHITECTURES[architecture.name]
    source = handler_source_dir()
    return lambda_.Code.from_asset(
        str(source),
        exclude=ASSET_EXCLUDES,
        # The source hash covers the bundling options, so the target platform is part of them:
        # otherwise an arm64 and an x86_64 bundle of the same folder share one hash.
        asset_hash_type=cdk.AssetHashType.SOURCE,
        bundling=cdk.BundlingOptions(
            image=runtime.bundling_image,
            command=["local-pip-bundling"],
            environment={"TARGET_PYTHON": python_version, "TARGET_ARCHITECTURE": arch},
            # jsii's stub spells the options out as keywords; at run time it passes one
            # positional BundlingOptions, which is what LocalPipBundling takes.
            local=cast(cdk.ILocalBundling, LocalPipBundling(source, python_version, arch)),
        ),
    )


def shared_handler(
    scope: Construct, runtime: lambda_.Runtime, architecture: lambda_.Architecture
) -> lambda_.Function:
    """Return the stack's import handler for this runtime and architecture, creating it once."""
    stack = cdk.Stack.of(scope)
    construct_id = "ImportedKeyHandler" + re.sub(
        r"[^A-Za-z0-9]", "", f"{runtime.name}{architecture.name}".title()
    )
    existing = stack.node.try_find_child(construct_id)
    if isinstance(existing, lambda_.Function):
        return existing
    log_group = logs.LogGroup(
        stack,
        f"{construct_id}Logs",
        retention=logs.RetentionDays.ONE_YEAR,
        removal_policy=cdk.RemovalPolicy.RETAIN,
    )
    return lambda_.Function(
        stack,
        construct_id,
        description="Imports key material from Secrets Manager into EXTERNAL KMS keys",
        runtime=runtime,
        architecture=architecture,
        handler=protocol.HANDLER_ENTRY,
        code=handler_code(runtime, architecture),
        timeout=HANDLER_TIMEOUT,
        memory_size=256,
        logging_format=lambda_.LoggingFormat.JSON,
        application_log_level_v2=lambda_.ApplicationLogLevel.INFO,
        system_log_level_v2=lambda_.SystemLogLevel.WARN,
        log_group=log_group,
    )
