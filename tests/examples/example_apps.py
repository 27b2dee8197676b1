"""The example apps, and the plain quickstart with the documented diff applied, for the example tests."""

import shutil
import subprocess
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
QUICKSTART = EXAMPLES / "quickstart-pytorch"
DIGITS = EXAMPLES / "digits"
LOGREG = EXAMPLES / "logreg"
TABULAR = EXAMPLES / "tabular"
DIFF = EXAMPLES / "add-fedledger.diff"


def copy_app(source: Path, target: Path) -> Path:
    """A copy of the app in ``source`` at ``target``, without Python's caches."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
    return target


def app_files(directory: Path) -> dict[str, bytes]:
    """Every file of an app, by path relative to it, without Python's caches."""
    return {
        path.relative_to(directory).as_posix(): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def quickstart_with_the_diff(target: Path) -> Path:
    """A copy of the plain quickstart app at ``target``, with the documented diff applied by `git apply`."""
    copy_app(QUICKSTART, target)
    subprocess.run(["git", "apply", str(DIFF)], cwd=target, check=True, capture_output=True)
    return target
