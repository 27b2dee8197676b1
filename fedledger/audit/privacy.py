"""The audit of a private run: its budget on-chain, every round's ε, and the noise a coordinator added.

A run's privacy settings are in its run configuration; the registry holds the budget ``startRun``
recorded and, for each round, the cumulative ε the commit carried. The auditor recomputes every ε
with the same accountant from the recorded settings and the rounds released so far, and, for
central DP, reads the recorded noise, checks that it is the size the settings promise (a χ² test
with false-alarm rate ``NOISE_TEST_FALSE_ALARM`` per round) and hands it to the re-aggregation,
which re-derives the committed model from the clipped updates plus that noise.
"""

import math
from collections import Counter

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from fedledger.audit.findings import Finding, FindingRecorder
from fedledger.chain import CommittedRound, RunRecord
from fedledger.encoding import EncodingError, decode_model
from fedledger.hashing import from_hex
from fedledger.manifest import RoundManifest
from fedledger.privacy import (
    CHARGED_REASONS,
    NOISE_TEST_FALSE_ALARM,
    NoiseTest,
    PrivacySettings,
    local_epsilons,
    local_parameters,
    to_fixed_epsilon,
)
from fedledger.sealing import SealError, stored_plaintext
from fedledger.store import ArtifactError, ArtifactStore

Arrays = dict[str, np.ndarray]

#: How far a recorded ε may lie from the auditor's before it is a discrepancy: the accountant's
#: floating-point arithmetic may differ in its last bits between machines.
EPSILON_TOLERANCE = 1e-9


def check_budget(run: RunRecord, privacy: PrivacySettings | None, findings: list[Finding]) -> None:
    """The budget ``startRun`` recorded is the run configuration's (a run without privacy: none).
    Nothing is reported for a run that has neither."""
    recorded = (run.epsilon_budget, run.delta_budget)
    expected = (0, 0) if privacy is None else (privacy.to_budget().epsilon, privacy.to_budget().delta)
    if recorded == (0, 0) and privacy is None:
        return
    if recorded == expected:
        findings.append(
            Finding(
                "privacy-budget",
                "pass",
                run.run_id,
                message=f"the registry holds the configuration's budget ε={expected[0]}e-6, δ={expected[1]}e-18",
            )
        )
        return
    findings.append(
        Finding(
            "privacy-budget",
            "fail",
            run.run_id,
            message="the registry's privacy budget is not the run configuration's",
            expected=f"ε={expected[0]}e-6, δ={expected[1]}e-18",
            found=f"ε={recorded[0]}e-6, δ={recorded[1]}e-18",
        )
    )


