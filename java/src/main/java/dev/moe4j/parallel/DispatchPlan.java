package dev.moe4j.parallel;

import dev.moe4j.placement.Placement;
import dev.moe4j.routing.Routing;
import java.util.Arrays;

/**
 * Where every (token, expert) assignment of one step goes, for one MoE layer's placement.
 *
 * <p>Each expert's assignments, in token order, go round-robin to its replicas, so an expert's tokens split evenly
 * (within one) over them. On each device the rows are laid out contiguously per local expert slot, each slot's
 * rows padded to {@code alignment} (DeepGEMM's contiguous layout), so a device runs all its experts in one grouped
 * call. The plan also holds what DeepEP's layout step reports (tokens per device, assignments per expert,
 * whether a token goes to a device) and the map back from each assignment to its device row for the combine.
 *
 * <p>Immutable once built; built in O(T·k + rows).
 */
public final class DispatchPlan {
    private final int tokens, k, devices;
    private final int[] pairDevice, pairRow; // per (token, rank): device and row there, -1 if dropped
    private final int[][] rowToken; // per device: the token of each row, -1 for padding
    private final int[][] rowSlot; // per device: the local slot (grouped_layout value) of each row, -1 for padding
    private final int[] tokensPerDevice, pairsPerExpert, pairsPerSlot;
    private final boolean[][] tokenInDevice;

    /**
     * @param layer the layer's row of the placement
     * @param alignment rows per block of one slot (1 on CPUs, 128 for DeepGEMM-style GPU kernels)
     */
    public DispatchPlan(Routing routing, Placement placement, int layer, int alignment) {
        if (alignment <= 0) throw new IllegalArgumentException("alignment must be positive, got " + alignment);
        tokens = routing.tokens();
        k = routing.k();
        devices = placement.devices();
        int experts = placement.experts(), replicas = placement.replicas(), per = placement.slotsPerDevice();
        int[][] log2phy = placement.log2phy()[layer];
        int[] logcnt = placement.logcnt()[layer];
        pairDevice = new int[tokens * k];
        pairRow = new int[tokens * k];
        int[] pairSlot = new int[tokens * k];
        pairsPerExpert = new int[experts];
        pairsPerSlot = new int[replicas];
        tokenInDevice = new boolean[tokens][devices];
        tokensPerDevice = new int[devices];
        for (int t = 0; t < tokens; t++)
            for (int j = 0; j < k; j++) {
                int e = routing.expert(t, j), pair = t * k + j;
                if (e < 0) {
                    pairSlot[pair] = -1;
                    continue;
                }
                if (e >= experts)
                    throw new IllegalArgumentException(
                            "token " + t + " is routed to expert " + e + ", outside the " + experts + " placed");
                int slot = log2phy[e][pairsPerExpert[e]++ % logcnt[e]];
                pairSlot[pair] = slot;
                pairsPerSlot[slot]++;
                int device = slot / per;
                if (!tokenInDevice[t][device]) {
                    tokenInDevice[t][device] = true;
                    tokensPerDevice[device]++;
                }
            }
        // rows per device: local slots in order, each padded to the alignment
        int[] firstRow = new int[replicas];
        rowToken = new int[devices][];
        rowSlot = new int[devices][];
        for (int d = 0; d < devices; d++) {
            int rows = 0;
            for (int s = d * per; s < (d + 1) * per; s++) {
                firstRow[s] = rows;
                rows += (pairsPerSlot[s] + alignment - 1) / alignment * alignment;
            }
            rowToken[d] = new int[rows];
            rowSlot[d] = new int[rows];
            Arrays.fill(rowToken[d], -1);
            Arrays.fill(rowSlot[d], -1);
        }
        int[] next = firstRow.clone();
        for (int pair = 0; pair < tokens * k; pair++) {
            int slot = pairSlot[pair];
            if (slot < 0) {
                pairDevice[pair] = -1;
                pairRow[pair] = -1;
                continue;
            }
            int d = slot / per, row = next[slot]++;
            pairDevice[pair] = d;
            pairRow[pair] = row;
            rowToken[d][row] = pair / k;
            rowSlot[d][row] = slot % per;
        }
    }

    public int tokens() {
        return tokens;
    }

    public int k() {
        return k;
    }

    public int devices() {
        return devices;
    }

    /** Device of the assignment (token, rank), or -1 if it was dropped. */
    public int device(int token, int rank) {
        return pairDevice[token * k + rank];
    }

    /** Row of the assignment (token, rank) on its device, or -1 if it was dropped. */
    public int row(int token, int rank) {
        return pairRow[token * k + rank];
    }

    /** Rows device d computes, padding included. */
    public int rows(int device) {
        return rowToken[device].length;
    }

    /** The token whose activations fill row r of device d, or -1 for a padding row. */
    public int rowToken(int device, int row) {
        return rowToken[device][row];
    }

    /** The local expert slot of row r of device d (its grouped-layout value), or -1 for a padding row. */
    public int rowSlot(int device, int row) {
        return rowSlot[device][row];
    }

    /** DeepEP's num_tokens_per_rank: distinct tokens sent to each device (a token goes once per device). */
    public int[] tokensPerDevice() {
        return tokensPerDevice.clone();
    }

    /** Assignments per logical expert. */
    public int[] pairsPerExpert() {
        return pairsPerExpert.clone();
    }

    /** DeepEP's num_tokens_per_expert, per physical slot. */
    public int[] pairsPerSlot() {
        return pairsPerSlot.clone();
    }

    /** DeepEP's is_token_in_rank. */
    public boolean tokenInDevice(int token, int device) {
        return tokenInDevice[token][device];
    }
}
