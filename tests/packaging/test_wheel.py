"""`pip install .` gives a working library: a consumer app elsewhere synthesizes with it."""

import json
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from support.synth import REPO, synth_with_bundling

pytestmark = pytest.mark.slow

CONSUMER_APP = textwrap.dedent(
    """
    import json, sys
    import aws_cdk as cdk
    from aws_cdk import aws_secretsmanager as sm
    from imported_key_cdk import ImportedKey
    import imported_key_cdk

    app = cdk.App(outdir=sys.argv[1])
    stack = cdk.Stack(app, "Consumer")
    secret = sm.Secret.from_secret_name_v2(stack, "S", "consumer/material")
    ImportedKey(stack, "Key", key_material_secret=secret)
    app.synth()
    print(json.dumps({"library": imported_key_cdk.__file__}))
    """
)


def run(command: list[str], cwd: Path, timeout: float = 600) -> str:
    result = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"{command[:4]} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


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
    assert not [n for n in names if n.startswith(("tests/", "constructs/", "lambda/"))]


def test_consumer_app_synthesizes_from_an_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], tmp_path)
    run([str(venv / "bin" / "pip"), "install", "--quiet", str(wheel)], tmp_path)
    consumer = tmp_path / "consumer"
    consumer.mkdir()
    (consumer / "app.py").write_text(CONSUMER_APP)
    outdir = tmp_path / "cdk.out"
    printed = run([str(venv / "bin" / "python"), "app.py", str(outdir)], consumer)
    library = json.loads(printed.strip().splitlines()[-1])["library"]
    assert library.startswith(str(venv)), "the app must use the installed wheel, not the repo"

    template = json.loads((outdir / "Consumer.template.json").read_text())
    resources = template["Resources"].values()
    (key,) = [r for r in resources if r["Type"] == "AWS::KMS::Key"]
    assert key["Properties"]["Origin"] == "EXTERNAL"
    (function,) = [r for r in resources if r["Type"] == "AWS::Lambda::Function"]
    asset_hash = function["Properties"]["Code"]["S3Key"].removesuffix(".zip")
    bundle = outdir / f"asset.{asset_hash}"
    assert (bundle / "imported_key_handler" / "entry.py").is_file()
    assert list(bundle.glob("_cffi_backend.cpython-313-aarch64-linux-gnu.so"))

    # The same handler source gives the same asset, whether installed or checked out.
    _, from_source = synth_with_bundling(tmp_path / "source")
    assert Path(from_source["arm64"]).name == bundle.name
