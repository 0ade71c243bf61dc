package dev.moe4j.server;

import java.util.Arrays;

/**
 * The server module's command line, run by the launcher: {@code serve} ({@code ./moe4j serve}), {@code bench-serve}
 * ({@code ./moe4j bench serve}) and {@code fuzz-http} ({@code ./moe4j fuzz http}).
 */
public final class Main {
    private Main() {}

    public static void main(String[] args) {
        String verb = args.length == 0 ? "help" : args[0];
        String[] rest = Arrays.copyOfRange(args, Math.min(1, args.length), args.length);
        int code;
        try {
            code = switch (verb) {
                case "serve" -> ServeCommand.run(rest);
                case "bench-serve" -> ServeBenchmark.run(rest);
                case "fuzz-http" -> HttpFuzzer.run(rest);
                case "help", "-h", "--help" -> usage(0);
                default -> {
                    System.err.println("moe4j: unknown verb '" + verb + "'");
                    yield usage(2);
                }
            };
        } catch (IllegalArgumentException | IllegalStateException | java.io.UncheckedIOException e) {
            System.err.println("moe4j " + verb + ": " + e.getMessage());
            code = 2;
        } catch (InterruptedException e) {
            System.err.println("moe4j " + verb + ": interrupted");
            code = 130;
        }
        System.exit(code);
    }

    private static int usage(int code) {
        (code == 0 ? System.out : System.err)
                .println("""
                usage: moe4j serve|bench-serve [options]
                  %s
                                                        an OpenAI-compatible HTTP server over the continuous-batching engine
                  %s
                                                        a load generator over HTTP: throughput, TTFT and TPOT percentiles
                  %s
                                                        a seeded fuzzer of the HTTP API (mutated requests, every endpoint)
                """.formatted(ServeCommand.USAGE, ServeBenchmark.USAGE, HttpFuzzer.USAGE));
        return code;
    }
}
