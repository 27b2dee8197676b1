"""Typed access to a deployed FedLedgerRegistry and its ContributionToken."""

from collections.abc import Callable, Sequence
from dataclasses import astuple, dataclass
from functools import reduce
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_typing import ChecksumAddress
from eth_utils import function_abi_to_4byte_selector
from hexbytes import HexBytes
from web3 import Web3
from web3.contract.contract import ContractEvent, ContractFunction
from web3.exceptions import BadFunctionCallOutput
from web3.types import BlockIdentifier, EventData

from fedledger.addresses import checksum_address
from fedledger.chain.artifacts import load_artifact
from fedledger.chain.connection import Chain, Receipt
from fedledger.chain.errors import ChainError, ContractRevert
from fedledger.hashing import keccak256, to_hex
from fedledger.privacy import PrivacyBudget
from fedledger.signing import DOMAIN_NAME, DOMAIN_VERSION, SigningDomain, UpdateMessage
from fedledger.store import ArtifactError, ArtifactStore

COORDINATOR_ROLE = Web3.keccak(text="COORDINATOR_ROLE")
ADMIN_ROLE = bytes(32)

#: Seconds between the admin starting a transfer of its role and the new admin accepting it.
DEFAULT_ADMIN_TRANSFER_DELAY = 24 * 60 * 60

#: How many participants one ``addParticipants`` transaction registers at most (about 70,000 gas
#: each, so a batch stays far below any block's gas limit).
REGISTRATION_BATCH = 200

#: ``abi.encode(runId, round, record)``: the bytes a round's record hash is taken over.
_ROUND_RECORD_TYPES = ("uint256", "uint32", "bytes32", "bytes32", "bytes32", "bytes32", "uint32", "uint32", "uint64")
#: How much of the record hash the registry keeps (the slot's last 8 bytes hold the block number).
RECORD_HASH_PREFIX = 24


def _interface_id(abi: list[dict[str, Any]]) -> bytes:
    """The ERC-165 id of an interface: the XOR of its functions' selectors (Solidity's ``type(I).interfaceId``)."""
    selectors = [function_abi_to_4byte_selector(entry) for entry in abi if entry["type"] == "function"]
    return reduce(lambda left, right: bytes(a ^ b for a, b in zip(left, right, strict=True)), selectors, bytes(4))


#: The ERC-165 id a registry of this version reports through ``supportsInterface``.
REGISTRY_INTERFACE_ID = _interface_id(load_artifact("IFedLedgerRegistry").abi)


@dataclass(frozen=True)
class ParticipantRecord:
    """A participant of the allow-list, as the registry stores it."""

    address: ChecksumAddress
    metadata_hash: bytes
    registered_at_block: int
    deactivated_at_block: int  # 0 while active

    @property
    def active(self) -> bool:
        return self.deactivated_at_block == 0

    def active_at(self, block_number: int) -> bool:
        """Whether the participant was registered and active in ``block_number`` (the contract's ``isActiveAt``)."""
        return self.registered_at_block <= block_number and (
            self.deactivated_at_block == 0 or block_number < self.deactivated_at_block
        )


@dataclass(frozen=True)
class RunRecord:
    """A training run, as the registry stores it."""

    run_id: int
    config_hash: bytes
    initial_model_hash: bytes
    reward_per_round: int
    coordinator: ChecksumAddress
    start_block: int
    committed_rounds: int
    planned_rounds: int
    epsilon_budget: int  # the most ε the run may spend, in units of 1 / EPSILON_SCALE; 0 without DP
    delta_budget: int  # its δ, in units of 1 / DELTA_SCALE

    @property
    def budget(self) -> int:
        """What the run's claims can mint at most: its reward per round for each planned round."""
        return self.reward_per_round * self.planned_rounds


@dataclass(frozen=True)
class PendingAdmin:
    """An admin transfer the admin started: who may accept it, and from when (a Unix time)."""

    new_admin: ChecksumAddress
    accept_after: int


