// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ContributionToken} from "./ContributionToken.sol";

/// @title IFedLedgerRegistry
/// @notice What a FedLedger registry offers: the participant allow-list, runs whose budgets the
/// admin caps in advance, their committed rounds, reward claims and signed-update digests.
/// @dev A registry reports this interface's id through ERC-165 `supportsInterface`. The id changes
/// with any function of this interface, so a client that checks it talks only to a registry
/// whose functions it knows.
interface IFedLedgerRegistry {
    /// @notice A participant of the allow-list.
    /// @param metadataHash Hash of off-chain metadata about the participant; never personal data.
    /// @param registeredAtBlock Block in which the admin added the participant.
    /// @param deactivatedAtBlock Block in which the admin deactivated it; 0 while it is active.
    struct Participant {
        bytes32 metadataHash;
        uint64 registeredAtBlock;
        uint64 deactivatedAtBlock;
    }

    /// @notice A training run.
    /// @param configHash Hash of the run configuration (strategy, model, rounds, reward rule).
    /// @param initialModelHash Hash of the canonical encoding of the model round 1 starts from.
    /// @param rewardPerRound Most tokens the participants of one round can claim between them.
    /// @param startBlock Block in which the run started.
    /// @param deltaBudget The δ its ε is computed for, in units of 1e-18; 0 without differential privacy.
    /// @param coordinator The account that started the run; only it commits the run's rounds. The
    /// zero address means the run does not exist.
    /// @param plannedRounds The number of rounds the run may commit, and was budgeted for.
    /// @param epsilonBudget The most differential-privacy ε the run may spend, in millionths; 0 for
    /// a run without differential privacy.
    struct Run {
        bytes32 configHash;
        bytes32 initialModelHash;
        uint128 rewardPerRound;
        uint64 startBlock;
        uint64 deltaBudget;
        address coordinator;
        uint32 plannedRounds;
        uint64 epsilonBudget;
    }

    /// @notice What the coordinator commits for a round. The registry stores its hash only (see
    /// {getRoundCommitment}); the record itself is in the {RoundCommitted} event and, as
    /// `abi.encode(runId, round, record)`, in the run's artifact store under its Keccak-256 hash.
    /// @param modelHash Hash of the canonical encoding of the aggregated model.
    /// @param updatesRoot Merkle root over the accepted updates.
    /// @param rewardsRoot Merkle root over the rewards granted for the round.
    /// @param manifestHash Hash of the round manifest bytes.
    /// @param accepted Number of updates accepted into the aggregate.
    /// @param rejected Number of updates received and rejected.
    /// @param epsilonSpent The run's differential-privacy ε after the round, in millionths.
    struct RoundRecord {
        bytes32 modelHash;
        bytes32 updatesRoot;
        bytes32 rewardsRoot;
        bytes32 manifestHash;
        uint32 accepted;
        uint32 rejected;
        uint64 epsilonSpent;
    }

    /// @notice A participant's claim of its reward for one committed round.
    /// @param runId The run.
    /// @param round The round.
    /// @param record The round's committed record, whose rewards root the proof is checked against.
    /// @param amount The amount the round granted the caller.
    /// @param proof Merkle proof of the caller's leaf.
    struct RewardClaim {
        uint256 runId;
        uint32 round;
        RoundRecord record;
        uint256 amount;
        bytes32[] proof;
    }

