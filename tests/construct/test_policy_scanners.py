"""cdk-nag (AwsSolutions, NIST 800-53 rev 5) and cfn-lint over the example app and a maximal
configuration: no finding without an in-code acknowledgement that says why it does not apply.

Both cdk-nag majors are run. cdk-nag 3 (the venv's, from requirements.txt) is a CDK validation
plugin and reads CDK's own acknowledgements; cdk-nag 2 is an aspect and reads the ``cdk_nag``
metadata. The two cannot share one interpreter (both are jsii packages named ``cdk_nag``), so
cdk-nag 2 is installed on its own by ``make test`` and this module runs itself in a subprocess
with that directory ahead of the venv (see ``__main__`` at the end).
"""

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import aws_cdk as cdk
import cdk_nag
import pytest
from aws_cdk import aws_kms as kms
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from stacks import NO_BUNDLING, assert_acyclic
from support.synth import REPO, example_app

from imported_key_cdk import ImportedKey, MaterialEncoding
from imported_key_cdk._nag import acknowledge, wildcard_resource

# CDK gives every Lambda function an explicit DependsOn on its role, which the role's GetAtt
# already implies; cfn-lint flags that as W3005. It is CDK's doing and harmless.
CFN_LINT_IGNORED = ["W3005"]
CFN_LINT = str(Path(sys.executable).parent / "cfn-lint")
# Where `make test` installs cdk-nag 2 (tests/cdk-nag2-requirements.txt), outside site-packages.
CDK_NAG2 = Path(sys.prefix) / "cdk-nag2"

# The rule ids of the two packs scanned (anything else annotated is the library's own).
NAG_PACKS = ("AwsSolutions-", "NIST.800.53.R5-")
# A key without rotation, next to the library's keys: each major must report it, and only it.
# A scan that reports nothing at all proves nothing; this also shows that the library's
# acknowledgement of the same rules on its own key does not reach another construct.
CONTROL_FINDINGS = sorted(
    (rule, "Control/Unrotated/Resource")
    for rule in ("AwsSolutions-KMS5", "NIST.800.53.R5-KMSBackingKeyRotationEnabled")
)


