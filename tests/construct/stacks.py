"""Small stacks for template tests. Bundling is skipped: these tests read templates only."""

from collections.abc import Callable
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk.assertions import Template
from support.synth import BUNDLING_STACKS

from imported_key_cdk import ImportedKey

NO_BUNDLING: dict[str, Any] = {BUNDLING_STACKS: []}
SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:byok/material-AbCdEf"


def new_stack(context: dict[str, Any] | None = None) -> cdk.Stack:
    app = cdk.App(context=dict(NO_BUNDLING, **(context or {})))
    return cdk.Stack(app, "Test", env=cdk.Environment(account="111122223333", region="eu-west-1"))


def imported_secret(stack: cdk.Stack, construct_id: str = "Secret") -> secretsmanager.ISecret:
    return secretsmanager.Secret.from_secret_complete_arn(stack, construct_id, SECRET_ARN)


def synth(build: Callable[[cdk.Stack], object]) -> Template:
    stack = new_stack()
    build(stack)
    return Template.from_stack(stack)


def key_in(stack: cdk.Stack, construct_id: str = "Key", **props: Any) -> ImportedKey:
    props.setdefault("key_material_secret", imported_secret(stack, f"{construct_id}Secret"))
    return ImportedKey(stack, construct_id, **props)
