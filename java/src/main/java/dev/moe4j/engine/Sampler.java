package dev.moe4j.engine;

import java.util.Arrays;
import java.util.Objects;

/**
 * Picks each next token of one request from the model's logits, as {@link SamplingParams} describes (penalties →
 * temperature → top-k → top-p → min-p → sample), and remembers what it picked for the penalties.
 *
 * <p>One sampler serves one request: it owns the request's random generator and the count of every token it has
 * generated. {@link #sample} records the token it returns, so the next call already penalises it; the caller does not
 * report tokens back.
 *
 * <p><b>Reproducibility.</b> The random generator is SplitMix64 (Steele, Lea and Flood, OOPSLA 2014), seeded with
 * {@link SamplingParams#seed()}, one 53-bit uniform double per sampled token (none for greedy decoding), and every
 * exponential is computed from IEEE double arithmetic alone, not {@link Math#exp}: the same parameters, prompt and
 * logits give the same tokens and log probabilities on any JVM.
 *
 * <p><b>Cost.</b> Each call is O(V) in the vocabulary size V, plus O(V log k) for top-k (a k-element heap), O(c + m
 * log c) for top-p over the c tokens that reach it of which it keeps m (a heap popped in descending order, no full
 * sort), and O(V log a) for a reported alternatives. The scratch arrays are allocated once, 25 bytes per vocabulary
 * entry (3.2 MB at V = 129,280); a call allocates only the returned {@link Choice}.
 *
 * <p>Not thread-safe: one thread at a time, which is natural for one request's decode loop.
 */
public final class Sampler {
    /**
     * The token one {@link #sample} call picked.
     *
     * <p>Log probabilities are natural logarithms under the <em>model's raw distribution</em> {@code
     * log_softmax(logits)} of the logits passed in, before penalties, temperature and filters, as vLLM reports them by
     * default. So they describe what the model predicted, not the filtered distribution the token was drawn from, and
     * a token that penalties or filters favoured can have a low log probability.
     *
     * @param token the chosen token id, in [0, vocabSize)
     * @param logprob log probability of {@code token} under the raw distribution, ≤ 0
     * @param topTokens the {@link SamplingParams#logprobs()} most probable tokens of the raw distribution, most
     *     probable first, ties to the lower id (the chosen token need not be among them); owned by the caller
     * @param topLogprobs their log probabilities, the same length, non-increasing; owned by the caller
     */
    public record Choice(int token, float logprob, int[] topTokens, float[] topLogprobs) {
        /** @throws IllegalArgumentException if the two arrays differ in length */
        public Choice {
            Objects.requireNonNull(topTokens, "topTokens");
            Objects.requireNonNull(topLogprobs, "topLogprobs");
            if (topTokens.length != topLogprobs.length)
                throw new IllegalArgumentException(
                        "topTokens has " + topTokens.length + " entries but topLogprobs has " + topLogprobs.length);
        }
    }

    private final SamplingParams params;
    private final int vocabSize;
    private final boolean penalised;
    private long rngState;

    private final boolean[] inPrompt;
    private final int[] generatedCount;
    /** The distinct tokens in the prompt or generated so far: the only ones penalties touch. */
    private final int[] seen;

    private int seenCount;

    // per-call scratch, reused
    private final float[] work; // penalised logits
    private final double[] weight; // exp((work - max) / T), by token id, for the candidates only
    private final int[] candidates;
    private final int[] top; // the alternatives reported
    private final long[] nucleusKeys; // top-p: the crossing octave's candidates as sortable keys (empty without top-p)
    private final double[] octaveMass = new double[OCTAVES];
    private final double[] lanes = new double[SUM_LANES]; // sumExp's

