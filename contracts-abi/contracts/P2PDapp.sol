// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// @notice The hub's request order (iExec PoCo v5's fields). `sign` is empty for an order presigned on chain.
struct P2PRequestOrder {
    address app;
    uint256 appmaxprice;
    address dataset;
    uint256 datasetmaxprice;
    address workerpool; // restricts the bidding worker (zero: anyone)
    uint256 workerpoolmaxprice; // most a worker's bid may ask per task
    address requester;
    uint256 volume;
    bytes32 tag;
    uint256 category;
    uint256 trust;
    address beneficiary;
    address callback;
    string params;
    bytes32 salt;
    bytes sign;
}

/// @notice The part of the iexec-p2p hub a DApp uses (the hub answers every call here: Hub.sol and HubModule.sol).
interface IP2PHub {
    function token() external view returns (address);
    function deposit(uint256 amount) external;
    function depositFor(address account, uint256 amount) external;
    function withdraw(uint256 amount) external;
    function accountOf(address account) external view returns (uint256 balance, uint256 frozen);
    function registerApp(string calldata name, string calldata cid, bytes32 checksum) external returns (address app);
    function hashRequestOrder(P2PRequestOrder calldata o) external view returns (bytes32);
    /// @dev only the order's requester; emits RequestOrderPublished with the whole order; returns its hash
    function presignRequestOrder(P2PRequestOrder calldata o) external returns (bytes32);
    function cancelRequestOrder(P2PRequestOrder calldata o) external;
    function consumedOf(bytes32 orderHash) external view returns (uint256);
    /// @dev 0 UNSET, 1 ACTIVE, 2 REVEALING, 3 COMPLETED, 4 FAILED
    function taskStatus(bytes32 dealid, uint256 idx) external view returns (uint8);
    function callbackGas() external view returns (uint256);
    /// @dev the results CID finalize gave, kept for tasks of deals with a callback ("" until finalized)
    function resultCidOf(bytes32 taskid) external view returns (string memory);
}

/// @notice EIP-1154's oracle consumer: what the hub calls at finalize.
interface IOracleConsumer {
    function receiveResult(bytes32 id, bytes calldata result) external;
}

interface IP2PToken {
    function approve(address spender, uint256 amount) external returns (bool);
}

/**
 * @title P2PDapp: off-chain computing for a smart contract
 * @notice Inherit it, fund the contract's hub balance, call `_submit`, and
 * handle the result in `_onResult`. Each submit publishes a request order of
 * volume 1 with this contract as requester, beneficiary and callback, presigned
 * on the hub (RequestOrderPublished): providers pick it up from the event,
 * one of them matches it with its own bid and pays that transaction's gas
 * (its price includes a match fee, so keep `workerMaxPrice` a little above
 * the providers' price), the task runs, and the hub's finalize calls
 * `receiveResult(taskid, callbackData)` here: the bytes the app wrote as
 * `callback-data` in computed.json, which the workers' consensus covers.
 *
 * XtremWeb's API, mapped: register -> `_registerApp`; setParam + setPending
 * -> `_submit` (an order cannot change once presigned, so both are one
 * call); getStatus -> `getStatus`; getStdout / getResult -> `getResult` (the
 * callback data); remove -> `_remove` (before a match only); submitAndWait /
 * waitResult -> `_onResult`, called with the result (a contract cannot wait);
 * getResultPath -> `getResultPath`, the results CID the hub stored at
 * finalize (also readable from `_onResult`).
 */
