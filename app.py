#!/usr/bin/env python3
"""Example CDK app: one ImportedKey whose material waits in Secrets Manager.

Put 32 random bytes in the secret before deploying (see README), then ``cdk deploy``.
The secret's name comes from the context value ``material_secret_name``.
"""

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from imported_key_cdk import ImportedKey, MaterialExpiration

DEFAULT_SECRET_NAME = "imported-key-cdk/example-material"  # noqa: S105 - a name


class ExampleStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, **kwargs: object) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        secret_name = self.node.try_get_context("material_secret_name") or DEFAULT_SECRET_NAME
        secret = secretsmanager.Secret.from_secret_name_v2(self, "MaterialSecret", secret_name)

        imported = ImportedKey(
            self,
            "ExampleKey",
            key_material_secret=secret,
            alias="alias/imported-key-cdk-example",
            description="Example key with material imported by imported-key-cdk",
            expiration=MaterialExpiration.after(cdk.Duration.days(365)),
        )
        # The secret is made outside the app, so the stack cannot tag it for the handler: the
        # README's first step tags it (imported-key-cdk:reader, the value the warning names).
        cdk.Annotations.of(self).acknowledge_warning(
            "imported-key-cdk:secret-reader-tag",
            "The material secret is tagged for the handler when it is created (README).",
        )

        # A user of the key: its policy names the key through the import, so CloudFormation
        # creates it only once the key holds its material.
        app_role = iam.Role(
            self, "AppRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com")
        )
        imported.grant(app_role, "kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey")
        # The inline policy names one key, as narrow as it gets: acknowledge the finding for
        # cdk-nag 3 (CDK's own acknowledgements) and cdk-nag 2 (the cdk_nag metadata).
        policy = app_role.node.find_child("DefaultPolicy").node.default_child
        assert isinstance(policy, cdk.CfnResource)
        rule = "NIST.800.53.R5-IAMNoInlinePolicy"
        reason = "The policy grants three actions on one key ARN."
        cdk.Validations.of(policy).acknowledge(cdk.Acknowledgment(id=rule, reason=reason))
        policy.add_metadata("cdk_nag", {"rules_to_suppress": [{"id": rule, "reason": reason}]})

        cdk.CfnOutput(self, "KeyArn", value=imported.key_arn)
        cdk.CfnOutput(self, "MaterialValidTo", value=imported.valid_to)


def build_app(app: cdk.App | None = None) -> cdk.App:
    app = app or cdk.App()
    ExampleStack(app, "ImportedKeyExample")
    return app


if __name__ == "__main__":
    build_app().synth()
