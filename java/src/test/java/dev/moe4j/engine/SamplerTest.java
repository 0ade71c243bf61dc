package dev.moe4j.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.moe4j.kernels.Logits;
import dev.moe4j.runtime.Context;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.Tensor;
import java.lang.foreign.Arena;
import java.util.Arrays;
import java.util.Comparator;
import java.util.SplittableRandom;
import java.util.function.Supplier;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

class SamplerTest {
    private static final int DRAWS = 200_000;
    private static final float NEG_INF = Float.NEGATIVE_INFINITY;
    private static final int[] NO_PROMPT = {};

    /** Upper 99.9% points of the chi-square distribution, df = 1..9 (NIST/SEMATECH e-Handbook, table 1.3.6.7.4). */
    private static final double[] CHI2_999 = {10.828, 13.816, 16.266, 18.467, 20.515, 22.458, 24.322, 26.124, 27.877};

    private static final float[] EIGHT = {1.2f, -0.3f, 0.5f, 2.0f, 0.0f, -1.5f, 0.8f, 1.0f};

    // ---------------------------------------------------------------- greedy and penalties

    @Test
    void greedyPicksTheArgmaxWithTiesToTheLowerIdAndIgnoresTheFilters() {
        float[] logits = {1f, 3f, NEG_INF, 3f, 2.9f};
        Sampler plain = new Sampler(SamplingParams.greedy(), 5, NO_PROMPT);
        Sampler filtered = new Sampler(
                SamplingParams.greedy().withTopK(1).withTopP(0.1).withMinP(0.9).withSeed(9), 5, NO_PROMPT);
        for (int step = 0; step < 3; step++) {
            assertEquals(1, plain.sample(logits).token());
            assertEquals(1, filtered.sample(logits).token());
        }
        assertEquals(3, plain.generatedCount(1));
    }

    @Test
    void repetitionPenaltyDividesPositiveAndMultipliesNegativeLogitsOfPromptTokens() {
        SamplingParams p = SamplingParams.greedy().withRepetitionPenalty(1.1);
        // positive: 2.0 / 1.1 = 1.818 < 1.9
        assertEquals(
                0,
                new Sampler(SamplingParams.greedy(), 3, new int[] {0})
                        .sample(new float[] {2f, 1.9f, 0f})
                        .token());
        assertEquals(
                1,
                new Sampler(p, 3, new int[] {0})
                        .sample(new float[] {2f, 1.9f, 0f})
                        .token());
        // negative: -1.0 · 1.1 = -1.1 < -1.05 (dividing would have raised it to -0.909 and kept token 0)
        assertEquals(
                1,
                new Sampler(p, 3, new int[] {0, 0})
                        .sample(new float[] {-1f, -1.05f, -5f})
                        .token());
        // generated tokens count too: 2.0 first, then 1.818 < 1.9
        Sampler s = new Sampler(p, 3, NO_PROMPT);
        assertEquals(0, s.sample(new float[] {2f, 1.9f, 0f}).token());
        assertEquals(1, s.sample(new float[] {2f, 1.9f, 0f}).token());
    }

    @Test
    void presencePenaltyCountsGeneratedTokensOnceAndIgnoresThePrompt() {
        // token 0 is in the prompt but not penalised by presence; once generated: 2.0 - 1.0 = 1.0 < 1.5.
        // Then 1 is penalised too (0.5) and 0 wins for good: presence does not grow with the count
        Sampler s = new Sampler(SamplingParams.greedy().withPresencePenalty(1.0), 3, new int[] {0});
        float[] logits = {2f, 1.5f, 0f};
        assertArrayEquals(new int[] {0, 1, 0, 0, 0}, draw(s, logits, 5));
    }

    @Test
    void frequencyPenaltyGrowsWithTheCount() {
        // 0: 3.0, 2.7, 2.4 ... by 0.3 per use; 1: 2.5, 2.2, ...
        // step1 3.0 > 2.5 -> 0; step2 2.7 > 2.5 -> 0; step3 2.4 < 2.5 -> 1; step4 2.4 > 2.2 -> 0; step5 2.1 < 2.2 -> 1
        Sampler s = new Sampler(SamplingParams.greedy().withFrequencyPenalty(0.3), 3, NO_PROMPT);
        assertArrayEquals(new int[] {0, 0, 1, 0, 1}, draw(s, new float[] {3f, 2.5f, 0f}, 5));
    }

