package dev.moe4j.cli;

import dev.moe4j.engine.Generator;
import dev.moe4j.engine.Model;
import dev.moe4j.engine.Request;
import dev.moe4j.engine.Result;
import dev.moe4j.engine.Sampler;
import dev.moe4j.engine.SamplingParams;
import dev.moe4j.internal.Json;
import dev.moe4j.model.Safetensors;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.Tensor;
import dev.moe4j.tokenizer.Tokenizer;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * {@code generate}: runs one prompt, or every request of a JSON-lines file in one batch, and prints the text (streamed
 * for a single prompt) or, with {@code --json}, one JSON object per request in input order.
 */
final class GenerateCommand {
    private GenerateCommand() {}

    static final String USAGE = "generate --model DIR (--prompt TEXT | --input-ids 1,2,3 | --requests FILE.jsonl)"
            + " [--max-new-tokens N --temperature T --top-k K --top-p P --seed S --json --logits-out FILE]";

    private static final Set<String> REQUEST_KEYS = Set.of(
            "input_ids",
            "prompt",
            "max_new_tokens",
            "temperature",
            "top_k",
            "top_p",
            "min_p",
            "repetition_penalty",
            "presence_penalty",
            "frequency_penalty",
            "seed",
            "logprobs",
            "stop",
            "stop_token_ids");

    static int run(String[] args) {
        Set<String> valued = new HashSet<>(ModelLoading.VALUED);
        valued.addAll(Set.of(
                "--prompt",
                "--input-ids",
                "--requests",
                "--max-new-tokens",
                "--temperature",
                "--top-k",
                "--top-p",
                "--seed",
                "--logits-out"));
        Set<String> flags = new HashSet<>(ModelLoading.FLAGS);
        flags.add("--json");
        Options o = new Options("generate", args, valued, flags);
        int sources = (o.has("--prompt") ? 1 : 0) + (o.has("--input-ids") ? 1 : 0) + (o.has("--requests") ? 1 : 0);
        if (sources != 1)
            throw new IllegalArgumentException("generate needs exactly one of --prompt, --input-ids, --requests");
        SamplingParams sampling = SamplingParams.defaults()
                .withTemperature(o.number("--temperature", 0))
                .withTopK(o.has("--top-k") ? o.integer("--top-k") : 0)
                .withTopP(o.number("--top-p", 1))
                .withSeed(o.longInteger("--seed", 0));
        int maxNew = o.positive("--max-new-tokens", 32);
        List<Request> requests = new ArrayList<>();
        if (o.has("--prompt"))
            requests.add(
                    Request.ofText(o.string("--prompt")).withSampling(sampling).withMaxNewTokens(maxNew));
        else if (o.has("--input-ids"))
            requests.add(Request.ofIds(ModelLoading.ids(o.string("--input-ids")))
                    .withSampling(sampling)
                    .withMaxNewTokens(maxNew));
        else requests.addAll(readRequests(Path.of(o.string("--requests")), sampling, maxNew));

        boolean json = o.has("--json");
        int cacheNeed = 0;
        for (Request r : requests)
            cacheNeed += (r.inputIds() == null ? 4096 : r.inputIds().length) + r.maxNewTokens() + 64;
        try (Model model = ModelLoading.load(o, cacheNeed)) {
            Tokenizer tokenizer = ModelLoading.tokenizer(model.dir());
            Generator generator = new Generator(model, tokenizer, 512);
            List<float[]> logits = new ArrayList<>();
            boolean stream = requests.size() == 1 && !json && tokenizer != null;
            long t0 = System.nanoTime();
            List<Result> results = generator.generate(requests, new Generator.Listener() {
                @Override
                public void onToken(int request, Sampler.Choice choice, String text) {
                    if (stream) {
                        System.out.print(text);
                        System.out.flush();
                    }
                }

                @Override
                public void onLogits(int request, float[] row) {
                    if (request == 0 && o.has("--logits-out")) logits.add(row.clone());
                }
            });
            long t1 = System.nanoTime();
            if (stream) System.out.println();
            int prompts = results.stream().mapToInt(Result::promptTokens).sum();
            int generated = results.stream().mapToInt(Result::completionTokens).sum();
            System.err.printf(
                    "%d request(s): %d prompt tokens, %d generated, in %.2f s (%.1f tokens/s overall)%s%n",
                    results.size(),
                    prompts,
                    generated,
                    (t1 - t0) / 1e9,
                    (prompts + generated) / ((t1 - t0) / 1e9),
                    model.reproducible() ? "" : ", --fast: not batch-invariant");
            for (Result r : results) {
                if (json) System.out.println(Json.write(toJson(r)));
                else if (!stream) System.out.println(r.text() != null ? r.text() : idList(r.outputIds()));
            }
            if (o.has("--logits-out")) writeLogits(Path.of(o.string("--logits-out")), logits, model.vocabSize());
        }
        return 0;
    }

