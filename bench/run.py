"""Benchmarks behind the figures in the README. Run with `make bench`; not part of `make test`.

Measures: synth time of app.py with a cold and a warm dependency cache; the Lambda asset's
size; the pure wrap; the handler's Create against LocalStack (median, p95); the peak RSS of
the deployed bundle running one import under Python 3.13; the bundle's cold start under
Python 3.13 (importing the entry module, then the first invocation's crhelper and clients); and
the fleet figures of bench/fleet.py (N ImportedKeys next to N plain keys, paired runs); and
the calls of an idle sweep and of renewals over a 1,000-key due index on LocalStack
(bench/sweep_calls.py).

``--only cold_start`` (or another result's name, comma-separated) runs just those measurements.
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import fleet  # noqa: E402 - bench/fleet.py, beside this file
import sweep_calls  # noqa: E402 - bench/sweep_calls.py, beside this file
from support.binding import TEST_HANDLER_ROLE_ID, bind_key  # noqa: E402
from support.cfn_server import CfnResponseServer  # noqa: E402
from support.events import REGION, cfn_event, import_properties  # noqa: E402
from support.lambda_context import FakeLambdaContext  # noqa: E402
from support.lambda_runtime import find_python_313  # noqa: E402
from support.localstack import start_localstack  # noqa: E402

from imported_key_handler import contract  # noqa: E402
from imported_key_handler.wrapping import wrap_key_material  # noqa: E402

# Top-level names of the SDK in the bundle (packages, modules, dist-info folders).
SDK_TOP_LEVEL = {"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "python_dateutil",
                 "six.py", "six", "urllib3"}  # fmt: skip
IMPORTS = 20
WRAPS = 200
COLD_STARTS = 9


def synth_seconds(outdir: Path, cache: Path) -> float:
    env = dict(os.environ, CDK_OUTDIR=str(outdir), IMPORTED_KEY_CDK_CACHE=str(cache))
    env["JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"] = "20"
    started = time.perf_counter()
    subprocess.run([sys.executable, str(REPO / "app.py")], env=env, check=True, timeout=900)
    return time.perf_counter() - started


def asset_sizes(outdir: Path) -> tuple[int, int]:
    (asset,) = outdir.glob("asset.*")
    return asset_sizes_of(asset, outdir / "asset.zip")


def asset_sizes_of(asset: Path, archive: Path) -> tuple[int, int]:
    """Bytes of ``asset``'s files, and of the zip the CDK would upload."""
    unzipped = sum(p.stat().st_size for p in asset.rglob("*") if p.is_file())
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(asset.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(asset))
    return unzipped, archive.stat().st_size


