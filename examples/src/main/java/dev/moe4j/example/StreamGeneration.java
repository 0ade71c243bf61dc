package dev.moe4j.example;

import dev.moe4j.engine.Generator;
import dev.moe4j.engine.Model;
import dev.moe4j.engine.Request;
import dev.moe4j.engine.Sampler;
import dev.moe4j.runtime.NativeLibrary;
import dev.moe4j.tokenizer.Tokenizer;
import java.nio.file.Path;
import java.util.List;

/**
 * Loads a Hugging Face DeepSeek-V2/V3 checkpoint (with its tokenizer files) and streams a greedy generation to stdout.
 *
 * <p>Usage: {@code StreamGeneration CHECKPOINT_DIR [PROMPT [MAX_NEW_TOKENS]]}. Prints the native library it runs on
 * to stderr.
 */
public final class StreamGeneration {
    private StreamGeneration() {}

    public static void main(String[] args) {
        if (args.length < 1 || args.length > 3) {
            System.err.println("usage: StreamGeneration CHECKPOINT_DIR [PROMPT [MAX_NEW_TOKENS]]");
            System.exit(2);
        }
        Path dir = Path.of(args[0]);
        String prompt = args.length > 1 ? args[1] : "The capital of France is";
        int maxNewTokens = args.length > 2 ? Integer.parseInt(args[2]) : 32;
        System.err.println("moe4j native library: " + NativeLibrary.capabilities());

        try (Model model = Model.load(dir, Model.Options.defaults(), null)) {
            Generator generator = new Generator(model, Tokenizer.load(dir), 256);
            Request request = Request.ofText(prompt).withMaxNewTokens(maxNewTokens);
            generator.generate(List.of(request), new Generator.Listener() {
                @Override
                public void onToken(int index, Sampler.Choice choice, String text) {
                    System.out.print(text);
                    System.out.flush();
                }
            });
            System.out.println();
        }
    }
}
