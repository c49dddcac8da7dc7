// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/**
 * @title RLC
 * @notice The swarm's payment token: an ERC-20 with 9 decimals (amounts are
 * nRLC, as in iExec). A local deployment (`local = true`) keeps the deployer
 * as the only minter so tests and `swarm up` can fund dev accounts; any other
 * deployment mints iExec's fixed supply (87M RLC) to the deployer once and
 * has no minter at all.
 */
contract RLC is ERC20 {
    /// @notice the only address allowed to mint; zero outside a local deployment
    address public immutable minter;

    error NotMinter(address caller);

    constructor(bool local) ERC20("iExec RLC (p2p)", "RLC") {
        if (local) {
            minter = msg.sender;
        } else {
            _mint(msg.sender, 87_000_000 * 10 ** 9);
        }
    }

    function decimals() public pure override returns (uint8) {
        return 9;
    }

    function mint(address to, uint256 amount) external {
        if (msg.sender != minter || minter == address(0)) revert NotMinter(msg.sender);
        _mint(to, amount);
    }
}