    @Test
    void penaltiesApplyBeforeTemperature() {
        // the first call can only produce token 0; then presence 0.5 at T = 0.5 on logits (1, 1):
        // (1 - 0.5, 1) / 0.5 = (1, 2). Subtracting after the temperature would give (2 - 0.5, 2) = (1.5, 2).
        SamplingParams p = SamplingParams.defaults().withPresencePenalty(0.5).withTemperature(0.5);
        long[] counts = new long[3];
        for (int seed = 0; seed < DRAWS; seed++) {
            Sampler s = new Sampler(p.withSeed(seed), 3, NO_PROMPT);
            assertEquals(0, s.sample(new float[] {0f, NEG_INF, NEG_INF}).token());
            counts[s.sample(new float[] {1f, 1f, NEG_INF}).token()]++;
        }
        assertFits("presence then T=0.5", counts, softmax(new double[] {1, 2, Double.NEGATIVE_INFINITY}, 1));
    }

    @Test
    void extremePenaltiesNeitherOverflowNorEraseTokens() {
        Sampler s = new Sampler(
                SamplingParams.defaults().withPresencePenalty(-1e300).withSeed(1), 2, NO_PROMPT);
        int first = s.sample(new float[] {0f, 0f}).token();
        for (int i = 0; i < 10; i++)
            assertEquals(first, s.sample(new float[] {0f, 0f}).token());
        Sampler erase = new Sampler(SamplingParams.greedy().withFrequencyPenalty(1e300), 1, NO_PROMPT);
        for (int i = 0; i < 3; i++)
            assertEquals(0, erase.sample(new float[] {5f}).token());
    }

    // ---------------------------------------------------------------- distributions (chi-square at 99.9%)

    @Test
    void temperatureOneDrawsSoftmaxOfTheLogits() {
        Sampler s = new Sampler(SamplingParams.defaults().withSeed(11), 8, NO_PROMPT);
        assertFits("T=1", frequencies(s, EIGHT), softmax(toDouble(EIGHT), 1.0));
    }

    @Test
    void temperatureHalfAndTwoDrawSoftmaxOfTheScaledLogits() {
        Sampler cold =
                new Sampler(SamplingParams.defaults().withTemperature(0.5).withSeed(12), 8, NO_PROMPT);
        assertFits("T=0.5", frequencies(cold, EIGHT), softmax(toDouble(EIGHT), 0.5));
        Sampler hot = new Sampler(SamplingParams.defaults().withTemperature(2.0).withSeed(13), 8, NO_PROMPT);
        long[] counts = frequencies(hot, EIGHT);
        assertFits("T=2", counts, softmax(toDouble(EIGHT), 2.0));
        // the test discriminates: the same counts are far from softmax(logits)
        double wrong = chiSquare(counts, softmax(toDouble(EIGHT), 1.0));
        System.out.printf("T=2 counts against softmax(logits / 1): chi2=%.1f%n", wrong);
        assertTrue(wrong > 100 * CHI2_999[6], "T=2 draws should not fit T=1: chi2 " + wrong);
    }

    @Test
    void topKKeepsExactlyKTokensWithTiesToTheLowerIdAndRenormalises() {
        // ranking: 1 (2.0), 4 (1.2), then 2 and 5 tie at 1.0: k = 3 keeps 2, not 5
        float[] logits = {0.5f, 2.0f, 1.0f, 0.3f, 1.2f, 1.0f, -1f, 0.2f};
        Sampler s = new Sampler(SamplingParams.defaults().withTopK(3).withSeed(21), 8, NO_PROMPT);
        assertFits("top-k=3", frequencies(s, logits), renormalised(logits, 1.0, 1, 4, 2));
    }

    @Test
    void topKOnALargeVocabularyKeepsTheReferenceSet() {
        SplittableRandom random = new SplittableRandom(4);
        int vocab = 2000;
        float[] logits = new float[vocab];
        for (int i = 0; i < vocab; i++) logits[i] = (float) (random.nextGaussian() * 2);
        // reference: the 6 largest by a full sort
        int[] expected = IntStream.range(0, vocab)
                .boxed()
                .sorted(Comparator.<Integer>comparingDouble(i -> -logits[i]).thenComparingInt(i -> i))
                .limit(6)
                .mapToInt(Integer::intValue)
                .toArray();
        Sampler s = new Sampler(
                SamplingParams.defaults().withTopK(6).withTemperature(3).withSeed(22), vocab, NO_PROMPT);
        assertFits("top-k=6 of 2000, T=3", frequencies(s, logits, 20_000), renormalised(logits, 3.0, expected));
    }

