// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/**
 * @title SortitionTree
 * @notice Stake-weighted draw over a growing set of accounts, O(log n) for
 * both update and draw.
 *
 * It is a Fenwick (binary indexed) tree kept in storage: leaf i (1-based)
 * holds an account's weight, node i holds the sum of the leaves
 * (i - lowbit(i), i]. Capacity is the smallest power of two >= the number of
 * leaves; it doubles when a leaf is added past it, and the only node that
 * becomes non-zero on doubling is node 2*cap, whose range is every leaf, so
 * growing costs one write. Unused nodes stay zero and cost nothing.
 * A draw descends by binary lifting from the top power of two.
 */
library SortitionTree {
    struct Tree {
        uint256 capacity; // power of two, 0 when empty
        uint256 leaves; // number of leaves handed out
        mapping(uint256 => uint256) nodes; // 1-based Fenwick nodes
        mapping(address => uint256) leafOf; // account -> leaf index (0 = none)
        mapping(uint256 => address) accountOf; // leaf index -> account
    }

    /// @dev sum of all weights
    function total(Tree storage t) internal view returns (uint256) {
        return t.capacity == 0 ? 0 : t.nodes[t.capacity];
    }

    /// @dev leaf of `account`, created on first use
    function leaf(Tree storage t, address account) private returns (uint256 i) {
        i = t.leafOf[account];
        if (i != 0) return i;
        i = ++t.leaves;
        t.leafOf[account] = i;
        t.accountOf[i] = account;
        uint256 cap = t.capacity;
        if (cap == 0) {
            t.capacity = 1;
        } else if (i > cap) {
            // node 2*cap covers (0, 2*cap]: everything so far
            t.nodes[cap << 1] = t.nodes[cap];
            t.capacity = cap << 1;
        }
    }

    function add(Tree storage t, address account, uint256 amount) internal {
        if (amount == 0) return;
        uint256 cap;
        uint256 i = leaf(t, account);
        cap = t.capacity;
        while (i <= cap) {
            t.nodes[i] += amount;
            i += i & (~i + 1);
        }
    }

    function sub(Tree storage t, address account, uint256 amount) internal {
        if (amount == 0) return;
        uint256 i = t.leafOf[account];
        uint256 cap = t.capacity;
        while (i != 0 && i <= cap) {
            t.nodes[i] -= amount;
            i += i & (~i + 1);
        }
    }

    /// @dev sum of the weights of the leaves before `account`'s leaf
    function prefixBefore(Tree storage t, address account) internal view returns (uint256 sum) {
        uint256 i = t.leafOf[account];
        if (i != 0) i -= 1;
        while (i != 0) {
            sum += t.nodes[i];
            i -= i & (~i + 1);
        }
    }

    /// @dev the account whose cumulative weight range holds `r`; requires r < total
    function draw(Tree storage t, uint256 r) internal view returns (address) {
        uint256 pos = 0;
        uint256 cap = t.capacity;
        for (uint256 step = cap; step != 0; step >>= 1) {
            uint256 next = pos + step;
            if (next <= cap) {
                uint256 w = t.nodes[next];
                if (w <= r) {
                    pos = next;
                    r -= w;
                }
            }
        }
        return t.accountOf[pos + 1];
    }
}
