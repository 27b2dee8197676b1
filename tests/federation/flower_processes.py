"""Real Flower processes for tests: a SuperLink, SuperNodes and `flwr run`, cleaned up afterwards."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value + "'"
    return str(value)


class FlowerProcesses:
    """Starts long-running Flower processes with their logs in ``directory``; stops them all on exit."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.flwr_home = directory / "flwr-home"
        self.flwr_home.mkdir(parents=True, exist_ok=True)
        self._processes: list[tuple[str, subprocess.Popen[bytes]]] = []

    def environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """This environment, with the Python environment's scripts (flwr, flower-*) first on the PATH."""
        return {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "FLWR_HOME": str(self.flwr_home),
            "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
            "FLWR_DISABLE_UPDATE_CHECK": "1",
            **(extra or {}),
        }

    def start(self, name: str, command: list[str], env: Mapping[str, str] | None = None) -> None:
        log = (self.directory / f"{name}.log").open("wb")
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=self.environment(env), start_new_session=True
        )
        self._processes.append((name, process))

    def superlink(self, port: int, simulation: bool = False, env: Mapping[str, str] | None = None) -> None:
        command = [
            "flower-superlink",
            "--insecure",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--database",
            str(self.directory / "superlink.db"),
            "--disable-runtime-dependency-installation",
        ]
        self.start("superlink", command + (["--simulation"] if simulation else []), env)
        wait_for_port(port)

    def supernode(
        self,
        name: str,
        superlink_port: int,
        port: int,
        node_config: Mapping[str, object],
        env: Mapping[str, str] | None = None,
    ) -> None:
        config = " ".join(f"{key}={toml_value(value)}" for key, value in node_config.items())
        command = [
            "flower-supernode",
            "--insecure",
            "--superlink",
            f"127.0.0.1:{superlink_port}",
            "--port",
            str(port),
            "--node-config",
            config,
        ]
        self.start(name, command, env)

    def connection(self, name: str, port: int, num_supernodes: int | None = None) -> None:
        """Write the `flwr` CLI's connection ``name`` to the SuperLink on ``port``."""
        lines = [
            "[superlink]",
            f'default = "{name}"',
            "",
            f"[superlink.{name}]",
            f'address = "127.0.0.1:{port}"',
            "insecure = true",
        ]
        if num_supernodes is not None:
            lines.append(f"options.num-supernodes = {num_supernodes}")
        (self.flwr_home / "config.toml").write_text("\n".join(lines) + "\n")

    def flwr_run(self, connection: str, run_config: Mapping[str, object], timeout: float) -> str:
        """``flwr run . CONNECTION --stream`` from the project; returns its output, raises on failure."""
        overrides = " ".join(f"{key}={toml_value(value)}" for key, value in run_config.items())
        result = subprocess.run(
            ["flwr", "run", ".", connection, "--stream", "--run-config", overrides],
            cwd=PROJECT_DIR,
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        output = result.stdout + result.stderr
        if result.returncode != 0:
            raise AssertionError(f"flwr run failed ({result.returncode}):\n{output[-4000:]}\n{self.logs()}")
        return output

    def logs(self) -> str:
        return "\n".join(
            f"--- {name} ---\n{(self.directory / f'{name}.log').read_text(errors='replace')[-2000:]}"
            for name, _ in self._processes
        )

    def stop(self) -> None:
        for _, process in reversed(self._processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for _, process in self._processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def __enter__(self) -> "FlowerProcesses":
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def wait_for_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")
