package dev.moe4j.cli;

import dev.moe4j.runtime.Capabilities;
import dev.moe4j.runtime.NativeLibrary;
import java.util.Arrays;

/** The command line: {@code ./moe4j VERB [options]}. */
public final class Main {
    private Main() {}

    public static void main(String[] args) {
        String verb = args.length == 0 ? "help" : args[0];
        String[] rest = Arrays.copyOfRange(args, Math.min(1, args.length), args.length);
        int code;
        try {
            code = switch (verb) {
                case "demo" -> Demo.run(rest);
                case "make-model" -> MakeModel.run(rest);
                case "run-layer" -> RunLayer.run(rest);
                case "generate" -> GenerateCommand.run(rest);
                case "score" -> ScoreCommand.run(rest);
                case "tokenize" -> TokenizeCommand.run(rest);
                case "chat" -> ChatCommand.run(rest);
                case "eplb" -> EplbCommand.run(rest);
                case "bench-generate" -> BenchGenerateCommand.run(rest);
                case "fuzz" -> FuzzCommand.run(rest);
                case "info" -> info();
                case "help", "-h", "--help" -> usage(0);
                default -> {
                    System.err.println("moe4j: unknown verb '" + verb + "'");
                    yield usage(2);
                }
            };
        } catch (IllegalArgumentException | IllegalStateException | java.io.UncheckedIOException e) {
            System.err.println("moe4j " + verb + ": " + e.getMessage());
            code = 2;
        }
        System.exit(code);
    }

    private static int info() {
        Capabilities caps = NativeLibrary.capabilities();
        System.out.println("library          " + caps.library());
        System.out.println("version          " + caps.version() + " (C ABI " + caps.abiVersion() + ")");
        System.out.println("cpu isa          " + caps.cpuIsa().nativeName());
        System.out.println("cpu threads      " + caps.cpuThreads());
        System.out.println("cuda compiled    " + caps.cudaCompiled());
        System.out.println("cuda devices     " + caps.cudaDeviceCount());
        return 0;
    }

    private static int usage(int code) {
        (code == 0 ? System.out : System.err).println("""
                usage: moe4j VERB [options]
                  %s
                                                        chat prompts through a synthetic DeepSeek-V2-Lite-shaped model
                  %s
                                                        generate tokens (greedy at temperature 0) from prompts or token ids
                  %s
                                                        next-token logits at every position, and the perplexity
                  %s
                                                        token ids of texts (HF tokenizers, no special tokens added)
                  %s
                                                        an interactive chat through the model's chat template
                  info                                  the loaded native library, CPU path, CUDA devices
                  %s
                                                        write a synthetic DeepSeek checkpoint (HF layout, FP8 weights)
                  %s
                                                        run one part of one layer of a checkpoint on saved hidden states
                  %s
                                                        expert placement (DeepSeek EPLB, refined, balanced-locality)
                  %s
                                                        fuzz checkpoint loading or the tokenizer; exit 1 on any finding
                  %s
                                                        prefill and decode tokens/s against the machine's ceilings
                """.formatted(
                        Demo.USAGE,
                        GenerateCommand.USAGE + " " + ModelLoading.USAGE,
                        ScoreCommand.USAGE,
                        TokenizeCommand.USAGE,
                        ChatCommand.USAGE,
                        MakeModel.USAGE,
                        RunLayer.USAGE,
                        EplbCommand.USAGE,
                        FuzzCommand.USAGE,
                        BenchGenerateCommand.USAGE + " " + ModelLoading.USAGE.replace("--model DIR ", "")));
        return code;
    }
}
