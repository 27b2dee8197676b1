"""The coordinator's hold on the ledger: chain, registry, artifact store, and the run it records."""

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from eth_account.signers.local import LocalAccount

from fedledger.chain import Chain, ChainError, Receipt, Registry
from fedledger.coordinator.config import LedgerSettings
from fedledger.coordinator.vault import Vault
from fedledger.hashing import ZERO_HASH
from fedledger.keys import KEYSTORE_ENV, PRIVATE_KEY_ENV, SIMULATED_GAS_MONEY, load_sender, simulated_participant
from fedledger.privacy import PrivacyBudget
from fedledger.rewards import TOKEN_DECIMALS, format_tokens
from fedledger.signing import SigningDomain
from fedledger.store import ArtifactStore

#: The in-process chain's journal, in the run's output directory.
CHAIN_FILE = "chain.jsonl"


@dataclass
class LedgerSession:
    """A connection to the registry as its coordinator, the store beside it, and the vault that
    seals what the store keeps of the participants.

    ``deployed`` says the coordinator deployed the registry itself (a simulation) and is its admin
    too, so it grants itself the run allowance its runs need; attached to a registry the admin
    deployed, it only spends the allowance the admin granted.
    """

    chain: Chain
    registry: Registry
    store: ArtifactStore
    vault: Vault
    deployed: bool = False
    _statuses: dict[str, str | None] = field(default_factory=dict, init=False, repr=False)
    _status_block: int = field(default=-1, init=False, repr=False)

    @classmethod
    def open(cls, settings: LedgerSettings, chain: Chain | None = None, vault: Vault | None = None) -> "LedgerSession":
        """Connect (or use ``chain``), then attach to ``settings.registry`` or deploy a new registry;
        seal with ``vault`` (by default, the one ``settings`` name).

        On the in-process chain the coordinator is its first development account, and the chain is
        journaled to ``CHAIN_FILE`` in the output directory (unless it already keeps a journal); a run
        that resumes on it restores the chain from that journal, and a new run never replaces the
        journal of an earlier one there. On any other node the coordinator's key comes from
        ``$FEDLEDGER_PRIVATE_KEY`` or ``$FEDLEDGER_KEYSTORE``.

        Raises:
            ChainError: the output directory holds an earlier run's chain, and this run does not resume it.
        """
        journal = Path(settings.output_dir) / CHAIN_FILE
        chain = chain or _open_chain(settings, journal)
        if chain.is_in_process and chain.journal is None:
            chain.journal_to(journal)
        coordinator = chain.signers[0] if chain.signers else chain.add_signer(_coordinator_key())
        if settings.registry:
            registry = Registry(chain, settings.registry, coordinator)
            if not registry.is_coordinator(coordinator):
                raise ChainError(f"{coordinator} does not hold the coordinator role on registry {registry.address}")
        else:
            registry, _ = Registry.deploy(chain, coordinator)
        session = cls(
            chain,
            registry,
            ArtifactStore(settings.store),
            vault or Vault.open(settings),
            deployed=not settings.registry,
        )
        session.register_simulated(settings.key_seed, settings.simulated_participants)
        return session

    def register_simulated(self, key_seed: int, count: int, on_batch: Callable[[int, int], None] | None = None) -> None:
        """Register the simulated participants of partitions ``0 .. count - 1``, whose keys derive
        from ``key_seed``; those already registered are left as they are. On a node, each is sent
        0.1 ether for its reward claims. On the in-process chain they are sent nothing here: a
        simulated site that claims is paid its gas then, from the chain's development accounts
        (``fedledger client claim``), so that registering 10,000 sites is not 10,000 transfers.

        Registration goes in batches; ``on_batch(registered, to_register)`` follows it.
        """
        addresses = [simulated_participant(key_seed, partition_id).address for partition_id in range(count)]
        if self.registry.participant_count():
            addresses = [address for address in addresses if self.registry.participant(address) is None]
        self.registry.add_participants(
            [(address, ZERO_HASH) for address in addresses],
            on_batch=None if on_batch is None else lambda registered: on_batch(registered, len(addresses)),
        )
        if not self.chain.is_in_process:
            for address in addresses:
                self.chain.send_value(self.registry.sender, address, SIMULATED_GAS_MONEY)

    @cached_property
    def domain(self) -> SigningDomain:
        return self.registry.signing_domain()

    def participant_status(self, address: str) -> str | None:
        """``None`` if ``address`` is registered and active in the latest block, else
        ``unregistered`` or ``inactive``.

        Read once per address and block: a status changes only in a transaction, so the replies of a
        round's training and evaluation, checked before its commit, share one read.
        """
        block = self.chain.block_number
        if block != self._status_block:
            self._statuses, self._status_block = {}, block
        if address not in self._statuses:
            record = self.registry.participant(address, block)
            if record is None:
                self._statuses[address] = "unregistered"
            else:
                self._statuses[address] = None if record.active else "inactive"
        return self._statuses[address]

    def start_run(
        self,
        configuration: bytes,
        initial_model_hash: bytes,
        reward_per_round: int,
        planned_rounds: int,
        privacy_budget: PrivacyBudget | None = None,
    ) -> tuple[int, Receipt]:
        """Store the run configuration and start the run on-chain; the configuration hash is its store key.

        Raises:
            ChainError: the run's budget is more than the coordinator's run allowance on a registry
                it did not deploy; the message says who must grant how much.
        """
        self._cover_budget(reward_per_round * planned_rounds)
        config_hash = self.store.put(configuration)
        return self.registry.start_run(
            config_hash, initial_model_hash, reward_per_round, planned_rounds, privacy_budget
        )

    def _cover_budget(self, budget: int) -> None:
        coordinator = self.registry.sender
        allowance = self.registry.run_allowance(coordinator)
        if budget <= allowance:
            return
        if self.deployed:
            self.registry.set_run_allowance(coordinator, budget, expected=allowance)
            return
        whole_tokens = -(-budget // 10**TOKEN_DECIMALS)
        raise ChainError(
            f"the run's budget of {format_tokens(budget)} tokens is more than the run allowance of coordinator "
            f"{coordinator} on registry {self.registry.address} ({format_tokens(allowance)} tokens): its admin "
            f"{self.registry.admin()} must raise it to at least {whole_tokens:,} tokens with "
            f"`fedledger chain allowance {coordinator} {whole_tokens}`"
        )


def _open_chain(settings: LedgerSettings, journal: Path) -> Chain:
    """The chain ``settings`` name: the node at ``rpc-url``; without one, the in-process chain — the
    one journaled at ``journal`` for a run that resumes, a new one otherwise."""
    if not settings.rpc_url and settings.resume_run and journal.exists():
        return Chain.restore(journal)
    return Chain.open(settings.rpc_url or None, settings.rpc_retry_seconds, settings.confirmations)


def _coordinator_key() -> LocalAccount:
    account = load_sender(None)
    if account is None:
        raise ChainError(f"the coordinator needs its key on this node: set ${PRIVATE_KEY_ENV} or ${KEYSTORE_ENV}")
    return account
