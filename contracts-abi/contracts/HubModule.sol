// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Hub} from "./Hub.sol";
import {SortitionTree} from "./SortitionTree.sol";

/**
 * @title HubModule: the hub's colder functions, run on the hub's storage
 * @notice The hub is near the EIP-170 code limit (24,576 bytes). Its hot path
 * (deposit, matchOrders, initialize, contribute, reveal, finalize,
 * contributeAndFinalize, claim, reelect) stays in Hub; the registries, order
 * presigns and cancels, most views and the callback gas setting live here.
 * The hub creates this module in its constructor (its CREATE nonce 2, after
 * TaskReader) and its `fallback` delegatecalls it with any selector it does
 * not know: the code runs with the hub's storage, address and `msg.sender`,
 * so events come from the hub and callers see one contract (the published
 * Hub ABI merges both). Called directly, the module only touches its own
 * empty storage.
 *
 * The state below repeats the hub's layout slot for slot; contracts-abi/build.ts
 * refuses to build when a slot's name (leading underscores aside), offset or
 * type differs from Hub's.
 */
contract HubModule {
    using SortitionTree for SortitionTree.Tree;

    // ---------------------------------------------------------------- the hub's layout
    string private _nameFallback; // EIP712
    string private _versionFallback; // EIP712
    address private _owner; // Ownable
    uint256 private kitty;
    uint256 private _appCount; // appCount
    uint256 private _datasetCount; // datasetCount
    mapping(address => Hub.Account) private m_accounts;
    mapping(address => Hub.Stake) private m_stakes;
    mapping(address => uint256) private m_unlockAt;
    mapping(address => uint256) private m_scores;
    SortitionTree.Tree private m_tree;
    mapping(address => Hub.Asset) private m_apps;
    mapping(address => Hub.Asset) private m_datasets;
    Hub.Category[] private categoryOf;
    mapping(bytes32 => uint256) private m_consumed;
    mapping(bytes32 => bool) private m_presigned;
    mapping(bytes32 => Hub.Deal) private m_deals;
    mapping(bytes32 => mapping(address => uint256)) private m_members;
    mapping(bytes32 => mapping(uint256 => uint256)) private m_fastDone;
    mapping(bytes32 => Hub.Task) private m_tasks;
    mapping(bytes32 => address[]) private m_contributors;
    mapping(bytes32 => mapping(address => Hub.Contribution)) private m_contributions;
    mapping(bytes32 => mapping(bytes32 => Hub.Group)) private m_groups;
    mapping(bytes32 => address) private m_callbacks;
    uint256 private m_callbackGas;
    mapping(bytes32 => string) private m_resultCids;

    /**
     * @notice a request order presigned on chain, in full: providers pick it up
     * from this event (no requester node gossips it), bid, and any node may
     * match it (see README, "Use it from a smart contract")
     */
    event RequestOrderPublished(bytes32 indexed requestHash, address indexed requester, Hub.RequestOrder order);
    /// @notice a bid presigned on chain, in full: with an on-chain request, how providers gather the bids a trust > 1 deal needs
    event BidPublished(bytes32 indexed requestHash, bytes32 indexed bidHash, Hub.Bid bid);
    event CallbackGasSet(uint256 gas);

    // ================================================================ escrow and stake views
    function accountOf(address account) external view returns (uint256 balance, uint256 frozen) {
        Hub.Account storage a = m_accounts[account];
        return (a.balance, a.frozen);
    }

    function stakeOf(address account)
        external
        view
        returns (uint256 amount, uint256 locked, uint256 pending, uint256 unlockAt)
    {
        Hub.Stake storage s = m_stakes[account];
        return (s.amount, s.locked, s.pending, m_unlockAt[account]);
    }

    function totalStake() external view returns (uint256) {
        return m_tree.total();
    }

    /// @notice the staker whose cumulative range holds `r` (r < totalStake); for audits and tests
    function drawAt(uint256 r) external view returns (address) {
        if (r >= m_tree.total()) revert Hub.NoStake();
        return m_tree.draw(r);
    }

    function scoreOf(address worker) external view returns (uint256) {
        return m_scores[worker];
    }

    // ================================================================ registries
    /// @notice apps registered so far
    function appCount() external view returns (uint256) {
        return _appCount;
    }

    /// @notice datasets registered so far
    function datasetCount() external view returns (uint256) {
        return _datasetCount;
    }

    function registerApp(string calldata name, string calldata cid, bytes32 checksum) external returns (address app) {
        // address(this) is the hub's under delegatecall: ids are the hub's as before the split
        app = address(uint160(uint256(keccak256(abi.encode(block.chainid, address(this), "app", ++_appCount)))));
        m_apps[app] = Hub.Asset(msg.sender, checksum, name, cid);
        emit Hub.AppRegistered(app, msg.sender, name, cid, checksum);
    }

    function registerDataset(string calldata name, string calldata cid, bytes32 checksum)
        external
        returns (address dataset)
    {
        dataset =
            address(uint160(uint256(keccak256(abi.encode(block.chainid, address(this), "dataset", ++_datasetCount)))));
        m_datasets[dataset] = Hub.Asset(msg.sender, checksum, name, cid);
        emit Hub.DatasetRegistered(dataset, msg.sender, name, cid, checksum);
    }

    function appOf(address app) external view returns (Hub.Asset memory) {
        return m_apps[app];
    }

    function datasetOf(address dataset) external view returns (Hub.Asset memory) {
        return m_datasets[dataset];
    }

    // ================================================================ orders
    function consumedOf(bytes32 orderHash) external view returns (uint256) {
        return m_consumed[orderHash];
    }

    function presignedOf(bytes32 orderHash) external view returns (bool) {
        return m_presigned[orderHash];
    }

    function presignAppOrder(Hub.AppOrder calldata o) external {
        _onlyAssetOwner(m_apps[o.app].owner);
        _presign(Hub(address(this)).hashAppOrder(o));
    }

    function presignDatasetOrder(Hub.DatasetOrder calldata o) external {
        _onlyAssetOwner(m_datasets[o.dataset].owner);
        _presign(Hub(address(this)).hashDatasetOrder(o));
    }

    /// @notice the requester's public statement that anyone may match this request; published in full (RequestOrderPublished)
    function presignRequestOrder(Hub.RequestOrder calldata o) external returns (bytes32 h) {
        _onlyAssetOwner(o.requester);
        h = Hub(address(this)).hashRequestOrder(o);
        _presign(h);
        emit RequestOrderPublished(h, o.requester, o);
    }

    /// @notice the worker's statement that anyone may match its bid; published in full (BidPublished)
    function presignBid(Hub.Bid calldata b) external returns (bytes32 h) {
        _onlyAssetOwner(b.worker);
        h = Hub(address(this)).hashBid(b);
        _presign(h);
        emit BidPublished(b.requestHash, h, b);
    }

    function cancelAppOrder(Hub.AppOrder calldata o) external {
        _onlyAssetOwner(m_apps[o.app].owner);
        _cancel(Hub(address(this)).hashAppOrder(o), o.volume);
    }

    function cancelDatasetOrder(Hub.DatasetOrder calldata o) external {
        _onlyAssetOwner(m_datasets[o.dataset].owner);
        _cancel(Hub(address(this)).hashDatasetOrder(o), o.volume);
    }

    function cancelRequestOrder(Hub.RequestOrder calldata o) external {
        _onlyAssetOwner(o.requester);
        _cancel(Hub(address(this)).hashRequestOrder(o), o.volume);
    }

    function cancelBid(Hub.Bid calldata b) external {
        _onlyAssetOwner(b.worker);
        _cancel(Hub(address(this)).hashBid(b), b.volume);
    }

    function _onlyAssetOwner(address owner) private view {
        if (owner != msg.sender) revert Hub.NotOwner(msg.sender, owner);
    }

    function _presign(bytes32 h) private {
        m_presigned[h] = true;
        emit Hub.OrderPresigned(h);
    }

    function _cancel(bytes32 h, uint256 volume) private {
        m_consumed[h] = volume;
        emit Hub.OrderCancelled(h);
    }

    // ================================================================ deals and tasks
    function isDealWorker(bytes32 dealid, address worker) external view returns (bool) {
        return m_members[dealid][worker] != 0;
    }

    function taskOf(bytes32 taskid) external view returns (Hub.Task memory) {
        return m_tasks[taskid];
    }

    function contributionOf(bytes32 taskid, address worker) external view returns (Hub.Contribution memory) {
        return m_contributions[taskid][worker];
    }

    function contributorsOf(bytes32 taskid) external view returns (address[] memory) {
        return m_contributors[taskid];
    }

    /// @notice the deal's callback contract (zero: none)
    function callbackOf(bytes32 dealid) external view returns (address) {
        return m_callbacks[dealid];
    }

    /// @notice the results CID a finalize gave, for tasks of deals with a callback only (others: "", see the TaskFinalized event)
    function resultCidOf(bytes32 taskid) external view returns (string memory) {
        return m_resultCids[taskid];
    }

    // ================================================================ callbacks
    /// @notice gas a request's callback (`receiveResult`) gets at finalize; the caller must leave that much and a little more
    function callbackGas() external view returns (uint256) {
        return m_callbackGas;
    }

    function setCallbackGas(uint256 gas_) external {
        if (msg.sender != _owner) revert Ownable.OwnableUnauthorizedAccount(msg.sender);
        if (gas_ == 0 || gas_ > 10_000_000) revert Hub.AmountTooLarge(gas_);
        m_callbackGas = gas_;
        emit CallbackGasSet(gas_);
    }
}
