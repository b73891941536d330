"""``imported-keys`` against keys the handler deployed on LocalStack, as a person at an
80-column terminal and as a pipeline reading ``--json`` and exit statuses would run it.

The keys live in a Region of their own (no other suite uses it), deployed through the
handler's custom resource code path in that Region (``support.regions``), each stack's keys
under a stack name of their own, so what ``ls`` lists is exactly what this module made.
"""

import base64
import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from click.testing import CliRunner, Result
from support.binding import TEST_HANDLER_ROLE_ID, PlayedStacks
from support.events import ACCOUNT_ID, import_properties
from support.keys import materials_document
from support.lambda_api import LambdaApi, handler_environment
from support.localstack import LocalStack
from support.regions import Regional, deploy_region, handler_of, import_in, stack_id_in

from imported_key_cli.main import cli
from imported_key_handler import contract
from imported_key_handler.errors import ImportFailure
from imported_key_handler.renewal import renew_key

pytestmark = pytest.mark.localstack

REGION = "sa-east-1"
REPLICA_REGION = "ap-northeast-1"  # the rotate test's replica: no other suite uses it
FLEET = "cli-fleet"
WIDTH = 80
# Every material this module imports: none may appear in anything the command line prints.
MATERIALS = {name: os.urandom(32) for name in ("old", "new", "mac", "plain", "revocable")}


@dataclass
class Deployed:
    regional: Regional
    keys: dict[str, str]  # alias -> key id
    secrets: dict[str, str]  # alias -> secret ARN
    stacks: PlayedStacks


