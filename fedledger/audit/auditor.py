"""Verifying a registry's round history from the chain and the artifact store alone.

The auditor trusts neither the coordinator nor its summaries: everything starts from what the
registry holds in storage (runs, round commitments, participants, claims), and every artifact is re-hashed
as it is read. Each check yields a finding; a check that cannot be done (an artifact missing, a
strategy that cannot be re-derived) is a failure or ``unsupported``, never a pass; a strategy with
no aggregation rule at all leaves re-aggregation ``not-checked``, with the reason.

Beyond what is committed, each run's committed rounds are compared with the rounds its
configuration planned, and the store is searched for manifests of the run that no commit names.
"""

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from web3.types import TxReceipt

from fedledger.audit.findings import CHECKS, AuditReport, Finding, FindingRecorder, RoundAudit, RunAudit
from fedledger.audit.orphans import StoredManifests, record_orphans
from fedledger.audit.participants import summarise_participants, update_outcomes
from fedledger.audit.privacy import PrivacyLedger, check_budget
from fedledger.audit.recompute import (
    ExaminedRound,
    Reaggregation,
    RoundUpdates,
    check_anomalies,
    check_rewards,
    check_scores,
)
from fedledger.audit.valuation import ValuedRound
from fedledger.chain import ChainError, CommittedRound, ParticipantRecord, Registry, RunRecord
from fedledger.encoding import EncodingError, decode_model
from fedledger.errors import FedLedgerError
from fedledger.hashing import from_hex, keccak256, to_hex
from fedledger.manifest import RoundManifest, UpdateEntry
from fedledger.rounds import rewards_tree, updates_tree
from fedledger.runconfig import RunConfiguration
from fedledger.sealing import SealError, public_key_hex, stored_plaintext
from fedledger.signing import InvalidSignature, SigningDomain, UpdateMessage, recover_update_signer
from fedledger.store import ArtifactError, ArtifactMissing, ArtifactStore, ArtifactTampered

Arrays = dict[str, np.ndarray]


class _Abort(Exception):
    """A check failed in a way that makes the rest of the round uncheckable; the message names the
    input the other checks miss."""


#: The checks of a round after its manifest is read, in the order they run, by what they need to
#: know from the run configuration: every round has the first, a valued run also the second.
_ROUND_CHECKS = (
    "manifest-canonical",
    "manifest-binding",
    "model-chain",
    "requests",
    "updates-root",
    "rewards-root",
    "anomaly",
    "scores",
    "rewards",
    "selection",
    "reaggregation",
)
_VALUATION_CHECKS = tuple(check for check in CHECKS if check.startswith("valuation-"))


@dataclass
class _RunState:
    """What carries from one round of a run to the next, and what its committed rounds point to.

    Attributes:
        examined: the previous round's updates the anomaly detector examined, and its base model
            (``None`` before the first round).
        committed_manifests: round -> the committed manifest hash.
        referenced: every artifact hash the run's commits point to: its configuration, its initial
            model, and each committed round's manifest, model and updates.
    """

    config: RunConfiguration | None
    reaggregation: Reaggregation
    model_hash: bytes
    model: Arrays | None
    examined: ExaminedRound | None = None
    privacy: PrivacyLedger | None = None  # None while the run configuration is unread
    key: X25519PrivateKey | None = None  # the auditor's key, if the run seals its updates for it
    sealed_without_key: str | None = None  # why the run's sealed updates cannot be opened in this audit
    committed_manifests: dict[int, str] = field(default_factory=dict)
    referenced: set[str] = field(default_factory=set)