@dataclass(frozen=True)
class RoundCommitment:
    """What the coordinator commits for one round (the contract's ``RoundRecord``, fields in its order)."""

    model_hash: bytes
    updates_root: bytes
    rewards_root: bytes
    manifest_hash: bytes
    accepted: int
    rejected: int
    epsilon_spent: int = 0  # the run's ε after the round, in units of 1 / EPSILON_SCALE; 0 without DP

    def encode(self, run_id: int, round_number: int) -> bytes:
        """``abi.encode(runId, round, record)``: what the record hash is taken over, and what the
        coordinator keeps in the run's artifact store."""
        return abi_encode(_ROUND_RECORD_TYPES, (run_id, round_number, *astuple(self)))

    @classmethod
    def decode(cls, data: bytes) -> tuple[int, int, "RoundCommitment"]:
        """The run id, round and record of :meth:`encode`'s bytes.

        Raises:
            ValueError: ``data`` is not such an encoding.
        """
        if len(data) != 32 * len(_ROUND_RECORD_TYPES):
            raise ValueError(f"a round record is {32 * len(_ROUND_RECORD_TYPES)} bytes, got {len(data)}")
        try:
            run_id, round_number, *fields = abi_decode(_ROUND_RECORD_TYPES, data, strict=True)
        except Exception as error:  # eth_abi raises several unrelated types for malformed input
            raise ValueError(f"not a round record: {error}") from None
        return run_id, round_number, cls(*fields)

    def record_hash(self, run_id: int, round_number: int) -> bytes:
        """The first :data:`RECORD_HASH_PREFIX` bytes of the record's hash, as the registry stores them."""
        return keccak256(self.encode(run_id, round_number))[:RECORD_HASH_PREFIX]


@dataclass(frozen=True)
class CommittedRound:
    """A round as committed: its record (checked against the hash the registry stores) and the
    block that recorded it."""

    run_id: int
    round: int
    commitment: RoundCommitment
    committed_at_block: int


@dataclass(frozen=True)
class RewardClaim:
    """A participant's claim of its reward for one committed round, with the Merkle proof of its leaf."""

    run_id: int
    round: int
    amount: int
    proof: list[bytes]
    record: RoundCommitment | None = None  # the round's committed record; read from the chain if not given


