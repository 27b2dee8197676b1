"""What `pip install` puts into site-packages: one top-level import name, `fedledger`."""

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
#: What the build does not read; copying the rest keeps the build from writing into the repository.
NOT_PACKAGED = (".git", ".venv", "node_modules", ".fedledger", "build", "*.egg-info", "__pycache__", "tests")


def test_the_wheel_installs_only_the_fedledger_import_name(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(REPOSITORY, source, ignore=shutil.ignore_patterns(*NOT_PACKAGED))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", tmp_path, "."],
        cwd=source,
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("fedledger-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}

    assert top_level == {"fedledger"}
    for package in ("client", "coordinator", "contracts", "simulations"):
        assert f"fedledger/{package}/__init__.py" in names
    client = sorted(name for name in names if name.startswith("fedledger/client/"))
    assert client == [
        "fedledger/client/__init__.py",
        "fedledger/client/identity.py",
        "fedledger/client/mod.py",
        "fedledger/client/protocol.py",
        "fedledger/client/valuation.py",
    ]
    assert "fedledger/contracts/artifacts/FedLedgerRegistry.json" in names
    assert "fedledger/simulations/data/heart_disease_uci.csv" in names


def dependencies(project: Path) -> list[str]:
    return tomllib.loads(project.read_text())["project"]["dependencies"]


def test_an_app_that_uses_fedledger_needs_only_flower_of_it_not_the_training_stack():
    extras = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["flower"] == ["flwr[simulation]==1.41.0"]
    assert set(extras["flower"]) < set(extras["federation"])
    assert any(requirement.startswith("torch") for requirement in extras["federation"])

    for example in ("digits", "logreg"):
        requirements = dependencies(REPOSITORY / "examples" / example / "pyproject.toml")
        assert "fedledger[flower]>=0.1" in requirements, example
        assert not any(requirement.startswith("fedledger[federation") for requirement in requirements), example
    assert not any(
        requirement.startswith("torch")
        for requirement in dependencies(REPOSITORY / "examples" / "logreg" / "pyproject.toml")
    )

    # What the examples need beyond FedLedger is installed by `make`, so that their tests run.
    example_stack = {
        requirement
        for example in ("digits", "logreg")
        for requirement in dependencies(REPOSITORY / "examples" / example / "pyproject.toml")
        if not requirement.startswith(("fedledger", "flwr[", "torch", "numpy"))
    }
    assert example_stack <= set(extras["examples"]), example_stack
    assert '".[federation,examples,dev]"' in (REPOSITORY / "Makefile").read_text()
