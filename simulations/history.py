"""Round histories written straight to the chain and the store, without training: for the audit
benchmark (large models, many rounds) and for the auditor's tamper tests.

Each round is built the way the coordinator builds one — updates signed with EIP-712 and stored,
screened by the anomaly detector (each update's response to the last global step measured against
the same participant's update of the last committed round), the FedAvg aggregate stored, the
updates valued, the manifest sealed with ``fedledger.rounds.seal`` and committed — from synthetic
updates (the global model plus noise: each round the sites agree on a direction and each adds its
own noise). Each participant validates as a site would, with its own task: the loss it reports for
a candidate model is the mean squared distance of the model's values to its own target (the
global model moved in the round's direction, plus the site's own offset), and it signs those
losses. Hooks let a test play a dishonest coordinator at one step.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from eth_account.signers.local import LocalAccount

from fedledger.aggregation import WeightedUpdate, weighted_average
from fedledger.chain import Chain, Registry, RewardClaim, RoundCommitment
from fedledger.contribution import DetectorSettings, delta_gram, detect, step_responses
from fedledger.encoding import encode_model
from fedledger.hashing import ZERO_HASH, keccak256, to_hex
from fedledger.keys import simulated_participant
from fedledger.manifest import Requests, RoundManifest, SignedFields, UpdateEntry
from fedledger.rewards import TOKEN_DECIMALS, RewardRule
from fedledger.rounds import reward_proof, rewards_tree, seal
from fedledger.runconfig import RunConfiguration
from fedledger.sealing import SCHEME, Sealer, public_key_hex
from fedledger.signing import UpdateMessage, ValuationMessage, sign_update, sign_valuation, valuation_results_hash
from fedledger.store import ArtifactStore
from fedledger.valuation import (
    PreparedValuation,
    RoundValuation,
    ValidatorReport,
    ValuationSettings,
    conclude_valuation,
    prepare_valuation,
)

Arrays = dict[str, np.ndarray]
STRATEGY = {"name": "FedAvg", "params": {}}
VALUATION = ValuationSettings(metric="distance-to-target")


@dataclass
class Dishonesty:
    """What a dishonest coordinator does in one round; the default is nothing.

    Attributes:
        signers: update index -> the key that signs it instead of its participant's.
        commit_model: turns the true aggregate into the model that is committed.
        rewrite_manifest: edits the manifest bytes before they are stored and committed.
        inflate_rewards: rewards that go into the committed rewards root instead of the manifest's.
    """

    signers: Mapping[int, LocalAccount] = field(default_factory=dict)
    commit_model: Callable[[Arrays], Arrays] | None = None
    rewrite_manifest: Callable[[bytes], bytes] | None = None
    inflate_rewards: Mapping[str, int] | None = None


class SyntheticHistory:
    """A registry with ``clients`` registered participants and one run of ``planned_rounds`` rounds
    (as its run configuration and the registry record them), grown round by round. With
    ``sealed_for`` (X25519 public keys), its updates are stored sealed for those keys, as a
    coordinator stores them; else in clear."""

    def __init__(
        self,
        chain: Chain,
        store: ArtifactStore,
        shapes: Mapping[str, tuple[int, ...]],
        clients: int,
        *,
        planned_rounds: int,
        seed: int = 0,
        reward_tokens: int = 100,
        reward_rule: str = "score",
        sealed_for: Sequence[bytes] = (),
    ) -> None:
        self.chain = chain
        self.store = store
        self.rng = np.random.default_rng(seed)
        self.participants = [simulated_participant(seed, index) for index in range(clients)]
        coordinator = chain.signers[0]
        self.registry, _ = Registry.deploy(chain, coordinator)
        self.registry.add_participants([(account.address, ZERO_HASH) for account in self.participants])
        self.model: Arrays = {
            name: self.rng.normal(size=shape).astype(np.float32) for name, shape in sorted(shapes.items())
        }
        self.model_hash = store.put(encode_model(self.model))
        self.rule = RewardRule(reward_rule, reward_tokens * 10**TOKEN_DECIMALS)
        self.valuation = VALUATION if reward_rule == "score" else None
        self.detection = DetectorSettings()
        self.sealer = Sealer(sealed_for) if sealed_for else None
        self.offsets = [
            {name: self.rng.normal(scale=0.002, size=value.shape) for name, value in self.model.items()}
            for _ in self.participants
        ]
        config = RunConfiguration(
            STRATEGY,
            self.rule,
            self.valuation,
            self.detection,
            sealing=None
            if self.sealer is None
            else {"scheme": SCHEME, "recipients": [public_key_hex(key) for key in self.sealer.recipients]},
            details={"synthetic": True, "num_server_rounds": planned_rounds},
        )
        self.registry.set_run_allowance(coordinator, self.rule.budget * planned_rounds)
        self.run_id, _ = self.registry.start_run(
            store.put(config.to_bytes()), self.model_hash, self.rule.budget, planned_rounds
        )
        self.domain = self.registry.signing_domain()
        self.round = 0
        self.last_commitment: RoundCommitment | None = None
        self.examined: dict[str, Arrays] = {}  # the last committed round's examined updates, by participant
        self.previous_model: Arrays | None = None  # the last committed round's base model

    def add_round(self, dishonesty: Dishonesty | None = None, commit: bool = True) -> RoundManifest:
        """Write and commit the next round; returns its manifest.

        With ``commit=False`` the round's updates, model and manifest are stored but nothing is
        committed, as when a coordinator stops before its commit: the next round has the same number.
        """
        dishonesty = dishonesty or Dishonesty()
        round_number = self.round + 1
        updates, entries = [], []
        shared = {name: self.rng.normal(scale=0.01, size=value.shape) for name, value in self.model.items()}
        for index, account in enumerate(self.participants):
            arrays = {
                name: (value + shared[name] + self.rng.normal(scale=0.005, size=value.shape)).astype(value.dtype)
                for name, value in self.model.items()
            }
            examples = int(self.rng.integers(20, 200))
            encoding = encode_model(arrays)
            update_hash = keccak256(encoding)
            stored = self.store.put(encoding if self.sealer is None else self.sealer.seal(encoding))
            message = UpdateMessage(self.run_id, round_number, self.model_hash, update_hash, examples)
            signer = dishonesty.signers.get(index, account)
            entries.append(
                UpdateEntry(
                    node_id=index,
                    status="accepted",
                    participant=signer.address,
                    update_hash=to_hex(update_hash),
                    sealed_hash=None if self.sealer is None else to_hex(stored),
                    num_examples=examples,
                    signature=to_hex(sign_update(self.domain, message, signer.key)),
                    signed=SignedFields(self.run_id, round_number, to_hex(self.model_hash)),
                    metrics={"train-loss": float(self.rng.uniform(0.2, 0.7))},
                )
            )
            updates.append((signer.address, arrays, examples))
        examined = [arrays for _, arrays, _ in updates]
        responses = None
        if self.previous_model is not None:
            previous = [self.examined.get(address) for address, _, _ in updates]
            responses = step_responses(self.previous_model, self.model, previous, examined)
        statistics = detect(delta_gram(self.model, examined), self.detection, responses)
        for index, stats in enumerate(statistics or []):
            entries[index] = replace(entries[index], anomaly=stats)
            if stats.flags:
                entries[index] = replace(
                    entries[index],
                    status="rejected",
                    reason="anomalous",
                    detail=stats.describe(self.detection.threshold),
                )
        kept = sorted(
            (update for update, entry in zip(updates, entries, strict=True) if entry.status == "accepted"),
            key=lambda update: update[0],
        )
        aggregate = weighted_average([WeightedUpdate(arrays, examples) for _, arrays, examples in kept])
        committed = dishonesty.commit_model(aggregate) if dishonesty.commit_model else aggregate
        committed_hash = self.store.put(encode_model(committed))
        signers = {index: dishonesty.signers.get(index, account) for index, account in enumerate(self.participants)}
        valuation, scores = self._value(round_number, kept, entries, shared, signers)
        entries = [
            replace(entry, selected=True, score=scores.get(entry.participant or ""))
            if entry.status == "accepted"
            else entry
            for entry in entries
        ]
        draft = RoundManifest(
            chain_id=self.domain.chain_id,
            registry=self.registry.address,
            run_id=self.run_id,
            round=round_number,
            base_model_hash=to_hex(self.model_hash),
            model_hash=to_hex(committed_hash),
            outcome="aggregated",
            strategy=STRATEGY,
            updates=tuple(entries),
            updates_root="",
            rewards_root="",
            reproduction="verified",
            metrics={"evaluate": {"aggregate": {"eval-accuracy": float(self.rng.uniform(0.6, 0.9))}}},
            scoring=None if self.valuation is None else self.valuation.to_json(),
            valuation=valuation,
            detection=self.detection.to_json(),
            training=Requests(asked=tuple(entry.node_id for entry in entries)),
        )
        manifest, commitment = seal(draft, self.rule)
        data = manifest.to_bytes()
        if dishonesty.rewrite_manifest:
            data = dishonesty.rewrite_manifest(data)
            commitment = RoundCommitment(**{**vars(commitment), "manifest_hash": keccak256(data)})
        if dishonesty.inflate_rewards is not None:
            root = rewards_tree(self.run_id, round_number, dishonesty.inflate_rewards).root
            commitment = RoundCommitment(**{**vars(commitment), "rewards_root": root})
        self.store.put(data)
        if commit:
            self.store.put(commitment.encode(self.run_id, round_number))
            self.registry.commit_round(self.run_id, round_number, commitment)
            self.round, self.last_commitment = round_number, commitment
            self.previous_model = self.model
            self.examined = {address: arrays for address, arrays, _ in updates}
            self.model, self.model_hash = committed, committed_hash
        return manifest

    def _value(
        self,
        round_number: int,
        kept: list[tuple[str, Arrays, int]],
        entries: list[UpdateEntry],
        direction: Arrays,
        signers: Mapping[int, LocalAccount],
    ) -> tuple[RoundValuation | None, dict[str, float | None]]:
        """The round's valuation, every accepted participant validating with its own target, and
        the score of each kept update by participant (``None`` when nothing is valued)."""
        if self.valuation is None:
            return None, {address: None for address, _, _ in kept}
        prepared = prepare_valuation(
            self.valuation,
            self.run_id,
            round_number,
            self.model,
            self.model_hash,
            [WeightedUpdate(arrays, examples) for _, arrays, examples in kept],
        )
        reports = [
            self._validate(round_number, prepared, entry, direction, signers[entry.node_id])
            for entry in entries
            if entry.status == "accepted"
        ]
        valuation, scores = conclude_valuation(prepared, [address for address, _, _ in kept], reports)
        return valuation, dict(zip((address for address, _, _ in kept), scores, strict=True))

    def _validate(
        self,
        round_number: int,
        prepared: PreparedValuation,
        entry: UpdateEntry,
        direction: Arrays,
        account: LocalAccount,
    ) -> ValidatorReport:
        """What the site of ``entry`` reports for each candidate model, signed by ``account``."""
        offset = self.offsets[entry.node_id]
        values = tuple(
            float(
                np.mean(
                    [
                        np.mean((model[name] - self.model[name] - direction[name] - offset[name]) ** 2)
                        for name in sorted(model)
                    ]
                )
            )
            for model in prepared.candidates()
        )
        message = ValuationMessage(
            self.run_id, round_number, VALUATION.metric, valuation_results_hash(prepared.candidate_hashes, values)
        )
        signature = to_hex(sign_valuation(self.domain, message, account.key))
        return ValidatorReport(entry.node_id, entry.participant, values, signature)

    def claim(self, index: int, round_number: int, amount: int, rewards: Mapping[str, int]) -> None:
        """Participant ``index`` claims ``amount`` with a proof from the tree of ``rewards``."""
        account = self.participants[index]
        if account.address not in self.chain.signers:
            self.chain.add_signer(account)
            self.chain.send_value(self.chain.signers[0], account.address, 10**17)
        proof = reward_proof(self.run_id, round_number, rewards, account.address)
        self.registry.as_sender(account.address).claim([RewardClaim(self.run_id, round_number, amount, proof)])