class Auditor:
    """Audits the runs of one registry against one artifact store."""

    def __init__(
        self,
        registry: Registry,
        store: ArtifactStore,
        approved_bundle: str | None = None,
        key: X25519PrivateKey | None = None,
    ) -> None:
        """``approved_bundle``: the sha256 (hex) of the Flower App Bundle the auditor approved; when
        given, every run must record that it ran exactly this bundle (check ``app-bundle``).
        ``key``: the auditor's X25519 private key, which opens the updates (and noise) a run stores
        sealed for it; without it, the checks that need their plaintext are ``needs-key``."""
        self.registry = registry
        self.store = store
        self.approved_bundle = approved_bundle
        self.key = key
        self.domain: SigningDomain = registry.signing_domain()
        self._registrations: dict[str, ParticipantRecord | None] = {}
        self._stored_manifests: StoredManifests | None = None

    def audit(self, run_ids: list[int] | None = None) -> AuditReport:
        """Audit ``run_ids`` (default: every run of the registry).

        Raises:
            FedLedgerError: a run id names no run of the registry.
        """
        count = self.registry.run_count()
        ids = run_ids if run_ids is not None else list(range(1, count + 1))
        unknown = [run_id for run_id in ids if not 1 <= run_id <= count]
        if unknown:
            held = {0: "it has none", 1: "it has run 1 only"}.get(count, f"its runs are 1 to {count}")
            raise FedLedgerError(f"registry {self.registry.address} has no run {unknown[0]}: {held}")
        return AuditReport(
            chain=self.registry.chain.description,
            chain_id=self.domain.chain_id,
            registry=self.registry.address,
            store=self.store.location,
            runs=[self.audit_run(run_id) for run_id in ids],
        )

    def audit_run(self, run_id: int) -> RunAudit:
        run = self.registry.run(run_id)
        audit = RunAudit(run_id)
        state = self._start(run, audit)
        receipts = self._commit_receipts(run)
        for round_number in range(1, run.committed_rounds + 1):
            try:
                committed = self.registry.committed_round(run_id, round_number, self.store)
            except ChainError as error:
                audit.rounds.append(_unreadable_round(run_id, round_number, error))
                continue
            receipt = receipts.get(round_number, {})
            round_audit = RoundAudit(
                run_id,
                round_number,
                gas_used=receipt.get("gasUsed"),
                model_hash=to_hex(committed.commitment.model_hash),
                manifest_hash=to_hex(committed.commitment.manifest_hash),
                commit_transaction=to_hex(receipt["transactionHash"]) if receipt else None,
            )
            FindingRecorder(round_audit).ok(
                "round-record", f"the record hashes to the commitment stored at block {committed.committed_at_block}"
            )
            self._audit_round(run, committed, state, round_audit)
            audit.rounds.append(round_audit)
            state.model_hash = committed.commitment.model_hash
            state.committed_manifests[round_number] = to_hex(committed.commitment.manifest_hash)
            record_digest = keccak256(committed.commitment.encode(run_id, round_number))
            state.referenced.update(
                to_hex(digest)
                for digest in (committed.commitment.manifest_hash, committed.commitment.model_hash, record_digest)
            )
        self._planned_rounds(run, state.config, audit)
        record_orphans(
            audit,
            self._stored().of_run(self.domain.chain_id, self.registry.address, run_id),
            state.committed_manifests,
            state.referenced,
            self.store,
        )
        audit.participants = summarise_participants(audit.rounds)
        return audit

    # Run level -------------------------------------------------------------------------------

    def _start(self, run: RunRecord, audit: RunAudit) -> _RunState:
        unreadable = Reaggregation(None, "the run configuration could not be read")
        state = _RunState(None, unreadable, run.initial_model_hash, None)
        state.referenced.update(to_hex(digest) for digest in (run.config_hash, run.initial_model_hash))
        try:
            state.config = RunConfiguration.from_bytes(self.store.get(run.config_hash))
        except (ArtifactError, ValueError) as error:
            audit.findings.append(_fail("run-config", run.run_id, None, str(error)))
        else:
            audit.findings.append(_pass("run-config", run.run_id, None, f"strategy {state.config.strategy['name']}"))
            audit.configuration = state.config.to_json()
            self._app_bundle(run.run_id, state.config, audit)
            state.reaggregation = Reaggregation.of(state.config.strategy, state.config.privacy)
            self._sealing(state.config, state)
            state.privacy = PrivacyLedger(state.config.privacy, self.store, state.key, state.sealed_without_key)
            check_budget(run, state.config.privacy, audit.findings)
        state.model = self._model(run.run_id, 0, run.initial_model_hash, audit.findings)
        return state

    def _sealing(self, config: RunConfiguration, state: _RunState) -> None:
        """Whether the audit can open the run's sealed updates: with a key among its recipients."""
        if config.sealing is None:
            return
        recipients = config.sealing.get("recipients") or []
        if self.key is None:
            state.sealed_without_key = "the run stores updates sealed, and the audit was given no key (--key)"
            return
        own = public_key_hex(self.key.public_key().public_bytes_raw())
        if own not in recipients:
            state.sealed_without_key = f"the run seals its updates for {len(recipients)} keys, not for {own}"
            return
        state.key = self.key

    def _app_bundle(self, run_id: int, config: RunConfiguration, audit: RunAudit) -> None:
        """Compare the app bundle the run records with the one the auditor approved, if one was given."""
        if self.approved_bundle is None:
            return
        recorded = config.app_bundle_hash
        if recorded == self.approved_bundle:
            audit.findings.append(_pass("app-bundle", run_id, None, f"the run ran the approved app bundle {recorded}"))
            return
        message = (
            "the run records no app bundle: it ran outside one, so nothing shows it ran the approved code"
            if recorded is None
            else "the run ran another app bundle than the approved one"
        )
        audit.findings.append(
            Finding("app-bundle", "fail", run_id, message=message, expected=self.approved_bundle, found=str(recorded))
        )

    def _planned_rounds(self, run: RunRecord, config: RunConfiguration | None, audit: RunAudit) -> None:
        """Compare the rounds the run committed with the rounds it planned, and the plan the registry
        enforces with the one the run configuration records.

        Fewer rounds than planned is ``incomplete`` (the run stopped, or its last commits were lost);
        more, or a configuration that plans otherwise than the registry, is a failure; a configuration
        that records no plan leaves the cross-check ``unsupported``.
        """
        committed, planned = run.committed_rounds, run.planned_rounds
        audit.planned_rounds = planned
        if committed < planned:
            missing = f"round {planned}" if committed + 1 == planned else f"rounds {committed + 1} to {planned}"
            audit.findings.append(
                Finding(
                    "rounds",
                    "incomplete",
                    run.run_id,
                    message=f"{audit.progress()}: {missing} never committed",
                    expected=f"{planned} rounds",
                    found=f"{committed} rounds",
                )
            )
        elif committed > planned:
            audit.findings.append(
                Finding(
                    "rounds",
                    "fail",
                    run.run_id,
                    message="more rounds committed than the run plans",
                    expected=f"{planned} rounds",
                    found=f"{committed} rounds",
                )
            )
        else:
            audit.findings.append(_pass("rounds", run.run_id, None, audit.progress()))
        if config is None:
            return
        if config.planned_rounds is None:
            message = "the run configuration records no planned number of rounds (details.num_server_rounds)"
            audit.findings.append(Finding("planned-rounds", "unsupported", run.run_id, message=message))
        elif config.planned_rounds != planned:
            audit.findings.append(
                Finding(
                    "planned-rounds",
                    "fail",
                    run.run_id,
                    message="the run configuration plans another number of rounds than the registry's run",
                    expected=f"{planned} rounds (registry)",
                    found=f"{config.planned_rounds} rounds (run configuration)",
                )
            )
        else:
            audit.findings.append(_pass("planned-rounds", run.run_id, None, f"{planned} rounds, as the registry holds"))

    def _stored(self) -> StoredManifests:
        """The store's manifests, read on first use and shared by every run of the audit."""
        if self._stored_manifests is None:
            self._stored_manifests = StoredManifests(self.store)
        return self._stored_manifests

    def _model(self, run_id: int, round_number: int, digest: bytes, findings: list[Finding]) -> Arrays | None:
        """Read and decode a committed model; the finding says whether it is there and intact."""
        what = "the initial model" if round_number == 0 else f"the model of round {round_number}"
        try:
            arrays = decode_model(self.store.get(digest))
        except (ArtifactError, EncodingError) as error:
            findings.append(_fail("model-artifact", run_id, round_number, f"{what}: {error}"))
            return None
        findings.append(_pass("model-artifact", run_id, round_number, f"{what} {to_hex(digest)[:18]}… is intact"))
        return arrays

    def _commit_receipts(self, run: RunRecord) -> dict[int, TxReceipt]:
        """The receipt of each round's commit (its gas and transaction hash), from the RoundCommitted
        index; empty where the node keeps no logs.

        The search starts at the run's first block: some nodes (eth-tester) read every receipt in
        the range, and a federation registers its participants before its run starts.
        """
        events = self.registry.contract.events.RoundCommitted().get_logs(
            from_block=run.start_block, argument_filters={"runId": run.run_id}
        )
        w3 = self.registry.chain.w3
        return {event["args"]["round"]: w3.eth.get_transaction_receipt(event["transactionHash"]) for event in events}

    # Round level -----------------------------------------------------------------------------

    def _audit_round(self, run: RunRecord, committed: CommittedRound, state: _RunState, audit: RoundAudit) -> None:
        record = FindingRecorder(audit)
        commitment = committed.commitment
        audit.accepted, audit.rejected = commitment.accepted, commitment.rejected
        next_model = self._model(run.run_id, committed.round, commitment.model_hash, audit.findings)
        examined = ExaminedRound.lost(f"round {committed.round}'s manifest is unusable")
        try:
            manifest = self._manifest(committed, record)
            state.referenced.update(
                digest.lower()
                for entry in manifest.updates
                for digest in (entry.update_hash, entry.sealed_hash)
                if digest
            )
            audit.outcome = manifest.outcome
            audit.accuracy = manifest.metrics.get("evaluate", {}).get("aggregate", {}).get("eval-accuracy")
            audit.rewards = manifest.rewards
            audit.updates = update_outcomes(manifest)
            self._binding(manifest, committed, state, record)
            self._requests(manifest, audit, record)
            updates = RoundUpdates(manifest, state.model, self._updates(manifest, committed, state, record))
            record.sealed = state.sealed_without_key if any(entry.sealed_hash for entry in manifest.updates) else None
            examined = ExaminedRound.of(manifest, updates)
            self._roots(manifest, committed, record)
            config = state.config
            if config is None:
                unreadable = "the run configuration, which holds the detector, scoring and reward settings"
                for check in ("anomaly", "scores", "rewards"):
                    record.not_run(check, unreadable)
            else:
                check_anomalies(manifest, config.detection, updates, state.examined, record)
                check_scores(manifest, config.scoring, self._valued_round(manifest, state, updates), record)
                check_rewards(manifest, config.rewards, record)
            noise = None if state.privacy is None else state.privacy.check_round(manifest, committed, record)
            if manifest.privacy is not None:
                recorded = (manifest.privacy.noise_hash, manifest.privacy.noise_sealed_hash)
                state.referenced.update(digest.lower() for digest in recorded if digest)
            state.reaggregation.check(
                manifest, state.model_hash, committed.commitment.model_hash, updates, record, noise
            )
        except _Abort as missing:
            record.sealed = None
            self._not_run(committed, state.config, audit, record, str(missing))
            if state.privacy is not None:
                state.privacy.lose(f"round {committed.round}'s manifest is unusable: {missing}", record)
        self._claims(run, committed, audit, record)
        state.model = next_model
        state.examined = examined

    @staticmethod
    def _not_run(
        committed: CommittedRound,
        config: RunConfiguration | None,
        audit: RoundAudit,
        record: FindingRecorder,
        missing: str,
    ) -> None:
        """Count what the round's unusable manifest leaves unchecked: each round check that has no
        finding yet, and the per-update checks once per update the commit counts (the manifest
        that would name their participants is what is missing)."""
        valued = config is None or config.scoring is not None
        done = {finding.check for finding in audit.findings}
        for check in _ROUND_CHECKS + (_VALUATION_CHECKS if valued else ()):
            if check not in done:
                record.not_run(check, missing)
        counts = committed.commitment
        for check, count in (
            ("update-hash", counts.accepted + counts.rejected),
            ("signature", counts.accepted),
            ("registration", counts.accepted),
        ):
            for _ in range(count):
                record.not_run(check, missing)

    def _valued_round(self, manifest: RoundManifest, state: _RunState, updates: RoundUpdates) -> ValuedRound:
        return ValuedRound(
            run_id=manifest.run_id,
            round_number=manifest.round,
            base_model_hash=state.model_hash,
            domain=self.domain,
            accepted=manifest.accepted,
            valued=manifest.valued,
            base=updates.base,
            updates=updates.valued(),
        )

    def _manifest(self, committed: CommittedRound, record: FindingRecorder) -> RoundManifest:
        manifest_hash = committed.commitment.manifest_hash
        try:
            data = self.store.get(manifest_hash)
        except ArtifactMissing as error:
            record.fail("manifest-hash", str(error), expected=to_hex(manifest_hash), found="nothing stored")
            raise _Abort(f"the round's manifest {to_hex(manifest_hash)} is not in the store") from None
        except ArtifactError as error:
            record.fail("manifest-hash", str(error), expected=to_hex(manifest_hash))
            raise _Abort(f"the round's manifest {to_hex(manifest_hash)} is not intact in the store") from None
        record.ok("manifest-hash", f"manifest {to_hex(manifest_hash)[:18]}… matches the commit")
        try:
            manifest = RoundManifest.from_bytes(data)
        except ValueError as error:
            record.fail("manifest-canonical", str(error))
            raise _Abort(f"the round's manifest {to_hex(manifest_hash)} cannot be read as a manifest") from None
        if manifest.to_bytes() != data:
            record.fail("manifest-canonical", "the manifest is not in canonical form (entry order or JSON layout)")
        else:
            record.ok("manifest-canonical", "canonical")
        return manifest

    def _binding(
        self, manifest: RoundManifest, committed: CommittedRound, state: _RunState, record: FindingRecorder
    ) -> None:
        commitment = committed.commitment
        expected = {
            "chain id": (self.domain.chain_id, manifest.chain_id),
            "registry": (self.registry.address.lower(), manifest.registry.lower()),
            "run": (committed.run_id, manifest.run_id),
            "round": (committed.round, manifest.round),
            "model hash": (to_hex(commitment.model_hash), manifest.model_hash),
            "accepted count": (commitment.accepted, len(manifest.accepted)),
            "rejected count": (commitment.rejected, len(manifest.rejected)),
        }
        if state.config is not None:
            expected["strategy"] = (state.config.strategy, manifest.strategy)
            scoring = None if state.config.scoring is None else state.config.scoring.to_json()
            expected["scoring"] = (scoring, manifest.scoring)
            detection = None if state.config.detection is None else state.config.detection.to_json()
            expected["detection"] = (detection, manifest.detection)
        mismatched = [name for name, (want, have) in expected.items() if want != have]
        for name in mismatched:
            want, have = expected[name]
            record.fail("manifest-binding", f"the manifest's {name} differs from the chain's", str(want), str(have))
        if not mismatched:
            record.ok("manifest-binding", "chain, registry, run, round, model hash and counts match")
        if manifest.base_model_hash != to_hex(state.model_hash):
            source = "the run's initial model" if committed.round == 1 else f"round {committed.round - 1}'s model"
            record.fail(
                "model-chain",
                f"the round did not start from {source}",
                to_hex(state.model_hash),
                manifest.base_model_hash,
            )
        else:
            record.ok("model-chain", f"starts from {manifest.base_model_hash[:18]}…")

    def _updates(
        self, manifest: RoundManifest, committed: CommittedRound, state: _RunState, record: FindingRecorder
    ) -> dict[int, Arrays]:
        """Check every listed update; return the arrays of those that are intact, by entry index.

        The updates are read, hashed, opened and decoded on every core at once (Keccak-256, AES-GCM
        and file reads release the GIL); their findings are recorded in manifest order.
        """
        listed = [(index, entry) for index, entry in enumerate(manifest.updates) if entry.update_hash is not None]
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            loads = [pool.submit(self._load, entry, state) for _, entry in listed]
        stored: dict[int, Arrays] = {}
        for (index, entry), load in zip(listed, loads, strict=True):
            try:
                arrays = self._update(entry, state, record, load.result())
                if arrays is not None:
                    stored[index] = arrays
            except SealError as error:
                record.fail("update-hash", str(error), entry.update_hash, entry.sealed_hash, entry.participant)
            except ArtifactMissing as error:
                record.fail("update-hash", str(error), entry.update_hash, "nothing stored", entry.participant)
            except ArtifactTampered as error:
                record.fail("update-hash", str(error), entry.update_hash, to_hex(error.actual), entry.participant)
            except EncodingError as error:
                found = "bytes that are not a model encoding"
                record.fail("update-hash", str(error), entry.update_hash, found, entry.participant)
            if entry.status == "accepted":
                self._signed(manifest, committed, entry, record)
        return stored

    def _load(self, entry: UpdateEntry, state: _RunState) -> Arrays | None:
        """An update's arrays, read in clear or opened from its sealed artifact; ``None`` when there
        is no key to open it. Records nothing: it runs on the audit's worker threads.

        Raises:
            ArtifactError, EncodingError, SealError: the update is missing, corrupted or not a model.
        """
        listed = from_hex(entry.update_hash or "")
        sealing = state.config is not None and state.config.sealing is not None
        if entry.sealed_hash is None:
            if sealing:
                raise SealError("the update is listed without its sealed artifact, though the run seals its updates")
            return decode_model(self.store.get(listed))
        plaintext = stored_plaintext(self.store, from_hex(entry.sealed_hash), listed, state.key)
        return None if plaintext is None else decode_model(plaintext)

    def _update(
        self, entry: UpdateEntry, state: _RunState, record: FindingRecorder, arrays: Arrays | None
    ) -> Arrays | None:
        """The ``update-hash`` finding of an update :meth:`_load` loaded as ``arrays``; ``arrays``
        again, for the checks that recompute from it."""
        if entry.sealed_hash is None:
            record.ok("update-hash", f"{entry.status} update is intact", participant=entry.participant)
            return arrays
        if arrays is None:
            why = state.sealed_without_key or "no key opens the run's sealed updates"
            record.needs_key(
                "update-hash",
                f"{why}; its sealed artifact is intact and names the listed hash",
                entry.participant,
            )
            return None
        record.ok(
            "update-hash", f"{entry.status} update is intact (opened from its sealed artifact)", entry.participant
        )
        return arrays

    def _signed(
        self, manifest: RoundManifest, committed: CommittedRound, entry: UpdateEntry, record: FindingRecorder
    ) -> None:
        try:
            message = UpdateMessage(
                manifest.run_id,
                manifest.round,
                from_hex(manifest.base_model_hash),
                from_hex(entry.update_hash or ""),
                entry.num_examples or 0,
                *((0, 0) if entry.signed is None else (entry.signed.clip_norm, entry.signed.noise_multiplier)),
            )
            signer = recover_update_signer(self.domain, message, from_hex(entry.signature or "", size=None))
        except (InvalidSignature, ValueError) as error:
            record.fail("signature", f"the signature cannot be checked: {error}", participant=entry.participant)
            return
        if signer != entry.participant:
            record.fail("signature", "the signature is by someone else", entry.participant, signer, entry.participant)
        else:
            record.ok("signature", "signed by the participant", participant=entry.participant)
        block = committed.committed_at_block
        if signer not in self._registrations:
            self._registrations[signer] = self.registry.participant(signer)
        registration = self._registrations[signer]
        if registration is not None and registration.active_at(block):
            record.ok("registration", f"registered and active at block {block}", participant=signer)
        else:
            if registration is None:
                state = "not registered"
            elif registration.registered_at_block > block:
                state = f"registered only at block {registration.registered_at_block}"
            else:
                state = f"deactivated at block {registration.deactivated_at_block}"
            record.fail(
                "registration", f"the signer was not active at block {block}", "registered and active", state, signer
            )

    def _requests(self, manifest: RoundManifest, audit: RoundAudit, record: FindingRecorder) -> None:
        """Who was asked and who answered: every node asked to train either sent one of the listed
        replies or is listed as silent, and nothing else is listed; evaluation likewise."""
        training, evaluation = manifest.training, manifest.evaluation
        audit.asked, audit.silent = len(training.asked), len(training.silent)
        answered = sorted(entry.node_id for entry in manifest.updates)
        expected = sorted(set(training.asked) - set(training.silent))
        problems = []
        if not set(training.silent) <= set(training.asked):
            problems.append(("training: silent nodes that were never asked", training.asked, training.silent))
        if answered != expected:
            problems.append(
                (
                    "training: the replies listed are not those of the nodes asked less the silent ones",
                    expected,
                    answered,
                )
            )
        if training.skipped is not None and (training.asked or manifest.outcome != "failed"):
            problems.append(
                (
                    "training was skipped, yet nodes were asked or the round aggregated",
                    "no node asked, round failed",
                    f"{len(training.asked)} asked, {manifest.outcome}",
                )
            )
        judged = sorted(entry.node_id for entry in manifest.rejected_evaluations)
        if not set(evaluation.silent) <= set(evaluation.asked) or not set(judged) <= set(evaluation.asked) - set(
            evaluation.silent
        ):
            problems.append(
                (
                    "evaluation: silent or rejected nodes that were never asked, or that are both",
                    evaluation.asked,
                    f"silent {list(evaluation.silent)}, rejected {judged}",
                )
            )
        for message, want, have in problems:
            record.fail("requests", message, str(want), str(have))
        if not problems:
            record.ok(
                "requests",
                f"training: {len(expected)} of {len(training.asked)} nodes asked answered; evaluation: "
                f"{len(evaluation.asked) - len(evaluation.silent)} of {len(evaluation.asked)}",
            )

    def _roots(self, manifest: RoundManifest, committed: CommittedRound, record: FindingRecorder) -> None:
        commitment = committed.commitment
        try:
            rebuilt_updates = updates_tree(manifest.run_id, manifest.round, manifest.accepted).root
        except (ValueError, TypeError) as error:
            record.fail("updates-root", f"the accepted entries cannot form a tree: {error}")
        else:
            record.compare(
                "updates-root",
                to_hex(commitment.updates_root),
                to_hex(rebuilt_updates),
                "rebuilds from the accepted updates",
                "the accepted updates do not rebuild the committed root",
            )
        rebuilt_rewards = rewards_tree(manifest.run_id, manifest.round, manifest.rewards).root
        record.compare(
            "rewards-root",
            to_hex(commitment.rewards_root),
            to_hex(rebuilt_rewards),
            "rebuilds from the rewards",
            "the manifest's rewards do not rebuild the committed root",
        )

    def _claims(self, run: RunRecord, committed: CommittedRound, audit: RoundAudit, record: FindingRecorder) -> None:
        total = self.registry.claimed_total(run.run_id, committed.round)
        excessive = False
        by_granted = 0
        for participant, granted in audit.rewards.items() if total else ():
            if self.registry.has_claimed(run.run_id, committed.round, participant):
                audit.claimed[participant] = granted
                by_granted += granted
        if total > by_granted:
            excessive = True
            beyond = [
                (participant, amount)
                for participant, amount in self.registry.logged_claims(committed)
                if amount > audit.rewards.get(participant, 0)
            ]
            for participant, amount in beyond:
                granted = str(audit.rewards.get(participant, 0))
                record.fail("claims", "claimed more than the manifest grants", granted, str(amount), participant)
            if not beyond:
                record.fail(
                    "claims",
                    "more was claimed than the manifest grants those who claimed (the node keeps no claim logs "
                    "to say who)",
                    str(by_granted),
                    str(total),
                )
        if total > run.reward_per_round:
            excessive = True
            record.fail("claims", "claims exceed the round's budget", str(run.reward_per_round), str(total))
        if not excessive:
            record.ok("claims", f"{total} claimed, within every grant")


def _unreadable_round(run_id: int, round_number: int, error: ChainError) -> RoundAudit:
    """A committed round whose record cannot be found: its other checks cannot run."""
    audit = RoundAudit(run_id, round_number)
    FindingRecorder(audit).fail("round-record", f"the round's record cannot be read: {error}")
    return audit


def _pass(check: str, run_id: int, round_number: int | None, message: str) -> Finding:
    return Finding(check, "pass", run_id, round_number, message=message)


def _fail(check: str, run_id: int, round_number: int | None, message: str) -> Finding:
    return Finding(check, "fail", run_id, round_number, message=message)