    /**
     * @param params the request's sampling parameters
     * @param vocabSize V, the number of logits per step, > 0 and ≥ {@code params.logprobs()}
     * @param promptIds the prompt's token ids, each in [0, V); they count for the repetition penalty only. Not kept.
     * @throws IllegalArgumentException if {@code vocabSize} is not positive or smaller than the alternatives asked
     *     for, or a prompt id is outside [0, V) (the message names its index)
     * @throws NullPointerException if {@code params} or {@code promptIds} is null
     */
    public Sampler(SamplingParams params, int vocabSize, int[] promptIds) {
        Objects.requireNonNull(params, "params");
        Objects.requireNonNull(promptIds, "promptIds");
        if (vocabSize <= 0) throw new IllegalArgumentException("vocabSize must be positive, got " + vocabSize);
        if (params.logprobs() > vocabSize)
            throw new IllegalArgumentException(
                    "params.logprobs (" + params.logprobs() + ") exceeds vocabSize (" + vocabSize + ")");
        this.params = params;
        this.vocabSize = vocabSize;
        this.penalised =
                params.repetitionPenalty() != 1 || params.presencePenalty() != 0 || params.frequencyPenalty() != 0;
        this.rngState = params.seed();
        this.inPrompt = new boolean[vocabSize];
        this.generatedCount = new int[vocabSize];
        this.seen = new int[vocabSize];
        for (int i = 0; i < promptIds.length; i++) {
            int id = promptIds[i];
            if (id < 0 || id >= vocabSize)
                throw new IllegalArgumentException(
                        "promptIds[" + i + "] = " + id + " is outside the vocabulary [0, " + vocabSize + ")");
            if (!inPrompt[id]) {
                inPrompt[id] = true;
                seen[seenCount++] = id;
            }
        }
        this.work = new float[vocabSize];
        this.weight = new double[vocabSize];
        this.candidates = new int[vocabSize];
        this.top = new int[params.logprobs()];
        this.nucleusKeys = new long[params.topP() < 1 ? vocabSize : 0];
    }

    /** The parameters this sampler applies. */
    public SamplingParams params() {
        return params;
    }

    /** V, the number of logits each call takes. */
    public int vocabSize() {
        return vocabSize;
    }

    /** How many times this sampler has returned {@code token} so far. */
    public int generatedCount(int token) {
        if (token < 0 || token >= vocabSize)
            throw new IllegalArgumentException("token " + token + " is outside the vocabulary [0, " + vocabSize + ")");
        return generatedCount[token];
    }

    /**
     * Picks the next token from one step's logits, which must hold exactly {@link #vocabSize()} values.
     *
     * @see #sample(float[], int)
     */
    public Choice sample(float[] logits) {
        Objects.requireNonNull(logits, "logits");
        if (logits.length != vocabSize)
            throw new IllegalArgumentException("logits has " + logits.length + " values but vocabSize is " + vocabSize);
        return sample(logits, 0);
    }

    /**
     * Picks the next token from the logits {@code logits[offset .. offset + vocabSize)} (for example one row of a
     * batch's [batch, V] output), records it for the penalties and returns it with its log probabilities. The array is
     * only read.
     *
     * <p>Logits are finite or -Infinity (a token masked out); at least one must be finite.
     *
     * @throws IllegalArgumentException if the range does not fit in the array, or a logit is NaN or +Infinity (the
     *     message names its token index), or all are -Infinity. The sampler's state is then unchanged.
     */
    public Choice sample(float[] logits, int offset) {
        Objects.requireNonNull(logits, "logits");
        if (offset < 0 || offset > logits.length - vocabSize)
            throw new IllegalArgumentException("logits[" + offset + " .. " + ((long) offset + vocabSize)
                    + ") does not fit in an array of " + logits.length);
        int rawMaxToken = validatedArgmax(logits, offset);
        return pick(logits, offset, rawMaxToken, sumExp(logits, offset, vocabSize, logits[offset + rawMaxToken]));
    }

    /**
     * {@link #sample(float[], int)} given what {@code moe4j_logits_stats} computed of the same logits (the engine's
     * path: one native call per step instead of these loops per request): the first index of the largest logit, or of
     * the first NaN or +Infinity with {@code sumExp} NaN, and {@code sumExp} as {@link #sumExp} gives it (0 where all
     * logits are -Infinity). The same choice, bit for bit, and the same exceptions.
     */
    Choice sample(float[] logits, int offset, int rawArgmax, float sumExp) {
        if (Float.isNaN(sumExp)) {
            throw new IllegalArgumentException("logits[" + (offset + rawArgmax) + "] (token " + rawArgmax + ") is "
                    + (Float.isNaN(logits[offset + rawArgmax]) ? "NaN" : "+Infinity"));
        }
        if (sumExp == 0) throw new IllegalArgumentException("logits are all -Infinity: no token can be sampled");
        return pick(logits, offset, rawArgmax, sumExp);
    }

