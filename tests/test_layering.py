"""The audit path stays free of torch and Flower: fedledger/ must import neither. The client mod and
the coordinator, which any Flower app imports, stay free of torch and of the tabular example app; no
package of the distribution but the simulations imports that app."""

import ast
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]
TABULAR_APP = "tabular_app"

IMPORT_ALL_WITH_TORCH_AND_FLOWER_BLOCKED = textwrap.dedent(
    """
    import importlib, importlib.abc, pkgutil, sys

    class Forbidden(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"torch", "flwr"}:
                raise ImportError(f"blocked import of {name}")
            return None

    sys.meta_path.insert(0, Forbidden())
    import fedledger
    modules = [info.name for info in pkgutil.walk_packages(fedledger.__path__, "fedledger.")]
    for name in modules:
        if not name.endswith("__main__"):
            importlib.import_module(name)
    try:
        import torch
    except ImportError as error:
        print(len(modules), error)
    """
)


def test_no_fedledger_module_imports_torch_or_flower():
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL_WITH_TORCH_AND_FLOWER_BLOCKED], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    count, message = result.stdout.split(" ", 1)
    assert int(count) >= 10
    assert "blocked import of torch" in message


IMPORT_MOD_AND_COORDINATOR_WITH_TORCH_BLOCKED = textwrap.dedent(
    """
    import importlib, importlib.abc, pkgutil, sys

    class Forbidden(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"torch", "tabular_app"}:
                raise ImportError(f"blocked import of {name}")
            return None

    sys.meta_path.insert(0, Forbidden())
    from fedledger.client import ledger_mod
    import fedledger.client, fedledger.coordinator
    modules = [
        info.name
        for package in (fedledger.coordinator, fedledger.client)
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
    ]
    for name in modules:
        importlib.import_module(name)
    print(len(modules), ledger_mod.__module__)
    """
)


def test_the_client_mod_and_the_coordinator_import_neither_torch_nor_the_tabular_app():
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_MOD_AND_COORDINATOR_WITH_TORCH_BLOCKED], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    count, module = result.stdout.split()
    assert int(count) >= 14
    assert module == "fedledger.client.mod"


def package_folder(package: str, package_dir: dict[str, str]) -> Path:
    """The folder setuptools installs ``package`` from: its own mapping, its parent's, or its dotted path."""
    parts = package.split(".")
    for depth in range(len(parts), 0, -1):
        mapped = package_dir.get(".".join(parts[:depth]))
        if mapped is not None:
            return Path(mapped, *parts[depth:])
    return Path(*parts)


def distribution_modules() -> dict[str, Path]:
    """Every module the fedledger distribution installs (its packages, from the folders pyproject.toml
    maps them to), by its import name."""
    setuptools = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())["tool"]["setuptools"]
    return {
        f"{package}.{path.stem}": path
        for package in setuptools["packages"]
        for path in sorted((PROJECT_DIR / package_folder(package, setuptools["package-dir"])).glob("*.py"))
    }


def imported_names(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_only_the_simulations_import_the_tabular_app():
    modules = distribution_modules()
    importers = {
        name
        for name, path in modules.items()
        if any(imported.split(".")[0] == TABULAR_APP for imported in imported_names(path))
    }
    assert {"fedledger.coordinator.api", "fedledger.client.mod", "fedledger.cli.audit"} <= set(modules)
    assert "fedledger.simulations.runner" in importers
    assert {name for name in importers if not name.startswith("fedledger.simulations.")} == set()


def test_the_tabular_task_lives_in_its_example_app_only():
    tabular_modules = {path.stem for path in (PROJECT_DIR / "examples" / "tabular" / TABULAR_APP).glob("*.py")}
    assert {"server_app", "client_app", "models", "training", "schema", "settings"} <= tabular_modules
    framework = {path.stem for folder in ("client", "coordinator") for path in (PROJECT_DIR / folder).glob("*.py")}
    assert framework & tabular_modules == {"__init__"}


INDEPENDENT_DIR = PROJECT_DIR / "tests" / "independent"
#: What an implementation written from docs/ alone may import: the standard library, NumPy,
#: pycryptodome's Keccak, the test tools, and its own folder.
INDEPENDENT_IMPORTS = set(sys.stdlib_module_names) | {"numpy", "Crypto", "pytest", "hypothesis", "independent"}

IMPORT_INDEPENDENT_WITH_FEDLEDGER_BLOCKED = textwrap.dedent(
    """
    import importlib, importlib.abc, pkgutil, sys

    class Forbidden(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "fedledger":
                raise ImportError(f"blocked import of {name}")
            return None

    sys.meta_path.insert(0, Forbidden())
    sys.path.insert(0, sys.argv[1])
    import independent
    modules = [info.name for info in pkgutil.walk_packages(independent.__path__, "independent.")]
    for name in modules:
        importlib.import_module(name)
    print(len(modules))
    """
)


def test_the_independent_implementations_import_only_the_standard_library_numpy_and_keccak():
    modules = sorted(INDEPENDENT_DIR.glob("*.py"))
    assert {"encoding.py", "test_encoding_spec.py"} <= {path.name for path in modules}
    outside = {
        f"{path.name}: {name}"
        for path in modules
        for name in imported_names(path)
        if name.split(".")[0] not in INDEPENDENT_IMPORTS
    }
    assert outside == set()


def test_the_independent_implementations_run_with_fedledger_blocked():
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_INDEPENDENT_WITH_FEDLEDGER_BLOCKED, str(INDEPENDENT_DIR.parent)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) >= 2