    @Test
    void topPKeepsTheSmallestSetReachingPIncludingTheTokenThatReachesIt() {
        // four equal finite logits (weight 1 each, exactly), the rest masked: masses 0.25, 0.5, 0.75, 1.0 exactly.
        // p = 0.5 is reached by the second token: >= keeps {1, 2}; a '>' test would keep three. Ties go to lower ids.
        float[] logits = {NEG_INF, 3f, 3f, NEG_INF, NEG_INF, 3f, NEG_INF, 3f};
        Sampler half = new Sampler(SamplingParams.defaults().withTopP(0.5).withSeed(31), 8, NO_PROMPT);
        assertFits("top-p=0.5 boundary", frequencies(half, logits), renormalised(logits, 1.0, 1, 2));
        Sampler threeQuarters =
                new Sampler(SamplingParams.defaults().withTopP(0.75).withSeed(32), 8, NO_PROMPT);
        assertFits("top-p=0.75 boundary", frequencies(threeQuarters, logits), renormalised(logits, 1.0, 1, 2, 5));
        Sampler justAbove =
                new Sampler(SamplingParams.defaults().withTopP(0.7500001).withSeed(33), 8, NO_PROMPT);
        assertFits("top-p=0.7500001", frequencies(justAbove, logits), renormalised(logits, 1.0, 1, 2, 5, 7));
    }

    @Test
    void topPAppliesAfterTemperature() {
        // T = 3: probabilities 0.385, 0.276, 0.198, 0.142 -> p = 0.7 keeps {0, 1, 2} (0.661 < 0.7 <= 0.859).
        // Applied before temperature, top-p would see 0.644, 0.237, ... and keep {0, 1}: token 2 would never appear.
        float[] logits = {2f, 1f, 0f, -1f};
        Sampler s = new Sampler(
                SamplingParams.defaults().withTemperature(3).withTopP(0.7).withSeed(34), 4, NO_PROMPT);
        assertFits("T=3 then top-p=0.7", frequencies(s, logits), renormalised(logits, 3.0, 0, 1, 2));
    }

    @Test
    void topPAppliesAfterTopKOnTheRenormalisedMass() {
        // weights 1, 0.5, 0.3, 0.2. Top-k = 2 leaves masses 0.667, 1.0: p = 0.6 keeps token 0 alone.
        // (top-p on the whole distribution first would see 0.5 < 0.6 and keep {0, 1})
        float[] logits = logsOf(1, 0.5, 0.3, 0.2);
        Sampler s =
                new Sampler(SamplingParams.defaults().withTopK(2).withTopP(0.6).withSeed(35), 4, NO_PROMPT);
        long[] counts = frequencies(s, logits);
        assertEquals(DRAWS, counts[0], "only token 0 survives: " + Arrays.toString(counts));
    }

    @Test
    void minPKeepsTokensAtLeastMinPTimesTheMostProbableAfterTemperature() {
        // ratios to the best at T = 1: 1, 0.368, 0.135, 0.050 -> minP = 0.2 keeps {0, 1}
        float[] logits = {0f, -1f, -2f, -3f};
        Sampler t1 = new Sampler(SamplingParams.defaults().withMinP(0.2).withSeed(41), 4, NO_PROMPT);
        assertFits("min-p=0.2", frequencies(t1, logits), renormalised(logits, 1.0, 0, 1));
        // T = 2: ratios 1, 0.607, 0.368, 0.223 -> all kept
        Sampler t2 = new Sampler(
                SamplingParams.defaults().withMinP(0.2).withTemperature(2).withSeed(42), 4, NO_PROMPT);
        assertFits("T=2 then min-p=0.2", frequencies(t2, logits), renormalised(logits, 2.0, 0, 1, 2, 3));
    }

