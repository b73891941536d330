"""cdk-nag (AwsSolutions, NIST 800-53 rev 5) and cfn-lint over the example app and a maximal
configuration: no finding without an in-code acknowledgement that says why it does not apply."""

import subprocess
import sys
from pathlib import Path

import aws_cdk as cdk
import cdk_nag
import pytest
from aws_cdk import aws_kms as kms
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Annotations, Match
from stacks import NO_BUNDLING
from support.synth import example_app

from imported_key_cdk import ImportedKey, MaterialEncoding

# CDK gives every Lambda function an explicit DependsOn on its role, which the role's GetAtt
# already implies; cfn-lint flags that as W3005. It is CDK's doing and harmless.
CFN_LINT_IGNORED = ["W3005"]
CFN_LINT = str(Path(sys.executable).parent / "cfn-lint")


def maximal_stack(app: cdk.App) -> cdk.Stack:
    """Every option that adds resources or permissions, in one stack."""
    stack = cdk.Stack(app, "Maximal")
    topic_key = kms.Key(stack, "TopicKey", enable_key_rotation=True)
    topic = sns.Topic(stack, "Alarms", master_key=topic_key, enforce_ssl=True)
    secret_key = kms.Key(stack, "SecretKey", enable_key_rotation=True)
    secret = secretsmanager.Secret(stack, "Material", encryption_key=secret_key)
    # The material is put in by hand, never rotated by Secrets Manager: say so, as a user would.
    cfn_secret = secret.node.default_child
    assert isinstance(cfn_secret, cdk.CfnResource)
    cfn_secret.add_metadata(
        "cdk_nag",
        {
            "rules_to_suppress": [
                {"id": rule, "reason": "Key material is rotated by importing new material."}
                for rule in ("AwsSolutions-SMG4", "NIST.800.53.R5-SecretsManagerRotationEnabled")
            ]
        },
    )
    common = {"key_material_secret": secret, "alarm_topic": topic}
    ImportedKey(
        stack, "Symmetric", rotation_on_material_change=True, delete_material_on_removal=True,
        **common,
    )  # fmt: skip
    ImportedKey(stack, "Hmac", key_spec=kms.KeySpec.HMAC_512, **common)
    ImportedKey(
        stack, "Rsa", key_spec=kms.KeySpec.RSA_4096, key_usage=kms.KeyUsage.SIGN_VERIFY,
        material_encoding=MaterialEncoding.PEM, json_field="privateKey", **common,
    )  # fmt: skip
    ImportedKey(
        stack, "X86", key_spec=kms.KeySpec.ECC_NIST_P384,
        handler_architecture=cdk.aws_lambda.Architecture.X86_64, **common,
    )  # fmt: skip
    return stack


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[cdk.Stack], Path]:
    outdir = tmp_path_factory.mktemp("scanned")
    app = cdk.App(outdir=str(outdir), context=NO_BUNDLING)
    stacks = [example_app().ExampleStack(app, "Example"), maximal_stack(app)]
    for stack in stacks:
        cdk.Aspects.of(stack).add(cdk_nag.AwsSolutionsChecks(verbose=True))
        cdk.Aspects.of(stack).add(cdk_nag.NIST80053R5Checks(verbose=True))
    app.synth()
    return stacks, outdir


@pytest.mark.parametrize("stack_name", ["Example", "Maximal"])
def test_cdk_nag_finds_nothing_unacknowledged(
    synthesized: tuple[list[cdk.Stack], Path], stack_name: str
) -> None:
    (stack,) = [s for s in synthesized[0] if s.stack_name == stack_name]
    annotations = Annotations.from_stack(stack)
    findings = [
        f"{m.id}: {str(m.entry.data)[:160]}"
        for m in annotations.find_error("*", Match.string_like_regexp(".*"))
        + annotations.find_warning("*", Match.string_like_regexp(".*"))
    ]
    assert findings == []


def test_acknowledgements_are_really_read_by_cdk_nag() -> None:
    """Without the library's acknowledgements the same stack has findings: the scan can fail."""
    app = cdk.App(context=NO_BUNDLING)
    stack = cdk.Stack(app, "Bare")
    bare = kms.Key(stack, "Plain")  # rotation off, nothing acknowledged
    cdk.Aspects.of(stack).add(cdk_nag.AwsSolutionsChecks())
    app.synth()
    errors = Annotations.from_stack(stack).find_error(
        "*", Match.string_like_regexp("AwsSolutions-KMS5.*")
    )
    assert errors, "cdk-nag reported nothing for a key without rotation"
    del bare


def test_cfn_lint_passes_every_template(synthesized: tuple[list[cdk.Stack], Path]) -> None:
    templates = sorted(str(p) for p in synthesized[1].glob("*.template.json"))
    assert len(templates) == 2
    result = subprocess.run(
        [CFN_LINT, "--ignore-checks", *CFN_LINT_IGNORED, "--", *templates],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_cfn_lint_does_report_a_broken_template(tmp_path: Path) -> None:
    broken = tmp_path / "broken.template.json"
    broken.write_text(
        '{"Resources": {"K": {"Type": "AWS::KMS::Key", "Properties": {"Origin": 7}}}}'
    )
    result = subprocess.run(
        [CFN_LINT, "--", str(broken)], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode != 0
    assert "E3030" in result.stdout  # the allowed values of Origin
