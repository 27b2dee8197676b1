"""A site's signing key, unlocked once and held by a local signer for the SuperNode's lifetime.

Flower starts a fresh ClientApp process for every message, so a site whose ClientApp decrypts its
keystore pays the keystore's deliberately slow key derivation (scrypt, seconds) in every round.
The local signer pays it once: ``fedledger client signer`` decrypts the keystore and answers, on a
Unix socket only its own user can reach, requests to sign FedLedger's EIP-712 messages (an
``Update`` or ``PrivateUpdate``, a ``Valuation``) and nothing else — never a transaction, never
arbitrary bytes. The site's ClientApp names the socket in its node config (``fedledger.signer``)
and no longer needs the keystore password at all.

The signatures are the participant's own, so the coordinator and the auditor check them exactly as
before: nothing about the record changes. The key stays encrypted at rest; in memory it lives in
one long-lived process instead of one process per message.

Protocol: one JSON object per line each way. A request is ``{"kind": "address"}``,
``{"kind": "update", "domain": ..., "message": ...}`` or ``{"kind": "valuation", "domain": ...,
"message": ...}`` (hashes as 0x-hex); the answer is ``{"address": ...}``, ``{"signature": ...}``
or ``{"error": ...}``.
"""

import json
import os
import socket
import socketserver
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from eth_account.signers.local import LocalAccount

from fedledger.errors import FedLedgerError
from fedledger.hashing import from_hex, to_hex
from fedledger.signing import SigningDomain, UpdateMessage, ValuationMessage, sign_update, sign_valuation

#: The most bytes a request or answer line may have.
MAX_LINE = 64 * 1024
#: Seconds a ClientApp waits for the signer before giving up.
TIMEOUT_SECONDS = 30.0


class SignerError(FedLedgerError):
    """The local signer cannot be reached, or refused to sign."""


class Signer(Protocol):
    """What signs a site's messages: its address and its EIP-712 signatures."""

    @property
    def address(self) -> str: ...

    def sign_update(self, domain: SigningDomain, message: UpdateMessage) -> bytes: ...

    def sign_valuation(self, domain: SigningDomain, message: ValuationMessage) -> bytes: ...


@dataclass(frozen=True)
class AccountSigner:
    """Signs in this process with a key it holds (a simulated site's, or a decrypted keystore's)."""

    account: LocalAccount

    @property
    def address(self) -> str:
        return self.account.address

    def sign_update(self, domain: SigningDomain, message: UpdateMessage) -> bytes:
        return sign_update(domain, message, self.account.key)

    def sign_valuation(self, domain: SigningDomain, message: ValuationMessage) -> bytes:
        return sign_valuation(domain, message, self.account.key)


@dataclass(frozen=True)
class SocketSigner:
    """Asks the local signer listening on ``path`` (``fedledger client signer``) to sign for ``address``."""

    path: Path
    address: str

    @classmethod
    def connect(cls, path: Path) -> "SocketSigner":
        """The signer on ``path``, asked for its address (so an unreachable signer fails here, not after training).

        Raises:
            SignerError: no signer listens on ``path``, or it cannot be reached.
        """
        return cls(path, str(_ask(path, {"kind": "address"})["address"]))

    def sign_update(self, domain: SigningDomain, message: UpdateMessage) -> bytes:
        return self._signature("update", domain, _update_fields(message))

    def sign_valuation(self, domain: SigningDomain, message: ValuationMessage) -> bytes:
        return self._signature("valuation", domain, _valuation_fields(message))

    def _signature(self, kind: str, domain: SigningDomain, message: dict[str, Any]) -> bytes:
        answer = _ask(self.path, {"kind": kind, "domain": _domain_fields(domain), "message": message})
        return from_hex(str(answer["signature"]), size=None)


