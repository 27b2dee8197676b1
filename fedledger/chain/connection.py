"""A connection to an EVM chain and the local keys that sign transactions on it."""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_tester import EthereumTester, PyEVMBackend
from eth_tester.exceptions import TransactionFailed
from eth_typing import ChecksumAddress
from web3 import EthereumTesterProvider, HTTPProvider, Web3
from web3.contract.contract import ContractConstructor, ContractFunction
from web3.exceptions import ContractLogicError
from web3.types import TxParams

from fedledger.chain.artifacts import load_artifact
from fedledger.chain.errors import ChainError, ErrorDecoder

IN_PROCESS = "in-process"
JOURNAL_FORMAT = "fedledger-in-process-chain/1"
_RECEIPT_TIMEOUT_SECONDS = 120


@dataclass(frozen=True)
class Receipt:
    """The outcome of a mined transaction."""

    tx_hash: str
    block_number: int
    gas_used: int
    contract_address: ChecksumAddress | None = None


class Chain:
    """An EVM chain reached through web3, plus the accounts this process can sign for.

    Every transaction is signed here with a local key (:meth:`add_signer`), whatever the node:
    the in-process chain's funded development keys are registered automatically; on any other
    node, keys come from a keystore or an environment variable (see :mod:`fedledger.keys`).
    Reverts raise :class:`~fedledger.chain.errors.ContractRevert` naming the contract's custom error.
    """

    def __init__(self, w3: Web3, description: str) -> None:
        self.w3 = w3
        self.description = description
        self._signers: dict[ChecksumAddress, LocalAccount] = {}
        self._journal: list[bytes] | None = [] if description == IN_PROCESS else None
        self._errors = ErrorDecoder(load_artifact(name).abi for name in ("FedLedgerRegistry", "ContributionToken"))

    @classmethod
    def in_process(cls) -> "Chain":
        """A fresh EVM inside this process (eth-tester with py-evm), with ten funded dev accounts."""
        backend = PyEVMBackend()
        chain = cls(Web3(EthereumTesterProvider(EthereumTester(backend))), IN_PROCESS)
        for key in backend.account_keys:
            chain.add_signer(Account.from_key(key.to_bytes()))
        return chain

    def save(self, path: Path) -> None:
        """Save the in-process chain so that :meth:`restore` can bring it back after this process ends.

        What is saved is every transaction, signed, in the order it was mined: replayed on a fresh
        in-process chain (same genesis, same development keys) they rebuild the same state.
        """
        if self._journal is None:
            raise ChainError(f"only the in-process chain is saved this way; {self.description} keeps its own state")
        document = {
            "format": JOURNAL_FORMAT,
            "chain_id": self.chain_id,
            "transactions": [transaction.hex() for transaction in self._journal],
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document) + "\n")

    @classmethod
    def restore(cls, path: Path) -> "Chain":
        """An in-process chain rebuilt from a file written by :meth:`save`.

        Raises:
            ChainError: the file is missing, of another format, or a transaction does not replay.
        """
        try:
            document = json.loads(path.read_text())
        except FileNotFoundError:
            raise ChainError(f"no saved chain at {path}") from None
        except json.JSONDecodeError as error:
            raise ChainError(f"{path} is not a saved chain: {error}") from None
        if document.get("format") != JOURNAL_FORMAT:
            raise ChainError(f"{path} is not a saved in-process chain ({JOURNAL_FORMAT})")
        chain = cls.in_process()
        for index, transaction in enumerate(document["transactions"]):
            tx_hash = chain.w3.eth.send_raw_transaction(bytes.fromhex(transaction))
            if chain.w3.eth.wait_for_transaction_receipt(tx_hash)["status"] != 1:
                raise ChainError(f"{path}: transaction {index} failed on replay")
            chain._journal.append(bytes.fromhex(transaction))
        if chain.chain_id != document["chain_id"]:
            raise ChainError(f"{path} was saved from chain {document['chain_id']}, not {chain.chain_id}")
        return chain

    @classmethod
    def connect(cls, rpc_url: str) -> "Chain":
        """A node at a JSON-RPC HTTP(S) URL.

        Raises:
            ChainError: when nothing answers at ``rpc_url``.
        """
        w3 = Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
        if not w3.is_connected():
            raise ChainError(f"no Ethereum JSON-RPC node answers at {rpc_url}")
        return cls(w3, rpc_url)

    @classmethod
    def open(cls, rpc_url: str | None) -> "Chain":
        """The node at ``rpc_url``, or a fresh in-process chain when it is ``None``."""
        return cls.in_process() if rpc_url is None else cls.connect(rpc_url)

    @property
    def chain_id(self) -> int:
        return self.w3.eth.chain_id

    @property
    def block_number(self) -> int:
        return self.w3.eth.block_number

    @property
    def signers(self) -> list[ChecksumAddress]:
        """Addresses this process can send from, in the order they were added."""
        return list(self._signers)

    def add_signer(self, account: LocalAccount) -> ChecksumAddress:
        """Let this chain send transactions from ``account``; returns its address."""
        self._signers[account.address] = account
        return account.address

    def balance(self, address: str) -> int:
        """Balance of ``address`` in wei."""
        return self.w3.eth.get_balance(Web3.to_checksum_address(address))

    def transact(self, call: ContractFunction | ContractConstructor, sender: str) -> Receipt:
        """Send a contract call (or a deployment) from ``sender`` and wait for it to be mined.

        Raises:
            ContractRevert: the contract reverted; names its custom error and arguments.
            ChainError: ``sender`` has no key here, or the transaction failed otherwise.
        """
        sender = self._require_signer(sender)
        try:
            transaction = call.build_transaction({"from": sender, "nonce": self._next_nonce(sender)})
        except (ContractLogicError, TransactionFailed) as error:
            raise self._errors.from_exception(error) from None
        return self._sign_and_send(transaction, sender)

    def send_value(self, sender: str, to: str, wei: int) -> Receipt:
        """Send ``wei`` of the chain's native currency from ``sender`` to ``to``."""
        sender = self._require_signer(sender)
        base_fee = self.w3.eth.get_block("latest")["baseFeePerGas"]
        tip = self.w3.eth.max_priority_fee
        transaction: TxParams = {
            "from": sender,
            "to": Web3.to_checksum_address(to),
            "value": wei,
            "gas": 21_000,
            "maxPriorityFeePerGas": tip,
            "maxFeePerGas": 2 * base_fee + tip,
            "chainId": self.chain_id,
            "nonce": self._next_nonce(sender),
        }
        return self._sign_and_send(transaction, sender)

    def call(self, call: ContractFunction, block: int | str = "latest") -> Any:
        """Run a view function; a revert raises its decoded custom error."""
        try:
            return call.call(block_identifier=block)
        except (ContractLogicError, TransactionFailed) as error:
            raise self._errors.from_exception(error) from None

    def _require_signer(self, sender: str) -> ChecksumAddress:
        address = Web3.to_checksum_address(sender)
        if address not in self._signers:
            raise ChainError(
                f"no key for {address} on {self.description}: give its keystore or set FEDLEDGER_PRIVATE_KEY"
            )
        return address

    def _next_nonce(self, sender: ChecksumAddress) -> int:
        return self.w3.eth.get_transaction_count(sender, "pending")

    def _sign_and_send(self, transaction: TxParams, sender: ChecksumAddress) -> Receipt:
        signed = self._signers[sender].sign_transaction(transaction)
        try:
            tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        except (ContractLogicError, TransactionFailed) as error:
            raise self._errors.from_exception(error) from None
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=_RECEIPT_TIMEOUT_SECONDS)
        if self._journal is not None:
            self._journal.append(bytes(signed.raw_transaction))
        if receipt["status"] != 1:
            raise ChainError(f"transaction {tx_hash.to_0x_hex()} was mined but failed (status 0)")
        return Receipt(
            tx_hash=tx_hash.to_0x_hex(),
            block_number=receipt["blockNumber"],
            gas_used=receipt["gasUsed"],
            contract_address=receipt.get("contractAddress"),
        )
