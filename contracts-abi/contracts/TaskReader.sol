// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Hub} from "./Hub.sol";
import {HubModule} from "./HubModule.sol";

/**
 * @title TaskReader: one task view that answers for every task
 * @notice The hub's `taskOf(taskid)` holds what `initialize` wrote, so a
 * trust-1 task closed by `contributeAndFinalize` without `initialize` (a bit
 * in a per-deal bitmap, to save a storage slot per task) reads as zeros and
 * UNSET there. This reader, created by the hub's constructor (its address is
 * the hub's first CREATE: `getCreateAddress({ from: hub, nonce: 1 })`), merges
 * the two: the task's record with the status `taskStatus(dealid, idx)` gives.
 * It lives outside the hub so the hub's code, near the EIP-170 limit, does
 * not grow.
 */
contract TaskReader {
    /// @notice the hub this reader reads (the contract that created it)
    Hub public immutable hub;

    /// @notice a task as an outside reader wants it; all zeros when the deal has no such task
    struct TaskView {
        bytes32 taskid;
        bytes32 dealid;
        uint256 idx;
        Hub.TaskStatus status;
        uint8 reveals;
        uint8 winners;
        uint40 revealDeadline;
        uint128 total;
        bytes32 consensus;
    }

    constructor() {
        hub = Hub(msg.sender);
    }

    /// @notice task `idx` of deal `dealid`, finished by any path (initialize and consensus, or contributeAndFinalize)
    function taskOf(bytes32 dealid, uint256 idx) external view returns (TaskView memory v) {
        if (idx >= hub.dealOf(dealid).volume) return v;
        bytes32 taskid = hub.taskId(dealid, idx);
        // taskOf lives in the module, reached through the hub
        Hub.Task memory t = HubModule(address(hub)).taskOf(taskid);
        v.taskid = taskid;
        v.dealid = dealid;
        v.idx = idx;
        v.status = hub.taskStatus(dealid, idx);
        v.reveals = t.reveals;
        v.winners = t.winners;
        v.revealDeadline = t.revealDeadline;
        v.total = t.total;
        v.consensus = t.consensus;
    }
}
