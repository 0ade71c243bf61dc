package dev.moe4j.cli;

import dev.moe4j.engine.Generator;
import dev.moe4j.engine.Model;
import dev.moe4j.engine.Request;
import dev.moe4j.engine.Result;
import dev.moe4j.engine.Sampler;
import dev.moe4j.engine.SamplingParams;
import dev.moe4j.tokenizer.ChatTemplate;
import dev.moe4j.tokenizer.Tokenizer;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * {@code chat}: an interactive chat in the terminal. Each user line joins the conversation, which is rendered through
 * the tokenizer's chat template and answered with streamed tokens; an empty line or end of input ends the chat,
 * {@code /reset} starts over.
 */
final class ChatCommand {
    private ChatCommand() {}

    static final String USAGE =
            "chat --model DIR [--max-new-tokens N --temperature T --top-p P --seed S --system TEXT]";

    static int run(String[] args) {
        Set<String> valued = new HashSet<>(ModelLoading.VALUED);
        valued.addAll(Set.of("--max-new-tokens", "--temperature", "--top-p", "--seed", "--system"));
        Options o = new Options("chat", args, valued, ModelLoading.FLAGS);
        SamplingParams sampling = SamplingParams.defaults()
                .withTemperature(o.number("--temperature", 0.7))
                .withTopP(o.number("--top-p", 0.95))
                .withSeed(o.longInteger("--seed", 0));
        int maxNew = o.positive("--max-new-tokens", 256);
        try (Model model = ModelLoading.load(o, 0)) {
            Tokenizer tokenizer = ModelLoading.tokenizer(model.dir());
            if (tokenizer == null)
                throw new IllegalArgumentException(model.dir() + " has no tokenizer.json; chat needs one");
            ChatTemplate template = ChatTemplate.from(tokenizer);
            Generator generator = new Generator(model, tokenizer, 512);
            List<ChatTemplate.Message> messages = new ArrayList<>();
            if (o.has("--system")) messages.add(new ChatTemplate.Message("system", o.string("--system")));
            int fixed = messages.size();
            BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
            System.out.println("chat with " + model.dir() + " (empty line to quit, /reset to start over)");
            for (int turn = 0; ; turn++) {
                System.out.print("> ");
                System.out.flush();
                String line = in.readLine();
                if (line == null || line.isBlank()) break;
                if (line.strip().equals("/reset")) {
                    messages.subList(fixed, messages.size()).clear();
                    continue;
                }
                messages.add(new ChatTemplate.Message("user", line));
                int[] ids = tokenizer.encode(template.render(messages, true), false);
                Request request =
                        new Request(ids, null, sampling.withSeed(sampling.seed() + turn), maxNew, List.of(), List.of());
                Result result = generator
                        .generate(List.of(request), new Generator.Listener() {
                            @Override
                            public void onToken(int request, Sampler.Choice choice, String text) {
                                System.out.print(text);
                                System.out.flush();
                            }
                        })
                        .get(0);
                System.out.println();
                messages.add(new ChatTemplate.Message("assistant", result.text()));
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read the terminal: " + e.getMessage(), e);
        }
        return 0;
    }
}
