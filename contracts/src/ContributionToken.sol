// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title ContributionToken
/// @notice The ERC-20 token a federation pays its participants with. Tokens come into existence only
/// when a participant claims a reward that a committed round granted them.
/// @dev Deployed by {FedLedgerRegistry} in its constructor; the registry is the only minter, forever.
contract ContributionToken is ERC20 {
    /// @notice The only address allowed to mint: the registry that deployed this token.
    address public immutable minter;

    /// @notice `caller` tried to mint but is not the minter.
    error UnauthorizedMinter(address caller);

    /// @param name_ ERC-20 name.
    /// @param symbol_ ERC-20 symbol.
    constructor(string memory name_, string memory symbol_) ERC20(name_, symbol_) {
        minter = msg.sender;
    }

    /// @notice Mints `amount` tokens to `to`. Emits {Transfer} from the zero address.
    /// @dev Only the minter. The registry calls this after it has recorded the claim.
    function mint(address to, uint256 amount) external {
        if (msg.sender != minter) revert UnauthorizedMinter(msg.sender);
        _mint(to, amount);
    }
}
