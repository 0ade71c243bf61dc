package dev.moe4j.engine;

import dev.moe4j.model.Safetensors;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/** Requests over a fixture checkpoint and what a model generates for them, logits included, for comparing models. */
record Generations(List<int[]> ids, List<List<float[]>> logits) {
    /**
     * The fixture's reference prompts and random prompts, one of them long enough to be attended in several causal
     * query chunks: 16 new tokens each, greedy, or every other random prompt sampled with a seed.
     */
    static List<Request> requests(Path fixture, int vocab, boolean sampled) {
        List<Request> requests = new ArrayList<>();
        try (Safetensors expected = Safetensors.open(fixture.resolve("expected.safetensors"))) {
            for (int i = 0; expected.entry("prompt_" + i) != null; i++)
                requests.add(Request.ofIds(ModelTest.ints(expected.tensor("prompt_" + i)))
                        .withMaxNewTokens(16));
        }
        SplittableRandom random = new SplittableRandom(7);
        int[] lengths = {1, 9, 70, 530}; // 530: more than one causal query chunk of the fixtures' 2 heads (512)
        for (int i = 0; i < lengths.length; i++) {
            int[] ids = new int[lengths[i]];
            for (int j = 0; j < ids.length; j++) ids[j] = random.nextInt(vocab);
            Request r = Request.ofIds(ids).withMaxNewTokens(16);
            if (sampled && i % 2 == 1)
                r = r.withSampling(SamplingParams.defaults()
                        .withTemperature(0.8)
                        .withTopP(0.9)
                        .withSeed(i));
            requests.add(r);
        }
        return requests;
    }

    /** Generates all requests in one batch, at most stepTokens tokens per model step. */
    static Generations of(Model model, List<Request> requests, int stepTokens) {
        List<List<float[]>> logits = new ArrayList<>();
        for (int i = 0; i < requests.size(); i++) logits.add(new ArrayList<>());
        List<Result> results = new Generator(model, null, stepTokens).generate(requests, new Generator.Listener() {
            @Override
            public void onLogits(int request, float[] row) {
                logits.get(request).add(row.clone());
            }
        });
        return new Generations(results.stream().map(Result::outputIds).toList(), logits);
    }
}