def _ask(path: Path, request: dict[str, Any]) -> dict[str, Any]:
    """The signer's answer to ``request``, over one connection to ``path``."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(TIMEOUT_SECONDS)
            connection.connect(str(path))
            connection.sendall(json.dumps(request).encode() + b"\n")
            answer = _read_line(connection.makefile("rb"))
    except (FileNotFoundError, ConnectionRefusedError):
        raise SignerError(
            f"no signer is listening at {path}: start it with `fedledger client signer --socket {path}`"
        ) from None
    except OSError as error:
        raise SignerError(f"the signer at {path} cannot be reached: {error}") from None
    if "error" in answer:
        raise SignerError(f"the signer at {path} refused: {answer['error']}")
    return answer


def _read_line(stream: Any) -> dict[str, Any]:
    line = stream.readline(MAX_LINE + 1)
    if not line.endswith(b"\n"):
        raise SignerError("the signer's message is cut short or longer than a line may be")
    value = json.loads(line)
    if not isinstance(value, dict):
        raise SignerError("the signer's message is not a JSON object")
    return value


def _domain_fields(domain: SigningDomain) -> dict[str, Any]:
    return {"chain_id": domain.chain_id, "registry": domain.registry}


def _update_fields(message: UpdateMessage) -> dict[str, Any]:
    return {
        "run_id": message.run_id,
        "round": message.round,
        "base_model_hash": to_hex(message.base_model_hash),
        "update_hash": to_hex(message.update_hash),
        "num_examples": message.num_examples,
        "clip_norm": message.clip_norm,
        "noise_multiplier": message.noise_multiplier,
    }


def _valuation_fields(message: ValuationMessage) -> dict[str, Any]:
    return {
        "run_id": message.run_id,
        "round": message.round,
        "metric": message.metric,
        "results_hash": to_hex(message.results_hash),
    }


@dataclass(frozen=True)
class SigningPolicy:
    """What the signer agrees to sign: FedLedger messages, for one registry and chain if pinned."""

    registry: str | None = None
    chain_id: int | None = None

    def domain(self, fields: Any) -> SigningDomain:
        """The request's domain, checked against the pins.

        Raises:
            ValueError: the domain is malformed or not the pinned one.
        """
        if not isinstance(fields, dict) or not isinstance(fields.get("chain_id"), int):
            raise ValueError("the request names no domain (chain_id and registry)")
        domain = SigningDomain(chain_id=fields["chain_id"], registry=str(fields.get("registry")))
        if self.registry is not None and domain.registry.lower() != self.registry.lower():
            raise ValueError(f"this signer signs only for registry {self.registry}, not {domain.registry}")
        if self.chain_id is not None and domain.chain_id != self.chain_id:
            raise ValueError(f"this signer signs only for chain {self.chain_id}, not {domain.chain_id}")
        return domain


def answer(account: LocalAccount, policy: SigningPolicy, request: Any) -> dict[str, Any]:
    """The signer's answer to one decoded request (an ``error`` answer for anything it will not sign)."""
    try:
        if not isinstance(request, dict):
            raise ValueError("a request is a JSON object")
        kind, fields = request.get("kind"), request.get("message")
        if kind == "address":
            return {"address": account.address}
        if kind not in ("update", "valuation"):
            raise ValueError(f"this signer signs updates and valuations only, not {kind!r}")
        if not isinstance(fields, dict):
            raise ValueError("the request carries no message")
        domain = policy.domain(request.get("domain"))
        if kind == "update":
            update = UpdateMessage(
                run_id=fields["run_id"],
                round=fields["round"],
                base_model_hash=from_hex(fields["base_model_hash"]),
                update_hash=from_hex(fields["update_hash"]),
                num_examples=fields["num_examples"],
                clip_norm=fields["clip_norm"],
                noise_multiplier=fields["noise_multiplier"],
            )
            return {"signature": to_hex(sign_update(domain, update, account.key))}
        valuation = ValuationMessage(
            run_id=fields["run_id"],
            round=fields["round"],
            metric=str(fields["metric"]),
            results_hash=from_hex(fields["results_hash"]),
        )
        return {"signature": to_hex(sign_valuation(domain, valuation, account.key))}
    except (KeyError, TypeError, ValueError) as error:
        return {"error": f"{type(error).__name__}: {error}"}


class _Handler(socketserver.StreamRequestHandler):
    server: "SignerServer"

    def handle(self) -> None:
        peer_uid = _peer_uid(self.connection)
        if peer_uid != os.getuid():
            reply: dict[str, Any] = {"error": f"this signer answers only its own user, not uid {peer_uid}"}
        else:
            try:
                reply = answer(self.server.account, self.server.policy, _read_line(self.rfile))
            except (SignerError, ValueError) as error:
                reply = {"error": str(error)}
        self.wfile.write(json.dumps(reply).encode() + b"\n")
        self.server.on_answer(reply)


def _peer_uid(connection: socket.socket) -> int:
    """The user id of the process at the other end of a Unix socket (SO_PEERCRED: pid, uid, gid)."""
    credentials = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", credentials)[1]


class SignerServer(socketserver.ThreadingUnixStreamServer):
    """Serves signatures by ``account`` on a Unix socket at ``path`` that only the owner can open.

    Raises:
        SignerError: something other than a stale socket is already at ``path``.
    """

    daemon_threads = True

    def __init__(
        self,
        path: Path,
        account: LocalAccount,
        policy: SigningPolicy,
        on_answer: Callable[[dict[str, Any]], None] = lambda _: None,
    ) -> None:
        self.path, self.account, self.policy, self.on_answer = path, account, policy, on_answer
        _clear_stale_socket(path)
        previous = os.umask(0o177)
        try:
            super().__init__(str(path), _Handler)
        finally:
            os.umask(previous)

    def server_close(self) -> None:
        super().server_close()
        self.path.unlink(missing_ok=True)


def _clear_stale_socket(path: Path) -> None:
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_socket():
        raise SignerError(f"{path} exists and is not a socket: choose another --socket")
    try:
        listening = SocketSigner.connect(path).address
    except SignerError:
        path.unlink()
        return
    raise SignerError(f"a signer for {listening} is already listening at {path}")
