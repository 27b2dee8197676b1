// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControlDefaultAdminRules} from
    "@openzeppelin/contracts/access/extensions/AccessControlDefaultAdminRules.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

import {ContributionToken} from "./ContributionToken.sol";
import {IFedLedgerRegistry} from "./IFedLedgerRegistry.sol";

/// @title FedLedgerRegistry
/// @notice The public record of a federated-learning federation: who may take part, which training
/// runs were started, and, for every round of every run, the hashes that let anyone re-check it.
/// Participants claim their per-round rewards here as {ContributionToken}.
/// @dev Everything an auditor needs is kept in storage and readable through view functions; events
/// are an index only, so the history survives a node that prunes logs. {commitRound} writes a fixed
/// number of slots, so its gas does not depend on how many updates its Merkle roots cover.
///
/// Keys: one admin (a cold key), handed over only in two steps with a delay
/// ({AccessControlDefaultAdminRules}), and coordinators (hot keys on the coordinator's host). What
/// a coordinator can make the token mint is capped in advance by the admin: every run's budget,
/// `rewardPerRound * plannedRounds`, is paid out of the coordinator's run allowance when the run
/// starts, a run commits no round past `plannedRounds`, and no round's claims exceed
/// `rewardPerRound`.
contract FedLedgerRegistry is IFedLedgerRegistry, AccessControlDefaultAdminRules, EIP712 {
    /// @inheritdoc IFedLedgerRegistry
    bytes32 public constant COORDINATOR_ROLE = keccak256("COORDINATOR_ROLE");

    /// @inheritdoc IFedLedgerRegistry
    bytes32 public constant UPDATE_TYPEHASH = keccak256(
        "Update(uint256 runId,uint32 round,bytes32 baseModelHash,bytes32 updateHash,uint64 numExamples)"
    );

    /// @inheritdoc IFedLedgerRegistry
    ContributionToken public immutable token;

    address[] private _participantList;
    mapping(address account => Participant) private _participants;
    mapping(address coordinator => uint256) private _runAllowance;
    uint256 private _runCount;
    uint64 private _maxEpsilon;
    uint64 private _maxDelta;
    mapping(uint256 runId => Run) private _runs;
    mapping(uint256 runId => mapping(uint32 round => Round)) private _rounds;
    mapping(uint256 runId => mapping(uint32 round => mapping(address account => uint256))) private _claimed;
    mapping(uint256 runId => mapping(uint32 round => uint256)) private _claimedTotal;

    /// @param admin The only account that manages roles, run allowances and the allow-list.
    /// @param coordinator Account granted {COORDINATOR_ROLE}; its run allowance starts at 0.
    /// @param adminTransferDelay Seconds between the admin starting a transfer of its role and the
    /// new admin being able to accept it.
    constructor(address admin, address coordinator, uint48 adminTransferDelay)
        AccessControlDefaultAdminRules(adminTransferDelay, admin)
        EIP712("FedLedger", "1")
    {
        if (coordinator == address(0)) revert ZeroAddress();
        _grantRole(COORDINATOR_ROLE, coordinator);
        token = new ContributionToken("FedLedger Contribution", "FLC");
    }

    /// @notice Whether this contract implements `interfaceId` (ERC-165): {IFedLedgerRegistry},
    /// the default-admin rules, access control and ERC-165 itself.
    function supportsInterface(bytes4 interfaceId) public view override returns (bool) {
        return interfaceId == type(IFedLedgerRegistry).interfaceId || super.supportsInterface(interfaceId);
    }

    // ----------------------------------------------------------------------------------------
    // Participants
    // ----------------------------------------------------------------------------------------

    /// @inheritdoc IFedLedgerRegistry
    function addParticipant(address participant, bytes32 metadataHash) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (participant == address(0)) revert ZeroAddress();
        if (_participants[participant].registeredAtBlock != 0) revert ParticipantAlreadyRegistered(participant);
        _participants[participant] = Participant(metadataHash, uint64(block.number), 0);
        _participantList.push(participant);
        emit ParticipantAdded(participant, metadataHash);
    }

    /// @inheritdoc IFedLedgerRegistry
    function deactivateParticipant(address participant) external onlyRole(DEFAULT_ADMIN_ROLE) {
        Participant storage record = _requireActive(participant);
        record.deactivatedAtBlock = uint64(block.number);
        emit ParticipantDeactivated(participant);
    }

    /// @inheritdoc IFedLedgerRegistry
    function getParticipant(address participant) external view returns (Participant memory) {
        return _participants[participant];
    }

    /// @inheritdoc IFedLedgerRegistry
    function participantCount() external view returns (uint256) {
        return _participantList.length;
    }

    /// @inheritdoc IFedLedgerRegistry
    function participantAt(uint256 index) external view returns (address) {
        return _participantList[index];
    }

    /// @inheritdoc IFedLedgerRegistry
    function isActiveAt(address participant, uint256 blockNumber) public view returns (bool) {
        Participant storage record = _participants[participant];
        return record.registeredAtBlock != 0 && record.registeredAtBlock <= blockNumber
            && (record.deactivatedAtBlock == 0 || blockNumber < record.deactivatedAtBlock);
    }

    // ----------------------------------------------------------------------------------------
    // Run allowances
    // ----------------------------------------------------------------------------------------

    /// @inheritdoc IFedLedgerRegistry
    function setRunAllowance(address coordinator, uint256 expected, uint256 amount)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        if (coordinator == address(0)) revert ZeroAddress();
        uint256 previous = _runAllowance[coordinator];
        if (previous != expected) revert RunAllowanceChanged(coordinator, expected, previous);
        _runAllowance[coordinator] = amount;
        emit RunAllowanceSet(coordinator, previous, amount);
    }

    /// @inheritdoc IFedLedgerRegistry
    function runAllowance(address coordinator) external view returns (uint256) {
        return _runAllowance[coordinator];
    }

    // ----------------------------------------------------------------------------------------
    // Privacy limit
    // ----------------------------------------------------------------------------------------

    /// @inheritdoc IFedLedgerRegistry
    function setPrivacyLimit(uint64 maxEpsilon, uint64 maxDelta) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if ((maxEpsilon == 0) != (maxDelta == 0)) revert InvalidPrivacyBudget(maxEpsilon, maxDelta);
        emit PrivacyLimitSet(_maxEpsilon, _maxDelta, maxEpsilon, maxDelta);
        (_maxEpsilon, _maxDelta) = (maxEpsilon, maxDelta);
    }

    /// @inheritdoc IFedLedgerRegistry
    function privacyLimit() external view returns (uint64 maxEpsilon, uint64 maxDelta) {
        return (_maxEpsilon, _maxDelta);
    }

    // ----------------------------------------------------------------------------------------
    // Runs and rounds
    // ----------------------------------------------------------------------------------------

    /// @inheritdoc IFedLedgerRegistry
    /// @dev `rewardPerRound` is stored in 128 bits, beside the start block and the ε budget in one
    /// slot; that is over 10^20 tokens of 18 decimals per round.
    function startRun(
        bytes32 configHash,
        bytes32 initialModelHash,
        uint256 rewardPerRound,
        uint32 plannedRounds,
        uint64 epsilonBudget,
        uint64 deltaBudget
    ) external onlyRole(COORDINATOR_ROLE) returns (uint256 runId) {
        if (plannedRounds == 0) revert NoPlannedRounds();
        if (rewardPerRound > type(uint128).max) revert RewardPerRoundTooLarge(rewardPerRound, type(uint128).max);
        _checkPrivacyBudget(epsilonBudget, deltaBudget);
        uint256 budget = rewardPerRound * plannedRounds;
        uint256 allowance = _runAllowance[msg.sender];
        if (budget > allowance) revert RunAllowanceExceeded(msg.sender, budget, allowance);

        _runAllowance[msg.sender] = allowance - budget;
        runId = ++_runCount;
        _runs[runId] = Run({
            configHash: configHash,
            initialModelHash: initialModelHash,
            rewardPerRound: uint128(rewardPerRound),
            startBlock: uint64(block.number),
            epsilonBudget: epsilonBudget,
            coordinator: msg.sender,
            nextRound: 1,
            plannedRounds: plannedRounds,
            deltaBudget: deltaBudget
        });
        emit RunStarted(
            runId, msg.sender, configHash, initialModelHash, rewardPerRound, plannedRounds, epsilonBudget, deltaBudget
        );
    }

    /// @inheritdoc IFedLedgerRegistry
    function commitRound(
        uint256 runId,
        uint32 round,
        bytes32 modelHash,
        bytes32 updatesRoot,
        bytes32 rewardsRoot,
        bytes32 manifestHash,
        uint32 accepted,
        uint32 rejected,
        uint64 epsilonSpent
    ) external onlyRole(COORDINATOR_ROLE) {
        Run storage run = _runs[runId];
        _requireNextRound(run, runId, round, epsilonSpent);

        run.nextRound = round + 1;
        _rounds[runId][round] = Round({
            modelHash: modelHash,
            updatesRoot: updatesRoot,
            rewardsRoot: rewardsRoot,
            manifestHash: manifestHash,
            accepted: accepted,
            rejected: rejected,
            committedAtBlock: uint64(block.number),
            epsilonSpent: epsilonSpent
        });
        emit RoundCommitted(runId, round, modelHash, manifestHash, epsilonSpent);
    }

    /// @inheritdoc IFedLedgerRegistry
    function runCount() external view returns (uint256) {
        return _runCount;
    }

    /// @inheritdoc IFedLedgerRegistry
    function getRun(uint256 runId) external view returns (Run memory) {
        Run storage run = _runs[runId];
        if (run.nextRound == 0) revert RunNotStarted(runId);
        return run;
    }

    /// @inheritdoc IFedLedgerRegistry
    function committedRounds(uint256 runId) external view returns (uint32) {
        uint32 nextRound = _runs[runId].nextRound;
        if (nextRound == 0) revert RunNotStarted(runId);
        return nextRound - 1;
    }

    /// @inheritdoc IFedLedgerRegistry
    function getRound(uint256 runId, uint32 round) external view returns (Round memory) {
        return _requireCommitted(runId, round);
    }

    /// @inheritdoc IFedLedgerRegistry
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

    /// @inheritdoc IFedLedgerRegistry
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

    /// @inheritdoc IFedLedgerRegistry
    function claimedAmount(uint256 runId, uint32 round, address participant) external view returns (uint256) {
        return _claimed[runId][round][participant];
    }

    /// @inheritdoc IFedLedgerRegistry
    function claimedTotal(uint256 runId, uint32 round) external view returns (uint256) {
        return _claimedTotal[runId][round];
    }

    // ----------------------------------------------------------------------------------------
    // Signed updates
    // ----------------------------------------------------------------------------------------

    /// @inheritdoc IFedLedgerRegistry
    function updateDigest(uint256 runId, uint32 round, bytes32 baseModelHash, bytes32 updateHash, uint64 numExamples)
        public
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(
            keccak256(abi.encode(UPDATE_TYPEHASH, runId, round, baseModelHash, updateHash, numExamples))
        );
    }

    /// @inheritdoc IFedLedgerRegistry
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

    /// @dev `round` is the run's next round, committed by the run's coordinator, within its plan and
    /// its privacy budget.
    function _requireNextRound(Run storage run, uint256 runId, uint32 round, uint64 epsilonSpent) private view {
        // One slot holds all three; reading them together lets the optimizer load it once.
        (address coordinator, uint32 expected, uint32 plannedRounds) =
            (run.coordinator, run.nextRound, run.plannedRounds);
        if (expected == 0) revert RunNotStarted(runId);
        if (coordinator != msg.sender) revert NotRunCoordinator(runId, msg.sender);
        if (round > plannedRounds) revert RoundBeyondPlan(runId, round, plannedRounds);
        if (round != expected) {
            if (round != 0 && round < expected) revert RoundAlreadyCommitted(runId, round);
            revert RoundOutOfSequence(runId, expected, round);
        }
        uint64 epsilonBudget = run.epsilonBudget;
        if (epsilonSpent > epsilonBudget) revert PrivacyBudgetExceeded(runId, round, epsilonSpent, epsilonBudget);
    }

    /// @dev A budget gives both ε and δ, or neither; with the admin's limit set, it gives both, within it.
    function _checkPrivacyBudget(uint64 epsilonBudget, uint64 deltaBudget) private view {
        if ((epsilonBudget == 0) != (deltaBudget == 0)) revert InvalidPrivacyBudget(epsilonBudget, deltaBudget);
        (uint64 maxEpsilon, uint64 maxDelta) = (_maxEpsilon, _maxDelta);
        if (maxEpsilon == 0) return;
        if (epsilonBudget == 0) revert PrivacyBudgetRequired();
        if (epsilonBudget > maxEpsilon || deltaBudget > maxDelta) {
            revert PrivacyBudgetAboveLimit(epsilonBudget, deltaBudget, maxEpsilon, maxDelta);
        }
    }

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
