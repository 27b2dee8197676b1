"""The audit path stays free of torch and Flower: fedledger/ must import neither. The client mod and
the coordinator, which any Flower app imports, stay free of torch."""

import subprocess
import sys
import textwrap

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
            if name.split(".")[0] == "torch":
                raise ImportError(f"blocked import of {name}")
            return None

    sys.meta_path.insert(0, Forbidden())
    from fedledger.client import ledger_mod
    import fedledger.client.mod, fedledger.coordinator
    modules = [info.name for info in pkgutil.walk_packages(fedledger.coordinator.__path__, "fedledger.coordinator.")]
    for name in modules:
        importlib.import_module(name)
    print(len(modules), ledger_mod.__module__)
    """
)


def test_the_client_mod_and_the_coordinator_import_no_torch():
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_MOD_AND_COORDINATOR_WITH_TORCH_BLOCKED], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    count, module = result.stdout.split()
    assert int(count) >= 10
    assert module == "fedledger.client.mod"
