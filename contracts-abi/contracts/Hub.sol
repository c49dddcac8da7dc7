// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {SortitionTree} from "./SortitionTree.sol";
import {TaskReader} from "./TaskReader.sol";
import {HubModule} from "./HubModule.sol";

/**
 * @title Hub: the PoCo hub of iexec-p2p
 *
 * One contract holds escrow, registries, stake, orders, deals and tasks, so
 * that every money movement is an internal bookkeeping update (no external
 * call after a deposit) and the invariant below is easy to state and test:
 *
 *   RLC.balanceOf(hub) == sum(balance) + sum(frozen) + sum(stake) + kitty
 *
 * Design choices, most of them for gas (targets: a trust-1 task under 450k,
 * under 120k per task across a bag of 100):
 *
 * - Accounts pack `balance` and `frozen` in one slot; stakes pack
 *   `amount`, `locked` and the unstake time in one slot (uint96 is enough for
 *   87M RLC in nRLC).
 * - Apps and datasets get an address-like id (hash of chain, hub, kind and a
 *   counter), so orders keep iExec's `address app` / `address dataset` shape.
 * - Orders are EIP-712 typed data under the domain ("iExecP2P-Hub", "1",
 *   chainId, hub). Their fields are iExec PoCo v5's. There is no workerpool:
 *   the `workerpool` / `workerpoolrestrict` fields restrict the bidding worker
 *   and `workerpoolmaxprice` caps each bid's price. The order hash is the full
 *   EIP-712 digest; consumed volume is kept per hash; presign stores a flag.
 * - matchOrders costs nothing per task: it stores one deal (4 slots), one
 *   membership slot per worker, the consumed volumes, and emits `DealCreated`
 *   with everything a node needs (nodes read the event, not storage).
 *   The deal's task price is the highest accepted bid price; the winners of a
 *   task share it, as iExec's workers share the workerpool price.
 *   The requester's whole payment (volume * (app + dataset + task price)) is
 *   frozen; each worker's stake is locked for `volume` contributions
 *   (30% of the task price each), released in bulk by `release` after the
 *   deal's final deadline (so the honest path writes no stake slot per task);
 *   the elected scheduler's stake is locked for `volume` tasks (30% each) and
 *   released by `release` once every task is completed or claimed.
 * - Who matches: the request's requester, or anyone once the requester
 *   presigned the request on chain (its public statement that any matcher
 *   may pick the bids). A deal has at least the bids its trust's consensus
 *   needs: n >= 1 with 2^n >= trust (two fresh workers agreeing reach trust 3).
 * - Scheduler election: a Fenwick sortition tree over staked amounts minus
 *   pending unstakes (O(log n) update and draw), drawn lazily so that nobody
 *   can grind it. matchOrders (and reelect) only record the draw block B (the
 *   deal's own block) in `schedulerLocked` with the DRAW_PENDING bit; the seed
 *   is keccak(blockhash(B), dealid, B), which no transaction of block B can
 *   read, so a matcher cannot know it when it matches nor retry it by
 *   reverting. `schedulerOf` computes the draw from block B + 1 on; the first
 *   transaction that needs the scheduler (initialize, contribute,
 *   contributeAndFinalize, finalize, reelect) writes it and locks its stake.
 *   Past blockhash's 256-block window the seed is the hash of the latest block
 *   B + 256k, so a draw left unwritten changes once per 256 blocks. The draw
 *   point is a fraction of the total stake (not a modulus), so a staker who
 *   changes its stake after block B moves the point by a share of what it
 *   moved; see README, threat model, for the residual bias.
 * - Tasks: taskid = keccak(dealid, idx). `initialize` (scheduler) writes two
 *   slots. A trust-1 task may skip it: `contributeAndFinalize` marks the task
 *   done in a per-deal bitmap (256 tasks per slot) and settles at once.
 * - Contributions store the seal and (status, weight) only: at reveal,
 *   keccak(taskid, digest) must equal the consensus hash and the seal binds
 *   the worker to that digest, so the result hash need not be stored.
 * - Consensus is iExec's: weight w = max(floor(score / 3), 3) - 1, a group's
 *   weight is the product of its members' weights, the total starts at 1 and
 *   grows by each group's increase; consensus when
 *   group * trust > total * (trust - 1). Deadlines from the category's time
 *   reference T: contribution start + 7T, reveal consensus + 2T, final
 *   start + 10T. Scores: winners +1 when more than one worker contributed,
 *   losers (wrong or unrevealed) * 2/3.
 * - Rewards: app and dataset owners get their price; the worker pot is the
 *   task price plus the losers' seized stakes; winners share 90% of it in
 *   proportion to their weights, the scheduler gets the rest (10% plus
 *   rounding). On failure (`claim` after the final deadline) the requester is
 *   refunded in full and the scheduler's stake for that task goes to the kitty.
 * - The kitty belongs to the treasury, the hub owner: `payKitty` moves it all
 *   into the owner's hub balance (ownership can be handed to a multisig).
 * - `reelect` replaces a scheduler that missed a duty: tasks remain
 *   uninitialized and it showed no work for T (since its election, its last
 *   `initialize`, or the last task closed by `contributeAndFinalize` with its
 *   authorization), or a task whose reveals are in is still not finalized T
 *   after its reveal deadline. Its remaining deal stake is seized into the
 *   kitty and a new scheduler is drawn, who signs all later authorizations.
 * - Callbacks (EIP-1154): a request may name a callback contract; finalize
 *   and contributeAndFinalize take the result's callback data, which must
 *   hash to the consensus digest (digest = keccak256(callbackData), iExec's
 *   rule), and call `receiveResult(taskid, callbackData)` on it last, with
 *   `m_callbackGas` gas; a failing callback is only an event.
 * - Code size: the colder functions (registries, presign/cancel, most views)
 *   live in HubModule, reached by `fallback` through delegatecall, on this
 *   contract's storage (HubModule.sol).
 *
 * Every loop is bounded: at most MAX_WORKERS bids per match (hence at most
 * that many contributors per task), and log2(stakers) steps in the tree.
 */
