// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

import {ContributionToken} from "./ContributionToken.sol";

/// @title FedLedgerRegistry
/// @notice The public record of a federated-learning federation: who may take part, which training
/// runs were started, and, for every round of every run, the hashes that let anyone re-check it.
/// Participants claim their per-round rewards here as {ContributionToken}.
/// @dev Everything an auditor needs is kept in storage and readable through view functions; events
/// are an index only, so the history survives a node that prunes logs. {commitRound} writes a fixed
/// number of slots, so its gas does not depend on how many updates its Merkle roots cover.
contract FedLedgerRegistry is AccessControl, EIP712 {
    /// @notice Role allowed to start runs and commit their rounds.
    bytes32 public constant COORDINATOR_ROLE = keccak256("COORDINATOR_ROLE");

    /// @notice EIP-712 type hash of the message a participant signs over its model update.
    bytes32 public constant UPDATE_TYPEHASH = keccak256(
        "Update(uint256 runId,uint32 round,bytes32 baseModelHash,bytes32 updateHash,uint64 numExamples)"
    );

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
    /// @param coordinator The account that started the run; only it commits the run's rounds.
    /// @param startBlock Block in which the run started.
    /// @param nextRound The round that may be committed next; 0 means the run does not exist.
    struct Run {
        bytes32 configHash;
        bytes32 initialModelHash;
        uint256 rewardPerRound;
        address coordinator;
        uint64 startBlock;
        uint32 nextRound;
    }

    /// @notice A committed round.
    /// @param modelHash Hash of the canonical encoding of the aggregated model.
    /// @param updatesRoot Merkle root over the accepted updates.
    /// @param rewardsRoot Merkle root over the rewards granted for the round.
    /// @param manifestHash Hash of the round manifest bytes.
    /// @param accepted Number of updates accepted into the aggregate.
    /// @param rejected Number of updates received and rejected.
    /// @param committedAtBlock Block in which the round was committed; 0 means not committed.
    struct Round {
        bytes32 modelHash;
        bytes32 updatesRoot;
        bytes32 rewardsRoot;
        bytes32 manifestHash;
        uint32 accepted;
        uint32 rejected;
        uint64 committedAtBlock;
    }

    /// @notice The token rewards are paid in; this registry is its only minter.
    ContributionToken public immutable token;

    address[] private _participantList;
    mapping(address account => Participant) private _participants;
    uint256 private _runCount;
    mapping(uint256 runId => Run) private _runs;
    mapping(uint256 runId => mapping(uint32 round => Round)) private _rounds;
    mapping(uint256 runId => mapping(uint32 round => mapping(address account => uint256))) private _claimed;
    mapping(uint256 runId => mapping(uint32 round => uint256)) private _claimedTotal;

    /// @notice The admin added `participant` to the allow-list.
    event ParticipantAdded(address indexed participant, bytes32 metadataHash);
    /// @notice The admin deactivated `participant`; it can no longer take part or claim.
    event ParticipantDeactivated(address indexed participant);
    /// @notice `coordinator` started run `runId`.
    event RunStarted(
        uint256 indexed runId,
        address indexed coordinator,
        bytes32 configHash,
        bytes32 initialModelHash,
        uint256 rewardPerRound
    );
    /// @notice Round `round` of run `runId` was committed; the full record is in {getRound}.
    event RoundCommitted(uint256 indexed runId, uint32 indexed round, bytes32 modelHash, bytes32 manifestHash);
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
    /// @notice Run `runId` was never started.
    error RunNotStarted(uint256 runId);
    /// @notice `caller` is not the coordinator that started run `runId`.
    error NotRunCoordinator(uint256 runId, address caller);
    /// @notice Round `round` of run `runId` is already committed and can never be overwritten.
    error RoundAlreadyCommitted(uint256 runId, uint32 round);
    /// @notice Rounds are committed strictly in sequence: `expected` is next, `given` was sent.
    error RoundOutOfSequence(uint256 runId, uint32 expected, uint32 given);
    /// @notice Round `round` of run `runId` has not been committed.
    error RoundNotCommitted(uint256 runId, uint32 round);
    /// @notice `participant` already claimed its reward for round `round` of run `runId`.
    error RewardAlreadyClaimed(uint256 runId, uint32 round, address participant);
    /// @notice A reward claim asked for nothing.
    error NothingToClaim();
    /// @notice The proof does not show that `participant` was granted `amount` in that round.
    error InvalidRewardProof(uint256 runId, uint32 round, address participant, uint256 amount);
    /// @notice Paying `requested` would exceed what is left (`remaining`) of the round's budget.
    error RewardBudgetExceeded(uint256 runId, uint32 round, uint256 requested, uint256 remaining);

    /// @param admin Account that manages roles and the participant allow-list.
    /// @param coordinator Account granted {COORDINATOR_ROLE}.
    constructor(address admin, address coordinator) EIP712("FedLedger", "1") {
        if (admin == address(0) || coordinator == address(0)) revert ZeroAddress();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(COORDINATOR_ROLE, coordinator);
        token = new ContributionToken("FedLedger Contribution", "FLC");
    }

    // ----------------------------------------------------------------------------------------
    // Participants
    // ----------------------------------------------------------------------------------------

    /// @notice Adds `participant` to the allow-list. Only the admin.
    /// @param participant The participant's signing address.
    /// @param metadataHash Hash of off-chain metadata about the participant; never personal data.
    function addParticipant(address participant, bytes32 metadataHash) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (participant == address(0)) revert ZeroAddress();
        if (_participants[participant].registeredAtBlock != 0) revert ParticipantAlreadyRegistered(participant);
        _participants[participant] = Participant(metadataHash, uint64(block.number), 0);
        _participantList.push(participant);
        emit ParticipantAdded(participant, metadataHash);
    }

    /// @notice Removes `participant` from the active allow-list for good. Only the admin.
    /// @dev The record stays so that an auditor can still check rounds committed before this block.
    function deactivateParticipant(address participant) external onlyRole(DEFAULT_ADMIN_ROLE) {
        Participant storage record = _requireActive(participant);
        record.deactivatedAtBlock = uint64(block.number);
        emit ParticipantDeactivated(participant);
    }

    /// @notice The allow-list record of `participant` (all zero if it was never added).
    function getParticipant(address participant) external view returns (Participant memory) {
        return _participants[participant];
    }

    /// @notice Number of participants ever added, active or not.
    function participantCount() external view returns (uint256) {
        return _participantList.length;
    }

    /// @notice The `index`-th participant ever added, in order of registration.
    function participantAt(uint256 index) external view returns (address) {
        return _participantList[index];
    }

    /// @notice Whether `participant` was registered and active in block `blockNumber`.
    function isActiveAt(address participant, uint256 blockNumber) public view returns (bool) {
        Participant storage record = _participants[participant];
        return record.registeredAtBlock != 0 && record.registeredAtBlock <= blockNumber
            && (record.deactivatedAtBlock == 0 || blockNumber < record.deactivatedAtBlock);
    }

    // ----------------------------------------------------------------------------------------
    // Runs and rounds
    // ----------------------------------------------------------------------------------------

    /// @notice Starts a new run; its id is the number of runs started so far, plus one.
    /// @param configHash Hash of the run configuration.
    /// @param initialModelHash Hash of the canonical encoding of the initial model.
    /// @param rewardPerRound Most tokens the participants of one round can claim between them.
    /// @return runId The new run's id.
    function startRun(bytes32 configHash, bytes32 initialModelHash, uint256 rewardPerRound)
        external
        onlyRole(COORDINATOR_ROLE)
        returns (uint256 runId)
    {
        runId = ++_runCount;
        _runs[runId] = Run({
            configHash: configHash,
            initialModelHash: initialModelHash,
            rewardPerRound: rewardPerRound,
            coordinator: msg.sender,
            startBlock: uint64(block.number),
            nextRound: 1
        });
        emit RunStarted(runId, msg.sender, configHash, initialModelHash, rewardPerRound);
    }

    /// @notice Records round `round` of run `runId`. Only the coordinator that started the run,
    /// only the run's next round, and never twice.
    /// @param runId The run.
    /// @param round The round, counted from 1.
    /// @param modelHash Hash of the canonical encoding of the aggregated model.
    /// @param updatesRoot Merkle root over the accepted updates.
    /// @param rewardsRoot Merkle root over the rewards granted for the round.
    /// @param manifestHash Hash of the round manifest bytes.
    /// @param accepted Number of updates accepted into the aggregate.
    /// @param rejected Number of updates received and rejected.
    function commitRound(
        uint256 runId,
        uint32 round,
        bytes32 modelHash,
        bytes32 updatesRoot,
        bytes32 rewardsRoot,
        bytes32 manifestHash,
        uint32 accepted,
        uint32 rejected
    ) external onlyRole(COORDINATOR_ROLE) {
        Run storage run = _runs[runId];
        uint32 expected = run.nextRound;
        if (expected == 0) revert RunNotStarted(runId);
        if (run.coordinator != msg.sender) revert NotRunCoordinator(runId, msg.sender);
        if (round != expected) {
            if (round != 0 && round < expected) revert RoundAlreadyCommitted(runId, round);
            revert RoundOutOfSequence(runId, expected, round);
        }

        run.nextRound = expected + 1;
        _rounds[runId][round] = Round({
            modelHash: modelHash,
            updatesRoot: updatesRoot,
            rewardsRoot: rewardsRoot,
            manifestHash: manifestHash,
            accepted: accepted,
            rejected: rejected,
            committedAtBlock: uint64(block.number)
        });
        emit RoundCommitted(runId, round, modelHash, manifestHash);
    }

    /// @notice Number of runs started.
    function runCount() external view returns (uint256) {
        return _runCount;
    }

    /// @notice The record of run `runId`; reverts if it was never started.
    function getRun(uint256 runId) external view returns (Run memory) {
        Run storage run = _runs[runId];
        if (run.nextRound == 0) revert RunNotStarted(runId);
        return run;
    }

    /// @notice Number of rounds of run `runId` committed so far; reverts if it was never started.
    function committedRounds(uint256 runId) external view returns (uint32) {
        uint32 nextRound = _runs[runId].nextRound;
        if (nextRound == 0) revert RunNotStarted(runId);
        return nextRound - 1;
    }

    /// @notice The record of round `round` of run `runId`; reverts if it was not committed.
    function getRound(uint256 runId, uint32 round) external view returns (Round memory) {
        return _requireCommitted(runId, round);
    }

    /// @notice Whether `participant`'s update is among the accepted updates of a committed round,
    /// proven against the round's updates root. Reverts if the round was not committed.
    /// @dev The leaf is
    /// `keccak256(bytes.concat(keccak256(abi.encode(runId, round, participant, updateHash, numExamples))))`.
    function isUpdateIncluded(
        uint256 runId,
        uint32 round,
        address participant,
        bytes32 updateHash,
        uint64 numExamples,
        bytes32[] calldata proof
    ) external view returns (bool) {
        Round storage committed = _requireCommitted(runId, round);
        bytes32 leaf =
            keccak256(bytes.concat(keccak256(abi.encode(runId, round, participant, updateHash, numExamples))));
        return MerkleProof.verifyCalldata(proof, committed.updatesRoot, leaf);
    }

    // ----------------------------------------------------------------------------------------
    // Rewards
    // ----------------------------------------------------------------------------------------

    /// @notice Claims the caller's reward for round `round` of run `runId`, proven against the
    /// round's rewards root, and mints it to the caller. Once per participant per round.
    /// @dev The leaf is `keccak256(bytes.concat(keccak256(abi.encode(runId, round, account, amount))))`.
    /// @param amount The amount the round granted the caller.
    /// @param proof Merkle proof of the caller's leaf.
    function claim(uint256 runId, uint32 round, uint256 amount, bytes32[] calldata proof) external {
        _requireActive(msg.sender);
        Round storage committed = _requireCommitted(runId, round);
        if (amount == 0) revert NothingToClaim();
        if (_claimed[runId][round][msg.sender] != 0) revert RewardAlreadyClaimed(runId, round, msg.sender);
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(runId, round, msg.sender, amount))));
        if (!MerkleProof.verifyCalldata(proof, committed.rewardsRoot, leaf)) {
            revert InvalidRewardProof(runId, round, msg.sender, amount);
        }
        uint256 remaining = _runs[runId].rewardPerRound - _claimedTotal[runId][round];
        if (amount > remaining) revert RewardBudgetExceeded(runId, round, amount, remaining);

        _claimed[runId][round][msg.sender] = amount;
        _claimedTotal[runId][round] += amount;
        emit RewardClaimed(runId, round, msg.sender, amount);

        token.mint(msg.sender, amount);
    }

    /// @notice What `participant` has claimed for round `round` of run `runId` (0 if nothing).
    function claimedAmount(uint256 runId, uint32 round, address participant) external view returns (uint256) {
        return _claimed[runId][round][participant];
    }

    /// @notice What all participants together have claimed for round `round` of run `runId`.
    function claimedTotal(uint256 runId, uint32 round) external view returns (uint256) {
        return _claimedTotal[runId][round];
    }

    // ----------------------------------------------------------------------------------------
    // Signed updates
    // ----------------------------------------------------------------------------------------

    /// @notice The EIP-712 digest a participant signs over its update, bound to this chain and
    /// this registry.
    function updateDigest(uint256 runId, uint32 round, bytes32 baseModelHash, bytes32 updateHash, uint64 numExamples)
        public
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(
            keccak256(abi.encode(UPDATE_TYPEHASH, runId, round, baseModelHash, updateHash, numExamples))
        );
    }

    /// @notice The address that produced `signature` over the given update; reverts on a
    /// malformed signature.
    function recoverUpdateSigner(
        uint256 runId,
        uint32 round,
        bytes32 baseModelHash,
        bytes32 updateHash,
        uint64 numExamples,
        bytes calldata signature
    ) external view returns (address) {
        return ECDSA.recover(updateDigest(runId, round, baseModelHash, updateHash, numExamples), signature);
    }

    // ----------------------------------------------------------------------------------------
    // Internal checks
    // ----------------------------------------------------------------------------------------

    function _requireActive(address participant) private view returns (Participant storage record) {
        record = _participants[participant];
        if (record.registeredAtBlock == 0) revert UnknownParticipant(participant);
        if (record.deactivatedAtBlock != 0) revert ParticipantNotActive(participant);
    }

    function _requireCommitted(uint256 runId, uint32 round) private view returns (Round storage committed) {
        if (_runs[runId].nextRound == 0) revert RunNotStarted(runId);
        committed = _rounds[runId][round];
        if (committed.committedAtBlock == 0) revert RoundNotCommitted(runId, round);
    }
}