@contextmanager
def deployed_handler(
    localstack: LocalStack,
    regional: Regional,
    stacks: PlayedStacks,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[LambdaApi]:
    """The stack's two handler functions, as the construct deploys them (same environment, the
    sweep's longer timeout), behind a stand-in for the Lambda API that runs the real entry
    point against LocalStack (LocalStack cannot run functions without Docker)."""
    from imported_key_handler import clients

    # The functions ask CloudFormation's record of this module's stacks.
    monkeypatch.setattr(clients, "cloudformation_client", stacks.client)
    name = regional.stack_id.split("/")[1]
    variables = handler_environment(
        TEST_HANDLER_ROLE_ID, regional.stack_id, regional.clients.bucket
    )
    with LambdaApi(localstack.endpoint, region=REGION) as api:
        api.register(f"{name}-ImportedKeyHandlerFunction", timeout_s=120, variables=variables)
        api.register(f"{name}-ImportedKeyHandlerSweepFunction", timeout_s=900, variables=variables)
        yield api


def deploy_key(
    regional: Regional,
    alias: str,
    monkeypatch: pytest.MonkeyPatch,
    stacks: PlayedStacks,
    *,
    versions: list[str],
    spec: str = contract.SYMMETRIC_DEFAULT,
    usage: str = "ENCRYPT_DECRYPT",
    days: int = 365,
    rotating: bool = False,
    pinned: bool = True,
) -> tuple[str, str]:
    """A key of the stack, created as CloudFormation would and imported by the handler, one
    Create and then an Update per further secret version; returns its id and secret ARN."""
    kms, secrets = regional.kms, regional.clients.secrets
    key_id = kms.create_key(Origin="EXTERNAL", KeySpec=spec, KeyUsage=usage)["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName=f"alias/{alias}", TargetKeyId=key_id)
    secret_arn, version_id = "", ""
    for number, value in enumerate(versions):
        if number == 0:
            created = secrets.create_secret(Name=f"{alias}/{uuid.uuid4()}", SecretString=value)
            secret_arn, version_id = created["ARN"], created["VersionId"]
        else:
            version_id = secrets.put_secret_value(SecretId=secret_arn, SecretString=value)[
                "VersionId"
            ]
        properties = import_properties(
            key_id,
            secret_arn,
            **{
                contract.PROP_KEY_SPEC: spec,
                contract.PROP_KEY_USAGE: usage,
                contract.PROP_WRAPPING_KEY_SPEC: "RSA_2048",
                contract.PROP_VALIDITY_DAYS: str(days),
                contract.PROP_ROTATE_ON_MATERIAL_CHANGE: str(rotating).lower(),
            },
        )
        if pinned:  # else the handler reads the secret's current version
            properties[contract.PROP_MATERIAL_VERSION_ID] = version_id
        import_in(regional, properties, stacks, monkeypatch, "Create" if number == 0 else "Update")
    return key_id, secret_arn


def own_stack(
    localstack: LocalStack, monkeypatch: pytest.MonkeyPatch, name: str
) -> tuple[Regional, PlayedStacks]:
    """A stack of this module's Region named ``name-<random>``, its handler's clients, and
    CloudFormation's record of it (which the handler asks)."""
    from imported_key_handler import clients

    stacks = PlayedStacks()
    monkeypatch.setattr(clients, "cloudformation_client", stacks.client)
    regional = deploy_region(localstack, stacks, REGION)
    regional.stack_id = stack_id_in(REGION, f"{name}-{uuid.uuid4().hex[:6]}")
    return regional, stacks


def b64(material: bytes) -> str:
    return base64.b64encode(material).decode()


@pytest.fixture(scope="module")
def fleet(localstack: LocalStack) -> Iterator[Deployed]:
    """Three keys of one stack: a rotated symmetric key, an HMAC key, a plain symmetric key."""
    stacks = PlayedStacks()
    regional = deploy_region(localstack, stacks, REGION)
    regional.stack_id = stack_id_in(REGION, f"{FLEET}-{uuid.uuid4().hex[:6]}")
    with pytest.MonkeyPatch.context() as monkeypatch:
        from imported_key_handler import clients

        monkeypatch.setattr(clients, "cloudformation_client", stacks.client)
        keys, secrets = {}, {}
        keys["payments"], secrets["payments"] = deploy_key(
            regional,
            "payments",
            monkeypatch,
            stacks,
            versions=[
                materials_document(MATERIALS["old"]),
                materials_document(MATERIALS["old"], MATERIALS["new"]),
            ],
            rotating=True,
        )
        keys["webhooks"], secrets["webhooks"] = deploy_key(
            regional,
            "webhooks",
            monkeypatch,
            stacks,
            versions=[b64(MATERIALS["mac"])],
            spec="HMAC_256",
            usage="GENERATE_VERIFY_MAC",
            days=30,
        )
        keys["ledger"], secrets["ledger"] = deploy_key(
            regional, "ledger", monkeypatch, stacks, versions=[b64(MATERIALS["plain"])], days=90
        )
        yield Deployed(regional, keys, secrets, stacks)


def run(
    localstack: LocalStack,
    *args: str,
    prompt: str | None = None,
    handler: LambdaApi | None = None,
) -> Result:
    """The command line as a terminal of 80 columns runs it, against the emulator (and the
    deployed ``handler``'s functions)."""
    env = {
        "AWS_ENDPOINT_URL": localstack.endpoint,
        "AWS_ENDPOINT_URL_LAMBDA": handler.endpoint if handler else None,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": REGION,
        "COLUMNS": str(WIDTH),
        "AWS_PROFILE": None,  # type: ignore[dict-item]
    }
    result = CliRunner().invoke(cli, list(args), env=env, input=prompt)
    printed = result.output + (result.stderr if result.stderr_bytes else "")
    for material in MATERIALS.values():
        for form in (b64(material), material.hex(), material.decode("latin-1")):
            assert form not in printed
    if "--json" not in args:  # JSON is for programs: ARNs and ids run as long as they are
        assert all(len(line) <= WIDTH for line in printed.splitlines()), printed
    return result


def stack_of(fleet: Deployed) -> str:
    return fleet.regional.stack_id.split("/")[1]


def test_ls_shows_the_stacks_keys_soonest_expiry_first_in_80_columns(
    localstack: LocalStack, fleet: Deployed
) -> None:
    result = run(localstack, "ls", "--stack", stack_of(fleet))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    rows = [line for line in lines if line.split() and line.split()[0] in fleet.keys]
    assert [row.split()[0] for row in rows] == ["webhooks", "ledger", "payments"]
    assert rows[0].split()[1:3] == ["HMAC_256", "Enabled"]
    assert rows[2].split()[-1] == "1/25"  # one on-demand rotation so far
    assert "3 managed keys in sa-east-1" in result.output


def test_ls_json_carries_every_field_and_filters(localstack: LocalStack, fleet: Deployed) -> None:
    result = run(localstack, "--json", "ls", "--stack", stack_of(fleet), "--within", "100")
    assert result.exit_code == 0
    listed = json.loads(result.output)
    assert [entry["KeyId"] for entry in listed] == [fleet.keys["webhooks"], fleet.keys["ledger"]]
    webhooks = listed[0]
    assert webhooks["KeySpec"] == "HMAC_256"
    assert webhooks["Aliases"] == ["alias/webhooks"]
    assert 29 < webhooks["DaysLeft"] <= 30
    due = datetime.fromisoformat(webhooks["NextRenewal"])
    valid_to = datetime.fromisoformat(webhooks["ValidTo"])
    # The due index's arithmetic: in the first quarter of the 10-day window.
    assert timedelta(days=7.5) <= valid_to - due <= timedelta(days=10)
    assert webhooks["Attention"] is None
    assert webhooks["RotationsUsed"] is None  # KMS rotates no HMAC key on demand
    none = run(localstack, "--json", "ls", "--stack", stack_of(fleet), "--state", "PendingImport")
    assert json.loads(none.output) == []
    problems = run(localstack, "ls", "--stack", stack_of(fleet), "--problems")
    assert problems.exit_code == 0


def test_status_shows_every_material_and_the_binding(
    localstack: LocalStack, fleet: Deployed
) -> None:
    result = run(localstack, "status", "payments")
    assert result.exit_code == 0, result.output
    assert fleet.keys["payments"] in result.output
    # The secret's ARN as it is (Rich would turn ":secret:" into an emoji), folded at 80.
    assert fleet.secrets["payments"] in "".join(
        line.strip().removeprefix("Secret").strip() for line in result.output.splitlines()
    )
    assert "CURRENT" in result.output
    assert "NON_CURRENT" in result.output
    as_json = json.loads(run(localstack, "--json", "status", fleet.keys["payments"]).output)
    states = sorted(m["KeyMaterialState"] for m in as_json["Materials"])
    assert states == ["CURRENT", "NON_CURRENT"]
    assert as_json["Binding"]["SecretArn"] == fleet.secrets["payments"]
    assert as_json["Binding"]["Settings"][contract.PROP_ROTATE_ON_MATERIAL_CHANGE] == "true"
    assert as_json["Binding"]["RenewBeforeSeconds"] == 10 * 86400
    assert as_json["RotationsUsed"] == 1


def test_a_key_that_is_not_managed_or_not_there_exits_4(
    localstack: LocalStack, fleet: Deployed
) -> None:
    other = fleet.regional.kms.create_key()["KeyMetadata"]["KeyId"]
    unmanaged = run(localstack, "status", other)
    assert unmanaged.exit_code == 4
    assert "not managed by imported-key-cdk" in " ".join(unmanaged.stderr.split())
    missing = run(localstack, "status", "no-such-alias")
    assert missing.exit_code == 4
    assert "No KMS key" in missing.stderr


def test_revoke_asks_first_stays_revoked_and_resume_lets_the_handler_restore(
    localstack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    regional, stacks = own_stack(localstack, monkeypatch, "cli-revoke")
    alias = f"revocable-{uuid.uuid4().hex[:6]}"
    key_id, _ = deploy_key(
        regional, alias, monkeypatch, stacks, versions=[b64(MATERIALS["revocable"])]
    )
    stack = regional.stack_id.split("/")[1]

    declined = run(localstack, "revoke", alias, prompt="n\n")
    assert declined.exit_code == 1
    assert regional.kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    refused = run(localstack, "--json", "revoke", alias)
    assert refused.exit_code == 2  # no prompt to answer in JSON: --yes or nothing

    revoked = run(localstack, "--json", "revoke", alias, "--yes")
    assert revoked.exit_code == 0, revoked.output
    assert json.loads(revoked.output)["KeyState"] == "PendingImport"
    status = run(localstack, "status", alias)
    assert status.exit_code == 1
    assert "revoked" in status.output
    problems = run(localstack, "--json", "ls", "--stack", stack, "--problems")
    assert problems.exit_code == 1
    assert [entry["KeyId"] for entry in json.loads(problems.output)] == [key_id]
    # The handler refuses to restore it, as long as it stays revoked.
    with handler_of(regional, monkeypatch), pytest.raises(ImportFailure, match="revoked"):
        renew_key(regional.clients, key_id, contract.TRIGGER_SCHEDULE, now=datetime.now(UTC))

    with deployed_handler(localstack, regional, stacks, monkeypatch) as handler:
        refused = run(localstack, "renew", alias, handler=handler)
        assert refused.exit_code == 1
        assert "revoked" in refused.output
        # Resuming removes the record and has the key's handler restore it at once.
        resumed = run(localstack, "--json", "resume", alias, handler=handler)
        assert resumed.exit_code == 0, resumed.output
        answer = json.loads(resumed.output)
        assert (answer["KeyState"], answer["Renewal"]["Renewed"]) == ("Enabled", True)
        assert run(localstack, "ls", "--stack", stack, "--problems").exit_code == 0
        again = run(localstack, "resume", alias, handler=handler)
        assert again.exit_code == 1  # nothing to resume


def test_without_credentials_it_says_what_to_set_and_exits_3(localstack: LocalStack) -> None:
    result = CliRunner().invoke(
        cli,
        ["--region", REGION, "ls"],
        env={
            "AWS_ENDPOINT_URL": localstack.endpoint,
            "AWS_ACCESS_KEY_ID": None,  # type: ignore[dict-item]
            "AWS_SECRET_ACCESS_KEY": None,  # type: ignore[dict-item]
            "AWS_PROFILE": None,  # type: ignore[dict-item]
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
            "AWS_CONFIG_FILE": "/nonexistent",
            "AWS_EC2_METADATA_DISABLED": "true",
        },
    )
    assert result.exit_code == 3
    assert "no AWS credentials" in " ".join(result.stderr.split())


def test_audit_reads_the_keys_history_from_cloudtrail(
    localstack: LocalStack, fleet: Deployed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CloudTrail is the one service here that LocalStack lacks: botocore's Stubber answers
    for it, and checks the request against CloudTrail's model."""
    from unit.test_cli_audit import HANDLER_ROLE, assumed_role, event

    from imported_key_cli import main

    arn = fleet.regional.kms.describe_key(KeyId=fleet.keys["payments"])["KeyMetadata"]["Arn"]
    imported = event(
        "ImportKeyMaterial",
        5,
        userIdentity=assumed_role(HANDLER_ROLE),
        requestParameters={"keyId": arn, "importType": "NEW_KEY_MATERIAL"},
    )
    cloudtrail = boto3.client("cloudtrail", region_name=REGION)
    stubber = Stubber(cloudtrail)
    for _ in range(2):  # the table, then --json
        stubber.add_response(
            "lookup_events",
            {"Events": [imported]},
            {
                "LookupAttributes": [{"AttributeKey": "ResourceName", "AttributeValue": arn}],
                "StartTime": ANY,
                "EndTime": ANY,
                "MaxResults": 50,
            },
        )
    real_client = main.Context.client
    monkeypatch.setattr(
        main.Context,
        "client",
        lambda self, service: cloudtrail if service == "cloudtrail" else real_client(self, service),
    )
    with stubber:
        shown = run(localstack, "audit", "payments", "--days", "7")
        listed = run(localstack, "--json", "audit", "payments")
    stubber.assert_no_pending_responses()
    assert shown.exit_code == 0, shown.output
    assert "material imported" in shown.output
    assert "1 event of payments in sa-east-1, last 7 days" in shown.output
    (only,) = json.loads(listed.output)["Events"]
    assert (only["EventName"], only["Detail"]) == ("ImportKeyMaterial", "NEW_KEY_MATERIAL")


def test_verify_proves_every_key_through_its_handler_and_fails_on_a_foreign_secret(
    localstack: LocalStack, fleet: Deployed, monkeypatch: pytest.MonkeyPatch
) -> None:
    with deployed_handler(localstack, fleet.regional, fleet.stacks, monkeypatch) as handler:
        shown = run(localstack, "verify", *fleet.keys, handler=handler)
        assert shown.exit_code == 0, shown.output
        assert "GenerateMac" in shown.output  # the HMAC key's proof
        proofs = json.loads(
            run(localstack, "--json", "verify", *fleet.keys, handler=handler).output
        )
        assert {p["Name"]: (p["Verified"], p["Materials"]) for p in proofs} == {
            "payments": (True, 2),
            "webhooks": (True, 1),
            "ledger": (True, 1),
        }


def test_verify_fails_when_the_secret_no_longer_holds_the_keys_material(
    localstack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    regional, stacks = own_stack(localstack, monkeypatch, "cli-drift")
    alias = f"drifting-{uuid.uuid4().hex[:6]}"
    key_id, secret = deploy_key(
        regional, alias, monkeypatch, stacks, versions=[b64(os.urandom(32))], pinned=False
    )
    with deployed_handler(localstack, regional, stacks, monkeypatch) as handler:
        assert run(localstack, "verify", alias, handler=handler).exit_code == 0
        # Someone rewrote the secret (no version pinned): it no longer holds the key's material.
        regional.clients.secrets.put_secret_value(SecretId=secret, SecretString=b64(os.urandom(32)))
        before = regional.kms.describe_key(KeyId=key_id)["KeyMetadata"]
        failed = run(localstack, "--json", "verify", alias, handler=handler)
        shown = run(localstack, "verify", alias, handler=handler)
    assert failed.exit_code == 1
    (verdict,) = json.loads(failed.output)
    assert verdict["Verified"] is False
    assert "original material" in verdict["Reason"]
    assert shown.exit_code == 1
    assert f"! {alias}" in shown.output
    assert regional.kms.describe_key(KeyId=key_id)["KeyMetadata"] == before


def test_renew_reimports_now_through_the_handler_and_a_dry_run_changes_nothing(
    localstack: LocalStack, fleet: Deployed, monkeypatch: pytest.MonkeyPatch
) -> None:
    kms = fleet.regional.kms
    before = kms.describe_key(KeyId=fleet.keys["webhooks"])["KeyMetadata"]["ValidTo"]
    planned = run(localstack, "--json", "renew", "--due", "--dry-run")
    assert planned.exit_code == 0
    assert json.loads(planned.output) == []  # nothing of this module is due yet
    with deployed_handler(localstack, fleet.regional, fleet.stacks, monkeypatch) as handler:
        answered = run(localstack, "--json", "renew", "webhooks", "ledger", handler=handler)
        assert answered.exit_code == 0, answered.output
        # Not due, renewed all the same: the operator asked (the same material, a new ValidTo).
        assert [(a["Name"], a["Renewed"], a["Why"]) for a in json.loads(answered.output)] == [
            ("webhooks", True, "an operator asked for it (imported-keys renew)"),
            ("ledger", True, "an operator asked for it (imported-keys renew)"),
        ]
    # A new ValidTo, to the second: the same as before when it all ran within one second.
    assert kms.describe_key(KeyId=fleet.keys["webhooks"])["KeyMetadata"]["ValidTo"] >= before


def test_rotate_follows_a_multi_region_rotation_and_finishes_it(
    localstack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A primary here and a replica in another Region, each deployed by its own stack: the
    command line shows each phase, per Region, and has the primary's handler finish it."""
    from imported_key_handler import clients

    stacks = PlayedStacks()
    monkeypatch.setattr(clients, "cloudformation_client", stacks.client)
    primary = deploy_region(localstack, stacks, REGION)
    primary.stack_id = stack_id_in(REGION, f"cli-rotate-{uuid.uuid4().hex[:6]}")
    replica = deploy_region(localstack, stacks, REPLICA_REGION)
    alias = f"global-{uuid.uuid4().hex[:6]}"
    key_id = primary.kms.create_key(Origin="EXTERNAL", MultiRegion=True)["KeyMetadata"]["KeyId"]
    primary.kms.create_alias(AliasName=f"alias/{alias}", TargetKeyId=key_id)
    old, new = os.urandom(32), os.urandom(32)
    secrets = {}

    def deploy(regional: Regional, *materials: bytes, action: str = "Update") -> None:
        secrets_client = regional.clients.secrets
        if regional.region not in secrets:
            created = secrets_client.create_secret(
                Name=f"{alias}/{uuid.uuid4()}", SecretString=materials_document(*materials)
            )
            secrets[regional.region] = created["ARN"]
            version = created["VersionId"]
        else:
            version = secrets_client.put_secret_value(
                SecretId=secrets[regional.region], SecretString=materials_document(*materials)
            )["VersionId"]
        properties = import_properties(
            key_id,
            secrets[regional.region],
            **{
                contract.PROP_WRAPPING_KEY_SPEC: "RSA_2048",
                contract.PROP_ROTATE_ON_MATERIAL_CHANGE: "true",
                contract.PROP_MATERIAL_VERSION_ID: version,
            },
        )
        import_in(regional, properties, stacks, monkeypatch, action)

    deploy(primary, old, action="Create")
    primary.kms.replicate_key(KeyId=key_id, ReplicaRegion=REPLICA_REGION)
    deploy(replica, old, action="Create")
    idle = json.loads(run(localstack, "--json", "rotate", alias).output)
    assert (idle["Phase"], idle["RotationsUsed"]) == ("none", 0)

    deploy(primary, old, new)
    waiting = run(localstack, "rotate", alias)
    assert waiting.exit_code == 0, waiting.output
    assert "waiting-for-replicas" in waiting.output
    assert f"{REPLICA_REGION} still lack it" in " ".join(waiting.output.split())
    refused = run(localstack, "rotate", alias, "--finish")
    assert refused.exit_code == 1  # KMS would refuse: a replica lacks it

    deploy(replica, old, new)
    ready = json.loads(run(localstack, "--json", "rotate", alias).output)
    assert ready["Phase"] == "ready-to-rotate"
    assert ready["Regions"] == {REGION: "PENDING_ROTATION", REPLICA_REGION: "PENDING_ROTATION"}
    with deployed_handler(localstack, primary, stacks, monkeypatch) as handler:
        finished = run(localstack, "--json", "rotate", alias, "--finish", handler=handler)
    assert finished.exit_code == 0, finished.output
    done = json.loads(finished.output)
    assert (done["Phase"], done["RotationsUsed"]) == ("none", 1)
    current = {
        r.region: r.kms.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"]
        for r in (primary, replica)
    }
    assert current[REGION] == current[REPLICA_REGION] == ready["PendingKeyMaterialId"]
    # status names each Region's copy of the key, with its own state and ValidTo.
    status = run(localstack, "--json", "status", alias)
    (related,) = json.loads(status.output)["RelatedKeys"]
    replica_key = replica.kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert related == {
        "Region": REPLICA_REGION,
        "KeyState": "Enabled",
        "CurrentKeyMaterialId": current[REPLICA_REGION],
        "ValidTo": replica_key["ValidTo"].isoformat(),
    }
    shown = run(localstack, "status", alias)
    assert f"Replica       {REPLICA_REGION}: Enabled" in shown.output


def test_an_unknown_profile_is_named_not_a_traceback(localstack: LocalStack) -> None:
    result = CliRunner().invoke(
        cli, ["--profile", "no-such-profile", "ls"], env={"AWS_CONFIG_FILE": "/nonexistent"}
    )
    assert result.exit_code == 3
    assert "no AWS profile 'no-such-profile'" in " ".join(result.stderr.split())


def test_renew_due_has_the_handler_sweep_and_verify_all_takes_a_stack(
    localstack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key whose 1-day material sits inside its 10-day window is due at once: ``renew
    --due`` lists it in a dry run, then has its handler sweep, which renews it."""

    regional, stacks = own_stack(localstack, monkeypatch, "cli-due")
    alias = f"short-lived-{uuid.uuid4().hex[:6]}"
    key_id, _ = deploy_key(
        regional, alias, monkeypatch, stacks, versions=[b64(os.urandom(32))], days=1
    )
    stack = regional.stack_id.split("/")[1]
    before = regional.kms.describe_key(KeyId=key_id)["KeyMetadata"]["ValidTo"]

    planned = run(localstack, "--json", "renew", "--due", "--stack", stack, "--dry-run")
    assert json.loads(planned.output) == [{"KeyId": key_id, "Name": alias, "Due": True}]
    assert regional.kms.describe_key(KeyId=key_id)["KeyMetadata"]["ValidTo"] == before
    mixed = run(localstack, "renew", alias, "--stack", stack)
    assert mixed.exit_code == 2  # --stack chooses among all keys, not among named ones
    with deployed_handler(localstack, regional, stacks, monkeypatch) as handler:
        swept = run(localstack, "--json", "renew", "--due", "--stack", stack, handler=handler)
        assert swept.exit_code == 0, swept.output
        (sweep,) = json.loads(swept.output)
        assert (sweep["Renewed"], sweep["Failed"]) == (1, 0)
        assert "Error" not in sweep
        proofs = run(localstack, "--json", "verify", "--all", "--stack", stack, handler=handler)
    assert [p["KeyId"] for p in json.loads(proofs.output)] == [key_id]
    # Renewed (above); its ValidTo is to the second, so within one second it is the same.
    assert regional.kms.describe_key(KeyId=key_id)["KeyMetadata"]["ValidTo"] >= before


def audit_line(key_id: str, action: str, outcome: str, reason: str | None = None) -> str:
    """A line of the handler's log as Lambda's JSON log format writes ``audit``'s record: the
    record's fields beside Lambda's own."""
    fields: dict[str, Any] = {
        "timestamp": datetime.now(UTC).isoformat(),
        "level": "INFO" if outcome != "FAILED" else "ERROR",
        "message": f"{action} {outcome}",
        "logger": "imported_key_handler.audit",
        "requestId": str(uuid.uuid4()),
        "action": action,
        "key_id": key_id,
        "outcome": outcome,
        "valid_to": None,
        "duration_ms": 812,
    }
    if reason:
        fields["reason"] = reason
    return json.dumps(fields)


def test_ls_last_reads_each_keys_last_renewal_from_its_handlers_log(
    localstack: LocalStack, fleet: Deployed, monkeypatch: pytest.MonkeyPatch
) -> None:
    logs = localstack.client("logs", REGION)
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    day_ms = 86_400_000
    with deployed_handler(localstack, fleet.regional, fleet.stacks, monkeypatch) as handler:
        sweep = next(name for name in handler.functions if name.endswith("SweepFunction"))
        group = f"/aws/lambda/{sweep}"
        logs.create_log_group(logGroupName=group)
        logs.create_log_stream(logGroupName=group, logStreamName="2026/12/02/[$LATEST]abc")
        failure = "The secret's value could not be read (ResourceNotFoundException)."
        lines = [
            (3 * day_ms, audit_line(fleet.keys["webhooks"], "Renew(sweep)", "RENEWED")),
            (2 * day_ms, audit_line(fleet.keys["webhooks"], "Create", "SUCCESS")),
            (2 * day_ms, "START RequestId: 1 Version: $LATEST"),
            (1 * day_ms, audit_line(fleet.keys["webhooks"], "Renew(sweep)", "FAILED", failure)),
            (7_200_000, audit_line(fleet.keys["ledger"], "Renew(schedule)", "NOT_DUE")),
        ]
        logs.put_log_events(
            logGroupName=group,
            logStreamName="2026/12/02/[$LATEST]abc",
            logEvents=[{"timestamp": now_ms - ago, "message": line} for ago, line in lines],
        )
        shown = run(localstack, "ls", "--last", "--stack", stack_of(fleet), handler=handler)
        listed = run(
            localstack, "--json", "ls", "--last", "--stack", stack_of(fleet), handler=handler
        )
    assert shown.exit_code == 0, shown.output
    rows = {line.split()[0]: line for line in shown.output.splitlines() if line.split()}
    assert "webhooks" in rows, shown.output
    assert rows["webhooks"].split()[-2] == "FAILED"
    assert " ".join(rows["ledger"].split()[-3:-1]) == "not due"
    assert rows["payments"].split()[-1] == "-"
    assert "! webhooks: last renewal FAILED: The secret's value could not be read" in " ".join(
        shown.output.split()
    )
    last = {entry["KeyId"]: entry["LastRenewal"] for entry in json.loads(listed.output)}
    assert last[fleet.keys["webhooks"]]["Outcome"] == "FAILED"
    assert last[fleet.keys["webhooks"]]["Reason"] == failure
    assert last[fleet.keys["ledger"]]["Action"] == "Renew(schedule)"
    assert last[fleet.keys["payments"]] is None


def terminal(command: list[str], env: dict[str, str], columns: int = WIDTH) -> tuple[int, str, int]:
    """Run the installed console script on a pseudo-terminal of ``columns`` columns, as a
    person's shell would (Rich sees a terminal: colours, and the progress bar). Returns the
    exit status, the screen's text (colour codes stripped, each carriage-return redraw
    reduced to what stays) and how many redraws in place there were (a progress bar's)."""
    master, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    process = subprocess.Popen(command, stdin=child, stdout=child, stderr=child, env=env)
    os.close(child)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    status = process.wait(timeout=120)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode())
    redraws = text.count("\r") - text.count("\r\n")
    # The terminal ends lines with \r\n; a bare \r inside a line is a redraw over it.
    lines = [line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n")]
    return status, "\n".join(lines), redraws


def test_a_terminal_session_at_80_columns(
    localstack: LocalStack, fleet: Deployed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The installed ``imported-keys`` as a person runs it, on a terminal of 80 columns: every
    line fits, and ``verify`` of three keys draws its progress bar."""
    script = Path(sys.executable).parent / "imported-keys"
    with deployed_handler(localstack, fleet.regional, fleet.stacks, monkeypatch) as handler:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "COLUMNS"))},
            "AWS_ENDPOINT_URL": localstack.endpoint,
            "AWS_ENDPOINT_URL_LAMBDA": handler.endpoint,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": REGION,
            "TERM": "xterm-256color",
        }
        session = []
        for command in (
            ["ls", "--stack", stack_of(fleet)],
            ["status", "webhooks"],
            ["verify", "payments", "webhooks", "ledger"],
        ):
            status, screen, redraws = terminal([str(script), *command], env)
            assert status == 0, screen
            # Three keys, one Lambda invocation each: the bar is drawn (and erased at the end).
            assert (redraws > 0) == (command[0] == "verify"), screen
            session.append(f"$ imported-keys {' '.join(command)}\n{screen}")
    transcript = "\n".join(session)
    too_wide = [line for line in transcript.splitlines() if len(line) > WIDTH]
    assert not too_wide, transcript
    assert "3 managed keys in sa-east-1" in transcript
    assert "GenerateMac" in transcript
    for material in MATERIALS.values():
        assert b64(material) not in transcript


def test_every_command_on_keys_the_construct_deployed(
    localstack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ``cdk synth`` writes for a stack of two keys, deployed on LocalStack by a stand-in
    for CloudFormation (its keys, tags, aliases, due index and the handler's two functions
    with their environment), then read and worked by the command line."""
    import aws_cdk as cdk
    from aws_cdk import aws_secretsmanager as secretsmanager
    from support.cfn_player import Player
    from support.synth import BUNDLING_STACKS

    from imported_key_cdk import ImportedKey, MaterialExpiration

    regional, stacks = own_stack(localstack, monkeypatch, "cli-construct")
    stack_name = regional.stack_id.split("/")[1]
    secrets = regional.clients.secrets
    symmetric = secrets.create_secret(Name=f"orders/{uuid.uuid4()}", SecretBinary=os.urandom(32))
    mac = secrets.create_secret(Name=f"mac/{uuid.uuid4()}", SecretBinary=os.urandom(32))
    app = cdk.App(context={BUNDLING_STACKS: []})
    stack = cdk.Stack(
        app, "Keys", stack_name=stack_name, env=cdk.Environment(account=ACCOUNT_ID, region=REGION)
    )
    ImportedKey(
        stack,
        "Orders",
        alias=f"orders-{stack_name}",
        key_material_secret=secretsmanager.Secret.from_secret_complete_arn(
            stack, "OrdersMaterial", symmetric["ARN"]
        ),
        expiration=MaterialExpiration.after(cdk.Duration.days(90)),
    )
    ImportedKey(
        stack,
        "Signing",
        alias=f"signing-{stack_name}",
        key_spec=cdk.aws_kms.KeySpec.HMAC_256,
        key_usage=cdk.aws_kms.KeyUsage.GENERATE_VERIFY_MAC,
        key_material_secret=secretsmanager.Secret.from_secret_complete_arn(
            stack, "SigningMaterial", mac["ARN"]
        ),
    )
    template = app.synth().get_stack_artifact(stack.artifact_id).template
    with LambdaApi(localstack.endpoint, region=REGION) as handler:
        Player(stacks, {REGION: regional}, lambda_api=handler).deploy(
            template, regional, monkeypatch
        )
        listed = run(localstack, "--json", "ls", "--stack", stack_name, handler=handler)
        shown = run(localstack, "ls", "--stack", stack_name, handler=handler)
        status = run(localstack, "--json", "status", f"orders-{stack_name}", handler=handler)
        proofs = run(
            localstack, "--json", "verify", "--all", "--stack", stack_name, handler=handler
        )
        renewed = run(localstack, "--json", "renew", f"orders-{stack_name}", handler=handler)
        due = run(localstack, "--json", "renew", "--due", "--stack", stack_name, handler=handler)
        rotation = run(localstack, "--json", "rotate", f"orders-{stack_name}", handler=handler)
        revoked = run(
            localstack, "--json", "revoke", f"signing-{stack_name}", "--yes", handler=handler
        )
        resumed = run(localstack, "--json", "resume", f"signing-{stack_name}", handler=handler)
        checked = run(localstack, "--json", "doctor", "--stack", stack_name, handler=handler)
    assert listed.exit_code == 0, listed.output
    keys = json.loads(listed.output)
    assert [(k["Aliases"], k["KeySpec"], k["KeyState"]) for k in keys] == [
        ([f"alias/orders-{stack_name}"], "SYMMETRIC_DEFAULT", "Enabled"),
        ([f"alias/signing-{stack_name}"], "HMAC_256", "Enabled"),
    ]
    assert 89 < keys[0]["DaysLeft"] <= 90
    assert shown.exit_code == 0
    assert f"2 managed keys in {REGION}" in shown.output
    assert json.loads(status.output)["Binding"]["SecretArn"] == symmetric["ARN"]
    assert proofs.exit_code == 0, proofs.output
    assert sorted(p["Proof"] for p in json.loads(proofs.output)) == ["GenerateMac", "KeyMaterialId"]
    assert renewed.exit_code == 0, renewed.output
    assert json.loads(renewed.output)[0]["Renewed"] is True
    assert (due.exit_code, json.loads(due.output)) == (0, [])  # nothing is due yet
    assert json.loads(rotation.output)["Phase"] == "none"
    assert (revoked.exit_code, json.loads(revoked.output)["KeyState"]) == (0, "PendingImport")
    assert (resumed.exit_code, json.loads(resumed.output)["KeyState"]) == (0, "Enabled")
    # doctor finds the construct's two functions, deployed by this library version (the
    # construct records it); the stand-in deploys no rules, queue or alarms, and doctor says
    # so, each with its fix.
    assert checked.exit_code == 1
    (report,) = json.loads(checked.output)
    verdicts = {(f["Check"], f["Ok"]) for f in report["Findings"]}
    assert ("functions", False) not in verdicts
    assert ("version", True) in verdicts
    assert {("schedule", False), ("alarms", False)} <= verdicts
    assert all(f["Fix"] for f in report["Findings"] if not f["Ok"])
