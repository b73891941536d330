"""examples/multi_account_pipeline.py: the same fleet deployed to two accounts by CDK Pipelines."""

import importlib.util
import sys
from types import ModuleType

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template
from stacks import NO_BUNDLING
from support.synth import REPO

from imported_key_cdk import load_manifest


def example() -> ModuleType:
    path = REPO / "examples" / "multi_account_pipeline.py"
    spec = importlib.util.spec_from_file_location("multi_account_pipeline", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pipeline() -> tuple[ModuleType, cdk.Stack]:
    module = example()
    app = cdk.App(context=dict(NO_BUNDLING))
    stack = module.build(app)
    app.synth()
    return module, stack


def test_the_pipeline_deploys_one_stage_per_target_account(
    pipeline: tuple[ModuleType, cdk.Stack],
) -> None:
    _, stack = pipeline
    stages = stack.stages  # type: ignore[attr-defined]
    assert [(s.account, s.region) for s in stages] == [
        ("111111111111", "eu-west-1"),
        ("222222222222", "eu-central-1"),
    ]
    template = Template.from_stack(stack).to_json()
    (codepipeline,) = [
        r for r in template["Resources"].values() if r["Type"] == "AWS::CodePipeline::Pipeline"
    ]
    names = [stage["Name"] for stage in codepipeline["Properties"]["Stages"]]
    for target in stages:
        assert target.node.id in names


def test_each_target_gets_the_whole_fleet_with_its_own_handler(
    pipeline: tuple[ModuleType, cdk.Stack],
) -> None:
    module, stack = pipeline
    manifest = load_manifest(module.MANIFEST)
    for stage in stack.stages:  # type: ignore[attr-defined]
        keys_stack = stage.stack
        assert (keys_stack.account, keys_stack.region) == (stage.account, stage.region)
        fleet = keys_stack.fleet
        assert sorted(fleet.keys) == sorted(k.name for k in manifest)
        parent = Template.from_stack(keys_stack).to_json()["Resources"]
        assert [r["Type"] for r in parent.values()].count("AWS::Lambda::Function") == 2
        nested_keys = sum(
            1
            for nested in fleet.stacks.values()
            for r in Template.from_stack(nested).to_json()["Resources"].values()
            if r["Type"] == "AWS::KMS::Key"
        )
        assert nested_keys == len(manifest)


def test_a_malformed_target_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="Invalid target '12345/eu-west-1'"):
        example().targets_of("12345/eu-west-1")