    /// @notice The admin added `participant` to the allow-list.
    event ParticipantAdded(address indexed participant, bytes32 metadataHash);
    /// @notice The admin deactivated `participant`; it can no longer take part or claim.
    event ParticipantDeactivated(address indexed participant);
    /// @notice The admin set what `coordinator` may still budget for runs, from `previous` to `amount`.
    event RunAllowanceSet(address indexed coordinator, uint256 previous, uint256 amount);
    /// @notice The admin set the most differential-privacy budget a run may be started with.
    event PrivacyLimitSet(uint64 previousEpsilon, uint64 previousDelta, uint64 maxEpsilon, uint64 maxDelta);
    /// @notice `coordinator` started run `runId`, and its run allowance fell by
    /// `rewardPerRound * plannedRounds`; the run may spend `epsilonBudget` at `deltaBudget`.
    event RunStarted(
        uint256 indexed runId,
        address indexed coordinator,
        bytes32 configHash,
        bytes32 initialModelHash,
        uint256 rewardPerRound,
        uint32 plannedRounds,
        uint64 epsilonBudget,
        uint64 deltaBudget
    );
    /// @notice Round `round` of run `runId` was committed with `record`, whose hash {getRoundCommitment} returns.
    event RoundCommitted(uint256 indexed runId, uint32 indexed round, RoundRecord record);
    /// @notice `participant` claimed `amount` tokens for round `round` of run `runId`.
    event RewardClaimed(uint256 indexed runId, uint32 indexed round, address indexed participant, uint256 amount);

    /// @notice An address argument was the zero address.
    error ZeroAddress();
    /// @notice `participant` is already on the allow-list (deactivated addresses cannot return).
    error ParticipantAlreadyRegistered(address participant);
    /// @notice `participant` is not on the allow-list.
    error UnknownParticipant(address participant);
    /// @notice `participant` is on the allow-list but was deactivated.
    error ParticipantNotActive(address participant);
    /// @notice The admin set `coordinator`'s run allowance believing it was `expected`; it is `actual`.
    error RunAllowanceChanged(address coordinator, uint256 expected, uint256 actual);
    /// @notice A run was started with no planned rounds.
    error NoPlannedRounds();
    /// @notice `rewardPerRound` is more than a run can hold (`maximum`).
    error RewardPerRoundTooLarge(uint256 rewardPerRound, uint256 maximum);
    /// @notice The run's budget (`budget`) is more than `coordinator`'s run allowance (`allowance`).
    error RunAllowanceExceeded(address coordinator, uint256 budget, uint256 allowance);
    /// @notice Run `runId` was never started.
    error RunNotStarted(uint256 runId);
    /// @notice `caller` is not the coordinator that started run `runId`.
    error NotRunCoordinator(uint256 runId, address caller);
    /// @notice Round `round` is past the `plannedRounds` run `runId` was started (and budgeted) for.
    error RoundBeyondPlan(uint256 runId, uint32 round, uint32 plannedRounds);
    /// @notice Round `round` of run `runId` is already committed and can never be overwritten.
    error RoundAlreadyCommitted(uint256 runId, uint32 round);
    /// @notice Rounds are committed strictly in sequence: `expected` is next, `given` was sent.
    error RoundOutOfSequence(uint256 runId, uint32 expected, uint32 given);
    /// @notice Round `round` of run `runId` has not been committed.
    error RoundNotCommitted(uint256 runId, uint32 round);
    /// @notice The record given for round `round` of run `runId` is not the one committed.
    error RoundRecordMismatch(uint256 runId, uint32 round);
    /// @notice A batch gave `participants` addresses but `metadataHashes` metadata hashes.
    error LengthMismatch(uint256 participants, uint256 metadataHashes);
    /// @notice `participant` already claimed its reward for round `round` of run `runId`.
    error RewardAlreadyClaimed(uint256 runId, uint32 round, address participant);
    /// @notice A reward claim asked for nothing, or a batch held no claims.
    error NothingToClaim();
    /// @notice The proof does not show that `participant` was granted `amount` in that round.
    error InvalidRewardProof(uint256 runId, uint32 round, address participant, uint256 amount);
    /// @notice Paying `requested` would exceed what is left (`remaining`) of the round's budget.
    error RewardBudgetExceeded(uint256 runId, uint32 round, uint256 requested, uint256 remaining);

