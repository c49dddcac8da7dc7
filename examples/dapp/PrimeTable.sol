// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

// contracts-abi/contracts/P2PDapp.sol of iexec-p2p (run.ts compiles with that folder on the import path)
import {P2PDapp, IP2PHub} from "P2PDapp.sol";

/**
 * @title PrimeTable: an on-chain table of prime counts, computed by the swarm
 * @notice `ask(n)` publishes a request to run the `primecount` app with
 * argument n, paid from this contract's hub balance; the app's callback-data
 * is abi.encode(n, count), which the hub passes back at finalize.
 */
contract PrimeTable is P2PDapp {
    address public immutable owner;
    address public immutable app;
    uint256 public immutable workerMaxPrice;
    /// @notice workers that must agree: 1, or more for a consensus of several providers
    uint256 public immutable trust;

    /// @notice n => how many primes are <= n (0: not known yet)
    mapping(uint256 => uint256) public primeCount;
    /// @notice work id => the n it asked for
    mapping(bytes32 => uint256) public asked;

    event PrimeCountStored(bytes32 indexed id, uint256 n, uint256 count);

    error NotOwner();
    error BadN(uint256 n);

    constructor(IP2PHub hub_, address app_, uint256 workerMaxPrice_, uint256 trust_) P2PDapp(hub_) {
        owner = msg.sender;
        app = app_;
        workerMaxPrice = workerMaxPrice_;
        trust = trust_;
    }

    function ask(uint256 n) external returns (bytes32 id) {
        if (msg.sender != owner) revert NotOwner();
        if (n < 2 || n > 10_000_000) revert BadN(n);
        id = _submit(
            Request({
                app: app,
                params: string.concat('{"iexec_args":"', _decimal(n), '"}'),
                dataset: address(0),
                trust: trust,
                category: 0,
                appMaxPrice: 0,
                datasetMaxPrice: 0,
                workerMaxPrice: workerMaxPrice
            })
        );
        asked[id] = n;
    }

    /// @notice cancels a question nobody took yet
    function cancel(bytes32 id) external {
        if (msg.sender != owner) revert NotOwner();
        _remove(id);
    }

    function _onResult(bytes32 id, bytes calldata result) internal override {
        (uint256 n, uint256 count) = abi.decode(result, (uint256, uint256));
        // the consensus vouches for the bytes, not for their meaning: keep only the answer to the question asked
        if (n != asked[id]) return;
        primeCount[n] = count;
        emit PrimeCountStored(id, n, count);
    }

    function _decimal(uint256 v) private pure returns (string memory) {
        if (v == 0) return "0";
        bytes memory b = new bytes(78);
        uint256 i = b.length;
        while (v != 0) {
            b[--i] = bytes1(uint8(48 + (v % 10)));
            v /= 10;
        }
        bytes memory out = new bytes(b.length - i);
        for (uint256 j = 0; j < out.length; ++j) out[j] = b[i + j];
        return string(out);
    }
}