    @Test
    void minPAppliesAfterTopP() {
        // weights 1, 0.5, 0.3, 0.2 (total 2): top-p = 0.8 keeps {0, 1, 2} (0.75 < 0.8 <= 0.9); min-p = 0.25 keeps all
        // three. In the other order min-p would drop 3 first, and top-p on the renormalised rest (0.556, 0.833) would
        // keep {0, 1} only.
        float[] logits = logsOf(1, 0.5, 0.3, 0.2);
        Sampler s = new Sampler(
                SamplingParams.defaults().withTopP(0.8).withMinP(0.25).withSeed(43), 4, NO_PROMPT);
        assertFits("top-p=0.8 then min-p=0.25", frequencies(s, logits), renormalised(logits, 1.0, 0, 1, 2));
    }

    @Test
    void allFiltersTogetherAlwaysLeaveTheMostProbableToken() {
        float[] logits = {0f, 5f, 4.99f, -2f};
        Sampler s = new Sampler(
                SamplingParams.defaults()
                        .withTopK(1)
                        .withTopP(1e-9)
                        .withMinP(0.999)
                        .withTemperature(1e-3)
                        .withSeed(44),
                4,
                NO_PROMPT);
        for (int i = 0; i < 100; i++) assertEquals(1, s.sample(logits).token());
    }

    // ---------------------------------------------------------------- reproducibility

    @Test
    void theSameSeedGivesTheSameSequenceAndDifferentSeedsDiffer() {
        SamplingParams p = SamplingParams.defaults()
                .withTopK(20)
                .withTopP(0.95)
                .withFrequencyPenalty(0.1)
                .withSeed(7);
        SplittableRandom random = new SplittableRandom(1);
        float[] logits = new float[50];
        for (int i = 0; i < logits.length; i++) logits[i] = (float) random.nextGaussian();
        int[] a = draw(new Sampler(p, 50, new int[] {3, 4}), logits, 1000);
        int[] b = draw(new Sampler(p, 50, new int[] {3, 4}), logits, 1000);
        int[] c = draw(new Sampler(p.withSeed(8), 50, new int[] {3, 4}), logits, 1000);
        assertArrayEquals(a, b);
        assertFalse(Arrays.equals(a, c));
    }

    @Test
    void theGeneratorIsSplitMix64() {
        // four equal weights: the token is floor(4u) = the top two bits of each SplitMix64 output
        long[] reference = splitMix64(0, 40);
        assertEquals(0xE220A8397B1DCDAFL, reference[0]); // the published first outputs for seed 0
        assertEquals(0x6E789E6AA1B965F4L, reference[1]);
        assertEquals(0x06C45D188009454FL, reference[2]);
        Sampler s = new Sampler(SamplingParams.defaults(), 4, NO_PROMPT);
        for (long z : reference)
            assertEquals(
                    (int) (z >>> 62), s.sample(new float[] {1f, 1f, 1f, 1f}).token());
    }

    @Test
    void theExponentialIsWithinTwoUlpOfStrictMath() {
        SplittableRandom random = new SplittableRandom(6);
        double worst = 0;
        for (int i = 0; i < 1_000_000; i++) {
            double x = i < 1000 ? -i * 0.001 : -random.nextDouble() * (i % 2 == 0 ? 1 : 708);
            double exact = StrictMath.exp(x), ours = Sampler.expNonPositive(x);
            worst = Math.max(worst, Math.abs(ours - exact) / Math.ulp(exact));
        }
        System.out.printf("expNonPositive: worst error %.2f ulp%n", worst);
        assertTrue(worst <= 2, "worst error " + worst + " ulp");
        assertEquals(1.0, Sampler.expNonPositive(0));
        assertEquals(0.0, Sampler.expNonPositive(-708.5));
        assertEquals(0.0, Sampler.expNonPositive(Double.NEGATIVE_INFINITY));
        assertEquals(StrictMath.exp(-708), Sampler.expNonPositive(-708), Math.ulp(StrictMath.exp(-708)) * 2);
    }

    // ---------------------------------------------------------------- log probabilities

