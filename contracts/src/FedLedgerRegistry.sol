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
/// @dev A round costs one storage slot: the hash of its record (roots, manifest hash, counts, ε
/// spent) and the block it was committed in. The record itself travels in the calldata and the
/// {RoundCommitted} event, and the coordinator keeps it in the run's artifact store, so the history
/// survives a node that prunes logs; whoever uses a record (a claim, an auditor) checks it against
/// the stored hash. Gas per round does not depend on how many updates its Merkle roots cover.
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
    /// @dev The first 24 bytes of the record's hash, then the commit block in the last 8; zero until committed.
    mapping(uint256 runId => mapping(uint32 round => bytes32)) private _roundCommitments;
    /// @dev Bit `round % 256` of word `round / 256` is set once `account` claimed that round.
    mapping(uint256 runId => mapping(address account => mapping(uint256 word => uint256))) private _claimedRounds;
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
    function addParticipants(address[] calldata participants, bytes32[] calldata metadataHashes)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        if (participants.length != metadataHashes.length) {
            revert LengthMismatch(participants.length, metadataHashes.length);
        }
        for (uint256 i = 0; i < participants.length; ++i) {
            address participant = participants[i];
            if (participant == address(0)) revert ZeroAddress();
            if (_participants[participant].registeredAtBlock != 0) revert ParticipantAlreadyRegistered(participant);
            _participants[participant] = Participant(metadataHashes[i], uint64(block.number), 0);
            _participantList.push(participant);
            emit ParticipantAdded(participant, metadataHashes[i]);
        }
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
    /// @dev `rewardPerRound` is stored in 128 bits, beside the start block and the δ budget in one
    /// slot; that is over 10^20 tokens of 18 decimals per round. The coordinator, the planned rounds
    /// and the ε budget share the slot {commitRound} reads.
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
            deltaBudget: deltaBudget,
            coordinator: msg.sender,
            plannedRounds: plannedRounds,
            epsilonBudget: epsilonBudget
        });
        emit RunStarted(
            runId, msg.sender, configHash, initialModelHash, rewardPerRound, plannedRounds, epsilonBudget, deltaBudget
        );
    }

    /// @inheritdoc IFedLedgerRegistry
    function commitRound(uint256 runId, uint32 round, RoundRecord calldata record)
        external
        onlyRole(COORDINATOR_ROLE)
    {
        _requireNextRound(runId, round, record.epsilonSpent);

        _roundCommitments[runId][round] = bytes32(
            uint256(_recordHash(runId, round, record)) | block.number
        );
        emit RoundCommitted(runId, round, record);
    }

    /// @inheritdoc IFedLedgerRegistry
    function runCount() external view returns (uint256) {
        return _runCount;
    }

    /// @inheritdoc IFedLedgerRegistry
    function getRun(uint256 runId) external view returns (Run memory) {
        return _requireRun(runId);
    }

    /// @inheritdoc IFedLedgerRegistry
    function committedRounds(uint256 runId) external view returns (uint32) {
        return _committedRounds(runId, _requireRun(runId).plannedRounds);
    }

    /// @inheritdoc IFedLedgerRegistry
    function getRoundCommitment(uint256 runId, uint32 round)
        external
        view
        returns (bytes24 recordHash, uint64 committedAtBlock)
    {
        _requireRun(runId);
        bytes32 commitment = _roundCommitments[runId][round];
        if (commitment == 0) revert RoundNotCommitted(runId, round);
        return (bytes24(commitment), uint64(uint256(commitment)));
    }

    /// @inheritdoc IFedLedgerRegistry
    function isUpdateIncluded(
        uint256 runId,
        uint32 round,
        RoundRecord calldata record,
        address participant,
        bytes32 updateHash,
        uint64 numExamples,
        bytes32[] calldata proof
    ) external view returns (bool) {
        _requireRecord(runId, round, record);
        bytes32 leaf =
            keccak256(bytes.concat(keccak256(abi.encode(runId, round, participant, updateHash, numExamples))));
        return MerkleProof.verifyCalldata(proof, record.updatesRoot, leaf);
    }

    // ----------------------------------------------------------------------------------------
    // Rewards
    // ----------------------------------------------------------------------------------------

    /// @inheritdoc IFedLedgerRegistry
    function claim(RewardClaim[] calldata claims) external {
        _requireActive(msg.sender);
        if (claims.length == 0) revert NothingToClaim();
        uint256 total = 0;
        for (uint256 i = 0; i < claims.length; ++i) {
            total += _claimRound(claims[i]);
        }
        token.mint(msg.sender, total);
    }

    /// @inheritdoc IFedLedgerRegistry
    function hasClaimed(uint256 runId, uint32 round, address participant) external view returns (bool) {
        return (_claimedRounds[runId][participant][round >> 8] & (uint256(1) << (round & 0xff))) != 0;
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

    /// @dev Marks one claimed round and returns its amount; the caller mints.
    function _claimRound(RewardClaim calldata request) private returns (uint256) {
        (uint256 runId, uint32 round, uint256 amount) = (request.runId, request.round, request.amount);
        _requireRecord(runId, round, request.record);
        if (amount == 0) revert NothingToClaim();
        mapping(uint256 word => uint256) storage claimed = _claimedRounds[runId][msg.sender];
        uint256 bit = uint256(1) << (round & 0xff);
        if (claimed[round >> 8] & bit != 0) revert RewardAlreadyClaimed(runId, round, msg.sender);
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(runId, round, msg.sender, amount))));
        if (!MerkleProof.verifyCalldata(request.proof, request.record.rewardsRoot, leaf)) {
            revert InvalidRewardProof(runId, round, msg.sender, amount);
        }
        uint256 claimedTotal_ = _claimedTotal[runId][round];
        uint256 remaining = _runs[runId].rewardPerRound - claimedTotal_;
        if (amount > remaining) revert RewardBudgetExceeded(runId, round, amount, remaining);

        claimed[round >> 8] |= bit;
        _claimedTotal[runId][round] = claimedTotal_ + amount;
        emit RewardClaimed(runId, round, msg.sender, amount);
        return amount;
    }

    /// @dev `round` is the run's next round, committed by the run's coordinator, within its plan and
    /// its privacy budget. Rounds are committed in sequence, so round `round - 1` must be committed
    /// and `round` not.
    function _requireNextRound(uint256 runId, uint32 round, uint64 epsilonSpent) private view {
        Run storage run = _runs[runId];
        // One slot holds all three; reading them together lets the optimizer load it once.
        (address coordinator, uint32 plannedRounds, uint64 epsilonBudget) =
            (run.coordinator, run.plannedRounds, run.epsilonBudget);
        if (coordinator == address(0)) revert RunNotStarted(runId);
        if (coordinator != msg.sender) revert NotRunCoordinator(runId, msg.sender);
        if (round > plannedRounds) revert RoundBeyondPlan(runId, round, plannedRounds);
        mapping(uint32 round => bytes32) storage commitments = _roundCommitments[runId];
        if (round != 0 && commitments[round] != 0) revert RoundAlreadyCommitted(runId, round);
        if (round == 0 || (round > 1 && commitments[round - 1] == 0)) {
            revert RoundOutOfSequence(runId, _committedRounds(runId, plannedRounds) + 1, round);
        }
        if (epsilonSpent > epsilonBudget) revert PrivacyBudgetExceeded(runId, round, epsilonSpent, epsilonBudget);
    }

    /// @dev The number of committed rounds: rounds are committed from 1 without gaps, so the last
    /// one is found by bisection.
    function _committedRounds(uint256 runId, uint32 plannedRounds) private view returns (uint32 low) {
        mapping(uint32 round => bytes32) storage commitments = _roundCommitments[runId];
        uint32 high = plannedRounds;
        while (low < high) {
            uint32 middle = high - (high - low) / 2;
            if (commitments[middle] != 0) low = middle;
            else high = middle - 1;
        }
    }

    /// @dev The hash of a round's record with its last 8 bytes cleared, where the commit block goes.
    function _recordHash(uint256 runId, uint32 round, RoundRecord calldata record) private pure returns (bytes32) {
        return keccak256(abi.encode(runId, round, record)) & ~bytes32(uint256(type(uint64).max));
    }

    /// @dev `record` is what round `round` of run `runId` committed.
    function _requireRecord(uint256 runId, uint32 round, RoundRecord calldata record) private view {
        bytes32 commitment = _roundCommitments[runId][round];
        if (commitment == 0) {
            if (_runs[runId].coordinator == address(0)) revert RunNotStarted(runId);
            revert RoundNotCommitted(runId, round);
        }
        if (bytes24(commitment) != bytes24(_recordHash(runId, round, record))) {
            revert RoundRecordMismatch(runId, round);
        }
    }

    function _requireRun(uint256 runId) private view returns (Run storage run) {
        run = _runs[runId];
        if (run.coordinator == address(0)) revert RunNotStarted(runId);
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

}
