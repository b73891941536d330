"""The real CDK command line synthesizes the example app as a pipeline would: `cdk synth` in the
repository, cdk.json's app command run by the activated venv, real bundling, strict mode."""

import json
import sys
from pathlib import Path

import pytest
from support.cdk_cli import cdk_synth, imported_key_resources, validation_violations
from support.synth import REPO

pytestmark = pytest.mark.slow


def test_cdk_synth_of_the_example_app(tmp_path: Path) -> None:
    outdir = tmp_path / "cdk.out"
    result = cdk_synth(REPO, Path(sys.prefix), outdir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert validation_violations(outdir) == []

    resources, material = imported_key_resources(outdir, "ImportedKeyExample")
    handler_id = material["Properties"]["ServiceToken"]["Fn::GetAtt"][0]
    handler = resources[handler_id]
    assert handler["Type"] == "AWS::Lambda::Function"

    # The handler's asset is in the assembly, bundled with its package, ready to publish.
    assets = json.loads((outdir / "ImportedKeyExample.assets.json").read_text())["files"]
    asset = assets[handler["Properties"]["Code"]["S3Key"].removesuffix(".zip")]
    bundle = outdir / asset["source"]["path"]
    assert (bundle / "imported_key_handler" / "entry.py").is_file()