contract Hub is EIP712, Ownable {
    using SafeERC20 for IERC20;
    using SortitionTree for SortitionTree.Tree;

    // ---------------------------------------------------------------- constants
    // internal: the hub is near the 24 KiB code limit and getters cost bytes;
    // contracts-abi/index.ts HUB_RATIOS mirrors them (test/contracts/hub-flow checks it)
    uint256 internal constant CONTRIBUTION_DEADLINE_RATIO = 7;
    uint256 internal constant REVEAL_DEADLINE_RATIO = 2;
    uint256 internal constant FINAL_DEADLINE_RATIO = 10;
    /// @notice worker stake locked per contribution, percent of the task price
    uint256 internal constant WORKER_STAKE_RATIO = 30;
    /// @notice scheduler stake locked per task, percent of the task price
    uint256 internal constant SCHEDULER_STAKE_RATIO = 30;
    /// @notice scheduler's share of each task's worker pot, percent
    uint256 internal constant SCHEDULER_REWARD_RATIO = 10;
    /// @notice bound on bids per match, hence on contributors per task
    uint256 internal constant MAX_WORKERS = 32;
    uint256 internal constant MAX_TRUST = 255;
    /// @dev in Deal.schedulerLocked: the scheduler is not drawn yet; the low bits hold the draw block
    uint256 internal constant DRAW_PENDING = 1 << 47;
    /// @notice gas a request's callback gets at finalize until the owner sets another (setCallbackGas)
    uint256 internal constant DEFAULT_CALLBACK_GAS = 200_000;
    /// @dev gas kept back beyond the callback's own: what finalize does after it, and EIP-150's 1/64
    uint256 internal constant CALLBACK_RESERVE = 20_000;
    /// @notice longest results CID a callback deal's finalize takes (it is stored: resultCidOf)
    uint256 internal constant MAX_RESULT_CID = 128;

    bytes32 public constant APPORDER_TYPEHASH = keccak256(
        "AppOrder(address app,uint256 appprice,uint256 volume,bytes32 tag,address datasetrestrict,address workerpoolrestrict,address requesterrestrict,bytes32 salt)"
    );
    bytes32 public constant DATASETORDER_TYPEHASH = keccak256(
        "DatasetOrder(address dataset,uint256 datasetprice,uint256 volume,bytes32 tag,address apprestrict,address workerpoolrestrict,address requesterrestrict,bytes32 salt)"
    );
    bytes32 public constant REQUESTORDER_TYPEHASH = keccak256(
        "RequestOrder(address app,uint256 appmaxprice,address dataset,uint256 datasetmaxprice,address workerpool,uint256 workerpoolmaxprice,address requester,uint256 volume,bytes32 tag,uint256 category,uint256 trust,address beneficiary,address callback,string params,bytes32 salt)"
    );
    bytes32 public constant BID_TYPEHASH =
        keccak256("Bid(bytes32 requestHash,address worker,uint256 price,uint256 volume,bytes32 salt)");
    /// @notice the scheduler's authorization for one worker to contribute to one task
    bytes32 public constant AUTHORIZATION_TYPEHASH = keccak256("Authorization(address worker,bytes32 taskid)");

    // ---------------------------------------------------------------- types
    struct AppOrder {
        address app;
        uint256 appprice;
        uint256 volume;
        bytes32 tag;
        address datasetrestrict;
        address workerpoolrestrict;
        address requesterrestrict;
        bytes32 salt;
        bytes sign;
    }

    struct DatasetOrder {
        address dataset;
        uint256 datasetprice;
        uint256 volume;
        bytes32 tag;
        address apprestrict;
        address workerpoolrestrict;
        address requesterrestrict;
        bytes32 salt;
        bytes sign;
    }

    struct RequestOrder {
        address app;
        uint256 appmaxprice;
        address dataset;
        uint256 datasetmaxprice;
        address workerpool;
        uint256 workerpoolmaxprice;
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

    struct Bid {
        bytes32 requestHash;
        address worker;
        uint256 price;
        uint256 volume;
        bytes32 salt;
        bytes sign;
    }

    struct Account {
        uint96 balance;
        uint96 frozen;
    }

    struct Stake {
        uint96 amount; // everything staked, pending unstake included
        uint96 locked; // bound to open deals
        uint64 pending; // requested for unstake, out of the draw (uint64: the three fit one slot)
    }

    struct Asset {
        address owner;
        bytes32 checksum;
        string name;
        string cid;
    }

    /// @dev the limits share one slot: a run's time bound is timeRef, its memory and output bounds the MiB below
    struct Category {
        uint24 timeRef; // seconds
        uint32 memoryMiB;
        uint32 diskMiB;
        string name;
    }

    /// @dev four slots; prices are capped at uint48 nRLC (281,474 RLC per task) to fit
    struct Deal {
        // slot 0
        address requester;
        uint32 volume;
        uint32 initialized;
        uint32 done; // tasks completed or claimed
        // slot 1
        address scheduler;
        uint32 startTime;
        uint32 schedulerActive; // election, or the scheduler's last proof of work (initialize, or a task closed with its authorization)
        uint8 trust;
        uint24 timeRef;
        // slot 2
        address appOwner;
        uint48 appPrice;
        uint48 workerPrice;
        // slot 3
        address datasetOwner;
        uint48 datasetPrice;
        uint48 schedulerLocked;
    }

    enum TaskStatus {
        UNSET,
        ACTIVE,
        REVEALING,
        COMPLETED,
        FAILED
    }

    struct Task {
        bytes32 dealid;
        TaskStatus status;
        uint8 reveals;
        uint8 winners;
        uint40 revealDeadline;
        uint128 total;
        bytes32 consensus;
    }

    enum ContributionStatus {
        UNSET,
        CONTRIBUTED,
        PROVED
    }

    struct Contribution {
        bytes32 resultSeal;
        ContributionStatus status;
        uint128 weight;
    }

    struct Group {
        uint128 weight;
        uint64 count;
    }

    /// @notice what `DealCreated` carries besides the indexed fields
    struct DealInfo {
        bytes32 requestHash;
        address app;
        address dataset;
        address[] workers;
        address beneficiary;
        address callback;
        string params;
        bytes32 tag;
        uint256 volume;
        uint256 trust;
        uint256 category;
        uint256 appPrice;
        uint256 datasetPrice;
        uint256 workerPrice;
        uint256 startTime;
        uint256 contributionDeadline;
        uint256 finalDeadline;
    }

    // ---------------------------------------------------------------- errors
    error ZeroAmount();
    error InsufficientBalance(address account, uint256 available, uint256 needed);
    error InsufficientStake(address account, uint256 available, uint256 needed);
    error StakeLocked(address account, uint256 free, uint256 requested);
    error NothingToUnstake(address account);
    error CooldownNotOver(uint256 unlockAt);
    error UnknownApp(address app);
    error UnknownDataset(address dataset);
    error UnknownCategory(uint256 category);
    error BadTimeRef();
    error NotOwner(address caller, address owner);
    error BadSignature(bytes32 orderHash);
    error AppMismatch();
    error DatasetMismatch();
    error PriceAboveMax(uint256 price, uint256 max);
    error AmountTooLarge(uint256 amount);
    error TagNotSubset(bytes32 required, bytes32 offered);
    error Restricted(address party);
    error VolumeExhausted(bytes32 orderHash);
    error BadTrust(uint256 trust);
    error BadBidCount(uint256 count);
    error BidMismatch(bytes32 requestHash);
    error DuplicateWorker(address worker);
    error NoStake();
    error UnknownDeal(bytes32 dealid);
    error BadTaskIndex(uint256 idx);
    error NotScheduler(address caller);
    error NotDealWorker(address caller);
    error BadAuthorization();
    error BadTaskStatus(bytes32 taskid, TaskStatus status);
    error AlreadyContributed(address worker);
    error ContributionDeadlinePassed();
    error RevealDeadlinePassed();
    error BadReveal();
    error RevealsPending();
    error FinalDeadlinePassed();
    error DeadlineNotReached(uint256 deadline);
    error TrustNotOne(uint256 trust);
    error SchedulerNotLate();
    error NothingToRelease(address account);
    error NotRequester(address caller);
    error NotEnoughBids(uint256 count, uint256 needed);
    error SchedulerNotDrawn(bytes32 dealid);
    error BadCallbackData(bytes32 taskid);
    error CallbackGasShort(uint256 left, uint256 needed);
    error ResultCidTooLong(uint256 length);

    // ---------------------------------------------------------------- events
    event Deposit(address indexed account, uint256 amount);
    event Withdraw(address indexed account, uint256 amount);
    event Staked(address indexed account, uint256 amount);
    event UnstakeRequested(address indexed account, uint256 amount, uint256 unlockAt);
    event Unstaked(address indexed account, uint256 amount);
    event StakeSeized(address indexed account, uint256 amount, bytes32 indexed ref);
    event StakeReleased(address indexed account, bytes32 indexed dealid, uint256 amount);
    event CategoryCreated(uint256 indexed id, string name, uint256 timeRef, uint256 memoryMiB, uint256 diskMiB);
    event AppRegistered(address indexed app, address indexed owner, string name, string cid, bytes32 checksum);
    event DatasetRegistered(address indexed dataset, address indexed owner, string name, string cid, bytes32 checksum);
    event OrderPresigned(bytes32 indexed orderHash);
    event OrderCancelled(bytes32 indexed orderHash);
    event DealCreated(bytes32 indexed dealid, address indexed scheduler, address indexed requester, DealInfo info);
    event TaskInitialized(bytes32 indexed taskid, bytes32 indexed dealid, uint256 idx);
    event TaskContributed(bytes32 indexed taskid, address indexed worker, bytes32 resultHash);
    event TaskConsensus(bytes32 indexed taskid, bytes32 consensus, uint256 revealDeadline);
    event TaskRevealed(bytes32 indexed taskid, address indexed worker, bytes32 digest);
    event TaskFinalized(bytes32 indexed taskid, bytes32 indexed dealid, bytes32 resultHash, string resultsCid);
    event TaskClaimed(bytes32 indexed taskid, bytes32 indexed dealid);
    /// @notice `scheduler` is zero: the next scheduler is drawn lazily (SchedulerDrawn, schedulerOf)
    event SchedulerReelected(bytes32 indexed dealid, address indexed previous, address indexed scheduler, uint256 slashed);
    event SchedulerDrawn(bytes32 indexed dealid, address indexed scheduler);
    /// @notice the request's callback got `receiveResult(taskid, callbackData)`; `success` false: it reverted or ran out of gas (the task is finalized and paid anyway)
    event CallbackCalled(bytes32 indexed taskid, address indexed callback, bool success);

    // ---------------------------------------------------------------- state
    IERC20 public immutable token;
    uint256 public immutable unstakeCooldown;

    uint256 public kitty;
    // getters in HubModule (the registries)
    uint256 internal appCount;
    uint256 internal datasetCount;

    mapping(address => Account) private m_accounts;
    mapping(address => Stake) private m_stakes;
    mapping(address => uint256) private m_unlockAt;
    mapping(address => uint256) private m_scores;
    SortitionTree.Tree private m_tree;

    mapping(address => Asset) private m_apps;
    mapping(address => Asset) private m_datasets;
    /// @notice a category's (timeRef, memoryMiB, diskMiB, name); an unknown id reverts (Panic 0x32)
    Category[] public categoryOf;

    mapping(bytes32 => uint256) private m_consumed;
    mapping(bytes32 => bool) private m_presigned;

    mapping(bytes32 => Deal) private m_deals;
    /// @dev dealid => worker => 1 + contributions still locked (0 = not a worker)
    mapping(bytes32 => mapping(address => uint256)) private m_members;
    /// @dev dealid => idx / 256 => bits of tasks done by contributeAndFinalize without initialize
    mapping(bytes32 => mapping(uint256 => uint256)) private m_fastDone;
    mapping(bytes32 => Task) private m_tasks;
    mapping(bytes32 => address[]) private m_contributors;
    mapping(bytes32 => mapping(address => Contribution)) private m_contributions;
    mapping(bytes32 => mapping(bytes32 => Group)) private m_groups;
    /// @dev dealid => the request's callback contract (only deals that name one)
    mapping(bytes32 => address) private m_callbacks;
    /// @dev gas each callback gets (HubModule: callbackGas, setCallbackGas)
    uint256 internal m_callbackGas;
    /// @dev taskid => its results CID, kept only for deals with a callback (DApps read it; HubModule: resultCidOf)
    mapping(bytes32 => string) private m_resultCids;

    /// @dev the module holding the hub's colder functions (HubModule.sol), reached by `fallback`
    address private immutable module;

    constructor(IERC20 token_, uint256 unstakeCooldown_) EIP712("iExecP2P-Hub", "1") Ownable(msg.sender) {
        token = token_;
        unstakeCooldown = unstakeCooldown_;
        // the one task view that answers for trust-1 tasks too, at the hub's first CREATE address
        // (nonce 1): in the hub's init code only, its runtime code does not grow
        new TaskReader();
        // nonce 2: the module; its code runs on the hub's storage by delegatecall (fallback below)
        module = address(new HubModule());
        m_callbackGas = DEFAULT_CALLBACK_GAS;
    }

    /**
     * @dev every selector the hub does not know goes to the module (registries,
     * presign/cancel, views, the callback gas setting), with the hub's storage
     * and `msg.sender`: the hub's ABI (artifacts/Hub.json) lists both. Not payable.
     */
    fallback() external {
        address m = module;
        assembly ("memory-safe") {
            calldatacopy(0, 0, calldatasize())
            let ok := delegatecall(gas(), m, 0, calldatasize(), 0, 0)
            returndatacopy(0, 0, returndatasize())
            if iszero(ok) { revert(0, returndatasize()) }
            return(0, returndatasize())
        }
    }

    // ================================================================ escrow
    function deposit(uint256 amount) external {
        depositFor(msg.sender, amount);
    }

    function depositFor(address account, uint256 amount) public {
        if (amount == 0) revert ZeroAmount();
        if (amount > type(uint64).max) revert AmountTooLarge(amount);
        token.safeTransferFrom(msg.sender, address(this), amount);
        m_accounts[account].balance += uint96(amount);
        emit Deposit(account, amount);
    }

    function withdraw(uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        Account storage a = m_accounts[msg.sender];
        if (a.balance < amount) revert InsufficientBalance(msg.sender, a.balance, amount);
        a.balance -= uint96(amount);
        token.safeTransfer(msg.sender, amount);
        emit Withdraw(msg.sender, amount);
    }

    // ================================================================ stake
    /// @notice moves `amount` from the caller's hub balance into its stake
    function stake(uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        Account storage a = m_accounts[msg.sender];
        if (a.balance < amount) revert InsufficientBalance(msg.sender, a.balance, amount);
        a.balance -= uint96(amount);
        m_stakes[msg.sender].amount += uint96(amount);
        m_tree.add(msg.sender, amount);
        emit Staked(msg.sender, amount);
    }

    /// @notice takes `amount` out of the draw now; `unstake` returns it after the cooldown
    function requestUnstake(uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        Stake storage s = m_stakes[msg.sender];
        uint256 free = uint256(s.amount) - s.locked - s.pending;
        if (amount > free) revert StakeLocked(msg.sender, free, amount);
        s.pending += uint64(amount);
        uint256 unlockAt = block.timestamp + unstakeCooldown;
        m_unlockAt[msg.sender] = unlockAt;
        m_tree.sub(msg.sender, amount);
        emit UnstakeRequested(msg.sender, amount, unlockAt);
    }

    function unstake() external {
        Stake storage s = m_stakes[msg.sender];
        uint256 amount = s.pending;
        if (amount == 0) revert NothingToUnstake(msg.sender);
        uint256 unlockAt = m_unlockAt[msg.sender];
        if (block.timestamp < unlockAt) revert CooldownNotOver(unlockAt);
        s.pending = 0;
        s.amount -= uint96(amount);
        m_accounts[msg.sender].balance += uint96(amount);
        emit Unstaked(msg.sender, amount);
    }

    // ================================================================ registries
    /// @dev out-of-range limits are refused by the ABI decoder (uint24, uint32); a zero memory or disk
    /// makes a category no provider serves (deploy and the CLI refuse it; the hub has no bytes to spare)
    function createCategory(string calldata name, uint24 timeRef, uint32 memoryMiB, uint32 diskMiB)
        external
        onlyOwner
        returns (uint256 id)
    {
        if (timeRef == 0) revert BadTimeRef();
        id = categoryOf.length;
        if (id > type(uint8).max) revert UnknownCategory(id);
        categoryOf.push(Category(timeRef, memoryMiB, diskMiB, name));
        emit CategoryCreated(id, name, timeRef, memoryMiB, diskMiB);
    }

    function categoryCount() external view returns (uint256) {
        return categoryOf.length;
    }

    /// @notice the hub owner is the treasury: it moves the whole kitty (seized scheduler stakes) into its
    /// own hub balance, whence `withdraw`; no event (bytes): kitty() drops to zero in that transaction
    function payKitty() external onlyOwner {
        uint256 amount = kitty;
        kitty = 0;
        m_accounts[msg.sender].balance += uint96(amount);
    }

    // ================================================================ orders
    function hashAppOrder(AppOrder calldata o) public view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    APPORDER_TYPEHASH,
                    o.app,
                    o.appprice,
                    o.volume,
                    o.tag,
                    o.datasetrestrict,
                    o.workerpoolrestrict,
                    o.requesterrestrict,
                    o.salt
                )
            )
        );
    }

    function hashDatasetOrder(DatasetOrder calldata o) public view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    DATASETORDER_TYPEHASH,
                    o.dataset,
                    o.datasetprice,
                    o.volume,
                    o.tag,
                    o.apprestrict,
                    o.workerpoolrestrict,
                    o.requesterrestrict,
                    o.salt
                )
            )
        );
    }

    function hashRequestOrder(RequestOrder calldata o) public view returns (bytes32) {
        // split in two encodes: one abi.encode of 16 words is too deep for the stack
        bytes memory head = abi.encode(
            REQUESTORDER_TYPEHASH,
            o.app,
            o.appmaxprice,
            o.dataset,
            o.datasetmaxprice,
            o.workerpool,
            o.workerpoolmaxprice,
            o.requester
        );
        bytes memory tail = abi.encode(
            o.volume, o.tag, o.category, o.trust, o.beneficiary, o.callback, keccak256(bytes(o.params)), o.salt
        );
        return _hashTypedDataV4(keccak256(bytes.concat(head, tail)));
    }

    function hashBid(Bid calldata b) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(BID_TYPEHASH, b.requestHash, b.worker, b.price, b.volume, b.salt)));
    }

    /// @notice the digest the deal's scheduler signs to let `worker` contribute to `taskid`
    function hashAuthorization(address worker, bytes32 taskid) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(AUTHORIZATION_TYPEHASH, worker, taskid)));
    }

    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    function _checkSigner(address signer, bytes32 h, bytes calldata sign) private view {
        // recover first: the common case then skips a cold read of the presigned flag
        (address got, ECDSA.RecoverError err,) = ECDSA.tryRecoverCalldata(h, sign);
        if (err == ECDSA.RecoverError.NoError && got == signer && signer != address(0)) return;
        if (!m_presigned[h]) revert BadSignature(h);
    }

    /// @dev what is left of an order; reverts when nothing is
    function _remaining(bytes32 h, uint256 volume) private view returns (uint256 left) {
        uint256 used = m_consumed[h];
        left = volume > used ? volume - used : 0;
        if (left == 0) revert VolumeExhausted(h);
    }

    // ================================================================ match
    /**
     * @notice Matches an app order, a dataset order (ignored when the request
     * names no dataset), a request order and the accepted bids. Creates a deal
     * of `volume` tasks, the smallest remaining volume of all orders.
     */
    function matchOrders(
        AppOrder calldata appOrder,
        DatasetOrder calldata datasetOrder,
        RequestOrder calldata request,
        Bid[] calldata bids
    ) external returns (bytes32 dealid) {
        if (bids.length > MAX_WORKERS) revert BadBidCount(bids.length);
        if (request.trust == 0 || request.trust > MAX_TRUST) revert BadTrust(request.trust);
        {
            // fewer workers than the consensus needs could never complete a task: the payment would stay frozen
            uint256 need = 1;
            while ((1 << need) < request.trust) ++need;
            if (bids.length < need) revert NotEnoughBids(bids.length, need);
        }
        if (request.category >= categoryOf.length) revert UnknownCategory(request.category);
        if (request.app != appOrder.app) revert AppMismatch();

        Deal memory deal;
        deal.requester = request.requester;
        deal.trust = uint8(request.trust);
        deal.timeRef = categoryOf[request.category].timeRef;

        bytes32 requestHash = hashRequestOrder(request);
        _checkSigner(request.requester, requestHash, request.sign);
        // a gossiped request is the requester's to match: a third party would pick its own bids
        if (msg.sender != request.requester && !m_presigned[requestHash]) revert NotRequester(msg.sender);
        uint256 volume = _remaining(requestHash, request.volume);

        // app
        bytes32 appHash;
        {
            address appOwner = m_apps[appOrder.app].owner;
            if (appOwner == address(0)) revert UnknownApp(appOrder.app);
            if (appOrder.appprice > request.appmaxprice) revert PriceAboveMax(appOrder.appprice, request.appmaxprice);
            _restrict(appOrder.datasetrestrict, request.dataset);
            _restrict(appOrder.requesterrestrict, request.requester);
            appHash = hashAppOrder(appOrder);
            _checkSigner(appOwner, appHash, appOrder.sign);
            volume = _min(volume, _remaining(appHash, appOrder.volume));
            deal.appOwner = appOwner;
            deal.appPrice = _price(appOrder.appprice);
        }
        bytes32 offered = appOrder.tag;

        // dataset
        bytes32 datasetHash;
        if (request.dataset != address(0)) {
            if (datasetOrder.dataset != request.dataset) revert DatasetMismatch();
            address dsOwner = m_datasets[datasetOrder.dataset].owner;
            if (dsOwner == address(0)) revert UnknownDataset(datasetOrder.dataset);
            if (datasetOrder.datasetprice > request.datasetmaxprice) {
                revert PriceAboveMax(datasetOrder.datasetprice, request.datasetmaxprice);
            }
            _restrict(datasetOrder.apprestrict, request.app);
            _restrict(datasetOrder.requesterrestrict, request.requester);
            datasetHash = hashDatasetOrder(datasetOrder);
            _checkSigner(dsOwner, datasetHash, datasetOrder.sign);
            volume = _min(volume, _remaining(datasetHash, datasetOrder.volume));
            deal.datasetOwner = dsOwner;
            deal.datasetPrice = _price(datasetOrder.datasetprice);
            offered |= datasetOrder.tag;
        }
        // the request must accept every requirement the app and dataset declare
        if (offered & ~request.tag != 0) revert TagNotSubset(offered, request.tag);

        // bids: check, find the volume and the task price
        bytes32[] memory bidHashes = new bytes32[](bids.length);
        address[] memory workers = new address[](bids.length);
        uint256 price;
        for (uint256 i = 0; i < bids.length; ++i) {
            Bid calldata b = bids[i];
            if (b.requestHash != requestHash) revert BidMismatch(b.requestHash);
            if (b.price > request.workerpoolmaxprice) revert PriceAboveMax(b.price, request.workerpoolmaxprice);
            _restrict(request.workerpool, b.worker);
            _restrict(appOrder.workerpoolrestrict, b.worker);
            if (request.dataset != address(0)) _restrict(datasetOrder.workerpoolrestrict, b.worker);
            for (uint256 j = 0; j < i; ++j) {
                if (workers[j] == b.worker) revert DuplicateWorker(b.worker);
            }
            bytes32 h = hashBid(b);
            _checkSigner(b.worker, h, b.sign);
            volume = _min(volume, _remaining(h, b.volume));
            bidHashes[i] = h;
            workers[i] = b.worker;
            if (b.price > price) price = b.price;
        }
        if (volume > type(uint32).max) volume = type(uint32).max;
        deal.volume = uint32(volume);
        deal.workerPrice = _price(price);

        // consume: the deal id derives from the request's consumption before this match, as in iExec
        dealid = keccak256(abi.encodePacked(requestHash, m_consumed[requestHash]));
        m_consumed[requestHash] += volume;
        m_consumed[appHash] += volume;
        if (datasetHash != bytes32(0)) m_consumed[datasetHash] += volume;

        // money: the requester's payment for every task, each worker's stake for every task
        {
            uint256 cost = volume * (uint256(deal.appPrice) + deal.datasetPrice + price);
            Account storage ra = m_accounts[request.requester];
            if (ra.balance < cost) revert InsufficientBalance(request.requester, ra.balance, cost);
            ra.balance -= uint96(cost);
            ra.frozen += uint96(cost);
            uint256 ws = volume * (price * WORKER_STAKE_RATIO / 100);
            for (uint256 i = 0; i < workers.length; ++i) {
                m_consumed[bidHashes[i]] += volume;
                _lockStake(workers[i], ws);
                m_members[dealid][workers[i]] = 1 + volume;
            }
        }

        // scheduler: drawn later from this block's hash, which no transaction of this block can read
        if (m_tree.total() == 0) revert NoStake();
        deal.startTime = uint32(block.timestamp);
        deal.schedulerActive = uint32(block.timestamp);
        deal.schedulerLocked = uint48(DRAW_PENDING | block.number);
        m_deals[dealid] = deal;
        if (request.callback != address(0)) m_callbacks[dealid] = request.callback;

        _emitDeal(dealid, deal, requestHash, request, datasetOrder.dataset, workers);
    }

    function _emitDeal(
        bytes32 dealid,
        Deal memory deal,
        bytes32 requestHash,
        RequestOrder calldata request,
        address dataset,
        address[] memory workers
    ) private {
        DealInfo memory info;
        info.requestHash = requestHash;
        info.app = request.app;
        info.dataset = request.dataset == address(0) ? address(0) : dataset;
        info.workers = workers;
        info.beneficiary = request.beneficiary;
        info.callback = request.callback;
        info.params = request.params;
        info.tag = request.tag;
        info.volume = deal.volume;
        info.trust = deal.trust;
        info.category = request.category;
        info.appPrice = deal.appPrice;
        info.datasetPrice = deal.datasetPrice;
        info.workerPrice = deal.workerPrice;
        info.startTime = deal.startTime;
        info.contributionDeadline = uint256(deal.startTime) + uint256(deal.timeRef) * CONTRIBUTION_DEADLINE_RATIO;
        info.finalDeadline = uint256(deal.startTime) + uint256(deal.timeRef) * FINAL_DEADLINE_RATIO;
        emit DealCreated(dealid, deal.scheduler, deal.requester, info);
    }

    function _restrict(address restriction, address party) private pure {
        if (restriction != address(0) && restriction != party) revert Restricted(party);
    }

    function _price(uint256 p) private pure returns (uint48) {
        if (p > type(uint48).max) revert AmountTooLarge(p);
        return uint48(p);
    }

    function _min(uint256 a, uint256 b) private pure returns (uint256) {
        return a < b ? a : b;
    }

    function _lockStake(address account, uint256 amount) private {
        if (amount == 0) return;
        Stake storage s = m_stakes[account];
        uint256 free = uint256(s.amount) - s.locked - s.pending;
        if (free < amount) revert InsufficientStake(account, free, amount);
        s.locked += uint96(amount);
    }

    /// @dev takes `amount` of locked stake away from `account` (out of the draw too)
    function _seizeStake(address account, uint256 amount, bytes32 ref) private {
        if (amount == 0) return;
        Stake storage s = m_stakes[account];
        s.locked -= uint96(amount);
        s.amount -= uint96(amount);
        m_tree.sub(account, amount);
        emit StakeSeized(account, amount, ref);
    }

    /**
     * @dev the scheduler a pending draw elects, by stake. The seed is the hash
     * of the draw block B, or of the latest block B + 256k when B left
     * blockhash's window. `deal.scheduler` (a replaced scheduler) cannot be
     * drawn unless it is the only staker.
     */
    function _draw(Deal storage deal, bytes32 dealid) private view returns (address) {
        uint256 b = deal.schedulerLocked & (DRAW_PENDING - 1);
        if (block.number <= b) revert SchedulerNotDrawn(dealid);
        uint256 seedBlock = b + ((block.number - 1 - b) & ~uint256(255));
        // u in [0, 2^128): the draw point is u/2^128 of the stake, so moving stake moves it only by a share of that
        uint256 u = uint256(keccak256(abi.encode(blockhash(seedBlock), dealid, b))) >> 128;
        uint256 total = m_tree.total();
        if (total == 0) revert NoStake();
        address exclude = deal.scheduler;
        Stake storage ex = m_stakes[exclude];
        uint256 w = exclude == address(0) ? 0 : uint256(ex.amount) - ex.pending;
        if (w != 0 && w < total) {
            // draw over everyone else: skip the excluded range [start, start + w)
            uint256 r = (u * (total - w)) >> 128;
            if (r >= m_tree.prefixBefore(exclude)) r += w;
            return m_tree.draw(r);
        }
        return m_tree.draw((u * total) >> 128);
    }

    /**
     * @dev the deal's scheduler, drawn and written on first need: its stake is
     * locked for the remaining tasks (as much as it has free: a thin staker is
     * still eligible, it just has less to lose).
     */
    function _scheduler(Deal storage deal, bytes32 dealid) private returns (address scheduler) {
        if (deal.schedulerLocked & DRAW_PENDING == 0) return deal.scheduler;
        scheduler = _draw(deal, dealid);
        Stake storage s = m_stakes[scheduler];
        uint256 free = uint256(s.amount) - s.locked - s.pending;
        uint256 need = (uint256(deal.volume) - deal.done) * (uint256(deal.workerPrice) * SCHEDULER_STAKE_RATIO / 100);
        uint256 locked = _min(_min(free, need), DRAW_PENDING - 1);
        s.locked += uint96(locked);
        deal.scheduler = scheduler;
        deal.schedulerLocked = uint48(locked);
        emit SchedulerDrawn(dealid, scheduler);
    }

    /**
     * @notice the deal's current scheduler: the drawn one, or the one a pending
     * draw elects; zero while the draw block is the current one (read at the
     * `pending` block tag to see a draw as soon as its block is mined).
     */
    function schedulerOf(bytes32 dealid) public view returns (address) {
        Deal storage deal = _deal(dealid);
        if (deal.schedulerLocked & DRAW_PENDING == 0) return deal.scheduler;
        if (block.number <= (deal.schedulerLocked & (DRAW_PENDING - 1))) return address(0);
        return _draw(deal, dealid);
    }

    // ================================================================ views
    /// @notice the deal; while its scheduler's draw is pending, `scheduler` is what schedulerOf says and `schedulerLocked` 0
    function dealOf(bytes32 dealid) external view returns (Deal memory d) {
        d = m_deals[dealid];
        if (d.schedulerLocked & DRAW_PENDING != 0) {
            d.scheduler = schedulerOf(dealid);
            d.schedulerLocked = 0;
        }
    }

    function taskId(bytes32 dealid, uint256 idx) public pure returns (bytes32) {
        return keccak256(abi.encodePacked(dealid, idx));
    }

    /// @notice status of task `idx` of a deal, counting tasks finalized without `initialize`
    function taskStatus(bytes32 dealid, uint256 idx) external view returns (TaskStatus) {
        if (_fastDone(dealid, idx)) return TaskStatus.COMPLETED;
        return m_tasks[taskId(dealid, idx)].status;
    }

    function _fastDone(bytes32 dealid, uint256 idx) private view returns (bool) {
        return (m_fastDone[dealid][idx >> 8] >> (idx & 255)) & 1 == 1;
    }

    // ================================================================ tasks
    function _deal(bytes32 dealid) private view returns (Deal storage deal) {
        deal = m_deals[dealid];
        if (deal.volume == 0) revert UnknownDeal(dealid);
    }

    function _checkAuthorization(Deal storage deal, bytes32 dealid, bytes32 taskid, bytes calldata sign) private {
        (address got, ECDSA.RecoverError err,) = ECDSA.tryRecoverCalldata(hashAuthorization(msg.sender, taskid), sign);
        if (err != ECDSA.RecoverError.NoError || got != _scheduler(deal, dealid)) revert BadAuthorization();
    }

    /// @notice opens task `idx` of a deal for contributions (the scheduler's duty)
    function initialize(bytes32 dealid, uint256 idx) external returns (bytes32 taskid) {
        Deal storage deal = _deal(dealid);
        if (msg.sender != _scheduler(deal, dealid)) revert NotScheduler(msg.sender);
        if (idx >= deal.volume) revert BadTaskIndex(idx);
        taskid = taskId(dealid, idx);
        Task storage task = m_tasks[taskid];
        if (task.status != TaskStatus.UNSET || _fastDone(dealid, idx)) {
            revert BadTaskStatus(taskid, _fastDone(dealid, idx) ? TaskStatus.COMPLETED : task.status);
        }
        task.dealid = dealid;
        task.status = TaskStatus.ACTIVE;
        task.total = 1; // iExec's denominator seed: one contribution alone never beats trust > 1
        deal.initialized += 1;
        deal.schedulerActive = uint32(block.timestamp);
        emit TaskInitialized(taskid, dealid, idx);
    }

    /// @notice commits a result: resultHash = keccak(taskid, digest), resultSeal = keccak(worker, taskid, digest)
    function contribute(bytes32 taskid, bytes32 resultHash, bytes32 resultSeal, bytes calldata authorization)
        external
    {
        Task storage task = m_tasks[taskid];
        if (task.status != TaskStatus.ACTIVE) revert BadTaskStatus(taskid, task.status);
        bytes32 dealid = task.dealid;
        Deal storage deal = m_deals[dealid];
        if (block.timestamp >= uint256(deal.startTime) + uint256(deal.timeRef) * CONTRIBUTION_DEADLINE_RATIO) {
            revert ContributionDeadlinePassed();
        }
        if (m_members[dealid][msg.sender] == 0) revert NotDealWorker(msg.sender);
        Contribution storage c = m_contributions[taskid][msg.sender];
        if (c.status != ContributionStatus.UNSET) revert AlreadyContributed(msg.sender);
        _checkAuthorization(deal, dealid, taskid, authorization);

        uint256 score = m_scores[msg.sender] / 3;
        uint256 weight = (score > 3 ? score : 3) - 1;
        c.resultSeal = resultSeal;
        c.status = ContributionStatus.CONTRIBUTED;
        c.weight = uint128(weight);
        m_contributors[taskid].push(msg.sender);

        Group storage g = m_groups[taskid][resultHash];
        uint256 before = g.weight;
        uint256 after_ = (before > 1 ? before : 1) * weight;
        g.weight = uint128(after_);
        g.count += 1;
        uint256 total = uint256(task.total) + after_ - before;
        task.total = uint128(total);
        emit TaskContributed(taskid, msg.sender, resultHash);

        uint256 trust = deal.trust;
        if (after_ * trust > total * (trust - 1)) {
            uint256 revealDeadline = block.timestamp + uint256(deal.timeRef) * REVEAL_DEADLINE_RATIO;
            task.status = TaskStatus.REVEALING;
            task.consensus = resultHash;
            task.winners = uint8(g.count);
            task.revealDeadline = uint40(revealDeadline);
            emit TaskConsensus(taskid, resultHash, revealDeadline);
        }
    }

    function reveal(bytes32 taskid, bytes32 digest) external {
        Task storage task = m_tasks[taskid];
        if (task.status != TaskStatus.REVEALING) revert BadTaskStatus(taskid, task.status);
        if (block.timestamp >= task.revealDeadline) revert RevealDeadlinePassed();
        Contribution storage c = m_contributions[taskid][msg.sender];
        if (c.status != ContributionStatus.CONTRIBUTED) revert BadReveal();
        if (keccak256(abi.encodePacked(taskid, digest)) != task.consensus) revert BadReveal();
        if (keccak256(abi.encodePacked(msg.sender, taskid, digest)) != c.resultSeal) revert BadReveal();
        c.status = ContributionStatus.PROVED;
        task.reveals += 1;
        emit TaskRevealed(taskid, msg.sender, digest);
    }

    /// @notice closes a task once its winners revealed (or the reveal deadline passed with one reveal)
    function finalize(bytes32 taskid, string calldata resultsCid, bytes calldata callbackData) external {
        Task storage task = m_tasks[taskid];
        bytes32 dealid = task.dealid;
        Deal storage deal = m_deals[dealid];
        if (task.status != TaskStatus.REVEALING) revert BadTaskStatus(taskid, task.status);
        if (msg.sender != _scheduler(deal, dealid)) revert NotScheduler(msg.sender);
        if (block.timestamp >= uint256(deal.startTime) + uint256(deal.timeRef) * FINAL_DEADLINE_RATIO) {
            revert FinalDeadlinePassed();
        }
        if (task.reveals != task.winners && (task.reveals == 0 || block.timestamp < task.revealDeadline)) {
            revert RevealsPending();
        }
        task.status = TaskStatus.COMPLETED;
        deal.done += 1;
        _payOwners(deal);
        _distribute(deal, dealid, taskid);
        bytes32 consensus = task.consensus;
        emit TaskFinalized(taskid, dealid, consensus, resultsCid);
        _callback(dealid, taskid, consensus, resultsCid, callbackData);
    }

    /**
     * @dev EIP-1154: calls `receiveResult(taskid, callbackData)` on the deal's
     * callback contract, last (every state change is done), with
     * `m_callbackGas` gas. When the deal has a callback, the consensus covers
     * the data: the result digest is keccak256(callbackData) (iExec's rule),
     * so other data is refused. A callback that reverts or runs out of gas
     * only emits `CallbackCalled(.., false)`; its return data is not copied.
     * Such a task's results CID is stored too (before the call, so the
     * callback can read it with `resultCidOf`): a contract cannot read
     * events. A deal without a callback stores nothing more.
     */
    function _callback(
        bytes32 dealid,
        bytes32 taskid,
        bytes32 consensus,
        string calldata resultsCid,
        bytes calldata callbackData
    ) private {
        address cb = m_callbacks[dealid];
        if (cb == address(0)) return;
        if (keccak256(abi.encodePacked(taskid, keccak256(callbackData))) != consensus) revert BadCallbackData(taskid);
        // a real CID fits; a longer string would only cost the callback reading it its gas
        if (bytes(resultsCid).length > MAX_RESULT_CID) revert ResultCidTooLong(bytes(resultsCid).length);
        m_resultCids[taskid] = resultsCid;
        uint256 g = m_callbackGas;
        // the callee gets at most 63/64 of what is left: a caller short of gas could otherwise fail the callback on purpose
        uint256 need = g + g / 63 + CALLBACK_RESERVE;
        if (gasleft() < need) revert CallbackGasShort(gasleft(), need);
        bytes memory data = abi.encodeWithSignature("receiveResult(bytes32,bytes)", taskid, callbackData);
        bool ok;
        assembly ("memory-safe") {
            ok := call(g, cb, 0, add(data, 32), mload(data), 0, 0)
        }
        emit CallbackCalled(taskid, cb, ok);
    }

    /// @dev the requester's frozen payment for one task goes to the app and dataset owners (workers: see callers)
    function _payOwners(Deal storage deal) private {
        uint256 appPrice = deal.appPrice;
        uint256 datasetPrice = deal.datasetPrice;
        m_accounts[deal.requester].frozen -= uint96(appPrice + datasetPrice + deal.workerPrice);
        if (appPrice != 0) m_accounts[deal.appOwner].balance += uint96(appPrice);
        if (datasetPrice != 0) m_accounts[deal.datasetOwner].balance += uint96(datasetPrice);
    }

    function _distribute(Deal storage deal, bytes32 dealid, bytes32 taskid) private {
        address[] storage contributors = m_contributors[taskid];
        uint256 n = contributors.length;
        uint256 pot = deal.workerPrice;
        uint256 stakePerTask = pot * WORKER_STAKE_RATIO / 100;
        uint256 totalWeight;
        for (uint256 i = 0; i < n; ++i) {
            address w = contributors[i];
            Contribution storage c = m_contributions[taskid][w];
            if (c.status == ContributionStatus.PROVED) {
                totalWeight += c.weight;
            } else {
                // wrong or unrevealed: its stake for this contribution joins the pot
                m_members[dealid][w] -= 1;
                _seizeStake(w, stakePerTask, taskid);
                pot += stakePerTask;
                m_scores[w] = m_scores[w] * 2 / 3;
            }
        }
        uint256 workersPot = pot * (100 - SCHEDULER_REWARD_RATIO) / 100;
        uint256 paid;
        for (uint256 i = 0; i < n; ++i) {
            address w = contributors[i];
            Contribution storage c = m_contributions[taskid][w];
            if (c.status == ContributionStatus.PROVED) {
                uint256 share = workersPot * c.weight / totalWeight;
                paid += share;
                m_accounts[w].balance += uint96(share);
                if (n > 1) m_scores[w] += 1;
            }
        }
        m_accounts[deal.scheduler].balance += uint96(pot - paid);
    }

    /**
     * @notice trust 1 only: contribute, reveal and finalize in one transaction.
     * Initializes the task lazily (a bit in a per-deal bitmap) when the
     * scheduler did not call `initialize`; its authorization is the proof it scheduled the task.
     */
    function contributeAndFinalize(
        bytes32 dealid,
        uint256 idx,
        bytes32 digest,
        string calldata resultsCid,
        bytes calldata authorization,
        bytes calldata callbackData
    ) external {
        Deal storage deal = _deal(dealid);
        if (deal.trust != 1) revert TrustNotOne(deal.trust);
        if (idx >= deal.volume) revert BadTaskIndex(idx);
        if (block.timestamp >= uint256(deal.startTime) + uint256(deal.timeRef) * CONTRIBUTION_DEADLINE_RATIO) {
            revert ContributionDeadlinePassed();
        }
        if (m_members[dealid][msg.sender] == 0) revert NotDealWorker(msg.sender);
        bytes32 taskid = taskId(dealid, idx);
        _checkAuthorization(deal, dealid, taskid, authorization);

        Task storage task = m_tasks[taskid];
        TaskStatus status = task.status;
        if (status == TaskStatus.UNSET) {
            uint256 bit = 1 << (idx & 255);
            uint256 word = m_fastDone[dealid][idx >> 8];
            if (word & bit != 0) revert BadTaskStatus(taskid, TaskStatus.COMPLETED);
            m_fastDone[dealid][idx >> 8] = word | bit;
            deal.initialized += 1;
            // the scheduler's authorization is its proof of work: a bag run this way is not "late"
            deal.schedulerActive = uint32(block.timestamp);
        } else if (status == TaskStatus.ACTIVE && m_contributors[taskid].length == 0) {
            task.status = TaskStatus.COMPLETED;
        } else {
            revert BadTaskStatus(taskid, status);
        }
        deal.done += 1;

        _payOwners(deal);
        uint256 price = deal.workerPrice;
        uint256 workerShare = price * (100 - SCHEDULER_REWARD_RATIO) / 100;
        if (workerShare != 0) m_accounts[msg.sender].balance += uint96(workerShare);
        if (price != workerShare) m_accounts[deal.scheduler].balance += uint96(price - workerShare);
        bytes32 consensus = keccak256(abi.encodePacked(taskid, digest));
        emit TaskFinalized(taskid, dealid, consensus, resultsCid);
        _callback(dealid, taskid, consensus, resultsCid, callbackData);
    }

    /**
     * @notice after the final deadline, anyone fails an unfinished task: the
     * requester gets its payment back, its contributors' stakes for it are
     * unlocked, and the scheduler's stake for the task goes to the kitty.
     */
    function claim(bytes32 dealid, uint256 idx) external {
        Deal storage deal = _deal(dealid);
        if (idx >= deal.volume) revert BadTaskIndex(idx);
        uint256 deadline = uint256(deal.startTime) + uint256(deal.timeRef) * FINAL_DEADLINE_RATIO;
        if (block.timestamp < deadline) revert DeadlineNotReached(deadline);
        bytes32 taskid = taskId(dealid, idx);
        Task storage task = m_tasks[taskid];
        TaskStatus status = task.status;
        if (_fastDone(dealid, idx) || status == TaskStatus.COMPLETED || status == TaskStatus.FAILED) {
            revert BadTaskStatus(taskid, _fastDone(dealid, idx) ? TaskStatus.COMPLETED : status);
        }
        task.status = TaskStatus.FAILED;
        deal.done += 1;

        uint256 cost = uint256(deal.appPrice) + deal.datasetPrice + deal.workerPrice;
        Account storage ra = m_accounts[deal.requester];
        ra.frozen -= uint96(cost);
        ra.balance += uint96(cost);

        // the task's contributors get their stake for it back now (the rest of their deal stake: `release`)
        {
            address[] storage contributors = m_contributors[taskid];
            uint256 ws = uint256(deal.workerPrice) * WORKER_STAKE_RATIO / 100;
            for (uint256 i = 0; i < contributors.length; ++i) {
                address w = contributors[i];
                uint256 m = m_members[dealid][w];
                // m == 1: `release` already gave back everything this worker had locked in the deal
                if (m > 1) {
                    m_members[dealid][w] = m - 1;
                    m_stakes[w].locked -= uint96(ws);
                }
            }
        }
        // a scheduler never drawn has no stake locked
        uint256 locked = deal.schedulerLocked;
        uint256 slash = locked & DRAW_PENDING != 0 ? 0 : _min(locked, uint256(deal.workerPrice) * SCHEDULER_STAKE_RATIO / 100);
        if (slash != 0) {
            deal.schedulerLocked -= uint48(slash);
            _seizeStake(deal.scheduler, slash, taskid);
            kitty += slash;
        }
        emit TaskClaimed(taskid, dealid);
    }

    /**
     * @notice gives back stake locked by a deal: a worker's remaining
     * contribution stakes after the final deadline, the scheduler's once every
     * task is completed or claimed. Anyone may call it for anyone.
     */
    function release(bytes32 dealid, address account) external {
        Deal storage deal = _deal(dealid);
        uint256 amount;
        uint256 member = m_members[dealid][account];
        uint256 deadline = uint256(deal.startTime) + uint256(deal.timeRef) * FINAL_DEADLINE_RATIO;
        if (member > 1 && block.timestamp >= deadline) {
            amount = (member - 1) * (uint256(deal.workerPrice) * WORKER_STAKE_RATIO / 100);
            m_members[dealid][account] = 1; // still a worker of the deal, for key release checks
        }
        uint256 locked = deal.schedulerLocked;
        if (account == deal.scheduler && deal.done == deal.volume && locked != 0 && locked & DRAW_PENDING == 0) {
            amount += locked;
            deal.schedulerLocked = 0;
        }
        if (amount == 0) revert NothingToRelease(account);
        m_stakes[account].locked -= uint96(amount);
        emit StakeReleased(account, dealid, amount);
    }

    /**
     * @notice replaces a scheduler that leaves tasks uninitialized and showed
     * no work for one time reference. Its remaining deal stake goes to the kitty.
     */
    function reelect(bytes32 dealid) external {
        Deal storage deal = _deal(dealid);
        if (deal.initialized >= deal.volume || block.timestamp < uint256(deal.schedulerActive) + deal.timeRef) {
            revert SchedulerNotLate();
        }
        _replaceScheduler(deal, dealid);
    }

    /**
     * @notice replaces a scheduler that has not finalized a task one time
     * reference after its reveal deadline, although a winner revealed.
     */
    function reelectForTask(bytes32 taskid) external {
        Task storage task = m_tasks[taskid];
        bytes32 dealid = task.dealid;
        Deal storage deal = _deal(dealid);
        // late = T past the reveal deadline AND T past the current scheduler's
        // election: a freshly reelected scheduler gets its own T to finalize,
        // or anyone could slash each new scheduler in turn
        uint256 since = task.revealDeadline > deal.schedulerActive ? task.revealDeadline : deal.schedulerActive;
        if (task.status != TaskStatus.REVEALING || task.reveals == 0 || block.timestamp < since + deal.timeRef) {
            revert SchedulerNotLate();
        }
        _replaceScheduler(deal, dealid);
    }

    function _replaceScheduler(Deal storage deal, bytes32 dealid) private {
        uint256 deadline = uint256(deal.startTime) + uint256(deal.timeRef) * FINAL_DEADLINE_RATIO;
        if (block.timestamp >= deadline) revert FinalDeadlinePassed();
        // the late scheduler is the drawn one, even if nobody needed it before
        address previous = _scheduler(deal, dealid);
        uint256 slashed = deal.schedulerLocked;
        if (slashed != 0) {
            _seizeStake(previous, slashed, dealid);
            kitty += slashed;
        }
        // the next one is drawn lazily from this block's hash; `scheduler` keeps the previous one, excluded from it
        deal.schedulerLocked = uint48(DRAW_PENDING | block.number);
        deal.schedulerActive = uint32(block.timestamp);
        emit SchedulerReelected(dealid, previous, address(0), slashed);
    }

    // ================================================================ batches
    /**
     * @notice runs several calls of this hub in one transaction, each as if
     * the caller had sent it (a delegatecall to the hub's own code keeps
     * `msg.sender`): a worker commits its results of a bag with one
     * `contributeAndFinalize` per task, a scheduler initializes several
     * tasks. All or nothing: the first call that reverts reverts the batch
     * with that call's own error. The hub holds no ETH and has no payable
     * function, so no call can reuse `msg.value`.
     */
    function multicall(bytes[] calldata calls) external {
        for (uint256 i = 0; i < calls.length; ++i) {
            (bool ok, bytes memory ret) = address(this).delegatecall(calls[i]);
            if (!ok) {
                assembly ("memory-safe") {
                    revert(add(ret, 32), mload(ret))
                }
            }
        }
    }
}