class Registry:
    """One deployed registry, used by one account (``sender``) of a :class:`Chain`.

    Writes are sent from ``sender``; :meth:`as_sender` gives a view of the same registry for
    another account. Reverts raise ``ContractRevert`` naming the contract's custom error.
    ``contract`` and ``token`` are the underlying web3 contracts, for events and anything not
    wrapped here.
    """

    def __init__(self, chain: Chain, address: str, sender: str | None = None) -> None:
        """Attach to the registry at ``address``.

        Raises:
            ChainError: ``address`` holds no contract, or one that does not report the registry
                interface of this version (ERC-165), such as the token or an older registry.
        """
        self.chain = chain
        self.address = checksum_address(address)
        if not chain.w3.eth.get_code(self.address):
            raise ChainError(f"{self.address} is not a FedLedger registry: no contract there on {chain.description}")
        self.sender = checksum_address(sender) if sender else None
        self.contract = chain.w3.eth.contract(address=self.address, abi=load_artifact("FedLedgerRegistry").abi)
        if not self._reports_registry_interface():
            raise ChainError(
                f"{self.address} on {chain.description} is not a FedLedger registry of this version: it does not "
                f"report the registry interface 0x{REGISTRY_INTERFACE_ID.hex()} (ERC-165 supportsInterface)"
            )
        self.token_address: ChecksumAddress = self._read(self.contract.functions.token())
        self.token = chain.w3.eth.contract(address=self.token_address, abi=load_artifact("ContributionToken").abi)

    @classmethod
    def deploy(
        cls,
        chain: Chain,
        sender: str,
        admin: str | None = None,
        coordinator: str | None = None,
        admin_transfer_delay: int = DEFAULT_ADMIN_TRANSFER_DELAY,
    ) -> tuple["Registry", Receipt]:
        """Deploy a registry (and its token) from ``sender``.

        ``admin`` and ``coordinator`` default to ``sender``; the coordinator's run allowance starts
        at 0. ``admin_transfer_delay`` is the seconds a new admin waits before accepting the role.
        """
        artifact = load_artifact("FedLedgerRegistry")
        factory = chain.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        constructor = factory.constructor(
            checksum_address(admin or sender),
            checksum_address(coordinator or sender),
            admin_transfer_delay,
        )
        receipt = chain.transact(constructor, sender)
        if receipt.contract_address is None:
            raise ChainError(f"deployment transaction {receipt.tx_hash} created no contract")
        return cls(chain, receipt.contract_address, sender), receipt

    def as_sender(self, sender: str) -> "Registry":
        """The same registry, with writes sent from ``sender``."""
        return Registry(self.chain, self.address, sender)

    def _send(self, call: ContractFunction, estimate_on: BlockIdentifier = "latest", gas: int | None = None) -> Receipt:
        return self.chain.transact(call, self._require_sender(), estimate_on, gas)

    def _require_sender(self) -> str:
        if self.sender is None:
            raise ChainError("this registry handle is read-only: no sender account was given")
        return self.sender

    def _read(self, call: ContractFunction, block: int | str = "latest") -> Any:
        return self.chain.call(call, block)

    def _emitted(self, event: ContractEvent, receipt: Receipt) -> list[EventData]:
        """The ``event`` logs this registry emitted in the transaction of ``receipt``, decoded."""
        topic = HexBytes(event.topic)
        return [
            event.process_log(log)
            for log in receipt.logs
            if log["address"] == self.address and log["topics"] and log["topics"][0] == topic
        ]

    def _reports_registry_interface(self) -> bool:
        try:
            return self._read(self.contract.functions.supportsInterface(REGISTRY_INTERFACE_ID)) is True
        except (ChainError, BadFunctionCallOutput):
            return False

    # Roles -------------------------------------------------------------------------------

    def is_admin(self, address: str) -> bool:
        return self._read(self.contract.functions.hasRole(ADMIN_ROLE, checksum_address(address)))

    def is_coordinator(self, address: str) -> bool:
        return self._read(self.contract.functions.hasRole(COORDINATOR_ROLE, checksum_address(address)))

    def grant_coordinator(self, address: str) -> Receipt:
        """Grant the coordinator role to ``address``. Admin only."""
        return self._send(self.contract.functions.grantRole(COORDINATOR_ROLE, checksum_address(address)))

    def admin(self) -> ChecksumAddress:
        """The one account holding the admin role (the zero address once it was renounced)."""
        return self._read(self.contract.functions.defaultAdmin())

    def admin_transfer_delay(self) -> int:
        """Seconds a new admin waits between the transfer starting and accepting it."""
        return self._read(self.contract.functions.defaultAdminDelay())

    def pending_admin(self) -> PendingAdmin | None:
        """The admin transfer under way, or ``None``."""
        new_admin, accept_after = self._read(self.contract.functions.pendingDefaultAdmin())
        if accept_after == 0:
            return None
        return PendingAdmin(new_admin, accept_after)

    def begin_admin_transfer(self, new_admin: str) -> tuple[PendingAdmin, Receipt]:
        """Start handing the admin role to ``new_admin``, who accepts it after the delay. Admin only."""
        receipt = self._send(self.contract.functions.beginDefaultAdminTransfer(checksum_address(new_admin)))
        (event,) = self._emitted(self.contract.events.DefaultAdminTransferScheduled(), receipt)
        return PendingAdmin(event["args"]["newAdmin"], event["args"]["acceptSchedule"]), receipt

    def accept_admin_transfer(self) -> Receipt:
        """Take the admin role, once the delay has passed by the time of the block that takes it. The
        pending admin only."""
        return self._send(self.contract.functions.acceptDefaultAdminTransfer(), estimate_on="pending")

    def cancel_admin_transfer(self) -> Receipt:
        """Cancel the admin transfer under way. Admin only."""
        return self._send(self.contract.functions.cancelDefaultAdminTransfer())

    # Run allowances ----------------------------------------------------------------------

    def run_allowance(self, coordinator: str) -> int:
        """What ``coordinator`` may still budget for the runs it starts, in token units."""
        return self._read(self.contract.functions.runAllowance(checksum_address(coordinator)))

    def set_privacy_limit(self, epsilon: int, delta: int) -> Receipt:
        """Set the most (ε, δ) budget a run may be started with (fixed point, as ``PrivacyBudget``);
        ``(0, 0)`` removes the limit. Admin only."""
        return self._send(self.contract.functions.setPrivacyLimit(epsilon, delta))

    def privacy_limit(self) -> PrivacyBudget:
        """The most (ε, δ) budget a run may be started with; ``PrivacyBudget(0, 0)`` when there is no limit."""
        return PrivacyBudget(*self._read(self.contract.functions.privacyLimit()))

    def set_run_allowance(self, coordinator: str, amount: int, expected: int | None = None) -> Receipt:
        """Set ``coordinator``'s run allowance to ``amount`` token units. Admin only.

        The contract sets it only while it is still ``expected`` (default: what it is now), so an
        allowance spent meanwhile raises ``ContractRevert(RunAllowanceChanged)`` instead of being
        granted twice.
        """
        checksum = checksum_address(coordinator)
        current = self.run_allowance(checksum) if expected is None else expected
        return self._send(self.contract.functions.setRunAllowance(checksum, current, amount))

    # Participants ------------------------------------------------------------------------

    def add_participants(
        self,
        participants: Sequence[tuple[str, bytes]],
        on_batch: Callable[[int], None] | None = None,
    ) -> list[Receipt]:
        """Add ``(address, metadata hash)`` pairs to the allow-list, in order, :data:`REGISTRATION_BATCH`
        to a transaction; ``on_batch`` is told how many are registered after each. Admin only.

        Every registration costs the same gas, so a batch's gas is estimated once for each batch size
        (estimating runs the transaction many times over on some nodes) and reused.
        """
        receipts = []
        gas_by_size: dict[int, int] = {}
        for start in range(0, len(participants), REGISTRATION_BATCH):
            batch = participants[start : start + REGISTRATION_BATCH]
            addresses = [checksum_address(address) for address, _ in batch]
            call = self.contract.functions.addParticipants(addresses, [metadata for _, metadata in batch])
            if len(batch) not in gas_by_size:
                gas_by_size[len(batch)] = self.chain.estimate_gas(call, self._require_sender())
            receipts.append(self._send(call, gas=gas_by_size[len(batch)]))
            if on_batch is not None:
                on_batch(start + len(batch))
        return receipts

    def add_participant(self, address: str, metadata_hash: bytes) -> Receipt:
        """Add one participant to the allow-list (a batch of one). Admin only."""
        (receipt,) = self.add_participants([(address, metadata_hash)])
        return receipt

    def deactivate_participant(self, address: str) -> Receipt:
        """Deactivate ``address`` for good. Admin only."""
        return self._send(self.contract.functions.deactivateParticipant(checksum_address(address)))

    def participant(self, address: str, block: int | str = "latest") -> ParticipantRecord | None:
        """The allow-list record of ``address`` in ``block``, or ``None`` if it was not added by then."""
        checksum = checksum_address(address)
        metadata_hash, registered, deactivated = self._read(self.contract.functions.getParticipant(checksum), block)
        if registered == 0:
            return None
        return ParticipantRecord(checksum, bytes(metadata_hash), registered, deactivated)

    def participant_count(self) -> int:
        """How many participants were ever added, active or not."""
        return self._read(self.contract.functions.participantCount())

    def participants(self) -> list[ParticipantRecord]:
        """Every participant ever added, in order of registration."""
        count = self.participant_count()
        addresses = [self._read(self.contract.functions.participantAt(index)) for index in range(count)]
        return [record for address in addresses if (record := self.participant(address)) is not None]

    def is_active_at(self, address: str, block_number: int) -> bool:
        """Whether ``address`` was registered and active in block ``block_number``."""
        return self._read(self.contract.functions.isActiveAt(checksum_address(address), block_number))

    # Runs and rounds ---------------------------------------------------------------------

    def start_run(
        self,
        config_hash: bytes,
        initial_model_hash: bytes,
        reward_per_round: int,
        planned_rounds: int,
        privacy_budget: PrivacyBudget | None = None,
    ) -> tuple[int, Receipt]:
        """Start a run of ``planned_rounds`` rounds; returns its id and the receipt. Coordinator only.

        Its budget, ``reward_per_round * planned_rounds``, is paid out of the sender's run allowance;
        ``privacy_budget`` is the (ε, δ) it may spend (``None``: a run without differential privacy).
        """
        budget = privacy_budget or PrivacyBudget(0, 0)
        call = self.contract.functions.startRun(
            config_hash, initial_model_hash, reward_per_round, planned_rounds, budget.epsilon, budget.delta
        )
        receipt = self._send(call)
        (event,) = self._emitted(self.contract.events.RunStarted(), receipt)
        return event["args"]["runId"], receipt

    def commit_round(self, run_id: int, round_number: int, commitment: RoundCommitment) -> Receipt:
        """Commit round ``round_number`` of run ``run_id``. The run's coordinator only.

        Idempotent: when the round is already committed with exactly ``commitment`` (a commit sent
        before a crash or an outage), that commit is returned — its receipt if the node keeps the
        ``RoundCommitted`` log, else its block with the transaction and gas unknown. The round is
        looked up before the commit is sent, and again when the commit reverts: a commit sent
        before a crash may be mined just before this one.

        Raises:
            ChainError: the round is already committed with a different commitment.
        """
        earlier = self._earlier_commit(run_id, round_number, commitment)
        if earlier is not None:
            return earlier
        call = self.contract.functions.commitRound(run_id, round_number, astuple(commitment))
        try:
            return self._send(call)
        except ContractRevert:
            earlier = self._earlier_commit(run_id, round_number, commitment)
            if earlier is None:
                raise
            return earlier

    def _earlier_commit(self, run_id: int, round_number: int, commitment: RoundCommitment) -> Receipt | None:
        """The commit of round ``round_number`` if it is already on-chain with ``commitment``; ``None`` if
        the round is not committed yet.

        Raises:
            ChainError: the round is committed with a different commitment.
        """
        try:
            committed = self.committed_round(run_id, round_number)
        except ContractRevert as error:
            if error.name == "RoundNotCommitted":
                return None
            raise
        if committed.commitment != commitment:
            raise ChainError(
                f"run {run_id} round {round_number} is already committed with manifest "
                f"{to_hex(committed.commitment.manifest_hash)}, not {to_hex(commitment.manifest_hash)}"
            )
        block = committed.committed_at_block
        logs = self._commit_logs(run_id, round_number, block)
        receipt = self.chain.receipt(logs[0]["transactionHash"]) if logs else None
        return receipt or Receipt(tx_hash=None, block_number=block, gas_used=None)

    def _commit_logs(self, run_id: int, round_number: int, block: int) -> list[EventData]:
        return self.contract.events.RoundCommitted().get_logs(
            from_block=block, to_block=block, argument_filters={"runId": run_id, "round": round_number}
        )

    def run_count(self) -> int:
        return self._read(self.contract.functions.runCount())

    def run(self, run_id: int) -> RunRecord:
        """The record of run ``run_id``; raises ``ContractRevert(RunNotStarted)`` if there is none."""
        config, initial, reward, start_block, delta, coordinator, planned, epsilon = self._read(
            self.contract.functions.getRun(run_id)
        )
        committed = self._read(self.contract.functions.committedRounds(run_id))
        return RunRecord(
            run_id, bytes(config), bytes(initial), reward, coordinator, start_block, committed, planned, epsilon, delta
        )

    def committed_round(self, run_id: int, round_number: int, store: ArtifactStore | None = None) -> CommittedRound:
        """The record of a committed round, checked against the hash the registry stores.

        The record is read from the round's ``RoundCommitted`` log, or, when the node keeps no such
        log, from ``store`` (the run's artifact store, where the coordinator keeps every record).

        Raises:
            ContractRevert: ``RoundNotCommitted`` or ``RunNotStarted``.
            ChainError: neither the node's logs nor ``store`` hold the committed record.
        """
        prefix, block = self._read(self.contract.functions.getRoundCommitment(run_id, round_number))
        prefix = bytes(prefix)
        for log in self._commit_logs(run_id, round_number, block):
            commitment = RoundCommitment(*log["args"]["record"].values())
            if commitment.record_hash(run_id, round_number) == prefix:
                return CommittedRound(run_id, round_number, commitment, block)
        for digest in store.digests_named(prefix) if store is not None else ():
            try:
                stored_run, stored_round, commitment = RoundCommitment.decode(store.get(digest))
            except (ArtifactError, ValueError):
                continue
            if (stored_run, stored_round) == (run_id, round_number):
                return CommittedRound(run_id, round_number, commitment, block)
        where = "its RoundCommitted log" + ("" if store is None else f" or the store {store.location}")
        raise ChainError(
            f"run {run_id} round {round_number} is committed (record hash 0x{prefix.hex()}…, block {block}), "
            f"but no record with that hash is in {where}"
        )

    def is_update_included(
        self, committed: CommittedRound, participant: str, update_hash: bytes, num_examples: int, proof: list[bytes]
    ) -> bool:
        """Whether the contract accepts ``proof`` of the update against the ``updatesRoot`` of the
        round's record (which it checks against its stored hash)."""
        call = self.contract.functions.isUpdateIncluded(
            committed.run_id,
            committed.round,
            astuple(committed.commitment),
            checksum_address(participant),
            update_hash,
            num_examples,
            proof,
        )
        return self._read(call)

    # Rewards -----------------------------------------------------------------------------

    def claim(self, claims: Sequence[RewardClaim], store: ArtifactStore | None = None) -> Receipt:
        """Claim the sender's rewards for ``claims`` in one transaction, each with its round's
        committed record (read as :meth:`committed_round` does where a claim does not carry it) and
        Merkle proof."""
        requests = [
            (
                claim.run_id,
                claim.round,
                astuple(claim.record or self.committed_round(claim.run_id, claim.round, store).commitment),
                claim.amount,
                claim.proof,
            )
            for claim in claims
        ]
        return self._send(self.contract.functions.claim(requests))

    def has_claimed(self, run_id: int, round_number: int, address: str) -> bool:
        call = self.contract.functions.hasClaimed(run_id, round_number, checksum_address(address))
        return self._read(call)

    def logged_claims(self, committed: CommittedRound) -> list[tuple[ChecksumAddress, int]]:
        """Who claimed what for a committed round, from its ``RewardClaimed`` logs (none where the
        node keeps no logs); claims come after the commit, so the search starts at its block."""
        logs = self.contract.events.RewardClaimed().get_logs(
            from_block=committed.committed_at_block,
            argument_filters={"runId": committed.run_id, "round": committed.round},
        )
        return [(log["args"]["participant"], log["args"]["amount"]) for log in logs]

    def claimed_total(self, run_id: int, round_number: int) -> int:
        return self._read(self.contract.functions.claimedTotal(run_id, round_number))

    def token_balance(self, address: str) -> int:
        return self._read(self.token.functions.balanceOf(checksum_address(address)))

    # Signed updates ----------------------------------------------------------------------

    def signing_domain(self) -> SigningDomain:
        """The EIP-712 domain participants sign updates in, as the contract reports it."""
        _, name, version, chain_id, verifying_contract, _, _ = self._read(self.contract.functions.eip712Domain())
        if (name, version) != (DOMAIN_NAME, DOMAIN_VERSION):
            raise ChainError(f"registry uses EIP-712 domain {name!r} v{version}, expected {DOMAIN_NAME!r} v1")
        return SigningDomain(chain_id=chain_id, registry=verifying_contract)

    def update_digest(self, message: UpdateMessage) -> bytes:
        """The EIP-712 digest of ``message`` as the contract computes it."""
        call = self.contract.functions.updateDigest(
            message.run_id, message.round, message.base_model_hash, message.update_hash, message.num_examples
        )
        return bytes(self._read(call))
