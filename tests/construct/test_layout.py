"""The construct package keeps its shape: it reaches the handler only through the contract, and
its prop refusals live in one module."""

import ast
from pathlib import Path

import imported_key_cdk

PACKAGE = Path(imported_key_cdk.__file__).parent
HANDLER_PACKAGE = "imported_key_handler"
ALLOWED_HANDLER_MODULE = f"{HANDLER_PACKAGE}.contract"


def modules() -> list[Path]:
    found = sorted(PACKAGE.glob("*.py"))
    assert len(found) > 5, f"too few modules under {PACKAGE}: {found}"
    return found


def handler_imports(source: str) -> list[str]:
    """Every handler module ``source`` imports, as ``package.module`` names."""
    names: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == HANDLER_PACKAGE:
                names += [f"{HANDLER_PACKAGE}.{alias.name}" for alias in node.names]
            else:
                names.append(node.module)
    return [n for n in names if n == HANDLER_PACKAGE or n.startswith(f"{HANDLER_PACKAGE}.")]


def test_the_construct_imports_nothing_from_the_handler_but_the_contract() -> None:
    offenders = {
        path.name: bad
        for path in modules()
        if (
            bad := [
                name
                for name in handler_imports(path.read_text(encoding="utf-8"))
                if name != ALLOWED_HANDLER_MODULE
            ]
        )
    }
    assert offenders == {}


def test_the_import_check_catches_every_spelling() -> None:
    sources = [
        "import imported_key_handler.secret_source",
        "import imported_key_handler",
        "from imported_key_handler import material_format",
        "from imported_key_handler.kms_import import import_material",
        "def f():\n    from imported_key_handler import entry\n",
    ]
    for source in sources:
        assert [n for n in handler_imports(source) if n != ALLOWED_HANDLER_MODULE], source
    assert handler_imports("from imported_key_handler import contract") == [ALLOWED_HANDLER_MODULE]
    assert handler_imports("from imported_key_handler.contract import KEY_SPECS") == [
        ALLOWED_HANDLER_MODULE
    ]


def test_prop_refusals_live_in_props() -> None:
    raising = set()
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Raise) and node.exc is not None:
                call = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                if isinstance(call, ast.Name) and call.id == "ValueError":
                    raising.add(path.name)
    assert raising == {"_props.py"}


def test_the_package_root_is_the_public_api_only() -> None:
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    defined = [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef)
    ]
    assert defined == []
    assert sorted(imported_key_cdk.__all__) == [
        "FleetKey",
        "ImportHandler",
        "ImportedKey",
        "ImportedKeyFleet",
        "MaterialEncoding",
        "MaterialExpiration",
        "WrappingAlgorithm",
        "WrappingKeySpec",
        "load_manifest",
    ]