def maximal_stack(app: cdk.App) -> cdk.Stack:
    """Every option that adds resources or permissions, in one stack."""
    stack = cdk.Stack(app, "Maximal")
    topic_key = kms.Key(stack, "TopicKey", enable_key_rotation=True)
    topic = sns.Topic(stack, "Alarms", master_key=topic_key, enforce_ssl=True)
    secret_key = kms.Key(stack, "SecretKey", enable_key_rotation=True)
    secret = secretsmanager.Secret(stack, "Material", encryption_key=secret_key)
    # The material is put in by hand, never rotated by Secrets Manager: say so, for both majors.
    acknowledge(
        secret,
        {
            rule: "Key material is rotated by importing new material."
            for rule in ("AwsSolutions-SMG4", "NIST.800.53.R5-SecretsManagerRotationEnabled")
        },
    )
    common = {"key_material_secret": secret, "alarm_topic": topic}
    responder = cdk.aws_iam.Role(stack, "Responder", assumed_by=cdk.aws_iam.AccountRootPrincipal())
    ImportedKey(
        stack, "Symmetric", rotation_on_material_change=True, delete_material_on_removal=True,
        break_glass_principals=[responder], **common,
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


def scanned_app(outdir: Path) -> cdk.App:
    app = cdk.App(outdir=str(outdir), context=NO_BUNDLING)
    example_app().ExampleStack(app, "Example")
    maximal_stack(app)
    kms.Key(cdk.Stack(app, "Control"), "Unrotated")
    return app


def cdk_nag3_findings(outdir: Path) -> list[tuple[str, str]]:
    """(rule, construct path) of every violation cdk-nag 3 reports; the synth fails on any."""
    app = scanned_app(outdir)
    cdk.Validations.of(app).add_plugins(
        cdk_nag.AwsSolutionsChecks(app, verbose=True), cdk_nag.NIST80053R5Checks(app, verbose=True)
    )
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((outdir / "validation-report.json").read_text())
    return sorted(
        (violation["ruleName"], construct["constructPath"])
        for plugin in report["pluginReports"]
        for violation in plugin["violations"]
        for construct in violation["violatingConstructs"]
    )


def cdk_nag2_findings(outdir: Path) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(rule, construct path) of every error and warning cdk-nag 2 annotates; then the other
    errors and warnings (message, path): the library's own."""
    app = scanned_app(outdir)
    stacks = [child for child in app.node.children if isinstance(child, cdk.Stack)]
    for stack in stacks:
        cdk.Aspects.of(stack).add(cdk_nag.AwsSolutionsChecks(verbose=True))
        cdk.Aspects.of(stack).add(cdk_nag.NIST80053R5Checks(verbose=True))
    app.synth()
    # Read from the cloud assembly's files, as the CDK CLI does. Annotations.find_* would go
    # through jsii, whose cdk-nag 2 import fails now and then to resolve the assembly's
    # MetadataEntry interface ("Unknown interface"), failing the scan for no finding.
    manifest = json.loads((outdir / "manifest.json").read_text())
    findings, others = [], []
    for stack in stacks:
        artifact = manifest["artifacts"][stack.artifact_id]
        metadata = dict(artifact.get("metadata", {}))
        if "additionalMetadataFile" in artifact:
            metadata.update(json.loads((outdir / artifact["additionalMetadataFile"]).read_text()))
        for path, entries in metadata.items():
            for entry in entries:
                if entry["type"] in ("aws:cdk:error", "aws:cdk:warning"):
                    rule = str(entry["data"]).split(":", 1)[0]
                    if rule.startswith(NAG_PACKS):
                        findings.append((rule, path.removeprefix("/")))
                    else:
                        others.append((str(entry["data"]), path.removeprefix("/")))
    return sorted(findings), sorted(others)


@pytest.fixture(scope="module")
def nag3(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[tuple[str, str]], Path]:
    outdir = tmp_path_factory.mktemp("scanned")
    return cdk_nag3_findings(outdir), outdir


def test_cdk_nag_3_finds_nothing_unacknowledged(
    nag3: tuple[list[tuple[str, str]], Path],
) -> None:
    assert version("cdk-nag").startswith("3."), "requirements.txt pins the current cdk-nag 3"
    assert nag3[0] == CONTROL_FINDINGS


@pytest.mark.slow
def test_cdk_nag_2_finds_nothing_unacknowledged(tmp_path: Path) -> None:
    assert (CDK_NAG2 / "cdk_nag").is_dir(), f"cdk-nag 2 is not in {CDK_NAG2}: run `make test`"
    # PYTHONPATH comes before site-packages, so this interpreter imports cdk-nag 2.
    pythonpath = os.pathsep.join([str(CDK_NAG2), str(REPO / "tests")])
    result = subprocess.run(
        [sys.executable, __file__, str(tmp_path)],
        env={**os.environ, "PYTHONPATH": pythonpath},
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    scan = json.loads(result.stdout.strip().splitlines()[-1])
    assert scan["cdk-nag"].startswith("2.")
    assert [tuple(f) for f in scan["findings"]] == CONTROL_FINDINGS
    # Nor any warning of the library's own: the example acknowledges the one about its secret,
    # imported by name and tagged by hand (the Maximal stack creates its secret and tags it).
    assert scan["others"] == []


def test_acknowledgements_reach_both_majors_on_the_resource_only() -> None:
    """What each major reads, on the CloudFormation resource and not on its parent."""
    app = cdk.App(context=NO_BUNDLING)
    key = kms.Key(cdk.Stack(app, "Stack"), "Key")
    acknowledge(key, {"Rule-A": "first"})
    acknowledge(key, {"Rule-B": "second"})
    resource = key.node.default_child
    assert isinstance(resource, cdk.CfnResource)
    assert resource.get_metadata("cdk_nag") == {
        "rules_to_suppress": [
            {"id": "Rule-A", "reason": "first"},
            {"id": "Rule-B", "reason": "second"},
        ]
    }
    acknowledged = [
        entry.data
        for entry in resource.node.metadata
        if entry.type == cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY
    ]
    assert acknowledged == [{"Annotation::Rule-A": "first"}, {"Annotation::Rule-B": "second"}]
    assert not [
        e for e in key.node.metadata if e.type == cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY
    ]


def test_a_granular_finding_is_acknowledged_in_each_majors_form() -> None:
    """cdk-nag 3 matches the whole finding id; cdk-nag 2 wants the rule with the finding in
    applies_to (it refuses an id with brackets)."""
    app = cdk.App(context=NO_BUNDLING)
    stack = cdk.Stack(app, "Stack")
    bucket = cdk.aws_s3.Bucket(stack, "Bucket")
    role = cdk.aws_iam.Role(stack, "Role", assumed_by=cdk.aws_iam.AccountRootPrincipal())
    bucket.grant_read(role)
    objects = bucket.arn_for_objects("due/*")
    finding = wildcard_resource(stack, objects)
    bucket_id = stack.get_logical_id(bucket.node.default_child)  # type: ignore[arg-type]
    assert finding == f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/due/*]"
    partition_arn = stack.format_arn(service="kms", resource="key", resource_name="*")
    assert wildcard_resource(stack, partition_arn) == (
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:kms:<AWS::Region>:<AWS::AccountId>:key/*]"
    )
    policy = role.node.find_child("DefaultPolicy")
    acknowledge(policy, {finding: "The index's own entries."})
    resource = policy.node.default_child
    assert isinstance(resource, cdk.CfnResource)
    assert resource.get_metadata("cdk_nag") == {
        "rules_to_suppress": [
            {
                "id": "AwsSolutions-IAM5",
                "reason": "The index's own entries.",
                "applies_to": [f"Resource::<{bucket_id}.Arn>/due/*"],
            }
        ]
    }
    acknowledged = [
        entry.data
        for entry in resource.node.metadata
        if entry.type == cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY
    ]
    assert acknowledged == [{f"Annotation::{finding}": "The index's own entries."}]


# The two controls cfn-lint must reject, linted in the same run as the scanned templates: each
# cfn-lint start reads its schemas again, which costs seconds.
CYCLIC_TEMPLATE = {
    "Resources": {
        "A": {"Type": "AWS::SNS::Topic", "DependsOn": "B"},
        "B": {"Type": "AWS::SNS::Topic", "DependsOn": "A"},
    }
}
BROKEN_TEMPLATE = '{"Resources": {"K": {"Type": "AWS::KMS::Key", "Properties": {"Origin": 7}}}}'


@dataclass(frozen=True)
class CfnLintRun:
    returncode: int
    scanned: list[str]  # the scanned app's templates
    cyclic: str
    broken: str
    rules: dict[str, list[str]]  # the rule ids cfn-lint reported, per template

    def output(self) -> str:
        return json.dumps(self.rules, indent=1)


@pytest.fixture(scope="module")
def cfn_lint(
    nag3: tuple[list[tuple[str, str]], Path], tmp_path_factory: pytest.TempPathFactory
) -> CfnLintRun:
    """One cfn-lint run over the scanned templates and both controls (JSON: per template)."""
    controls = tmp_path_factory.mktemp("cfn-lint-controls")
    cyclic = controls / "cyclic.template.json"
    cyclic.write_text(json.dumps(CYCLIC_TEMPLATE))
    broken = controls / "broken.template.json"
    broken.write_text(BROKEN_TEMPLATE)
    scanned = sorted(str(p) for p in nag3[1].glob("*.template.json"))
    result = subprocess.run(
        [CFN_LINT, "--format", "json", "--ignore-checks", *CFN_LINT_IGNORED, "--",
         *scanned, str(cyclic), str(broken)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.stdout.lstrip().startswith("["), result.stdout + result.stderr
    rules: dict[str, list[str]] = {}
    for match in json.loads(result.stdout):
        rules.setdefault(match["Filename"], []).append(match["Rule"]["Id"])
    return CfnLintRun(result.returncode, scanned, str(cyclic), str(broken), rules)


def test_cfn_lint_passes_every_template(cfn_lint: CfnLintRun) -> None:
    assert len(cfn_lint.scanned) == 3
    assert not [path for path in cfn_lint.scanned if path in cfn_lint.rules], cfn_lint.output()
    # Errors (2) and nothing else in the run: the two controls' findings, not a warning (4) or
    # an informational finding (8) about any template.
    assert set(cfn_lint.rules) == {cfn_lint.cyclic, cfn_lint.broken}, cfn_lint.output()
    assert cfn_lint.returncode == 2, cfn_lint.output()


def test_no_template_has_a_dependency_cycle(nag3: tuple[list[tuple[str, str]], Path]) -> None:
    """The key policies name the handler role by its RoleId, so every key waits for the role,
    while the role's grants on the keys wait for the keys."""
    templates = sorted(nag3[1].glob("*.template.json"))
    assert len(templates) == 3
    for template in templates:
        assert_acyclic(json.loads(template.read_text()))


def test_cfn_lint_does_report_a_dependency_cycle(cfn_lint: CfnLintRun) -> None:
    assert cfn_lint.returncode != 0
    assert "E3004" in cfn_lint.rules.get(cfn_lint.cyclic, []), cfn_lint.output()  # circular


def test_cfn_lint_does_report_a_broken_template(cfn_lint: CfnLintRun) -> None:
    assert cfn_lint.returncode != 0
    assert "E3030" in cfn_lint.rules.get(cfn_lint.broken, []), cfn_lint.output()  # Origin: 7


if __name__ == "__main__":
    # Run by test_cdk_nag_2_finds_nothing_unacknowledged, with cdk-nag 2 imported above.
    found, other = cdk_nag2_findings(Path(sys.argv[1]))
    print(json.dumps({"cdk-nag": version("cdk-nag"), "findings": found, "others": other}))
