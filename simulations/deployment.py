"""A Flower deployment as real processes on one machine: a SuperLink, SuperNodes and `flwr run`.

What a coordinator and its sites run across machines, started here side by side — with TLS and
SuperNode authentication when asked — for the end-to-end tests and the deployment benchmark.
Every process starts in its own session and is stopped on exit; logs go to ``directory``.
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from fedledger.certificates import CertificateFiles
from fedledger.chain.anvil import free_port
from fedledger.client.identity import SIGNER
from fedledger.identity import KEYSTORE_FILE, SUPERNODE_KEY_FILE
from fedledger.keys import KEYSTORE_PASSWORD_ENV

PROJECT_DIR = Path(__file__).resolve().parents[1]
#: The longest Unix socket path Linux binds is 107 bytes.
MAX_SOCKET_PATH = 100
#: The Flower app the deployments run: the hospitals and banks tabular task.
TABULAR_APP_DIR = PROJECT_DIR / "examples" / "tabular"
_SCRIPTS = Path(sys.executable).parent


def toml_value(value: object) -> str:
    """``value`` as Flower's ``key=value`` config syntax wants it (TOML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value + "'"
    return str(value)


def config_text(config: Mapping[str, object]) -> str:
    return " ".join(f"{key}={toml_value(value)}" for key, value in config.items())


class LocalDeployment:
    """Starts Flower processes, writes the `flwr` CLI's connection, and stops everything on exit."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.flwr_home = directory / "flwr-home"
        self.flwr_home.mkdir(parents=True, exist_ok=True)
        self._processes: list[tuple[str, subprocess.Popen[bytes]]] = []

    def environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """This environment, with this Python's scripts (flwr, flower-*) first on the PATH."""
        return {
            **os.environ,
            "PATH": f"{_SCRIPTS}{os.pathsep}{os.environ.get('PATH', '')}",
            "FLWR_HOME": str(self.flwr_home),
            "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
            "FLWR_DISABLE_UPDATE_CHECK": "1",
            **(extra or {}),
        }

    def start(self, name: str, command: list[str], env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
        with (self.directory / f"{name}.log").open("wb") as log:
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=self.environment(env), start_new_session=True
            )
        self._processes.append((name, process))
        return process

    def superlink(
        self,
        port: int,
        simulation: bool = False,
        tls: CertificateFiles | None = None,
        node_authentication: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """Start a SuperLink serving every API on 127.0.0.1:``port``; wait until it listens."""
        command = [
            "flower-superlink",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--database",
            str(self.directory / "superlink.db"),
            "--disable-runtime-dependency-installation",
        ]
        if tls is None:
            command.append("--insecure")
        else:
            command += [
                "--ssl-certfile",
                str(tls.superlink_certificate),
                "--ssl-keyfile",
                str(tls.superlink_key),
                "--ssl-ca-certfile",
                str(tls.ca_certificate),
            ]
        if node_authentication:
            command.append("--enable-supernode-auth")
        if simulation:
            command.append("--simulation")
        self.start("superlink", command, env)
        wait_for_port(port)

    def supernode(
        self,
        name: str,
        superlink_port: int,
        port: int,
        node_config: Mapping[str, object],
        root_certificates: Path | None = None,
        auth_key: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start a SuperNode with ``node_config``; over TLS if ``root_certificates``, authenticated if ``auth_key``."""
        command = [
            "flower-supernode",
            "--superlink",
            f"127.0.0.1:{superlink_port}",
            "--port",
            str(port),
            "--node-config",
            config_text(node_config),
        ]
        command += ["--root-certificates", str(root_certificates)] if root_certificates else ["--insecure"]
        if auth_key is not None:
            command += ["--auth-supernode-private-key", str(auth_key)]
        return self.start(name, command, env)

    def site(
        self,
        name: str,
        superlink_port: int,
        keys: Path,
        data_path: Path,
        schema_path: Path,
        certificates: CertificateFiles,
        password: str,
        signer: bool = True,
    ) -> subprocess.Popen[bytes]:
        """Start a site's SuperNode as a real install runs it: TLS, its authentication key, and its
        data file, schema and keystore (from ``fedledger client init``) in its node config.

        With ``signer``, the site's keystore is unlocked once by a local signer
        (``fedledger client signer``) that the SuperNode's ClientApps ask to sign; without, every
        ClientApp process decrypts the keystore itself.
        """
        keystore = keys / KEYSTORE_FILE
        node_config = {"data-path": str(data_path), "schema-path": str(schema_path), "keystore": str(keystore)}
        env = {KEYSTORE_PASSWORD_ENV: password}
        if signer:
            socket_path = self.directory / f"{name}-signer.sock"
            if len(str(socket_path)) > MAX_SOCKET_PATH:
                socket_path = Path(tempfile.mkdtemp(prefix="fedledger-")) / f"{name}.sock"
            command = [sys.executable, "-m", "fedledger.cli", "client", "signer", "--keystore", str(keystore)]
            self.start(f"{name}-signer", [*command, "--socket", str(socket_path)], env)
            wait_for_socket(socket_path)
            node_config[SIGNER] = str(socket_path)
            env = {}
        return self.supernode(
            name,
            superlink_port,
            free_port(),
            node_config,
            root_certificates=certificates.ca_certificate,
            auth_key=keys / SUPERNODE_KEY_FILE,
            env=env,
        )

    def connection(
        self, name: str, port: int, num_supernodes: int | None = None, root_certificates: Path | None = None
    ) -> None:
        """Write the `flwr` CLI's connection ``name`` to the SuperLink on ``port``."""
        lines = ["[superlink]", f'default = "{name}"', "", f"[superlink.{name}]", f'address = "127.0.0.1:{port}"']
        if root_certificates is None:
            lines.append("insecure = true")
        else:
            lines.append(f'root-certificates = "{root_certificates.resolve()}"')
        if num_supernodes is not None:
            lines.append(f"options.num-supernodes = {num_supernodes}")
        (self.flwr_home / "config.toml").write_text("\n".join(lines) + "\n")

    def flwr(self, *arguments: str, timeout: float = 120) -> str:
        """Run the `flwr` CLI from the project directory; returns its output, raises on failure."""
        result = subprocess.run(
            ["flwr", *arguments],
            cwd=PROJECT_DIR,
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        output = result.stdout + result.stderr
        if result.returncode != 0:
            raise RuntimeError(
                f"flwr {' '.join(arguments)} failed ({result.returncode}):\n{output[-4000:]}\n{self.logs()}"
            )
        return output

    def flwr_run(self, connection: str, run_config: Mapping[str, object], timeout: float) -> str:
        """``flwr run examples/tabular CONNECTION --stream`` with ``run_config`` overrides."""
        return self.flwr(
            "run",
            str(TABULAR_APP_DIR),
            connection,
            "--stream",
            "--run-config",
            config_text(run_config),
            timeout=timeout,
        )

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

    def __enter__(self) -> "LocalDeployment":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


def wait_for_socket(path: Path, timeout: float = 60) -> None:
    """Wait until a Unix socket exists at ``path`` (a starting signer binds it once its key is unlocked)."""
    deadline = time.monotonic() + timeout
    while not path.is_socket():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no socket at {path} after {timeout} s")
        time.sleep(0.1)


def wait_for_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")