def wrap_ms() -> dict[str, float]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    public = (
        rsa.generate_private_key(65537, 4096)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    material = os.urandom(32)
    samples = []
    for _ in range(WRAPS):
        started = time.perf_counter()
        wrap_key_material(material, public, "RSAES_OAEP_SHA_256")
        samples.append((time.perf_counter() - started) * 1000)
    return {"median_ms": statistics.median(samples), "max_ms": max(samples)}


def handler_imports(work: Path) -> dict[str, Any]:
    with start_localstack(work) as localstack, CfnResponseServer() as cloudformation:
        os.environ.update(
            AWS_REGION=REGION,
            AWS_ACCESS_KEY_ID="test",
            AWS_SECRET_ACCESS_KEY="test",
            AWS_ENDPOINT_URL=localstack.endpoint,
            SSL_CERT_FILE=str(cloudformation.ca_file),
            **{contract.ENV_HANDLER_ROLE_ID: TEST_HANDLER_ROLE_ID},
        )
        from imported_key_handler.entry import handler

        kms = localstack.client("kms")
        secrets = localstack.client("secretsmanager")
        samples = []
        for _ in range(IMPORTS):
            key_id = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
            arn = secrets.create_secret(Name=f"bench/{uuid.uuid4()}", SecretBinary=os.urandom(32))
            props = import_properties(key_id, arn["ARN"])
            url = cloudformation.response_url("bench")
            event = cfn_event("Create", props, url)
            # CloudFormation's binding tags, written before the import as a deployment does.
            bind_key(kms, props, stack_id=event["StackId"], logical_id=event["LogicalResourceId"])
            started = time.perf_counter()
            handler(event, FakeLambdaContext(120))
            response = cloudformation.wait_for(url, timeout=60)
            samples.append((time.perf_counter() - started) * 1000)
            assert response["Status"] == "SUCCESS", response
        samples.sort()
        return {
            "imports": IMPORTS,
            "median_ms": statistics.median(samples),
            "p95_ms": samples[int(0.95 * (len(samples) - 1))],
            "localstack_start_s": localstack.startup_seconds,
            "localstack_rss_mib": localstack.rss_bytes() / 2**20,
        }


def bundle_peak_rss_mib(bundle: Path) -> float | None:
    """Peak RSS of Python 3.13 importing the bundled handler (with boto3) and wrapping once."""
    python = find_python_313()
    if not python:
        return None
    code = (
        "import sys; sys.path[0:0] = sys.argv[1:2];"
        "import imported_key_handler.wrapping as w, imported_key_handler.cfn, boto3;"
        "boto3.client('kms', region_name='us-east-1');"
        "from cryptography.hazmat.primitives.asymmetric import rsa;"
        "from cryptography.hazmat.primitives import serialization as s;"
        "k = rsa.generate_private_key(65537, 4096).public_key().public_bytes("
        "s.Encoding.DER, s.PublicFormat.SubjectPublicKeyInfo);"
        "w.wrap_key_material(b'x' * 32, k, 'RSAES_OAEP_SHA_256');"
        "import resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    probe = subprocess.run(
        [python, "-I", "-B", "-c", code, str(bundle)],
        check=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return int(probe.stdout.split()[-1]) / 1024  # ru_maxrss is in KiB on Linux


_COLD_START = """
import json, sys, time
started = time.perf_counter()
sys.path[0:0] = sys.argv[1:]
import imported_key_handler.entry
imported = time.perf_counter()
from imported_key_handler import cfn, clients
cfn.build_helper()  # crhelper makes its Lambda, EventBridge and Logs clients
clients.kms_client(), clients.secretsmanager_client()
ready = time.perf_counter()
import botocore
print(json.dumps({"import_ms": (imported - started) * 1000,
                  "first_call_setup_ms": (ready - imported) * 1000,
                  "botocore": botocore.__file__}))
"""


def is_sdk(top_level: str) -> bool:
    """Whether a top-level entry of the bundle belongs to the SDK (boto3, botocore, theirs)."""
    return top_level.split("-")[0] in SDK_TOP_LEVEL


def cold_start_ms(layouts: dict[str, list[Path]]) -> dict[str, dict[str, float]]:
    """Median over fresh Python 3.13 processes of loading the handler from each ``sys.path``.

    The layouts take turns, so a busy machine slows them alike. ``-B``: Lambda's /var/task is
    read-only, so nothing a bundle lacks is ever compiled for the next cold start.
    """
    python = find_python_313()
    assert python is not None
    env = {"PATH": os.environ["PATH"], "AWS_REGION": REGION, "AWS_ACCESS_KEY_ID": "test",
           "AWS_SECRET_ACCESS_KEY": "test"}  # fmt: skip
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in layouts}
    for _ in range(COLD_STARTS):
        for name, paths in layouts.items():
            probe = subprocess.run(
                [python, "-I", "-B", "-c", _COLD_START, *map(str, paths)],
                env=env, check=True, capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            runs[name].append(json.loads(probe.stdout))
    results = {}
    for name, paths in layouts.items():
        loaded_from = Path(runs[name][0]["botocore"])
        assert any(loaded_from.is_relative_to(path) for path in paths), (name, loaded_from)
        results[name] = {
            measure: statistics.median(run[measure] for run in runs[name])
            for measure in ("import_ms", "first_call_setup_ms")
        }
    return results


def bundle_cold_start(bundle: Path, work: Path) -> dict[str, Any]:
    """The bundle as deployed; as before it carried its SDK (the SDK from the runtime's path,
    compiled, as the runtime's own copy is); and with every .py compiled for Python 3.13."""
    python = find_python_313()
    if not python:
        return {}
    as_bundled, precompiled = work / "as-bundled", work / "precompiled"
    without_sdk, runtime_sdk = work / "without-sdk", work / "runtime-sdk"
    no_bytecode = shutil.ignore_patterns("__pycache__")
    for copy in (as_bundled, precompiled):
        shutil.copytree(bundle, copy, ignore=no_bytecode)
    for entry in bundle.iterdir():
        target = (runtime_sdk if is_sdk(entry.name) else without_sdk) / entry.name
        if entry.is_dir():
            shutil.copytree(entry, target, ignore=no_bytecode)
        elif entry.name != "__pycache__":
            target.parent.mkdir(exist_ok=True)
            shutil.copy2(entry, target)
    for compiled in (precompiled, runtime_sdk):
        subprocess.run([python, "-m", "compileall", "-q", str(compiled)], check=True, timeout=300)
    return cold_start_ms(
        {
            "sdk_from_runtime": [without_sdk, runtime_sdk],
            "as_bundled": [as_bundled],
            "precompiled": [precompiled],
        }
    )


def bundle_sizes(bundle: Path, work: Path) -> dict[str, float]:
    """The x86_64 bundle's size, and what of it is the SDK (boto3, botocore and theirs)."""
    files = [p for p in bundle.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    sdk = [p for p in files if is_sdk(p.relative_to(bundle).parts[0])]
    unzipped, zipped = asset_sizes_of(bundle, work / "x86.zip")
    return {
        "unzipped": unzipped / 1e6,
        "zipped": zipped / 1e6,
        "sdk_unzipped": sum(p.stat().st_size for p in sdk) / 1e6,
    }


MEASUREMENTS = ("synth", "wrap", "handler_create", "peak_rss", "cold_start", "fleet", "sweep")
# The paired fleet runs (bench/fleet.py): one key and 50 keys in one stack, and a 1,000-key
# ImportedKeyFleet next to 1,000 plain keys over the same nested stacks.
FLEET_CASES = [
    fleet.Case("stack", 1),
    fleet.Case("stack", 50),
    fleet.Case("fleet", 1000, pairs=fleet.PAIRS),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        default=",".join(MEASUREMENTS),
        help=f"comma-separated subset of {', '.join(MEASUREMENTS)}; the other results in "
        "bench/results.json are kept",
    )
    only = set(parser.parse_args().only.split(","))
    if only - set(MEASUREMENTS):
        parser.error(f"unknown measurement(s) {sorted(only - set(MEASUREMENTS))}")
    results_file = REPO / "bench" / "results.json"
    results: dict[str, Any] = json.loads(results_file.read_text()) if results_file.exists() else {}
    results["machine"] = f"{platform.machine()}, {os.cpu_count()} cores"
    with tempfile.TemporaryDirectory(prefix="imported-key-bench-") as tmp:
        work = Path(tmp)
        cache = work / "cache"
        if "synth" in only:
            results["synth_cold_cache_s"] = synth_seconds(work / "cold", cache)
            warm = [synth_seconds(work / f"warm{i}", cache) for i in range(3)]
            results["synth_warm_cache_s"] = statistics.median(warm)
            unzipped, zipped = asset_sizes(work / "warm0")
            results["asset_mb"] = {"unzipped": unzipped / 1e6, "zipped": zipped / 1e6}
        if "wrap" in only:
            results["wrap_rsa4096_oaep_sha256"] = wrap_ms()
        if "handler_create" in only:
            results["handler_create_on_localstack"] = handler_imports(work)
        if only & {"peak_rss", "cold_start"}:
            x86 = subprocess.run(
                [sys.executable, "-c", _X86_BUNDLE, str(work / "x86")],
                env=dict(os.environ, IMPORTED_KEY_CDK_CACHE=str(cache)),
                cwd=REPO,
                check=True, capture_output=True, text=True, timeout=900,
            )  # fmt: skip
            bundle = Path(x86.stdout.strip())
        if "cold_start" in only:
            results["x86_64_bundle_mb"] = bundle_sizes(bundle, work)
            results["cold_start_ms_py313"] = bundle_cold_start(bundle, work)
        if "peak_rss" in only:
            results["bundle_peak_rss_mib_py313"] = bundle_peak_rss_mib(bundle)
        if "fleet" in only:
            results["fleet_vs_plain_keys"] = fleet.fleet_figures(FLEET_CASES, work / "fleet", cache)
        if "sweep" in only:
            results["sweep_calls_on_localstack"] = sweep_calls.measure(work / "sweep")
    text = json.dumps(results, indent=2, default=lambda v: round(v, 2))
    print(text)
    results_file.write_text(json.dumps(results, indent=2) + "\n")


_X86_BUNDLE = """
import sys
from pathlib import Path
sys.path.insert(0, "tests")
from support.synth import synth_with_bundling
print(synth_with_bundling(Path(sys.argv[1]))[1]["x86_64"])
"""

if __name__ == "__main__":
    main()