    /// @notice A privacy budget gives ε without δ or δ without ε (both 0: no differential privacy).
    error InvalidPrivacyBudget(uint64 epsilonBudget, uint64 deltaBudget);
    /// @notice The admin set a privacy limit, so every run needs a privacy budget.
    error PrivacyBudgetRequired();
    /// @notice The run's privacy budget is more than the admin's limit allows.
    error PrivacyBudgetAboveLimit(uint64 epsilonBudget, uint64 deltaBudget, uint64 maxEpsilon, uint64 maxDelta);
    /// @notice Round `round` of run `runId` would bring the ε spent (`spent`) past the run's budget.
    error PrivacyBudgetExceeded(uint256 runId, uint32 round, uint64 spent, uint64 budget);
    /// @notice Role allowed to start runs and commit their rounds.
    function COORDINATOR_ROLE() external view returns (bytes32);

    /// @notice EIP-712 type hash of the message a participant signs over its model update.
    function UPDATE_TYPEHASH() external view returns (bytes32);

    /// @notice The token rewards are paid in; the registry is its only minter.
    function token() external view returns (ContributionToken);

    // Participants ---------------------------------------------------------------------------

    /// @notice Adds `participants` to the allow-list, in order, in one transaction. Only the admin.
    /// @param participants The participants' signing addresses.
    /// @param metadataHashes For each participant, the hash of off-chain metadata about it; never
    /// personal data.
    function addParticipants(address[] calldata participants, bytes32[] calldata metadataHashes) external;

    /// @notice Removes `participant` from the active allow-list for good. Only the admin.
    /// @dev The record stays so that an auditor can still check rounds committed before this block.
    function deactivateParticipant(address participant) external;

    /// @notice The allow-list record of `participant` (all zero if it was never added).
    function getParticipant(address participant) external view returns (Participant memory);

    /// @notice Number of participants ever added, active or not.
    function participantCount() external view returns (uint256);

    /// @notice The `index`-th participant ever added, in order of registration.
    function participantAt(uint256 index) external view returns (address);

    /// @notice Whether `participant` was registered and active in block `blockNumber`.
    function isActiveAt(address participant, uint256 blockNumber) external view returns (bool);

    // Run allowances -------------------------------------------------------------------------

    /// @notice Sets what `coordinator` may still budget for runs it starts, in token units. Only
    /// the admin, and only while the allowance is still `expected`: a coordinator key that spends
    /// the old allowance just before this lands cannot also receive the new one.
    /// @param coordinator The coordinator account.
    /// @param expected The allowance the admin last saw.
    /// @param amount The new allowance.
    function setRunAllowance(address coordinator, uint256 expected, uint256 amount) external;

    /// @notice What `coordinator` may still budget for runs it starts, in token units.
    function runAllowance(address coordinator) external view returns (uint256);

    // Privacy limit --------------------------------------------------------------------------

    /// @notice Sets the most differential-privacy budget a run may be started with: ε in
    /// millionths, δ in units of 1e-18. Only the admin. While a limit is set, a run without a
    /// budget is refused; (0, 0) removes the limit.
    function setPrivacyLimit(uint64 maxEpsilon, uint64 maxDelta) external;
    /// @notice The privacy limit: ε in millionths, δ in units of 1e-18; (0, 0) if none is set.
    function privacyLimit() external view returns (uint64 maxEpsilon, uint64 maxDelta);

    // Runs and rounds ------------------------------------------------------------------------

