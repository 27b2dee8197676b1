"""A connection to an EVM chain and the local keys that sign transactions on it."""

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_tester import EthereumTester, PyEVMBackend
from eth_tester.exceptions import TransactionFailed
from eth_typing import ChecksumAddress
from hexbytes import HexBytes
from web3 import EthereumTesterProvider, Web3
from web3.contract.contract import ContractConstructor, ContractFunction
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError
from web3.types import BlockIdentifier, LogReceipt, TxParams, TxReceipt

from fedledger.addresses import checksum_address
from fedledger.chain.artifacts import load_artifact
from fedledger.chain.errors import ChainError, ContractRevert, ErrorDecoder
from fedledger.chain.estimator import two_run_estimate
from fedledger.chain.journal import Journal, JournalEntry, read_journal
from fedledger.chain.transport import DEFAULT_RETRY_SECONDS, RetryingHTTPProvider, SendInterrupted

IN_PROCESS = "in-process"
#: How long a sent transaction may stay unmined, and a chain without a new block, before giving up.
RECEIPT_TIMEOUT_SECONDS = 120.0
#: How many times a transaction the node has no trace of is sent again before giving up.
MAX_RESENDS = 5
_POLL_SECONDS = (0.02, 1.0)  # first and longest wait between two looks at a pending transaction
#: What nodes answer when sent a transaction they already hold or have mined: look it up by hash.
_ALREADY_SENT_ANSWERS = ("already known", "already imported", "known transaction", "nonce too low")


@dataclass(frozen=True)
class Receipt:
    """The outcome of a mined transaction.

    ``logs`` are the events the transaction emitted, as the node returned them. ``tx_hash`` and
    ``gas_used`` are ``None``, and ``logs`` empty, when they are not known: a commit found in
    contract storage on a node that keeps no logs names its block, not its transaction.
    """

    tx_hash: str | None
    block_number: int
    gas_used: int | None
    contract_address: ChecksumAddress | None = None
    logs: tuple[LogReceipt, ...] = ()

    @classmethod
    def of(cls, receipt: TxReceipt) -> "Receipt":
        return cls(
            tx_hash=receipt["transactionHash"].to_0x_hex(),
            block_number=receipt["blockNumber"],
            gas_used=receipt["gasUsed"],
            contract_address=receipt.get("contractAddress"),
            logs=tuple(receipt["logs"]),
        )


@dataclass(frozen=True)
class InFlight:
    """A transaction in flight: what was signed, kept so that it is only ever sent again byte for byte."""

    sender: ChecksumAddress
    nonce: int
    raw: bytes
    tx_hash: HexBytes


