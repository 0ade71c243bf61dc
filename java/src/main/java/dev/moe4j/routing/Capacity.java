package dev.moe4j.routing;

import java.util.Arrays;
import java.util.Objects;

/**
 * DeepSeek-V2's device-level token dropping (a training-time mode, off unless a caller applies it): each device
 * takes at most {@code ceil(factor · T·k / devices)} assignments per step; an overloaded device drops its
 * lowest-affinity assignments first, except those of protected sequences, which are never dropped. Dropped
 * assignments get expert -1 and weight 0 in the {@link Routing} and are counted in the result, never silently lost.
 *
 * <p>A sequence is protected when a hash of its id falls below {@code protectedShare}, so about that share of
 * sequences is protected, the same ones at every step. Immutable and thread-safe.
 */
public final class Capacity {
    private final int[] expertDevice;
    private final int devices;
    private final double factor, protectedShare;

    /**
     * What one application did.
     *
     * @param dropped assignments dropped in this call
     * @param capacity the per-device limit that applied
     * @param deviceLoad assignments per device after dropping (above capacity only where protected ones exceed it)
     */
    public record Result(int dropped, int capacity, int[] deviceLoad) {}

    /**
     * @param expertDevice the device of each routed expert
     * @param factor capacity factor, > 0 (1.0 admits exactly the balanced share)
     * @param protectedShare share of sequences never dropped, in [0, 1]
     */
    public Capacity(int[] expertDevice, int devices, double factor, double protectedShare) {
        Objects.requireNonNull(expertDevice, "expertDevice");
        if (devices <= 0) throw new IllegalArgumentException("devices must be positive, got " + devices);
        for (int e = 0; e < expertDevice.length; e++)
            if (expertDevice[e] < 0 || expertDevice[e] >= devices)
                throw new IllegalArgumentException(
                        "expert " + e + " is on device " + expertDevice[e] + ", outside 0.." + (devices - 1));
        if (!(factor > 0)) throw new IllegalArgumentException("factor must be positive, got " + factor);
        if (!(protectedShare >= 0 && protectedShare <= 1))
            throw new IllegalArgumentException("protectedShare must be in [0, 1], got " + protectedShare);
        this.expertDevice = expertDevice.clone();
        this.devices = devices;
        this.factor = factor;
        this.protectedShare = protectedShare;
    }

    /** Whether sequence id's tokens are never dropped. */
    public boolean isProtected(long sequence) {
        long z = sequence + 0x9E3779B97F4A7C15L; // SplitMix64's finalizer: a well-mixed, fixed hash
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        z ^= z >>> 31;
        return (z >>> 11) * 0x1.0p-53 < protectedShare;
    }

    /**
     * Drops assignments of overloaded devices in place.
     *
     * @param sequenceOfToken the sequence id of each routed token
     */
    public Result apply(Routing routing, long[] sequenceOfToken) {
        int t = routing.tokens(), k = routing.k();
        if (sequenceOfToken.length < t)
            throw new IllegalArgumentException(
                    "sequenceOfToken has " + sequenceOfToken.length + " entries for " + t + " tokens");
        int capacity = (int) Math.ceil(factor * t * k / devices);
        int[] load = new int[devices];
        for (int i = 0; i < t; i++)
            for (int j = 0; j < k; j++) {
                int e = routing.expert(i, j);
                if (e >= expertDevice.length)
                    throw new IllegalArgumentException(
                            "expert " + e + " has no device (" + expertDevice.length + " experts placed)");
                if (e >= 0) load[expertDevice[e]]++;
            }
        int dropped = 0;
        for (int dev = 0; dev < devices; dev++) {
            if (load[dev] <= capacity) continue;
            // droppable assignments of this device, lowest affinity first (ties: later token, later rank first)
            int n = 0;
            long[] candidates = new long[load[dev]];
            for (int i = 0; i < t; i++) {
                if (isProtected(sequenceOfToken[i])) continue;
                for (int j = 0; j < k; j++) {
                    int e = routing.expert(i, j);
                    if (e >= 0 && expertDevice[e] == dev) candidates[n++] = (long) i * k + j;
                }
            }
            Long[] order = Arrays.stream(candidates, 0, n).boxed().toArray(Long[]::new);
            Arrays.sort(order, (a, b) -> {
                int c = Float.compare(affinity(routing, a), affinity(routing, b));
                return c != 0 ? c : Long.compare(b, a);
            });
            for (int m = 0; m < order.length && load[dev] > capacity; m++) {
                routing.drop((int) (order[m] / k), (int) (order[m] % k));
                load[dev]--;
                dropped++;
            }
        }
        return new Result(dropped, capacity, load);
    }

    private static float affinity(Routing routing, long assignment) {
        return routing.affinity((int) (assignment / routing.k()), (int) (assignment % routing.k()));
    }
}
