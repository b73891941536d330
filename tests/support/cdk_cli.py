"""The real AWS CDK command line (npm `aws-cdk`, pinned in package.json), as pipelines run it."""

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from support.synth import REPO

CDK = REPO / "node_modules" / ".bin" / "cdk"
# No call home from a test: notices, the version check and telemetry all reach the network.
QUIET_ENV = {
    "CDK_DISABLE_VERSION_CHECK": "1",
    "CDK_DISABLE_CLI_TELEMETRY": "1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def cdk_synth(
    project: Path, venv: Path, outdir: Path, *options: str
) -> subprocess.CompletedProcess[str]:
    """``cdk synth`` in ``project`` with ``venv`` activated, so cdk.json's ``python3`` is its.

    ``--strict`` fails the synth on any construct warning, as a careful pipeline would.
    """
    assert CDK.is_file(), f"{CDK} is missing: run `make test` (it runs npm ci)"
    env = {
        **os.environ,
        **QUIET_ENV,
        "VIRTUAL_ENV": str(venv),
        "PATH": os.pathsep.join([str(venv / "bin"), os.environ.get("PATH", "")]),
    }
    # The app must import what the venv holds, not what the test run was given.
    for variable in ("PYTHONHOME", "PYTHONPATH"):
        env.pop(variable, None)
    command = [
        str(CDK),
        "synth",
        "--quiet",
        "--strict",
        "--no-notices",
        "--output",
        str(outdir),
        *options,
    ]
    return subprocess.run(
        command, cwd=project, env=env, capture_output=True, text=True, timeout=900, check=False
    )


def stack_template(outdir: Path, stack_name: str) -> dict[str, Any]:
    """The template the cloud assembly's manifest names for ``stack_name``."""
    manifest = json.loads((outdir / "manifest.json").read_text())
    artifact = manifest["artifacts"][stack_name]
    assert artifact["type"] == "aws:cloudformation:stack"
    template: dict[str, Any] = json.loads(
        (outdir / artifact["properties"]["templateFile"]).read_text()
    )
    return template


def validation_violations(outdir: Path) -> list[str]:
    """Every violation in the assembly's validation report (CDK's own checks and plugins)."""
    report = json.loads((outdir / "validation-report.json").read_text())
    return [
        f"{plugin['pluginName']}: {violation['ruleName']}"
        for plugin in report["pluginReports"]
        for violation in plugin["violations"]
    ]


def imported_key_resources(outdir: Path, stack_name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The stack's resources and its import, after checking that the import is of the stack's
    one key and that this key is EXTERNAL."""
    resources: dict[str, Any] = stack_template(outdir, stack_name)["Resources"]
    (key_id,) = [k for k, r in resources.items() if r["Type"] == "AWS::KMS::Key"]
    assert resources[key_id]["Properties"]["Origin"] == "EXTERNAL"
    (material,) = [r for r in resources.values() if r["Type"] == "Custom::ImportedKeyMaterial"]
    assert material["Properties"]["KeyId"] == {"Ref": key_id}
    return resources, material