    @Test
    void logprobsAreTheRawModelDistributionAndTheAlternativesAreSorted() {
        SplittableRandom random = new SplittableRandom(2);
        int vocab = 1000;
        float[] logits = new float[vocab];
        for (int i = 0; i < vocab; i++) logits[i] = (float) (random.nextGaussian() * 3);
        logits[700] = 9f; // a tie for first place: 12 must come before 700
        logits[12] = 9f;
        double[] logSoftmax = logSoftmax(toDouble(logits));
        int[] expectedTop = IntStream.range(0, vocab)
                .boxed()
                .sorted(Comparator.<Integer>comparingDouble(i -> -logits[i]).thenComparingInt(i -> i))
                .limit(5)
                .mapToInt(Integer::intValue)
                .toArray();
        assertEquals(12, expectedTop[0]);
        assertEquals(700, expectedTop[1]);
        // penalties, temperature and filters change the draw, not the reported distribution
        SamplingParams p = SamplingParams.defaults()
                .withTemperature(1.7)
                .withTopK(100)
                .withTopP(0.9)
                .withRepetitionPenalty(1.3)
                .withPresencePenalty(0.5)
                .withLogprobs(5)
                .withSeed(3);
        Sampler s = new Sampler(p, vocab, new int[] {12, 13});
        for (int step = 0; step < 50; step++) {
            Sampler.Choice c = s.sample(logits);
            assertEquals(logSoftmax[c.token()], c.logprob(), 1e-5, "token " + c.token());
            assertArrayEquals(expectedTop, c.topTokens());
            for (int i = 0; i < 5; i++) assertEquals(logSoftmax[expectedTop[i]], c.topLogprobs()[i], 1e-5);
            for (int i = 1; i < 5; i++) assertTrue(c.topLogprobs()[i - 1] >= c.topLogprobs()[i]);
        }
        Sampler.Choice none = new Sampler(SamplingParams.greedy(), vocab, NO_PROMPT).sample(logits);
        assertEquals(12, none.token());
        assertEquals(0, none.topTokens().length);
        assertEquals(0, none.topLogprobs().length);
    }

    @Test
    void anOffsetReadsOneRowOfASharedArray() {
        float[] batch = new float[16];
        System.arraycopy(EIGHT, 0, batch, 8, 8);
        Sampler fromRow = new Sampler(SamplingParams.defaults().withLogprobs(3).withSeed(5), 8, NO_PROMPT);
        Sampler fromCopy = new Sampler(SamplingParams.defaults().withLogprobs(3).withSeed(5), 8, NO_PROMPT);
        for (int i = 0; i < 100; i++) {
            Sampler.Choice a = fromRow.sample(batch, 8), b = fromCopy.sample(EIGHT);
            assertEquals(b.token(), a.token());
            assertEquals(b.logprob(), a.logprob());
            assertArrayEquals(b.topTokens(), a.topTokens());
            assertArrayEquals(b.topLogprobs(), a.topLogprobs());
        }
    }

    /**
     * The engine's path, {@code moe4j_logits_stats} once per step and its row's results handed to the sampler, picks
     * the same tokens with the same log probabilities, bit for bit, as the sampler's own loops, and rejects the same
     * rows with the same messages.
     */
    @Test
    void theNativeLogitsStatisticsGiveTheSameChoices() {
        SplittableRandom random = new SplittableRandom(11);
        int vocab = 5000, rows = 4;
        float[][] logits = new float[rows][vocab];
        for (float[] row : logits) for (int i = 0; i < vocab; i++) row[i] = (float) (random.nextGaussian() * 4);
        SamplingParams[] params = {
            SamplingParams.greedy(),
            SamplingParams.greedy().withRepetitionPenalty(1.4).withLogprobs(3),
            SamplingParams.defaults().withTopP(0.9).withTopK(50).withLogprobs(5).withSeed(8),
            SamplingParams.defaults().withTemperature(0.7).withMinP(0.05).withSeed(9)
        };
        try (Arena arena = Arena.ofConfined();
                Context ctx = Context.create(Context.Options.cpu())) {
            Tensor t = Tensor.allocate(arena, DType.F32, rows, vocab);
            for (int b = 0; b < rows; b++) for (int i = 0; i < vocab; i++) t.setFloat(logits[b][i], b, i);
            Tensor argmax = Tensor.allocate(arena, DType.I32, rows);
            Tensor sumExp = Tensor.allocate(arena, DType.F32, rows);
            Logits.stats(ctx, t, argmax, sumExp);
            for (SamplingParams p : params) {
                Sampler own = new Sampler(p, vocab, new int[] {3, 4});
                Sampler viaStats = new Sampler(p, vocab, new int[] {3, 4});
                for (int step = 0; step < 20; step++) {
                    int b = step % rows;
                    Sampler.Choice a = own.sample(logits[b]);
                    Sampler.Choice c = viaStats.sample(logits[b], 0, argmax.getInt(b), sumExp.getFloat(b));
                    assertEquals(a, new Sampler.Choice(c.token(), c.logprob(), a.topTokens(), a.topLogprobs()), p + "");
                    assertArrayEquals(a.topTokens(), c.topTokens());
                    assertArrayEquals(a.topLogprobs(), c.topLogprobs());
                }
            }
            float[] bad = logits[0].clone();
            bad[77] = Float.POSITIVE_INFINITY;
            float[] masked = new float[vocab];
            Arrays.fill(masked, NEG_INF);
            for (float[] row : new float[][] {bad, masked}) {
                for (int i = 0; i < vocab; i++) t.setFloat(row[i], 0, i);
                Logits.stats(ctx, t, argmax, sumExp);
                Sampler sampler = new Sampler(SamplingParams.greedy(), vocab, NO_PROMPT);
                String expected = assertThrows(IllegalArgumentException.class, () -> sampler.sample(row))
                        .getMessage();
                String got = assertThrows(
                                IllegalArgumentException.class,
                                () -> sampler.sample(row, 0, argmax.getInt(0), sumExp.getFloat(0)))
                        .getMessage();
                assertEquals(expected, got);
            }
        }
    }

