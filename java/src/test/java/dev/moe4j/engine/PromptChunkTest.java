package dev.moe4j.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/**
 * How the engine cuts prompts into chunks ({@link RequestState#promptChunk}): a prompt of two or more tokens is never
 * read one token at a time (a single new token is attended another way, which would change its outputs), whatever
 * the step budgets left for it.
 */
class PromptChunkTest {
    @Test
    void chunksOfLongerPromptsHoldTwoOrMoreTokensAndPassTheBudgetByAtMostTwo() {
        for (int length = 1; length <= 40; length++)
            for (int budget = 1; budget <= 40; budget++) {
                int n = RequestState.promptChunk(length, budget);
                String what = length + " tokens left, budget " + budget + ": chunk " + n;
                assertTrue(n >= 1 && n <= length, what);
                assertTrue(n <= budget + 2, what);
                if (length >= 2) assertTrue(n >= 2 && length - n != 1, what);
                if (length <= budget) assertEquals(length, n, what);
                else if (budget >= 2 && length - budget >= 2) assertEquals(budget, n, what);
            }
    }

    @Test
    void aWholePromptReadUnderChangingBudgetsNeverTakesASingleTokenStep() {
        int[] budgets = {1, 2, 1, 3, 7, 1, 1, 2, 5, 1};
        for (int length = 2; length <= 60; length++) {
            int left = length, step = 0;
            while (left > 0) {
                int n = RequestState.promptChunk(left, budgets[step++ % budgets.length]);
                assertTrue(n >= 2, "a chunk of " + n + " of a " + length + "-token prompt");
                left -= n;
            }
            assertEquals(0, left);
        }
    }
}
