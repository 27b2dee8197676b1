"""Typed access to a deployed FedLedgerRegistry and its ContributionToken."""

from dataclasses import dataclass
from typing import Any

from eth_typing import ChecksumAddress
from web3 import Web3
from web3.contract.contract import ContractFunction

from fedledger.chain.artifacts import load_artifact
from fedledger.chain.connection import Chain, Receipt
from fedledger.chain.errors import ChainError
from fedledger.hashing import to_hex
from fedledger.signing import DOMAIN_NAME, DOMAIN_VERSION, SigningDomain, UpdateMessage

COORDINATOR_ROLE = Web3.keccak(text="COORDINATOR_ROLE")
ADMIN_ROLE = bytes(32)


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


@dataclass(frozen=True)
class RoundCommitment:
    """What the coordinator commits for one round."""

    model_hash: bytes
    updates_root: bytes
    rewards_root: bytes
    manifest_hash: bytes
    accepted: int
    rejected: int


@dataclass(frozen=True)
class CommittedRound:
    """A round as the registry stores it: the commitment and the block that recorded it."""

    run_id: int
    round: int
    commitment: RoundCommitment
    committed_at_block: int


class Registry:
    """One deployed registry, used by one account (``sender``) of a :class:`Chain`.

    Writes are sent from ``sender``; :meth:`as_sender` gives a view of the same registry for
    another account. Reverts raise ``ContractRevert`` naming the contract's custom error.
    ``contract`` and ``token`` are the underlying web3 contracts, for events and anything not
    wrapped here.
    """

    def __init__(self, chain: Chain, address: str, sender: str | None = None) -> None:
        self.chain = chain
        self.address = Web3.to_checksum_address(address)
        if not chain.w3.eth.get_code(self.address):
            raise ChainError(f"no contract at {self.address} on {chain.description}")
        self.sender = Web3.to_checksum_address(sender) if sender else None
        self.contract = chain.w3.eth.contract(address=self.address, abi=load_artifact("FedLedgerRegistry").abi)
        self.token_address: ChecksumAddress = self._read(self.contract.functions.token())
        self.token = chain.w3.eth.contract(address=self.token_address, abi=load_artifact("ContributionToken").abi)

    @classmethod
    def deploy(
        cls, chain: Chain, sender: str, admin: str | None = None, coordinator: str | None = None
    ) -> tuple["Registry", Receipt]:
        """Deploy a registry (and its token) from ``sender``.

        ``admin`` and ``coordinator`` default to ``sender``.
        """
        artifact = load_artifact("FedLedgerRegistry")
        factory = chain.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        constructor = factory.constructor(
            Web3.to_checksum_address(admin or sender), Web3.to_checksum_address(coordinator or sender)
        )
        receipt = chain.transact(constructor, sender)
        if receipt.contract_address is None:
            raise ChainError(f"deployment transaction {receipt.tx_hash} created no contract")
        return cls(chain, receipt.contract_address, sender), receipt

    def as_sender(self, sender: str) -> "Registry":
        """The same registry, with writes sent from ``sender``."""
        return Registry(self.chain, self.address, sender)

    def _send(self, call: ContractFunction) -> Receipt:
        if self.sender is None:
            raise ChainError("this registry handle is read-only: no sender account was given")
        return self.chain.transact(call, self.sender)

    def _read(self, call: ContractFunction) -> Any:
        return self.chain.call(call)

    # Roles -------------------------------------------------------------------------------

    def is_admin(self, address: str) -> bool:
        return self._read(self.contract.functions.hasRole(ADMIN_ROLE, Web3.to_checksum_address(address)))

    def is_coordinator(self, address: str) -> bool:
        return self._read(self.contract.functions.hasRole(COORDINATOR_ROLE, Web3.to_checksum_address(address)))

    def grant_coordinator(self, address: str) -> Receipt:
        """Grant the coordinator role to ``address``. Admin only."""
        return self._send(self.contract.functions.grantRole(COORDINATOR_ROLE, Web3.to_checksum_address(address)))

    # Participants ------------------------------------------------------------------------

    def add_participant(self, address: str, metadata_hash: bytes) -> Receipt:
        """Add ``address`` to the allow-list. Admin only."""
        call = self.contract.functions.addParticipant(Web3.to_checksum_address(address), metadata_hash)
        return self._send(call)

    def deactivate_participant(self, address: str) -> Receipt:
        """Deactivate ``address`` for good. Admin only."""
        return self._send(self.contract.functions.deactivateParticipant(Web3.to_checksum_address(address)))

    def participant(self, address: str) -> ParticipantRecord | None:
        """The allow-list record of ``address``, or ``None`` if it was never added."""
        checksum = Web3.to_checksum_address(address)
        metadata_hash, registered, deactivated = self._read(self.contract.functions.getParticipant(checksum))
        if registered == 0:
            return None
        return ParticipantRecord(checksum, bytes(metadata_hash), registered, deactivated)

    def participants(self) -> list[ParticipantRecord]:
        """Every participant ever added, in order of registration."""
        count = self._read(self.contract.functions.participantCount())
        addresses = [self._read(self.contract.functions.participantAt(index)) for index in range(count)]
        return [record for address in addresses if (record := self.participant(address)) is not None]

    def is_active_at(self, address: str, block_number: int) -> bool:
        """Whether ``address`` was registered and active in block ``block_number``."""
        return self._read(self.contract.functions.isActiveAt(Web3.to_checksum_address(address), block_number))

    # Runs and rounds ---------------------------------------------------------------------

    def start_run(self, config_hash: bytes, initial_model_hash: bytes, reward_per_round: int) -> tuple[int, Receipt]:
        """Start a run; returns its id and the receipt. Coordinator only."""
        call = self.contract.functions.startRun(config_hash, initial_model_hash, reward_per_round)
        receipt = self._send(call)
        tx_receipt = self.chain.w3.eth.get_transaction_receipt(receipt.tx_hash)
        (event,) = self.contract.events.RunStarted().process_receipt(tx_receipt)
        return event["args"]["runId"], receipt

    def commit_round(self, run_id: int, round_number: int, commitment: RoundCommitment) -> Receipt:
        """Commit round ``round_number`` of run ``run_id``. The run's coordinator only.

        Idempotent: when the round is already committed with exactly ``commitment`` (a commit sent
        before a crash or an outage), that commit is returned — its receipt if the node keeps the
        ``RoundCommitted`` log, else its block with the transaction and gas unknown.

        Raises:
            ChainError: the round is already committed with a different commitment.
        """
        if 1 <= round_number <= self.run(run_id).committed_rounds:
            committed = self.committed_round(run_id, round_number)
            if committed.commitment != commitment:
                raise ChainError(
                    f"run {run_id} round {round_number} is already committed with manifest "
                    f"{to_hex(committed.commitment.manifest_hash)}, not {to_hex(commitment.manifest_hash)}"
                )
            block = committed.committed_at_block
            logs = self.contract.events.RoundCommitted().get_logs(
                from_block=block, to_block=block, argument_filters={"runId": run_id, "round": round_number}
            )
            receipt = self.chain.receipt(logs[0]["transactionHash"]) if logs else None
            return receipt or Receipt(tx_hash=None, block_number=block, gas_used=None)
        call = self.contract.functions.commitRound(
            run_id,
            round_number,
            commitment.model_hash,
            commitment.updates_root,
            commitment.rewards_root,
            commitment.manifest_hash,
            commitment.accepted,
            commitment.rejected,
        )
        return self._send(call)

    def run_count(self) -> int:
        return self._read(self.contract.functions.runCount())

    def run(self, run_id: int) -> RunRecord:
        """The record of run ``run_id``; raises ``ContractRevert(RunNotStarted)`` if there is none."""
        config, initial, reward, coordinator, start_block, next_round = self._read(
            self.contract.functions.getRun(run_id)
        )
        return RunRecord(run_id, bytes(config), bytes(initial), reward, coordinator, start_block, next_round - 1)

    def committed_round(self, run_id: int, round_number: int) -> CommittedRound:
        """The record of a committed round; raises ``ContractRevert(RoundNotCommitted)`` otherwise."""
        model, updates, rewards, manifest, accepted, rejected, block = self._read(
            self.contract.functions.getRound(run_id, round_number)
        )
        commitment = RoundCommitment(bytes(model), bytes(updates), bytes(rewards), bytes(manifest), accepted, rejected)
        return CommittedRound(run_id, round_number, commitment, block)

    def is_update_included(
        self,
        run_id: int,
        round_number: int,
        participant: str,
        update_hash: bytes,
        num_examples: int,
        proof: list[bytes],
    ) -> bool:
        """Whether the contract accepts ``proof`` of the update against the round's ``updatesRoot``."""
        call = self.contract.functions.isUpdateIncluded(
            run_id, round_number, Web3.to_checksum_address(participant), update_hash, num_examples, proof
        )
        return self._read(call)

    # Rewards -----------------------------------------------------------------------------

    def claim(self, run_id: int, round_number: int, amount: int, proof: list[bytes]) -> Receipt:
        """Claim the sender's reward for a round with its Merkle proof."""
        return self._send(self.contract.functions.claim(run_id, round_number, amount, proof))

    def claimed_amount(self, run_id: int, round_number: int, address: str) -> int:
        call = self.contract.functions.claimedAmount(run_id, round_number, Web3.to_checksum_address(address))
        return self._read(call)

    def claimed_total(self, run_id: int, round_number: int) -> int:
        return self._read(self.contract.functions.claimedTotal(run_id, round_number))

    def token_balance(self, address: str) -> int:
        return self._read(self.token.functions.balanceOf(Web3.to_checksum_address(address)))

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