    // ---------------------------------------------------------------- bad input

    @Test
    void badParametersNameTheParameter() {
        SamplingParams d = SamplingParams.defaults();
        assertRejected("temperature", () -> d.withTemperature(-0.1));
        assertRejected("temperature", () -> d.withTemperature(Double.NaN));
        assertRejected("temperature", () -> d.withTemperature(Double.POSITIVE_INFINITY));
        assertRejected("topK", () -> d.withTopK(-1));
        assertRejected("topP", () -> d.withTopP(0));
        assertRejected("topP", () -> d.withTopP(1.0001));
        assertRejected("topP", () -> d.withTopP(Double.NaN));
        assertRejected("minP", () -> d.withMinP(1));
        assertRejected("minP", () -> d.withMinP(-0.01));
        assertRejected("repetitionPenalty", () -> d.withRepetitionPenalty(0));
        assertRejected("repetitionPenalty", () -> d.withRepetitionPenalty(Double.POSITIVE_INFINITY));
        assertRejected("presencePenalty", () -> d.withPresencePenalty(Double.NaN));
        assertRejected("frequencyPenalty", () -> d.withFrequencyPenalty(Double.NEGATIVE_INFINITY));
        assertRejected("logprobs", () -> d.withLogprobs(21));
        assertRejected("logprobs", () -> d.withLogprobs(-1));
        assertRejected("vocabSize", () -> new Sampler(d, 0, NO_PROMPT));
        assertRejected("logprobs", () -> new Sampler(d.withLogprobs(5), 4, NO_PROMPT));
        assertRejected("promptIds[1]", () -> new Sampler(d, 4, new int[] {0, 4}));
        assertRejected("promptIds[0]", () -> new Sampler(d, 4, new int[] {-1}));
    }

    @Test
    void badLogitsNameTheIndexAndLeaveTheSamplerUnchanged() {
        Sampler s = new Sampler(SamplingParams.defaults().withSeed(9).withPresencePenalty(0.5), 4, NO_PROMPT);
        assertRejected("vocabSize", () -> s.sample(new float[5]));
        assertRejected("logits[3]", () -> s.sample(new float[] {0f, 1f, 2f, Float.NaN}));
        assertRejected("logits[1]", () -> s.sample(new float[] {0f, Float.POSITIVE_INFINITY, 2f, 3f}));
        assertRejected("-Infinity", () -> s.sample(new float[] {NEG_INF, NEG_INF, NEG_INF, NEG_INF}));
        assertRejected("logits[6 .. 10)", () -> s.sample(new float[8], 6));
        assertRejected("logits[-1 .. 3)", () -> s.sample(new float[8], -1));
        assertRejected("logits[7]", () -> s.sample(new float[] {0, 0, 0, 0, 0, 1, 1, Float.NaN}, 4));
        float[] logits = {0.1f, 0.4f, 0.2f, 0.3f};
        Sampler fresh = new Sampler(s.params(), 4, NO_PROMPT);
        assertArrayEquals(draw(fresh, logits, 50), draw(s, logits, 50));
    }

