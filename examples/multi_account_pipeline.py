#!/usr/bin/env python3
"""The same fleet in two accounts (or Regions) through CDK Pipelines.

One ``PaymentsKeys`` stage holds the fleet's stack; the pipeline deploys it to each target in
turn. Each target account needs: CDK bootstrapped with a trust to the pipeline's account
(``cdk bootstrap --trust <pipeline account> aws://<account>/<region>``), the fleet's secrets
created there under the manifest's names and tagged for the handler, and its own KMS quotas
(each account and Region has its own 1 GetParametersForImport per second). The material itself
never travels with the pipeline: only the manifest's secret names do.

Targets come from context: ``-c targets=111111111111/eu-west-1,222222222222/eu-central-1``.
"""

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import pipelines
from constructs import Construct

from imported_key_cdk import ImportedKeyFleet

MANIFEST = Path(__file__).with_name("fleet.yaml")
DEFAULT_TARGETS = "111111111111/eu-west-1,222222222222/eu-central-1"
PIPELINE_ENV = cdk.Environment(account="333333333333", region="eu-west-1")


class PaymentsKeysStack(cdk.Stack):
    """The fleet itself: the same in every target."""

    def __init__(self, scope: Construct, construct_id: str, **kwargs: object) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self.fleet = ImportedKeyFleet(self, "Payments", manifest=MANIFEST, nested_stacks=4)


class PaymentsKeys(cdk.Stage):
    def __init__(self, scope: Construct, construct_id: str, *, env: cdk.Environment) -> None:
        super().__init__(scope, construct_id, env=env)
        self.stack = PaymentsKeysStack(self, "Keys")


class PipelineStack(cdk.Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        targets: list[cdk.Environment],
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        pipeline = pipelines.CodePipeline(
            self,
            "Pipeline",
            # Stages in other accounts need the artifact bucket's key to be shareable.
            cross_account_keys=True,
            synth=pipelines.ShellStep(
                "Synth",
                input=pipelines.CodePipelineSource.connection(
                    "example-org/payments-keys",
                    "main",
                    connection_arn=(
                        "arn:aws:codeconnections:eu-west-1:333333333333:connection/"
                        "00000000-0000-0000-0000-000000000000"
                    ),
                ),
                commands=[
                    "pip install 'imported-key-cdk[yaml]' aws-cdk-lib",
                    "npx cdk synth -a 'python examples/multi_account_pipeline.py'",
                ],
            ),
        )
        self.stages: list[PaymentsKeys] = []
        for target in targets:
            stage = PaymentsKeys(self, f"Keys-{target.account}-{target.region}", env=target)
            pipeline.add_stage(stage)
            self.stages.append(stage)


def targets_of(value: str) -> list[cdk.Environment]:
    targets = []
    for item in value.split(","):
        account, _, region = item.strip().partition("/")
        if not (account.isdigit() and len(account) == 12 and region):
            raise ValueError(
                f"Invalid target {item!r}: give <12-digit account>/<region>, comma-separated."
            )
        targets.append(cdk.Environment(account=account, region=region))
    return targets


def build(app: cdk.App) -> PipelineStack:
    targets = targets_of(str(app.node.try_get_context("targets") or DEFAULT_TARGETS))
    return PipelineStack(app, "PaymentsKeysPipeline", targets=targets, env=PIPELINE_ENV)


if __name__ == "__main__":
    app = cdk.App()
    build(app)
    app.synth()