    /**
     * Whether {@link #sample(float[], int, int, float)} reads logits other than the one at {@code rawArgmax}: false
     * for greedy choices without penalties or top log probabilities, whose caller may then fill that one alone.
     */
    boolean readsEveryLogit() {
        return penalised || !params.isGreedy() || top.length > 0;
    }

    private Choice pick(float[] logits, int offset, int rawArgmax, float sumExp) {
        // the working copy is for penalties and draws: greedy choices without penalties are the raw argmax
        if (penalised || !params.isGreedy()) System.arraycopy(logits, offset, work, 0, vocabSize);
        if (penalised) applyPenalties();
        int token = params.isGreedy() ? (penalised ? argmax(work) : rawArgmax) : drawFiltered();

        Choice choice = describe(token, logits, offset, logits[offset + rawArgmax], sumExp);
        if (generatedCount[token]++ == 0 && !inPrompt[token]) seen[seenCount++] = token;
        return choice;
    }

    /** Checks every logit and returns the first index of the highest one. */
    private int validatedArgmax(float[] logits, int offset) {
        int best = -1;
        float max = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < vocabSize; i++) {
            float l = logits[offset + i];
            if (Float.isNaN(l))
                throw new IllegalArgumentException("logits[" + (offset + i) + "] (token " + i + ") is NaN");
            if (l == Float.POSITIVE_INFINITY)
                throw new IllegalArgumentException("logits[" + (offset + i) + "] (token " + i + ") is +Infinity");
            if (l > max) {
                max = l;
                best = i;
            }
        }
        if (best < 0) throw new IllegalArgumentException("logits are all -Infinity: no token can be sampled");
        return best;
    }

    private void applyPenalties() {
        double repetition = params.repetitionPenalty();
        double presence = params.presencePenalty();
        double frequency = params.frequencyPenalty();
        for (int s = 0; s < seenCount; s++) {
            int t = seen[s];
            double l = work[t];
            if (l == Double.NEGATIVE_INFINITY) continue; // masked stays masked
            l = l > 0 ? l / repetition : l * repetition; // every seen token: prompt or generated
            int count = generatedCount[t];
            l -= frequency * count + (count > 0 ? presence : 0);
            work[t] = (float) Math.max(-Float.MAX_VALUE, Math.min(Float.MAX_VALUE, l));
        }
    }

    /** Temperature, top-k, top-p and min-p on {@link #work}, then one random draw among what is left. */
    private int drawFiltered() {
        int n = vocabSize;
        int k = params.topK();
        if (k > 0 && k < n) {
            selectTop(work, 0, vocabSize, k, candidates);
            n = k;
        } else {
            for (int t = 0; t < n; t++) candidates[t] = t;
        }

        // softmax(l / T) up to its normaliser, relative to the highest logit, which every filter keeps: so the
        // most probable candidate has weight exactly 1
        double max = work[argmax(work)];
        double temperature = params.temperature();
        double total = 0;
        for (int j = 0; j < n; j++) {
            int t = candidates[j];
            double w = expNonPositive((work[t] - max) / temperature);
            weight[t] = w;
            total += w;
        }

        if (params.topP() < 1) n = keepNucleus(n, total, max, temperature);

        if (params.minP() > 0) {
            int kept = 0;
            for (int j = 0; j < n; j++) {
                int t = candidates[j];
                if (weight[t] >= params.minP()) candidates[kept++] = t; // p_t ≥ minP · p_max with w_max = 1
            }
            n = kept;
        }

        // what the filters kept, summed in its (possibly new) order; without filters that is the sum above
        if (params.topP() < 1 || params.minP() > 0) {
            total = 0;
            for (int j = 0; j < n; j++) total += weight[candidates[j]];
        }
        double u = nextDouble() * total;
        double cumulative = 0;
        int lastPositive = candidates[0];
        for (int j = 0; j < n; j++) {
            int t = candidates[j];
            double w = weight[t];
            if (w == 0) continue;
            cumulative += w;
            if (u < cumulative) return t;
            lastPositive = t;
        }
        return lastPositive; // u rounded up to the total
    }

    /** Octaves of weight top-p tells apart before sorting (2^-62 of the top weight and below share the last). */
    private static final int OCTAVES = 64;

    /**
     * Keeps the smallest set of most probable candidates whose mass reaches the top-p share of {@code total} (the
     * token that crosses it included), and returns how many, moved to the front. Rather than sorting the whole
     * vocabulary, candidates are binned by octave of weight ({@code floor(log2(1 / weight))}, from their logits, so
     * the bins follow the ranking exactly): whole octaves above the crossing one are kept as they are, and only the
     * crossing octave is sorted (by logit, ties to the lower id) and walked to the crossing token.
     */
    private int keepNucleus(int n, double total, double max, double temperature) {
        double target = params.topP() * total;
        Arrays.fill(octaveMass, 0);
        for (int j = 0; j < n; j++) {
            int t = candidates[j];
            octaveMass[octave(work[t], max, temperature)] += weight[t];
        }
        double cumulative = 0;
        int crossing = 0;
        while (crossing < OCTAVES && cumulative + octaveMass[crossing] < target) cumulative += octaveMass[crossing++];
        if (crossing == OCTAVES) return n; // rounding left the target out of reach: keep everything
        int kept = 0, inCrossing = 0;
        for (int j = 0; j < n; j++) {
            int t = candidates[j];
            int o = octave(work[t], max, temperature);
            if (o < crossing) candidates[kept++] = t;
            else if (o == crossing) nucleusKeys[inCrossing++] = rankKey(work[t], t);
        }
        Arrays.sort(nucleusKeys, 0, inCrossing);
        for (int i = 0; i < inCrossing; i++) {
            int t = (int) nucleusKeys[i];
            candidates[kept++] = t;
            cumulative += weight[t];
            if (cumulative >= target) break;
        }
        return kept;
    }

    /** The octave of a candidate's weight exp((logit - max) / T): 0 for [1/2, 1], 1 for [1/4, 1/2), ... */
    private static int octave(float logit, double max, double temperature) {
        double octaves = (max - logit) / temperature * LOG2_E;
        return octaves >= OCTAVES - 1 ? OCTAVES - 1 : (int) octaves;
    }

    /** A key whose ascending order is the ranking: the higher logit first, then the lower token id. */
    private static long rankKey(float logit, int token) {
        int bits = Float.floatToRawIntBits(logit == 0 ? 0f : logit); // -0 ranks as +0
        int ordered = bits ^ ((bits >> 31) & 0x7fffffff); // ascending int order = ascending float order
        return ((long) ~ordered << 32) | token;
    }

    /** The token chosen and the alternatives under the raw distribution log_softmax(logits). */
    private Choice describe(int token, float[] logits, int offset, float rawMax, float sumExp) {
        double logNormaliser = rawMax + StrictMath.log(sumExp);

        int n = top.length;
        int[] topTokens = new int[n];
        float[] topLogprobs = new float[n];
        if (n > 0) {
            selectTop(logits, offset, vocabSize, n, top);
            // the heap holds the n best in no order: insertion sort, best first
            for (int i = 0; i < n; i++) {
                int t = top[i];
                int j = i;
                while (j > 0 && ranksBefore(t, topTokens[j - 1], logits, offset)) {
                    topTokens[j] = topTokens[j - 1];
                    j--;
                }
                topTokens[j] = t;
            }
            for (int i = 0; i < n; i++) topLogprobs[i] = (float) (logits[offset + topTokens[i]] - logNormaliser);
        }
        return new Choice(token, (float) (logits[offset + token] - logNormaliser), topTokens, topLogprobs);
    }

    /** The lanes of {@link #sumExp}. */
    static final int SUM_LANES = 64;

    /**
     * Σ_i exp(values[offset + i] - max) for i in [0, count), as {@code moe4j_logits_stats} computes it: in double, lane
     * l adding the terms of elements l, l + 64, ... in order, the lanes then added pairwise (l + 32, + 16, ..., + 1),
     * rounded to float.
     */
    private float sumExp(float[] values, int offset, int count, float max) {
        Arrays.fill(lanes, 0);
        for (int i = 0; i < count; i++) lanes[i % SUM_LANES] += expNonPositive((double) values[offset + i] - max);
        for (int step = SUM_LANES / 2; step >= 1; step /= 2) for (int l = 0; l < step; l++) lanes[l] += lanes[l + step];
        return (float) lanes[0];
    }

    /** The first index of the highest value. */
    private int argmax(float[] values) {
        int best = 0;
        for (int i = 1; i < vocabSize; i++) if (values[i] > values[best]) best = i;
        return best;
    }

    /**
     * Puts the k tokens of {@code values[offset .. offset + count)} that rank first (highest value, ties to the lower
     * id) into {@code out[0..k)}, in no particular order: a heap of the k best so far with the worst at its root.
     */
    private static void selectTop(float[] values, int offset, int count, int k, int[] out) {
        for (int t = 0; t < k; t++) out[t] = t;
        for (int i = k / 2 - 1; i >= 0; i--) siftDown(out, k, i, values, offset, true);
        for (int t = k; t < count; t++) {
            if (ranksBefore(t, out[0], values, offset)) {
                out[0] = t;
                siftDown(out, k, 0, values, offset, true);
            }
        }
    }

    /**
     * Restores the heap below position i of {@code heap[0..size)}: its root holds the token ranked last when {@code
     * worstOnTop}, else the one ranked first.
     */
    private static void siftDown(int[] heap, int size, int i, float[] values, int offset, boolean worstOnTop) {
        int token = heap[i];
        while (true) {
            int child = 2 * i + 1;
            if (child >= size) break;
            if (child + 1 < size && above(heap[child + 1], heap[child], values, offset, worstOnTop)) child++;
            if (!above(heap[child], token, values, offset, worstOnTop)) break;
            heap[i] = heap[child];
            i = child;
        }
        heap[i] = token;
    }

    /** Whether token a belongs above token b in a heap of the given orientation. */
    private static boolean above(int a, int b, float[] values, int offset, boolean worstOnTop) {
        return worstOnTop ? ranksBefore(b, a, values, offset) : ranksBefore(a, b, values, offset);
    }

    /** The ranking every filter uses: the higher value first, and between equal values the lower token id. */
    private static boolean ranksBefore(int a, int b, float[] values, int offset) {
        float va = values[offset + a], vb = values[offset + b];
        return va > vb || (va == vb && a < b);
    }

    private static final double LOG2_E = 1.4426950408889634;
    // ln 2 split as in fdlibm: the high part has 21 trailing zero bits, so k · LN2_HI is exact for |k| < 2^21
    private static final double LN2_HI = 6.93147180369123816490e-01;
    private static final double LN2_LO = 1.90821492927058770002e-10;

    /**
     * e^x for x ≤ 0 (the exponent of every weight here, taken relative to a maximum), within about two ulp of the exact
     * value, computed with IEEE double arithmetic alone (fused multiply-adds where {@code moe4j_logits_stats} fuses, so
     * that its native twin gives the same bits) so that it is bit-identical on every JVM: {@link Math#exp} may
     * differ by an ulp between platforms, and {@link StrictMath#exp} costs several times as much over a vocabulary.
     * Below -708 it returns 0: such a weight is under 2^-1021 of the top token's and cannot change a draw or a log
     * probability at double precision. -Infinity gives 0.
     */
    static double expNonPositive(double x) {
        if (!(x >= -708)) return 0;
        double k = Math.rint(x * LOG2_E); // in [-1022, 0]
        double r = Math.fma(-k, LN2_HI, x);
        r = Math.fma(-k, LN2_LO, r); // |r| <= ln 2 / 2 (+ rounding)
        // Taylor series to r^13 by fused multiply-adds: the next term is below 5e-18 for |r| <= 0.347
        double p = 1.0 / 6227020800.0;
        p = Math.fma(p, r, 1.0 / 479001600);
        p = Math.fma(p, r, 1.0 / 39916800);
        p = Math.fma(p, r, 1.0 / 3628800);
        p = Math.fma(p, r, 1.0 / 362880);
        p = Math.fma(p, r, 1.0 / 40320);
        p = Math.fma(p, r, 1.0 / 5040);
        p = Math.fma(p, r, 1.0 / 720);
        p = Math.fma(p, r, 1.0 / 120);
        p = Math.fma(p, r, 1.0 / 24);
        p = Math.fma(p, r, 1.0 / 6);
        p = Math.fma(p, r, 0.5);
        p = Math.fma(p, r, 1);
        p = Math.fma(p, r, 1);
        return p * Double.longBitsToDouble(((long) k + 1023) << 52); // 2^k, a normal number
    }

    /** SplitMix64's next output as a uniform double in [0, 1) with 53 random bits. */
    private double nextDouble() {
        long z = (rngState += 0x9E3779B97F4A7C15L);
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        z ^= z >>> 31;
        return (z >>> 11) * 0x1.0p-53;
    }
}