    /** One JSON object per line: input_ids or prompt, plus sampling fields overriding the command line's. */
    static List<Request> readRequests(Path file, SamplingParams sampling, int maxNewTokens) {
        List<String> lines;
        try {
            lines = Files.readAllLines(file);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read --requests " + file + ": " + e.getMessage(), e);
        }
        List<Request> requests = new ArrayList<>();
        for (int n = 0; n < lines.size(); n++) {
            String line = lines.get(n).strip();
            if (line.isEmpty()) continue;
            String where = file + " line " + (n + 1) + ": ";
            try {
                if (!(Json.parse(line) instanceof Map<?, ?> m)) throw new IllegalArgumentException("not a JSON object");
                for (Object key : m.keySet())
                    if (!REQUEST_KEYS.contains(key))
                        throw new IllegalArgumentException(
                                "unknown field \"" + key + "\" (fields: " + String.join(", ", REQUEST_KEYS) + ")");
                requests.add(request(m, sampling, maxNewTokens));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(where + e.getMessage(), e);
            }
        }
        if (requests.isEmpty()) throw new IllegalArgumentException("--requests " + file + " holds no request");
        return requests;
    }

    private static Request request(Map<?, ?> m, SamplingParams sampling, int maxNewTokens) {
        SamplingParams s = sampling;
        if (m.containsKey("temperature")) s = s.withTemperature(number(m, "temperature"));
        if (m.containsKey("top_k")) s = s.withTopK((int) integer(m, "top_k"));
        if (m.containsKey("top_p")) s = s.withTopP(number(m, "top_p"));
        if (m.containsKey("min_p")) s = s.withMinP(number(m, "min_p"));
        if (m.containsKey("repetition_penalty")) s = s.withRepetitionPenalty(number(m, "repetition_penalty"));
        if (m.containsKey("presence_penalty")) s = s.withPresencePenalty(number(m, "presence_penalty"));
        if (m.containsKey("frequency_penalty")) s = s.withFrequencyPenalty(number(m, "frequency_penalty"));
        if (m.containsKey("seed")) s = s.withSeed(integer(m, "seed"));
        if (m.containsKey("logprobs")) s = s.withLogprobs((int) integer(m, "logprobs"));
        int maxNew = m.containsKey("max_new_tokens") ? (int) integer(m, "max_new_tokens") : maxNewTokens;
        List<String> stop = new ArrayList<>();
        if (m.get("stop") instanceof String one) stop.add(one);
        else if (m.get("stop") instanceof List<?> many)
            for (Object x : many) {
                if (!(x instanceof String str)) throw new IllegalArgumentException("\"stop\" must hold strings");
                stop.add(str);
            }
        else if (m.containsKey("stop")) throw new IllegalArgumentException("\"stop\" must be a string or a list");
        List<Integer> stopIds = new ArrayList<>();
        if (m.containsKey("stop_token_ids"))
            for (int id : intList(m.get("stop_token_ids"), "stop_token_ids")) stopIds.add(id);
        if (m.containsKey("input_ids") == m.containsKey("prompt"))
            throw new IllegalArgumentException("a request needs exactly one of \"input_ids\" and \"prompt\"");
        if (m.containsKey("prompt") && !(m.get("prompt") instanceof String))
            throw new IllegalArgumentException("\"prompt\" must be a string");
        int[] ids = m.containsKey("input_ids") ? intList(m.get("input_ids"), "input_ids") : null;
        return new Request(ids, (String) m.get("prompt"), s, maxNew, stopIds, stop);
    }

    private static double number(Map<?, ?> m, String key) {
        if (!(m.get(key) instanceof Number n)) throw new IllegalArgumentException("\"" + key + "\" must be a number");
        return n.doubleValue();
    }

    private static long integer(Map<?, ?> m, String key) {
        if (!(m.get(key) instanceof Number n) || n.doubleValue() != Math.rint(n.doubleValue()))
            throw new IllegalArgumentException("\"" + key + "\" must be an integer, got " + m.get(key));
        return n.longValue();
    }

    private static int[] intList(Object v, String key) {
        if (!(v instanceof List<?> list))
            throw new IllegalArgumentException("\"" + key + "\" must be a list of integers");
        int[] ids = new int[list.size()];
        for (int i = 0; i < ids.length; i++) {
            if (!(list.get(i) instanceof Number n) || n.doubleValue() != Math.rint(n.doubleValue()))
                throw new IllegalArgumentException("\"" + key + "\"[" + i + "] must be an integer, got " + list.get(i));
            ids[i] = n.intValue();
        }
        return ids;
    }

    static Map<String, Object> toJson(Result r) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("input_ids", idList(r.promptIds()));
        m.put("output_ids", idList(r.outputIds()));
        if (r.text() != null) m.put("text", r.text());
        m.put("finish_reason", r.finishReason().apiName());
        return m;
    }

    static List<Integer> idList(int[] ids) {
        List<Integer> list = new ArrayList<>();
        for (int id : ids) list.add(id);
        return list;
    }

    private static void writeLogits(Path file, List<float[]> rows, int vocab) {
        try (Arena arena = Arena.ofConfined()) {
            Tensor t = Tensor.allocate(arena, DType.F32, rows.size(), vocab); // at least one token was generated
            for (int i = 0; i < rows.size(); i++)
                MemorySegment.copy(rows.get(i), 0, t.segment(), ValueLayout.JAVA_FLOAT, (long) i * vocab * 4, vocab);
            Safetensors.write(file, Map.of("logits", t), Map.of("format", "pt"));
        }
    }
}
