"""The Lambda asset: bundled without Docker, per architecture, reproducible, cached."""

import subprocess
from pathlib import Path

import pytest
from support.synth import REPO, synth_with_bundling

from imported_key_cdk import bundling

pytestmark = pytest.mark.slow

ELF_MACHINES = {"arm64": 183, "x86_64": 62}  # e_machine: EM_AARCH64, EM_X86_64


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
    pip_runs: list[list[str]] = []
    real_run = subprocess.run

    def counting_run(command: list[str], **kwargs: object) -> object:
        if command[1:4] == ["-m", "pip", "install"]:
            pip_runs.append(command)
        return real_run(command, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(bundling.subprocess, "run", counting_run)
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
