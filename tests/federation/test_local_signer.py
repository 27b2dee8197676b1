"""The local signer: a site's key unlocked once, signing only FedLedger's messages on a Unix
socket only its user can open, for a ClientApp whose signatures the coordinator accepts as the
participant's own.

Real sockets, keystores, EIP-712 signatures and, for the command, a real `fedledger client signer`
process.
"""

import os
import signal
import socket as sockets
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from flwr.app import MessageType
from site_requests import DOMAIN, ROUND, RUN_ID, error_of, ledger_config, node
from test_client_mod import CONTEXT, numpy_app, registered, request

from fedledger.client.identity import KEYSTORE, SIGNER, participant_address
from fedledger.coordinator.validation import check_evaluation, check_reply
from fedledger.keys import KEYSTORE_PASSWORD_ENV, create_keystore
from fedledger.signer import AccountSigner, SignerError, SignerServer, SigningPolicy, SocketSigner, answer
from fedledger.signing import SigningDomain, UpdateMessage, ValuationMessage, recover_update_signer

UPDATE = UpdateMessage(RUN_ID, ROUND, b"\x01" * 32, b"\x02" * 32, 12)
VALUATION = ValuationMessage(RUN_ID, ROUND, "eval-loss", b"\x03" * 32)
OTHER = SigningDomain(chain_id=DOMAIN.chain_id, registry="0x" + "cd" * 20)


@pytest.fixture
def account() -> LocalAccount:
    return Account.from_key(b"\x11" * 32)


def serve(path: Path, account: LocalAccount, policy: SigningPolicy | None = None) -> Iterator[SignerServer]:
    """A signer served from a thread of this process while the generator is open."""
    server = SignerServer(path, account, policy or SigningPolicy())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def socket_path() -> Iterator[Path]:
    """A fresh socket path; short, as a Unix socket path must be (pytest's tmp_path can be too long)."""
    path = Path(f"/tmp/fedledger-signer-{os.getpid()}-{time.monotonic_ns()}.sock")
    yield path
    path.unlink(missing_ok=True)


@pytest.fixture
def running(socket_path: Path, account: LocalAccount) -> Iterator[SignerServer]:
    yield from serve(socket_path, account)


def test_the_signer_signs_as_the_key_would_itself(running: SignerServer, account: LocalAccount):
    remote, local = SocketSigner.connect(running.path), AccountSigner(account)
    assert remote.address == account.address
    assert remote.sign_update(DOMAIN, UPDATE) == local.sign_update(DOMAIN, UPDATE)
    assert recover_update_signer(DOMAIN, UPDATE, remote.sign_update(DOMAIN, UPDATE)) == account.address
    private = UpdateMessage(
        RUN_ID, ROUND, b"\x01" * 32, b"\x02" * 32, 12, clip_norm=300_000, noise_multiplier=1_100_000
    )
    assert remote.sign_update(DOMAIN, private) == local.sign_update(DOMAIN, private)
    assert remote.sign_valuation(DOMAIN, VALUATION) == local.sign_valuation(DOMAIN, VALUATION)


def test_only_its_owner_can_open_the_socket(running: SignerServer):
    assert stat.S_IMODE(running.path.stat().st_mode) == 0o600
    assert stat.S_ISSOCK(running.path.stat().st_mode)


def test_it_signs_fedledger_messages_only_and_for_the_pinned_domain(socket_path: Path, account: LocalAccount):
    for server in serve(socket_path, account, SigningPolicy(registry=DOMAIN.registry, chain_id=DOMAIN.chain_id)):
        signer = SocketSigner.connect(server.path)
        assert recover_update_signer(DOMAIN, UPDATE, signer.sign_update(DOMAIN, UPDATE)) == account.address
        with pytest.raises(SignerError, match=f"signs only for registry {DOMAIN.registry}, not {OTHER.registry}"):
            signer.sign_update(OTHER, UPDATE)
        with pytest.raises(SignerError, match="signs only for chain 31337, not 1"):
            signer.sign_valuation(SigningDomain(chain_id=1, registry=DOMAIN.registry), VALUATION)
    policy = SigningPolicy()
    assert answer(account, policy, {"kind": "transaction", "message": {"to": "0x"}}) == {
        "error": "ValueError: this signer signs updates and valuations only, not 'transaction'"
    }
    assert "error" in answer(account, policy, {"kind": "update", "domain": {"chain_id": 1}, "message": {}})
    assert "error" in answer(account, policy, ["not", "an", "object"])


def test_without_a_signer_the_site_is_told_how_to_start_one(socket_path: Path):
    with pytest.raises(SignerError, match=f"no signer is listening at {socket_path}: start it with"):
        SocketSigner.connect(socket_path)


def test_a_stale_socket_is_replaced_and_a_live_one_is_kept(socket_path: Path, account: LocalAccount):
    for _ in serve(socket_path, account):
        with pytest.raises(SignerError, match=f"a signer for {account.address} is already listening"):
            SignerServer(socket_path, account, SigningPolicy())
    stale = sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM)
    stale.bind(str(socket_path))
    stale.close()
    for server in serve(socket_path, account):
        assert SocketSigner.connect(server.path).address == account.address
    assert not socket_path.exists()


def test_a_client_app_signs_through_the_signer_without_the_keystore_password(
    running: SignerServer, account: LocalAccount, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv(KEYSTORE_PASSWORD_ENV, raising=False)
    context = node(**{SIGNER: str(running.path), KEYSTORE: "/nonexistent/keystore.json"})
    assert participant_address(context.node_config, ledger_config()) == account.address
    checked = check_reply(numpy_app()(request(), context), CONTEXT, registered(account.address))
    assert checked.accepted and checked.participant == account.address, checked.detail
    evaluation = numpy_app()(request(MessageType.EVALUATE), context)
    assert check_evaluation(evaluation, registered(account.address)).participant == account.address


def test_a_client_app_whose_signer_is_not_running_answers_with_an_error(socket_path: Path):
    calls: list[str] = []
    reply = numpy_app(calls=calls)(request(), node(**{SIGNER: str(socket_path)}))
    assert f"ledger_mod: no signer is listening at {socket_path}" in error_of(reply)
    assert calls == []


def test_the_command_unlocks_the_keystore_once_and_stops_on_sigterm(tmp_path: Path, socket_path: Path):
    keystore = tmp_path / "site.json"
    account = create_keystore(keystore, "bank password")
    command = [sys.executable, "-m", "fedledger.cli", "client", "signer", "--keystore", str(keystore)]
    command += ["--socket", str(socket_path), "--registry", DOMAIN.registry, "--chain-id", str(DOMAIN.chain_id)]
    process = subprocess.Popen(
        command, env={**os.environ, KEYSTORE_PASSWORD_ENV: "bank password"}, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith(f"signing for {account.address} at {socket_path}")
        signer = SocketSigner.connect(socket_path)
        assert recover_update_signer(DOMAIN, UPDATE, signer.sign_update(DOMAIN, UPDATE)) == account.address
        with pytest.raises(SignerError, match="signs only for registry"):
            signer.sign_update(OTHER, UPDATE)
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    assert "refused: ValueError: this signer signs only for registry" in output
    assert "signer stopped" in output
    assert not socket_path.exists()
