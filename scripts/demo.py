"""`make demo`: one ImportedKey, deployed by hand against a local KMS.

1. start LocalStack (KMS + Secrets Manager) on 127.0.0.1, no Docker;
2. synthesize app.py, as `cdk synth` would;
3. put fresh random material in a secret and create the EXTERNAL key the template declares;
4. play the custom resource's Create: the real handler, its answer sent to a local HTTPS
   server standing in for CloudFormation;
5. show the key Enabled and prove it holds exactly the material; stop the emulator.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the emulator launcher and CloudFormation stand-ins

from support.binding import INDEX_BUCKET, TEST_HANDLER_ROLE_ID, PlayedStacks  # noqa: E402
from support.cfn_server import CfnResponseServer  # noqa: E402
from support.events import REGION, cfn_event, stack_id_for  # noqa: E402
from support.kms_blob import decrypt_localstack_ciphertext  # noqa: E402
from support.lambda_context import FakeLambdaContext  # noqa: E402
from support.localstack import start_localstack  # noqa: E402

from imported_key_handler import clients, contract  # noqa: E402

STACK_NAME = "ImportedKeyDemo"
SECRET_NAME = "imported-key-cdk/demo-material"  # noqa: S105 - a name, not a secret


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def show(label: str, value: object) -> None:
    print(f"   {label:<32} {value}", flush=True)


def synthesize(outdir: Path) -> dict[str, Any]:
    env = dict(
        os.environ,
        CDK_OUTDIR=str(outdir),
        CDK_CONTEXT_JSON=json.dumps({"material_secret_name": SECRET_NAME}),
        JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20",
    )
    subprocess.run(  # noqa: S603 - our own interpreter and app
        [sys.executable, str(REPO / "app.py")], cwd=REPO, env=env, check=True, timeout=600
    )
    template: dict[str, Any] = json.loads((outdir / "ImportedKeyExample.template.json").read_text())
    return template


def logical_id_of(template: dict[str, Any], resource_type: str) -> str:
    (name,) = [n for n, r in template["Resources"].items() if r["Type"] == resource_type]
    return str(name)


def of_type(template: dict[str, Any], resource_type: str) -> dict[str, Any]:
    (resource,) = [r for r in template["Resources"].values() if r["Type"] == resource_type]
    return dict(resource)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="imported-key-demo-") as work:
        workdir = Path(work)
        step("Starting the local KMS and Secrets Manager (LocalStack, no Docker)")
        with start_localstack(workdir) as localstack, CfnResponseServer() as cloudformation:
            show("endpoint", localstack.endpoint)
            show("started in", f"{localstack.startup_seconds:.1f} s")
            return run(localstack, cloudformation, workdir)


def run(localstack: Any, cloudformation: CfnResponseServer, workdir: Path) -> int:
    step("Synthesizing app.py (what `cdk synth` runs)")
    template = synthesize(workdir / "cdk.out")
    key_resource = of_type(template, "AWS::KMS::Key")
    material_import = of_type(template, contract.RESOURCE_TYPE)
    show("AWS::KMS::Key Origin", key_resource["Properties"]["Origin"])
    show("DeletionPolicy", key_resource["DeletionPolicy"])
    properties = {k: v for k, v in material_import["Properties"].items() if k != "ServiceToken"}
    for name, value in properties.items():
        show(f"custom resource {name}", json.dumps(value)[:70])
    asset = next((workdir / "cdk.out").glob("asset.*"))
    size = sum(p.stat().st_size for p in asset.rglob("*") if p.is_file())
    show("handler asset (arm64)", f"{asset.name[:18]}..., {size / 1e6:.1f} MB, bundled with pip")

    step("Putting 32 fresh random bytes into Secrets Manager")
    secrets = localstack.client("secretsmanager")
    kms = localstack.client("kms")
    material = os.urandom(contract.SYMMETRIC_MATERIAL_BYTES)
    secret_arn = secrets.create_secret(Name=SECRET_NAME, SecretBinary=material)["ARN"]
    show("secret", secret_arn)

    step("Creating the key the template declares, with its binding tags")
    # CloudFormation resolves the tags' references; the settings digest is the template's own.
    stack_id = stack_id_for(STACK_NAME)
    resolved = {
        contract.TAG_HANDLER: TEST_HANDLER_ROLE_ID,
        contract.TAG_SECRET: secret_arn,
        contract.TAG_STACK: stack_id,
    }
    tags = [
        {"TagKey": tag["Key"], "TagValue": resolved.get(tag["Key"], tag["Value"])}
        for tag in key_resource["Properties"].get("Tags", [])
    ]
    key = kms.create_key(
        Origin=key_resource["Properties"]["Origin"],
        Description=key_resource["Properties"].get("Description", ""),
        KeySpec="SYMMETRIC_DEFAULT",
        KeyUsage="ENCRYPT_DECRYPT",
        Tags=tags,
    )["KeyMetadata"]
    show("key", key["KeyId"])
    show("state", key["KeyState"])
    # CloudFormation's record of the stack, which the handler asks before it reads a secret:
    # LocalStack cannot deploy an EXTERNAL key, so the demo plays that one answer.
    played = PlayedStacks()
    key_logical_id = logical_id_of(template, "AWS::KMS::Key")
    played.record(stack_id, key_logical_id, key["KeyId"], resource_type="AWS::KMS::Key")
    clients.cloudformation_client = played.client
    show(f"stack resource {key_logical_id}", f"{key['KeyId']} (CloudFormation's record, played)")
    index = localstack.client("s3").create_bucket(Bucket=INDEX_BUCKET)
    show("due index bucket", index.get("Location", INDEX_BUCKET))
    for tag in tags:
        if tag["TagKey"].startswith(contract.TAG_PREFIX):
            show(f"tag {tag['TagKey']}", tag["TagValue"][:70])

    step("Playing the custom resource's Create with the real handler")
    # CloudFormation resolves the template's Ref/Fn::Join to these values before invoking.
    properties[contract.PROP_KEY_ID] = key["KeyId"]
    properties[contract.PROP_SECRET_ARN] = secret_arn
    os.environ.update(
        AWS_REGION=REGION,
        AWS_DEFAULT_REGION=REGION,
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",  # noqa: S106 - LocalStack dummy credentials
        AWS_ENDPOINT_URL=localstack.endpoint,
        SSL_CERT_FILE=str(cloudformation.ca_file),
        **{
            contract.ENV_HANDLER_ROLE_ID: TEST_HANDLER_ROLE_ID,
            contract.ENV_HANDLER_STACK_ID: stack_id,
            contract.ENV_REGISTRY_BUCKET: INDEX_BUCKET,
            contract.ENV_FLEET_NAME: f"{STACK_NAME}/demo",
        },
    )
    from imported_key_handler.entry import handler

    response_url = cloudformation.response_url("create")
    event = cfn_event(
        "Create",
        properties,
        response_url,
        stack_name=STACK_NAME,
        logical_id=logical_id_of(template, contract.RESOURCE_TYPE),
    )
    handler(event, FakeLambdaContext(120))
    response = cloudformation.wait_for(response_url, timeout=30)
    show("response Status", response["Status"])
    show("response Reason", response.get("Reason") or "-")
    for name, value in response["Data"].items():
        show(f"response Data.{name}", value)
    if response["Status"] != "SUCCESS":
        return 1

    step("The key after the import")
    metadata = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    show("state", metadata["KeyState"])
    show("expiration model", metadata.get("ExpirationModel"))
    show("material valid to", metadata.get("ValidTo"))

    step("Encrypt/decrypt round trip, and proof the key holds exactly the secret's material")
    plaintext = b"hello from imported-key-cdk"
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=plaintext)["CiphertextBlob"]
    round_trip = kms.decrypt(CiphertextBlob=blob)["Plaintext"]
    show("KMS Decrypt(KMS Encrypt)", round_trip.decode())
    local = decrypt_localstack_ciphertext(blob, material)
    show("decrypted locally with", f"the material from the secret -> {local.decode()}")

    step("A forged Update (anyone who may invoke the function) naming another secret")
    other = secrets.create_secret(Name=SECRET_NAME + "-other", SecretBinary=os.urandom(32))
    forged_url = cloudformation.response_url("forged")
    forged = {**properties, contract.PROP_SECRET_ARN: other["ARN"]}
    handler(
        cfn_event(
            "Update", forged, forged_url, physical_id=key["KeyId"], old_properties=properties
        ),
        FakeLambdaContext(120),
    )
    refused = cloudformation.wait_for(forged_url, timeout=30)
    show("response Status", refused["Status"])
    show("response Reason", refused["Reason"][:70])
    still = kms.decrypt(CiphertextBlob=blob)["Plaintext"] == plaintext
    show("key unchanged", "old ciphertext still decrypts" if still else "NO")

    step("The hourly sweep: reads the due index, finds nothing due, calls KMS for nothing")
    swept = handler({contract.SWEEP_EVENT: {}}, FakeLambdaContext(900))
    for name, value in swept.items():
        show(f"sweep {name}", value)

    ok = metadata["KeyState"] == "Enabled" and round_trip == plaintext == local
    ok = ok and refused["Status"] == "FAILED" and still and swept["Due"] == 0
    step("Done: key Enabled, material proven, forgery refused, sweep idle" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
