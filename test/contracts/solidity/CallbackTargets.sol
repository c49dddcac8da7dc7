// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

interface IResultCid {
    function resultCidOf(bytes32 taskid) external view returns (string memory);
}

/// records what the hub passes (EIP-1154 receiveResult)
contract RecordingCallback {
    bytes32 public lastTask;
    bytes public lastData;
    uint256 public calls;
    address public lastCaller;

    function receiveResult(bytes32 id, bytes calldata data) external {
        lastTask = id;
        lastData = data;
        lastCaller = msg.sender;
        calls += 1;
    }
}

/// reads the task's results CID from the hub during the callback
contract CidReadingCallback {
    string public cidSeen;

    function receiveResult(bytes32 id, bytes calldata) external {
        cidSeen = IResultCid(msg.sender).resultCidOf(id);
    }
}

contract RevertingCallback {
    function receiveResult(bytes32, bytes calldata) external pure {
        revert("no thanks");
    }
}

/// burns every gas unit it is given
contract GasHogCallback {
    uint256 public n;

    function receiveResult(bytes32, bytes calldata) external {
        while (true) {
            n += 1;
        }
    }
}
