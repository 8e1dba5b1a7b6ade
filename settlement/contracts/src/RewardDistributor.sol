// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

/// @title Datanets reward distributor
/// @notice Each epoch anchors the Merkle root of every contributor's cumulative earnings (an OpenZeppelin
/// StandardMerkleTree of (address, uint256)). A claim against any non-revoked root pays the account the
/// difference between its cumulative amount and what it has already been paid, so one claim can cover many
/// epochs and a stale proof can never pay twice.
contract RewardDistributor is AccessControl {
    using SafeERC20 for IERC20;

    bytes32 public constant ANCHOR_ROLE = keccak256("ANCHOR_ROLE");

    /// @notice What `roots(epoch)` holds once that epoch's root is revoked (the root itself stays in the
    /// Anchored and RootRevoked events). One slot per epoch keeps a claim to a single root read.
    bytes32 public constant REVOKED = bytes32(uint256(1));

    IERC20 public immutable token;
    uint256 public lastEpoch;
    mapping(uint256 epoch => bytes32 root) public roots;
    mapping(address account => uint256 amount) public claimed;

    event Anchored(uint256 indexed epoch, bytes32 root, bytes32 dataHash, uint256 totalCumulative);
    event Claimed(address indexed account, uint256 indexed epoch, uint256 amount, uint256 cumulativeAmount);
    event RootRevoked(uint256 indexed epoch, bytes32 root);

    error EpochOutOfOrder(uint256 expected, uint256 given);
    error InvalidRoot(bytes32 root);
    error UnknownEpoch(uint256 epoch);
    error RootIsRevoked(uint256 epoch);
    error InvalidProof();
    error NothingToClaim(uint256 cumulativeAmount, uint256 alreadyClaimed);

    constructor(IERC20 token_, address admin, address anchorer) {
        token = token_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(ANCHOR_ROLE, anchorer);
    }

    /// @notice Publish epoch `epoch`'s root; `dataHash` is the keccak256 of the published dump. Epochs are
    /// strictly sequential, so a replayed or duplicated anchor reverts instead of landing twice.
    function anchor(uint256 epoch, bytes32 root, bytes32 dataHash, uint256 totalCumulative)
        external
        onlyRole(ANCHOR_ROLE)
    {
        uint256 expected = lastEpoch + 1;
        if (epoch != expected) revert EpochOutOfOrder(expected, epoch);
        if (root == bytes32(0) || root == REVOKED) revert InvalidRoot(root);
        lastEpoch = epoch;
        roots[epoch] = root;
        emit Anchored(epoch, root, dataHash, totalCumulative);
    }

    /// @notice Pay `account` up to its cumulative amount in epoch `epoch`'s tree. Anyone may send it (a relayer
    /// pays the gas); the tokens always go to `account`.
    function claim(address account, uint256 epoch, uint256 cumulativeAmount, bytes32[] calldata proof) external {
        bytes32 root = roots[epoch];
        if (root == bytes32(0)) revert UnknownEpoch(epoch);
        if (root == REVOKED) revert RootIsRevoked(epoch);
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(account, cumulativeAmount))));
        if (!MerkleProof.verifyCalldata(proof, root, leaf)) revert InvalidProof();
        uint256 already = claimed[account];
        if (cumulativeAmount <= already) revert NothingToClaim(cumulativeAmount, already);
        claimed[account] = cumulativeAmount;
        uint256 amount = cumulativeAmount - already;
        emit Claimed(account, epoch, amount, cumulativeAmount);
        token.safeTransfer(account, amount);
    }

    /// @notice Stop claims against epoch `epoch`'s root (a wrong tree); later epochs still pay in full.
    function revokeRoot(uint256 epoch) external onlyRole(DEFAULT_ADMIN_ROLE) {
        bytes32 root = roots[epoch];
        if (root == bytes32(0)) revert UnknownEpoch(epoch);
        if (root == REVOKED) revert RootIsRevoked(epoch);
        roots[epoch] = REVOKED;
        emit RootRevoked(epoch, root);
    }

    function revoked(uint256 epoch) external view returns (bool) {
        return roots[epoch] == REVOKED;
    }
}
