package dev.moe4j.cli;

import dev.moe4j.engine.Generator;
import dev.moe4j.engine.Model;
import dev.moe4j.model.Safetensors;
import dev.moe4j.tensor.Tensor;
import dev.moe4j.tokenizer.Tokenizer;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;

/**
 * {@code score}: the next-token logits at every position of a sequence, written as {@code logits} F32 [T, vocab], and
 * the sequence's perplexity {@code exp(-mean_t log p(token t+1 | tokens ..t))} over its T - 1 predicted tokens.
 */
final class ScoreCommand {
    private ScoreCommand() {}

    static final String USAGE = "score --model DIR (--prompt TEXT | --input-ids 1,2,3) --output FILE.safetensors";

    static int run(String[] args) {
        Set<String> valued = new HashSet<>(ModelLoading.VALUED);
        valued.addAll(Set.of("--prompt", "--input-ids", "--output"));
        Options o = new Options("score", args, valued, ModelLoading.FLAGS);
        if (o.has("--prompt") == o.has("--input-ids"))
            throw new IllegalArgumentException("score needs exactly one of --prompt and --input-ids");
        Path output = Path.of(o.string("--output"));
        int[] given = o.has("--input-ids") ? ModelLoading.ids(o.string("--input-ids")) : null;
        try (Model model = ModelLoading.load(o, given == null ? 16384 : given.length + 64);
                Arena arena = Arena.ofConfined()) {
            Tokenizer tokenizer = ModelLoading.tokenizer(model.dir());
            int[] ids = given;
            if (ids == null) {
                if (tokenizer == null)
                    throw new IllegalArgumentException(model.dir() + " has no tokenizer.json; give --input-ids");
                ids = tokenizer.encode(o.string("--prompt"), true);
            }
            Tensor logits = new Generator(model, tokenizer, 512).score(ids, arena);
            double nll = 0;
            int vocab = model.vocabSize();
            MemorySegment s = logits.segment();
            for (int t = 0; t + 1 < ids.length; t++) {
                long row = (long) t * vocab;
                double max = Double.NEGATIVE_INFINITY, sum = 0;
                for (int v = 0; v < vocab; v++) max = Math.max(max, s.getAtIndex(ValueLayout.JAVA_FLOAT, row + v));
                for (int v = 0; v < vocab; v++) sum += Math.exp(s.getAtIndex(ValueLayout.JAVA_FLOAT, row + v) - max);
                nll -= s.getAtIndex(ValueLayout.JAVA_FLOAT, row + ids[t + 1]) - max - Math.log(sum);
            }
            Safetensors.write(output, Map.of("logits", logits), Map.of("format", "pt"));
            if (ids.length > 1)
                System.out.printf(
                        "%d tokens, perplexity %.4f (mean negative log-likelihood %.4f nats over %d predictions)%n",
                        ids.length, Math.exp(nll / (ids.length - 1)), nll / (ids.length - 1), ids.length - 1);
            else System.out.println("1 token: no prediction to score");
            System.out.println("wrote logits F32 [" + ids.length + ", " + vocab + "] to " + output);
        }
        return 0;
    }
}