abstract contract P2PDapp is IOracleConsumer {
    enum Status {
        NONE, // unknown id
        PENDING, // published, not matched yet
        RUNNING, // matched: a deal holds the task
        COMPLETED, // finalized; `getResult` holds the callback data when the callback ran
        FAILED, // not finalized by its deadline: the hub refunded the payment (claim)
        REMOVED // cancelled before a match
    }

    /// @notice what the DApp asks for; prices in nRLC per task
    struct Request {
        address app;
        string params; // iExec's params JSON, e.g. {"iexec_args":"1000"}
        address dataset; // zero: none
        uint256 trust; // 1: one worker; more: a consensus of several (providers presign their bids on chain, see README)
        uint256 category;
        uint256 appMaxPrice;
        uint256 datasetMaxPrice;
        uint256 workerMaxPrice;
    }

    struct Work {
        bytes32 requestHash;
        bool removed;
        bool hasResult;
        bytes result;
    }

    IP2PHub public immutable hub;
    uint256 private _nonce;
    /// @dev by id (the task id)
    mapping(bytes32 => Work) private _works;
    mapping(bytes32 => P2PRequestOrder) private _orders;

    event WorkSubmitted(bytes32 indexed id, bytes32 indexed requestHash);
    event WorkCompleted(bytes32 indexed id, bytes result);
    event WorkRemoved(bytes32 indexed id);

    error NotHub(address caller);
    error UnknownWork(bytes32 id);
    error NotRemovable(bytes32 id, Status status);

    constructor(IP2PHub hub_) {
        hub = hub_;
    }

    /**
     * @notice The id of the task a volume-1 request becomes: its deal id is
     * keccak256(requestHash, 0) (nothing consumed before its first match),
     * the task id keccak256(dealid, 0). Known at submit time.
     */
    function taskIdOf(bytes32 requestHash) public pure returns (bytes32) {
        return keccak256(abi.encodePacked(keccak256(abi.encodePacked(requestHash, uint256(0))), uint256(0)));
    }

    /// @notice publishes a request order on the hub; pays from this contract's hub balance when matched
    function _submit(Request memory r) internal returns (bytes32 id) {
        P2PRequestOrder memory o = P2PRequestOrder({
            app: r.app,
            appmaxprice: r.appMaxPrice,
            dataset: r.dataset,
            datasetmaxprice: r.datasetMaxPrice,
            workerpool: address(0),
            workerpoolmaxprice: r.workerMaxPrice,
            requester: address(this),
            volume: 1,
            tag: bytes32(0),
            category: r.category,
            trust: r.trust,
            beneficiary: address(this),
            callback: address(this),
            params: r.params,
            salt: keccak256(abi.encodePacked(address(this), ++_nonce)),
            sign: ""
        });
        bytes32 requestHash = hub.presignRequestOrder(o);
        id = taskIdOf(requestHash);
        _works[id].requestHash = requestHash;
        _orders[id] = o;
        emit WorkSubmitted(id, requestHash);
    }

    /// @notice cancels a request nobody matched yet
    function _remove(bytes32 id) internal {
        Status s = getStatus(id);
        if (s != Status.PENDING) revert NotRemovable(id, s);
        hub.cancelRequestOrder(_orders[id]);
        _works[id].removed = true;
        emit WorkRemoved(id);
    }

    /// @notice moves `amount` nRLC of this contract's RLC into its hub balance (anyone may also call hub.depositFor(dapp, amount))
    function _depositToHub(uint256 amount) internal {
        IP2PToken(hub.token()).approve(address(hub), amount);
        hub.deposit(amount);
    }

    function _registerApp(string memory name, string memory cid, bytes32 checksum) internal returns (address) {
        return hub.registerApp(name, cid, checksum);
    }

    function getStatus(bytes32 id) public view returns (Status) {
        Work storage w = _works[id];
        if (w.requestHash == bytes32(0)) return Status.NONE;
        if (w.removed) return Status.REMOVED;
        if (w.hasResult) return Status.COMPLETED;
        if (hub.consumedOf(w.requestHash) == 0) return Status.PENDING;
        uint8 t = hub.taskStatus(keccak256(abi.encodePacked(w.requestHash, uint256(0))), 0);
        if (t == 3) return Status.COMPLETED;
        if (t == 4) return Status.FAILED;
        return Status.RUNNING;
    }

    /// @notice the callback data the consensus covered (empty until the callback ran)
    function getResult(bytes32 id) public view returns (bytes memory) {
        return _works[id].result;
    }

    /// @notice the results CID (IPFS) finalize gave; "" until then. The hub keeps it for callback deals, which every work here is.
    function getResultPath(bytes32 id) public view returns (string memory) {
        return hub.resultCidOf(id);
    }

    /// @notice the hub's request hash of a work (the order presigned on the hub)
    function requestHashOf(bytes32 id) public view returns (bytes32) {
        return _works[id].requestHash;
    }

    /// @notice EIP-1154: only the hub, only for works of this contract. A revert here only costs the result: the hub finalizes anyway.
    function receiveResult(bytes32 id, bytes calldata result) external override {
        if (msg.sender != address(hub)) revert NotHub(msg.sender);
        Work storage w = _works[id];
        if (w.requestHash == bytes32(0)) revert UnknownWork(id);
        w.hasResult = true;
        w.result = result;
        emit WorkCompleted(id, result);
        _onResult(id, result);
    }

    /// @notice called with each result, within the hub's callback gas (Hub.callbackGas()): keep it small
    function _onResult(bytes32 id, bytes calldata result) internal virtual;
}