class Chain:
    """An EVM chain reached through web3, plus the accounts this process can sign for.

    Every transaction is signed here with a local key (:meth:`add_signer`) and an explicit nonce,
    whatever the node: the in-process chain's funded development keys are registered
    automatically; on any other node, keys come from a keystore or an environment variable (see
    :mod:`fedledger.keys`). Reverts raise :class:`~fedledger.chain.errors.ContractRevert` naming the
    contract's custom error, whether the node refuses the transaction or mines it reverted.

    On a node (:meth:`connect`), every call rides out outages of up to ``retry_seconds``
    (:class:`~fedledger.chain.transport.RetryingHTTPProvider`), and a transaction is never sent
    again before it has been looked up by hash: after a fault, its same signed bytes are sent
    again only when the node has no trace of it, at most ``MAX_RESENDS`` times. With
    ``confirmations``, a transaction counts as mined once that many blocks follow it and its
    receipt is still there.
    """

    def __init__(self, w3: Web3, description: str, confirmations: int = 0) -> None:
        if confirmations < 0:
            raise ChainError(f"confirmations must be zero or more, not {confirmations}")
        self.w3 = w3
        self.description = description
        self.confirmations = confirmations
        self._signers: dict[ChecksumAddress, LocalAccount] = {}
        self._mined: list[JournalEntry] = []  # on the in-process chain: every transaction, for its journal
        self._journal: Journal | None = None
        self._errors = ErrorDecoder(load_artifact(name).abi for name in ("FedLedgerRegistry", "ContributionToken"))

    @classmethod
    def in_process(cls) -> "Chain":
        """A fresh EVM inside this process (eth-tester with py-evm), with ten funded dev accounts."""
        backend = PyEVMBackend()
        backend.chain.gas_estimator = two_run_estimate
        chain = cls(Web3(EthereumTesterProvider(EthereumTester(backend))), IN_PROCESS)
        for key in backend.account_keys:
            chain.add_signer(Account.from_key(key.to_bytes()))
        return chain

    @property
    def is_in_process(self) -> bool:
        """Whether this chain is an EVM inside this process (:meth:`in_process`): gone when the
        process ends, unless it keeps a journal (:meth:`journal_to`)."""
        return isinstance(self.w3.provider, EthereumTesterProvider)

    @property
    def journal(self) -> Path | None:
        """The file this in-process chain appends every mined transaction to, if any."""
        return self._journal.path if self._journal is not None else None

    def journal_to(self, path: Path) -> None:
        """Keep the in-process chain in a journal at ``path`` so that :meth:`restore` can bring it back.

        Every transaction mined so far is written at once, and every later one is appended as it is
        mined, before its sender is told. Replayed on a fresh in-process chain (same genesis, same
        development keys) they rebuild the same state. A journal already at ``path`` is replaced only
        by this chain's own history, never by another chain's.

        Raises:
            ChainError: ``path`` holds a journal of transactions this chain has not mined.
        """
        if not self.is_in_process:
            raise ChainError(f"only the in-process chain keeps a journal; {self.description} keeps its own state")
        if path.exists():
            _, recorded = read_journal(path)
            if recorded != self._mined[: len(recorded)]:
                raise ChainError(
                    f"{path} holds another chain ({len(recorded)} transactions) that this one would replace: "
                    "keep each run's record in its own directory, or restore that chain to go on with it"
                )
        self._journal = Journal(path, self.chain_id, self._mined)

    @classmethod
    def restore(cls, path: Path) -> "Chain":
        """An in-process chain rebuilt from the journal at ``path`` (see :meth:`journal_to`).

        Raises:
            ChainError: naming the file, and the first transaction that does not replay and why.
        """
        chain_id, entries = read_journal(path)
        chain = cls.in_process()
        if chain_id != chain.chain_id:
            raise ChainError(f"{path} holds chain {chain_id}, not the in-process chain {chain.chain_id}")
        for index, entry in enumerate(entries):
            chain._replay(entry, f"{path}: transaction {index} ({entry.tx_hash})")
        return chain

    @classmethod
    def connect(cls, rpc_url: str, retry_seconds: float = DEFAULT_RETRY_SECONDS, confirmations: int = 0) -> "Chain":
        """A node at a JSON-RPC HTTP(S) URL. It must answer now; from then on, every call rides out
        outages of up to ``retry_seconds``.

        Raises:
            ChainError: nothing answers at ``rpc_url``.
        """
        provider = RetryingHTTPProvider(rpc_url, retry_seconds)
        provider.check_answers()
        return cls(Web3(provider), rpc_url, confirmations)

    @classmethod
    def open(cls, rpc_url: str | None, retry_seconds: float = DEFAULT_RETRY_SECONDS, confirmations: int = 0) -> "Chain":
        """The node at ``rpc_url`` (see :meth:`connect`), or a fresh in-process chain when it is ``None``."""
        return cls.in_process() if rpc_url is None else cls.connect(rpc_url, retry_seconds, confirmations)

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
        return self.w3.eth.get_balance(checksum_address(address))

    def transact(
        self,
        call: ContractFunction | ContractConstructor,
        sender: str,
        estimate_on: BlockIdentifier = "latest",
        gas: int | None = None,
    ) -> Receipt:
        """Send a contract call (or a deployment) from ``sender`` and wait for it to be mined.

        Its gas limit is ``gas`` if given, else estimated (:meth:`estimate_gas`) on the state of
        block ``estimate_on``: the latest block, or ``"pending"`` for a call whose outcome depends on
        the time of the block that will hold it (the latest block of a chain that mines only when
        sent a transaction can be hours old).

        Raises:
            ContractRevert: the contract reverted; names its custom error and arguments.
            ChainError: ``sender`` has no key here, or the transaction failed otherwise.
        """
        sender = self._require_signer(sender)
        if gas is None:
            gas = self.estimate_gas(call, sender, estimate_on)
        try:
            transaction = call.build_transaction({"from": sender, "nonce": self._next_nonce(sender), "gas": gas})
        except (ContractLogicError, TransactionFailed) as error:
            raise self._errors.from_exception(error) from None
        return self._sign_and_send(transaction, sender)

    def estimate_gas(
        self, call: ContractFunction | ContractConstructor, sender: str, estimate_on: BlockIdentifier = "latest"
    ) -> int:
        """The gas ``call`` from ``sender`` needs, found by running it on block ``estimate_on``.

        Raises:
            ContractRevert: the call reverts; names its custom error and arguments.
        """
        if self.is_in_process:
            estimate_on = "latest"  # eth-tester refuses "pending"; it runs "latest" on a new block at the pending time
        try:
            return call.estimate_gas({"from": sender}, block_identifier=estimate_on)
        except (ContractLogicError, TransactionFailed) as error:
            raise self._errors.from_exception(error) from None

    def send_value(self, sender: str, to: str, wei: int) -> Receipt:
        """Send ``wei`` of the chain's native currency from ``sender`` to ``to``."""
        sender = self._require_signer(sender)
        base_fee = self.w3.eth.get_block("latest")["baseFeePerGas"]
        tip = self.w3.eth.max_priority_fee
        transaction: TxParams = {
            "from": sender,
            "to": checksum_address(to),
            "value": wei,
            "gas": 21_000,
            "maxPriorityFeePerGas": tip,
            "maxFeePerGas": 2 * base_fee + tip,
            "chainId": self.chain_id,
            "nonce": self._next_nonce(sender),
        }
        return self._sign_and_send(transaction, sender)

    def call(self, call: ContractFunction, block: int | str = "latest") -> Any:
        """Run a view function; a revert raises its decoded custom error.

        On the in-process chain it is called from the first development account, which eth-tester
        would otherwise look up, by listing its accounts, for every call.
        """
        caller: TxParams | None = {"from": self.signers[0]} if self.is_in_process and self._signers else None
        try:
            return call.call(caller, block_identifier=block)
        except (ContractLogicError, TransactionFailed) as error:
            raise self._errors.from_exception(error) from None

    def receipt(self, tx_hash: str | bytes) -> Receipt | None:
        """The receipt of a mined transaction, or ``None`` while the node does not know it as mined."""
        found = self._find_receipt(HexBytes(tx_hash))
        return Receipt.of(found) if found is not None else None

    def _require_signer(self, sender: str) -> ChecksumAddress:
        address = checksum_address(sender)
        if address not in self._signers:
            raise ChainError(
                f"no key for {address} on {self.description}: give its keystore or set FEDLEDGER_PRIVATE_KEY"
            )
        return address

    def _next_nonce(self, sender: ChecksumAddress) -> int:
        return self.w3.eth.get_transaction_count(sender, "pending")

    def _sign_and_send(self, transaction: TxParams, sender: ChecksumAddress) -> Receipt:
        signed = self._signers[sender].sign_transaction(transaction)
        sent = InFlight(sender, int(transaction["nonce"]), bytes(signed.raw_transaction), signed.hash)
        self._submit(sent)
        receipt = self._await_receipt(sent)
        self._record(JournalEntry.of(sent.raw, receipt["status"]))
        if receipt["status"] != 1:
            raise self._failure(sent, transaction, receipt["blockNumber"])
        return Receipt.of(receipt)

    def _failure(self, sent: InFlight, transaction: TxParams, block: int) -> ChainError:
        """Why ``sent``, mined in ``block``, failed: its call run again on that block's state.

        A revert there decodes to the contract's custom error (a transaction mined earlier in the
        block, or before it, changed what the call found when it was signed).
        """
        call: TxParams = {"from": sent.sender, "gas": transaction["gas"], "value": transaction.get("value", 0)}
        for field in ("to", "data"):
            if field in transaction:
                call[field] = transaction[field]
        mined = f"transaction {sent.tx_hash.to_0x_hex()} was mined in block {block} but failed (status 0)"
        try:
            self.w3.eth.call(call, block)
        except (ContractLogicError, TransactionFailed) as error:
            revert = self._errors.from_exception(error)
            return revert if isinstance(revert, ContractRevert) else ChainError(f"{mined}: {revert}")
        except Web3RPCError as error:
            return ChainError(f"{mined}: {_node_message(error)}")
        return ChainError(f"{mined}; the same call on that block's state succeeds, so why is not known")

    def _submit(self, sent: InFlight) -> None:
        """Hand ``sent`` to the node; an interrupted send or a node that already has it is settled by
        :meth:`_await_receipt`, which looks the transaction up by hash."""
        try:
            self.w3.eth.send_raw_transaction(sent.raw)
        except SendInterrupted:
            return
        except (ContractLogicError, TransactionFailed) as error:
            raise self._errors.from_exception(error) from None
        except Web3RPCError as error:
            answer = _node_message(error)
            if any(known in answer.lower() for known in _ALREADY_SENT_ANSWERS):
                return
            raise ChainError(
                f"{self.description} refused transaction {sent.tx_hash.to_0x_hex()} (nonce {sent.nonce} of "
                f"{sent.sender}): {answer}"
            ) from None

    def _await_receipt(self, sent: InFlight) -> TxReceipt:
        """Wait until ``sent`` is mined (and confirmed); send its same bytes again if the node lost it.

        The wait for a receipt lasts ``RECEIPT_TIMEOUT_SECONDS``, counted afresh after each time
        the transaction was sent again or its block was dropped while it waited for confirmations;
        a transaction the node still has no trace of after ``MAX_RESENDS`` sends again is given up.

        Raises:
            ChainError: its nonce was taken by another transaction, it was not mined in time, or the
                node kept losing it.
        """
        deadline = time.monotonic() + RECEIPT_TIMEOUT_SECONDS
        pause = _POLL_SECONDS[0]
        resends = 0
        while True:
            receipt = self._find_receipt(sent.tx_hash)
            if receipt is not None:
                if self._still_there_after_confirmations(sent, receipt):
                    return receipt
                deadline = time.monotonic() + RECEIPT_TIMEOUT_SECONDS  # a reorganisation dropped its block
            elif self._find_transaction(sent.tx_hash) is None:
                if resends == MAX_RESENDS:
                    raise ChainError(
                        f"{self.description} lost transaction {sent.tx_hash.to_0x_hex()} (nonce {sent.nonce} of "
                        f"{sent.sender}) each of the {1 + MAX_RESENDS} times it was sent; it is not sent again"
                    )
                resends += 1
                self._send_again(sent)
                deadline = time.monotonic() + RECEIPT_TIMEOUT_SECONDS
            if time.monotonic() > deadline:
                raise ChainError(
                    f"transaction {sent.tx_hash.to_0x_hex()} (nonce {sent.nonce} of {sent.sender}) was not mined "
                    f"within {RECEIPT_TIMEOUT_SECONDS:g} s on {self.description}"
                )
            time.sleep(pause)
            pause = min(2 * pause, _POLL_SECONDS[1])

    def _still_there_after_confirmations(self, sent: InFlight, receipt: TxReceipt) -> bool:
        """Wait for ``confirmations`` blocks on top of ``receipt``; whether it is still in the chain then."""
        if self.confirmations == 0:
            return True
        target = receipt["blockNumber"] + self.confirmations
        last_block, last_progress = self.block_number, time.monotonic()
        while last_block < target:
            time.sleep(_POLL_SECONDS[1])
            block = self.block_number
            if block > last_block:
                last_block, last_progress = block, time.monotonic()
            elif time.monotonic() - last_progress > RECEIPT_TIMEOUT_SECONDS:
                raise ChainError(
                    f"no new block on {self.description} for {RECEIPT_TIMEOUT_SECONDS:g} s while waiting for "
                    f"{self.confirmations} confirmations of {sent.tx_hash.to_0x_hex()}"
                )
        again = self._find_receipt(sent.tx_hash)
        return again is not None and again["blockHash"] == receipt["blockHash"]

    def _send_again(self, sent: InFlight) -> None:
        """The node has no trace of ``sent``: send its same bytes again, unless its nonce is used up.

        Raises:
            ChainError: another transaction was mined with its nonce.
        """
        if self.w3.eth.get_transaction_count(sent.sender, "latest") > sent.nonce:
            if self._find_receipt(sent.tx_hash) is not None:
                return  # mined between the two looks
            raise ChainError(
                f"nonce {sent.nonce} of {sent.sender} was taken by another transaction on {self.description}; "
                f"{sent.tx_hash.to_0x_hex()} was not mined and will not be"
            )
        self._submit(sent)

    def _find_receipt(self, tx_hash: HexBytes) -> TxReceipt | None:
        try:
            return self.w3.eth.get_transaction_receipt(tx_hash)
        except TransactionNotFound:
            return None

    def _find_transaction(self, tx_hash: HexBytes) -> Any:
        try:
            return self.w3.eth.get_transaction(tx_hash)
        except TransactionNotFound:
            return None

    def _record(self, entry: JournalEntry) -> None:
        if not self.is_in_process:
            return
        self._mined.append(entry)
        if self._journal is not None:
            self._journal.append(entry)

    def _replay(self, entry: JournalEntry, where: str) -> None:
        try:
            tx_hash = self.w3.eth.send_raw_transaction(entry.raw)
            status = self.w3.eth.get_transaction_receipt(tx_hash)["status"]
        except Exception as error:  # any reason the node gives for refusing the bytes is the answer
            raise ChainError(f"{where} does not replay: {' '.join(str(error).split())}") from None
        if status != entry.status:
            raise ChainError(f"{where} does not replay: status {status} on replay, {entry.status} when mined")
        self._record(entry)


def _node_message(error: Web3RPCError) -> str:
    """The message of a node's JSON-RPC error answer."""
    return ((error.rpc_response or {}).get("error") or {}).get("message") or str(error)
