"""`pip install .` gives a working library: a consumer app elsewhere synthesizes with it, by
itself and through the real CDK command line with cdk-nag 3 wired in, as a user's pipeline."""

import json
import subprocess
import sys
import textwrap
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest
from support.cdk_cli import cdk_synth, imported_key_resources, validation_violations
from support.synth import REPO, asset_hashes_without_bundling

pytestmark = pytest.mark.slow

CONSUMER_APP = textwrap.dedent(
    """
    import json, sys
    import aws_cdk as cdk
    from aws_cdk import aws_secretsmanager as sm
    from imported_key_cdk import ImportedKey
    import imported_key_cdk

    # Run by hand with the output directory; by the CDK CLI without (it sets CDK_OUTDIR).
    app = cdk.App(outdir=sys.argv[1] if len(sys.argv) > 1 else None)
    if app.node.try_get_context("nag"):
        import cdk_nag

        cdk.Validations.of(app).add_plugins(
            cdk_nag.AwsSolutionsChecks(app), cdk_nag.NIST80053R5Checks(app)
        )
    if app.node.try_get_context("control"):
        # A finding nobody acknowledged: cdk-nag must fail the synth.
        cdk.aws_kms.Key(cdk.Stack(app, "Control"), "Unrotated")
    else:
        stack = cdk.Stack(app, "Consumer")
        secret = sm.Secret.from_secret_name_v2(stack, "S", "consumer/material")
        ImportedKey(stack, "Key", key_material_secret=secret)
        # The secret is made outside the app, so the consumer tags it for the handler itself
        # (the warning names the tag) and says so; `cdk synth --strict` fails until then.
        cdk.Annotations.of(stack).acknowledge_warning(
            "imported-key-cdk:secret-reader-tag", "The consumer tags its material secret."
        )
    app.synth()
    print(json.dumps({"library": imported_key_cdk.__file__}))
    """
)
# The consumer's own cdk.json, as `cdk init` would write it: python3 is the activated venv's.
CONSUMER_CDK_JSON = json.dumps({"app": "python3 app.py", "context": {"nag": True}})


def run(command: list[str], cwd: Path, timeout: float = 600) -> str:
    result = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"{command[:4]} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


# The uv that `make` bootstraps installs in seconds what pip takes half a minute for (both fill
# a venv from PyPI or their caches); outside `make`, pip does it.
UV = next(iter(sorted((REPO / ".tools").glob("uv-*/bin/uv"))), None)


def install(venv: Path, *requirements: str) -> None:
    python = venv / "bin" / "python"
    if UV is None:
        run([str(python), "-m", "pip", "install", "--quiet", *requirements], venv.parent)
    else:
        run(
            [str(UV), "pip", "install", "--quiet", "--python", str(python), *requirements],
            venv.parent,
        )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(out), str(REPO)], out
    )
    (built,) = out.glob("imported_key_cdk-*.whl")
    return built


def test_wheel_ships_library_and_handler_without_bytecode(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "imported_key_cdk/imported_key.py" in names
    assert "imported_key_cdk/py.typed" in names
    assert "imported_key_handler/entry.py" in names
    assert "imported_key_handler/requirements.txt" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert "imported_key_cli/main.py" in names
    assert not [n for n in names if n.startswith(("tests/", "constructs/", "lambda/", "cli/"))]
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "imported-keys = imported_key_cli:main" in scripts


def test_the_command_line_says_how_to_install_its_extra_then_runs(
    consumer_venv: Path, wheel: Path
) -> None:
    script = consumer_venv / "bin" / "imported-keys"
    bare = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=False)
    assert bare.returncode == 1
    assert "pip install 'imported-key-cdk[cli]'" in bare.stderr
    assert "Traceback" not in bare.stderr
    # Extras only add packages: the other tests of the module may share this venv after it.
    install(consumer_venv, f"{wheel}[cli]")
    ran = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=True)
    assert ran.stdout.strip() == f"imported-keys, version {version('imported-key-cdk')}"