class PrivacyLedger:
    """Follows a private run round by round: the releases so far, each round's ε, its noise (central
    DP), each participant's releases and ε and the parameters its updates are signed with (local DP)."""

    def __init__(
        self,
        privacy: PrivacySettings | None,
        store: ArtifactStore,
        key: X25519PrivateKey | None = None,
        sealed_without_key: str | None = None,
    ) -> None:
        """``key`` opens the noise the run stores sealed; without it, ``sealed_without_key`` says why."""
        self.privacy = privacy
        self.store = store
        self.key = key
        self.sealed_without_key = sealed_without_key
        self.releases = 0
        self.charged: Counter[str] = Counter()
        self.lost: str | None = None  # why the releases so far are unknown, once a round's record is unusable

    def check_round(self, manifest: RoundManifest, committed: CommittedRound, record: FindingRecorder) -> Arrays | None:
        """Check the round's ε (and its noise, under central DP); return the noise for the
        re-aggregation, or ``None`` when there is none or it cannot be used.

        Nothing is reported for a round of a run without privacy that records none.
        """
        privacy, recorded = self.privacy, manifest.privacy
        committed_spent = committed.commitment.epsilon_spent
        if privacy is None:
            if recorded is not None or committed_spent:
                record.fail(
                    "privacy-epsilon",
                    "a run without differential privacy records ε spent",
                    "none",
                    f"manifest {recorded and recorded.epsilon_spent}, commit {committed_spent}",
                )
            return None
        if recorded is None:
            record.fail("privacy-epsilon", "the round of a private run records no privacy", "a record", "none")
            return None
        if self.lost is not None:
            record.not_run("privacy-epsilon", self.lost)
            return None
        aggregated = privacy.mode == "central" and manifest.outcome == "aggregated"
        if privacy.mode == "central":
            self.releases += 1 if aggregated else 0
        else:
            self._local(privacy, manifest, record)
        self._check_epsilon(
            privacy, recorded.releases, recorded.epsilon, recorded.epsilon_spent, committed_spent, record
        )
        if not aggregated:
            return None
        return self._noise(privacy, manifest, record)

    def lose(self, why: str, record: FindingRecorder) -> None:
        """A round whose record is unusable: its ε checks do not run, and no later round's can, since
        the releases before it are unknown."""
        if self.privacy is None:
            return
        record.not_run("privacy-epsilon", why)
        if self.privacy.mode == "central":
            record.not_run("privacy-noise", why)
        self.lost = self.lost or f"the releases before this round are unknown: {why}"

    def _local(self, privacy: PrivacySettings, manifest: RoundManifest, record: FindingRecorder) -> None:
        """Charge each participant whose signed update the round lists (once per round); check that
        every accepted update is signed as clipped and noised with the run's parameters, and that the
        manifest gives each participant the ε its releases so far spend."""
        self.charged.update(
            {entry.participant for entry in manifest.updates if entry.participant and entry.reason in CHARGED_REASONS}
        )
        self.releases = max(self.charged.values(), default=0)
        parameters = local_parameters(privacy)
        for entry in manifest.accepted:
            signed = (0, 0) if entry.signed is None else (entry.signed.clip_norm, entry.signed.noise_multiplier)
            if signed != parameters:
                record.fail(
                    "privacy-local",
                    "the update is not signed as clipped and noised with the run's parameters",
                    f"clip norm, noise multiplier {parameters} (millionths)",
                    str(signed),
                    entry.participant,
                )
            else:
                record.ok("privacy-local", "signed as clipped and noised with the run's parameters", entry.participant)
        expected = local_epsilons(privacy, self.charged)
        recorded = (manifest.privacy.participants if manifest.privacy else None) or {}
        wrong = sorted(
            participant
            for participant in set(expected) | set(recorded)
            if participant not in expected
            or participant not in recorded
            or not math.isclose(recorded[participant], expected[participant], rel_tol=EPSILON_TOLERANCE)
        )
        for participant in wrong:
            record.fail(
                "privacy-epsilon",
                "the participant's ε is not what its releases so far spend",
                repr(expected.get(participant)),
                repr(recorded.get(participant)),
                participant,
            )

    def _check_epsilon(
        self,
        privacy: PrivacySettings,
        releases: int,
        epsilon: float,
        spent: int,
        committed_spent: int,
        record: FindingRecorder,
    ) -> None:
        expected = privacy.epsilon_after(self.releases)
        problems = []
        if releases != self.releases:
            problems.append(("releases so far", str(self.releases), str(releases)))
        if not math.isclose(epsilon, expected, rel_tol=EPSILON_TOLERANCE, abs_tol=EPSILON_TOLERANCE):
            problems.append(("ε", f"{expected!r}", f"{epsilon!r}"))
        if abs(spent - to_fixed_epsilon(expected)) > 1:
            problems.append(("ε spent (micro-units)", str(to_fixed_epsilon(expected)), str(spent)))
        if committed_spent != spent:
            problems.append(("ε spent committed on-chain", str(spent), str(committed_spent)))
        for what, want, have in problems:
            record.fail("privacy-epsilon", f"the round's {what} is not what the accountant gives", want, have)
        if not problems:
            record.ok(
                "privacy-epsilon",
                f"ε={expected:.4f} at δ={privacy.delta:g} after {self.releases} releases, as committed",
            )

    def _read_noise(self, noise_hash: str, sealed_hash: str | None) -> Arrays | None:
        """The recorded noise, read in clear or opened from its sealed artifact; ``None`` without a key."""
        if sealed_hash is None:
            return decode_model(self.store.get(from_hex(noise_hash)))
        plaintext = stored_plaintext(self.store, from_hex(sealed_hash), from_hex(noise_hash), self.key)
        return None if plaintext is None else decode_model(plaintext)

    def _noise(self, privacy: PrivacySettings, manifest: RoundManifest, record: FindingRecorder) -> Arrays | None:
        recorded = manifest.privacy
        if recorded is None:
            return None
        selected = len(manifest.valued)
        stddev = privacy.noise_stddev(selected)
        if recorded.aggregated != selected or recorded.noise_stddev is None or recorded.noise_hash is None:
            record.fail(
                "privacy-noise",
                "the round's noise record is not that of the mean of its aggregated updates",
                f"{selected} aggregated, standard deviation {stddev!r}, a noise hash",
                f"{recorded.aggregated} aggregated, standard deviation {recorded.noise_stddev!r}, "
                f"noise hash {recorded.noise_hash}",
            )
            return None
        if not math.isclose(recorded.noise_stddev, stddev, rel_tol=1e-12):
            record.fail(
                "privacy-noise",
                "the noise's recorded size is not the promised one",
                repr(stddev),
                repr(recorded.noise_stddev),
            )
            return None
        try:
            noise = self._read_noise(recorded.noise_hash, recorded.noise_sealed_hash)
        except (ArtifactError, EncodingError, SealError, ValueError) as error:
            record.fail("privacy-noise", f"the recorded noise cannot be read: {error}", recorded.noise_hash)
            return None
        if noise is None:
            why = self.sealed_without_key or "no key opens the run's sealed noise"
            record.needs_key("privacy-noise", f"{why}; the noise is stored sealed")
            return None
        test = NoiseTest.of(noise, stddev)
        if not test.passed:
            record.fail(
                "privacy-noise",
                f"the noise is not Gaussian of the promised size (χ² test, p={test.p_value:.2e} < "
                f"{NOISE_TEST_FALSE_ALARM:g})",
                f"root mean square {stddev:.6g} over {test.count} values",
                f"{test.measured:.6g}",
            )
            return None
        record.ok(
            "privacy-noise",
            f"{test.count} noise values, root mean square {test.measured:.6g} for {stddev:.6g} "
            f"(χ² p={test.p_value:.3f})",
        )
        return noise