    /// @notice Starts a new run, paying its budget (`rewardPerRound * plannedRounds`) out of the
    /// caller's run allowance; its id is the number of runs started so far, plus one. Only a
    /// coordinator.
    /// @param configHash Hash of the run configuration.
    /// @param initialModelHash Hash of the canonical encoding of the initial model.
    /// @param rewardPerRound Most tokens the participants of one round can claim between them.
    /// @param plannedRounds Number of rounds the run may commit; at least 1.
    /// @param epsilonBudget The most differential-privacy ε the run may spend, in millionths; 0
    /// (with `deltaBudget` 0) for a run without differential privacy.
    /// @param deltaBudget The δ its ε is computed for, in units of 1e-18.
    /// @return runId The new run's id.
    function startRun(
        bytes32 configHash,
        bytes32 initialModelHash,
        uint256 rewardPerRound,
        uint32 plannedRounds,
        uint64 epsilonBudget,
        uint64 deltaBudget
    ) external returns (uint256 runId);

    /// @notice Records round `round` of run `runId`. Only the coordinator that started the run,
    /// only the run's next round, never past its planned rounds, and never twice.
    /// @dev Stores one slot: the first 24 bytes of `keccak256(abi.encode(runId, round, record))`
    /// and, in the last 8, the block number. The record's fields travel in the calldata and the
    /// {RoundCommitted} event; the coordinator also stores `abi.encode(runId, round, record)` in
    /// the run's artifact store.
    /// @param runId The run.
    /// @param round The round, counted from 1.
    /// @param record The round's record; its `epsilonSpent` is at most the run's budget (0 for a
    /// run without differential privacy).
    function commitRound(uint256 runId, uint32 round, RoundRecord calldata record) external;

    /// @notice Number of runs started.
    function runCount() external view returns (uint256);

    /// @notice The record of run `runId`; reverts if it was never started.
    function getRun(uint256 runId) external view returns (Run memory);

    /// @notice Number of rounds of run `runId` committed so far; reverts if it was never started.
    function committedRounds(uint256 runId) external view returns (uint32);

    /// @notice The commitment of round `round` of run `runId`: the first 24 bytes of
    /// `keccak256(abi.encode(runId, round, record))` and the block it was committed in. Reverts if
    /// the round was not committed.
    function getRoundCommitment(uint256 runId, uint32 round)
        external
        view
        returns (bytes24 recordHash, uint64 committedAtBlock);

    /// @notice Whether `participant`'s update is among the accepted updates of a committed round,
    /// proven against the updates root of its `record`. Reverts if the round was not committed
    /// with `record`.
    /// @dev The leaf is
    /// `keccak256(bytes.concat(keccak256(abi.encode(runId, round, participant, updateHash, numExamples))))`.
    function isUpdateIncluded(
        uint256 runId,
        uint32 round,
        RoundRecord calldata record,
        address participant,
        bytes32 updateHash,
        uint64 numExamples,
        bytes32[] calldata proof
    ) external view returns (bool);

    // Rewards --------------------------------------------------------------------------------

    /// @notice Claims the caller's rewards for one or more committed rounds, each proven against the
    /// rewards root of the round's record, and mints their sum to the caller. Once per participant
    /// per round.
    /// @dev The leaf is `keccak256(bytes.concat(keccak256(abi.encode(runId, round, account, amount))))`.
    function claim(RewardClaim[] calldata claims) external;

    /// @notice Whether `participant` has claimed its reward for round `round` of run `runId`.
    function hasClaimed(uint256 runId, uint32 round, address participant) external view returns (bool);

    /// @notice What all participants together have claimed for round `round` of run `runId`.
    function claimedTotal(uint256 runId, uint32 round) external view returns (uint256);

    // Signed updates -------------------------------------------------------------------------

    /// @notice The EIP-712 digest a participant signs over its update, bound to this chain and
    /// this registry.
    function updateDigest(uint256 runId, uint32 round, bytes32 baseModelHash, bytes32 updateHash, uint64 numExamples)
        external
        view
        returns (bytes32);

    /// @notice The address that produced `signature` over the given update; reverts on a
    /// malformed signature.
    function recoverUpdateSigner(
        uint256 runId,
        uint32 round,
        bytes32 baseModelHash,
        bytes32 updateHash,
        uint64 numExamples,
        bytes calldata signature
    ) external view returns (address);
}