@pytest.fixture(scope="module")
def consumer_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with only the wheel (and what it depends on) installed."""
    venv = tmp_path_factory.mktemp("consumer") / "venv"
    if UV is None:
        run([sys.executable, "-m", "venv", str(venv)], venv.parent)
    else:
        # --seed: the library's bundling runs the venv's pip.
        run(
            [str(UV), "venv", "--quiet", "--seed", "--python", sys.executable, str(venv)],
            venv.parent,
        )
    install(venv, str(wheel))
    # The library acknowledges cdk-nag findings without depending on cdk-nag.
    probe = "import importlib.util; print(importlib.util.find_spec('cdk_nag') is None)"
    assert run([str(venv / "bin" / "python"), "-c", probe], venv.parent).strip() == "True"
    return venv


def consumer_project(root: Path) -> Path:
    consumer = root / "consumer"
    consumer.mkdir()
    (consumer / "app.py").write_text(CONSUMER_APP)
    (consumer / "cdk.json").write_text(CONSUMER_CDK_JSON)
    return consumer


def reported_library(stdout: str) -> str:
    """Where the consumer app imported the library from: the JSON line the app prints."""
    reports = [line for line in stdout.splitlines() if line.startswith('{"library": ')]
    assert len(reports) == 1, f"the app's report is missing from its output:\n{stdout}"
    library: str = json.loads(reports[0])["library"]
    return library


def test_consumer_app_synthesizes_from_an_installed_wheel(
    consumer_venv: Path, tmp_path: Path
) -> None:
    venv = consumer_venv
    consumer = consumer_project(tmp_path)
    outdir = tmp_path / "cdk.out"
    printed = run([str(venv / "bin" / "python"), "app.py", str(outdir)], consumer)
    library = reported_library(printed)
    assert library.startswith(str(venv)), "the app must use the installed wheel, not the repo"

    template = json.loads((outdir / "Consumer.template.json").read_text())
    resources = template["Resources"].values()
    (key,) = [r for r in resources if r["Type"] == "AWS::KMS::Key"]
    assert key["Properties"]["Origin"] == "EXTERNAL"
    # The handler's import and sweep functions, from one asset.
    functions = [r for r in resources if r["Type"] == "AWS::Lambda::Function"]
    assert len(functions) == 2
    (asset_key,) = {f["Properties"]["Code"]["S3Key"] for f in functions}
    asset_hash = asset_key.removesuffix(".zip")
    bundle = outdir / f"asset.{asset_hash}"
    assert (bundle / "imported_key_handler" / "entry.py").is_file()
    assert list(bundle.glob("_cffi_backend.cpython-313-aarch64-linux-gnu.so"))

    # The same handler source gives the same asset, whether installed or checked out. The
    # asset's hash is computed before bundling, so the checkout's synth need not bundle.
    from_source = asset_hashes_without_bundling(tmp_path / "source")
    assert f"asset.{from_source['arm64']}" == bundle.name


def test_cdk_cli_with_cdk_nag_synthesizes_the_consumer(consumer_venv: Path, tmp_path: Path) -> None:
    venv = consumer_venv
    # The cdk-nag the project pins (requirements.txt), as the consumer's own dependency.
    nag = f"cdk-nag=={version('cdk-nag')}"
    install(venv, nag)
    consumer = consumer_project(tmp_path)

    outdir = tmp_path / "cdk.out"
    result = cdk_synth(consumer, venv, outdir)
    assert result.returncode == 0, result.stdout + result.stderr
    # cdk.json's python3 is the activated venv's; the CLI passes the app's output through,
    # among its own lines (such as a count of unconfigured feature flags).
    library = reported_library(result.stdout)
    assert library.startswith(str(venv))
    assert validation_violations(outdir) == []
    imported_key_resources(outdir, "Consumer")

    # The same pipeline fails on a finding nobody acknowledged: cdk-nag really ran above.
    control = tmp_path / "control.out"
    result = cdk_synth(consumer, venv, control, "--context", "control=true")
    assert result.returncode != 0
    assert sorted(validation_violations(control)) == [
        "AwsSolutions: AwsSolutions-KMS5",
        "NIST.800.53.R5: NIST.800.53.R5-KMSBackingKeyRotationEnabled",
    ]