    // ---------------------------------------------------------------- helpers

    private static int[] draw(Sampler s, float[] logits, int n) {
        int[] tokens = new int[n];
        for (int i = 0; i < n; i++) tokens[i] = s.sample(logits).token();
        return tokens;
    }

    private static long[] frequencies(Sampler s, float[] logits) {
        return frequencies(s, logits, DRAWS);
    }

    private static long[] frequencies(Sampler s, float[] logits, int draws) {
        long[] counts = new long[logits.length];
        for (int i = 0; i < draws; i++) counts[s.sample(logits).token()]++;
        return counts;
    }

    /** Pearson's statistic; every category of probability 0 must be empty. */
    private static double chiSquare(long[] counts, double[] p) {
        long n = Arrays.stream(counts).sum();
        double stat = 0;
        for (int i = 0; i < counts.length; i++) {
            if (p[i] == 0) {
                assertEquals(
                        0, counts[i], "token " + i + " has probability 0 but was drawn: " + Arrays.toString(counts));
                continue;
            }
            double expected = n * p[i];
            stat += (counts[i] - expected) * (counts[i] - expected) / expected;
        }
        return stat;
    }

    private static void assertFits(String label, long[] counts, double[] p) {
        int df = (int) Arrays.stream(p).filter(x -> x > 0).count() - 1;
        for (int i = 0; i < p.length; i++)
            if (p[i] > 0) assertTrue(counts[i] > 0, label + ": token " + i + " was never drawn");
        if (df == 0) return; // one token: the zero-probability check above is the whole test
        double stat = chiSquare(counts, p);
        double critical = CHI2_999[df - 1];
        System.out.printf("%s: chi2=%.2f df=%d critical(99.9%%)=%.3f%n", label, stat, df, critical);
        assertTrue(
                stat < critical,
                label + ": chi2 " + stat + " >= " + critical + " for counts " + Arrays.toString(counts) + " against "
                        + Arrays.toString(p));
    }

    private static double[] softmax(double[] logits, double temperature) {
        double max = Arrays.stream(logits).max().orElseThrow();
        double[] p = new double[logits.length];
        double sum = 0;
        for (int i = 0; i < p.length; i++) sum += p[i] = Math.exp((logits[i] - max) / temperature);
        for (int i = 0; i < p.length; i++) p[i] /= sum;
        return p;
    }

    /** softmax(logits / T) restricted to the kept tokens and renormalised. */
    private static double[] renormalised(float[] logits, double temperature, int... kept) {
        double[] masked = new double[logits.length];
        Arrays.fill(masked, Double.NEGATIVE_INFINITY);
        for (int t : kept) masked[t] = logits[t];
        return softmax(masked, temperature);
    }

    private static double[] logSoftmax(double[] logits) {
        double max = Arrays.stream(logits).max().orElseThrow();
        double sum = 0;
        for (double l : logits) sum += Math.exp(l - max);
        double log = max + Math.log(sum);
        return Arrays.stream(logits).map(l -> l - log).toArray();
    }

    private static float[] logsOf(double... weights) {
        float[] logits = new float[weights.length];
        for (int i = 0; i < weights.length; i++) logits[i] = (float) Math.log(weights[i]);
        return logits;
    }

    private static double[] toDouble(float[] values) {
        double[] d = new double[values.length];
        for (int i = 0; i < values.length; i++) d[i] = values[i];
        return d;
    }

    /** SplitMix64 as published (Steele, Lea, Flood 2014; Vigna's splitmix64.c). */
    private static long[] splitMix64(long seed, int n) {
        long[] out = new long[n];
        long state = seed;
        for (int i = 0; i < n; i++) {
            long z = (state += 0x9E3779B97F4A7C15L);
            z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
            z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
            out[i] = z ^ (z >>> 31);
        }
        return out;
    }

    private static void assertRejected(String named, Supplier<?> call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call::get);
        assertTrue(e.getMessage().contains(named), "message should name " + named + ": " + e.getMessage());
    }
}
