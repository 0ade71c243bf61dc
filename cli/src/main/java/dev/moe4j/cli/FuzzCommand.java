package dev.moe4j.cli;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.stream.Stream;

/**
 * {@code fuzz files|tokenizer [--iterations N] [--seed S] [--from I]}: runs one fuzzer for iterations [from, N), each
 * drawn from its own generator (seed, iteration), so any finding is reproduced by {@code --seed S --from I
 * --iterations I+1}. Prints the seed, the count of inputs tried and of findings; exits 1 on any finding, including an
 * iteration that runs longer than {@link #TIMEOUT_SECONDS} (a hang) or an {@link Error} such as OutOfMemoryError.
 */
final class FuzzCommand {
    private FuzzCommand() {}

    static final String USAGE = "fuzz files|tokenizer [--iterations N] [--seed S] [--from I]";
    static final int TIMEOUT_SECONDS = 30;
    private static final int REPORTED = 20; // findings printed in full

    static int run(String[] args) {
        try {
            return fuzz(args);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return 1;
        }
    }

    private static int fuzz(String[] args) throws IOException, InterruptedException {
        if (args.length == 0) throw new IllegalArgumentException("usage: " + USAGE);
        String which = args[0];
        Options o = new Options(
                "fuzz",
                java.util.Arrays.copyOfRange(args, 1, args.length),
                Set.of("--iterations", "--seed", "--from"),
                Set.of());
        int iterations = o.positive("--iterations", 1000), from = o.has("--from") ? o.integer("--from") : 0;
        long seed = o.has("--seed") ? Long.parseLong(o.string("--seed")) : System.nanoTime();
        Path work = Files.createTempDirectory("moe4j-fuzz-");
        ExecutorService runner = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "fuzz");
            t.setDaemon(true);
            return t;
        });
        try {
            Fuzzer fuzzer = switch (which) {
                case "files" -> new FileFuzzer(work);
                case "tokenizer" -> new TokenizerFuzzer(work);
                default -> throw new IllegalArgumentException("fuzz: no fuzzer '" + which + "'; usage: " + USAGE);
            };
            System.out.printf("fuzz %s: seed %d, iterations %d..%d%n", fuzzer.name(), seed, from, iterations);
            int findings = 0, tried = 0;
            long t0 = System.nanoTime();
            for (int i = from; i < iterations; i++) {
                tried++;
                SplittableRandom random = new SplittableRandom(seed * 0x9E3779B97F4A7C15L + i);
                Path scratch = Files.createDirectory(work.resolve("iteration-" + i));
                Future<?> f = runner.submit(() -> {
                    fuzzer.iteration(random, scratch);
                    return null;
                });
                Throwable finding = null;
                try {
                    f.get(TIMEOUT_SECONDS, TimeUnit.SECONDS);
                } catch (ExecutionException e) {
                    finding = e.getCause();
                } catch (TimeoutException e) {
                    finding = new Fuzzer.Finding("iteration ran longer than " + TIMEOUT_SECONDS + " s (a hang)", null);
                }
                if (finding != null) {
                    findings++;
                    if (findings <= REPORTED) {
                        System.out.printf(
                                "FINDING at iteration %d (reproduce: ./moe4j fuzz %s --seed %d --from %d --iterations %d):%n",
                                i, which, seed, i, i + 1);
                        finding.printStackTrace(System.out);
                    }
                    if (!f.isDone()) break; // the fuzz thread hangs: no later iteration can run
                }
                delete(scratch);
                if ((i + 1) % 1000 == 0)
                    System.out.printf(
                            "  %d %s, %d findings, %.0f s%n",
                            tried, fuzzer.unit(), findings, (System.nanoTime() - t0) / 1e9);
            }
            System.out.printf(
                    "fuzz %s: seed %d, %d %s tried, %d findings, %.1f s%n",
                    fuzzer.name(), seed, tried, fuzzer.unit(), findings, (System.nanoTime() - t0) / 1e9);
            System.out.println("  outcomes: " + fuzzer.outcomes());
            return findings == 0 ? 0 : 1;
        } finally {
            runner.shutdownNow();
            delete(work);
        }
    }

    private static void delete(Path dir) {
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path p : s.sorted(Comparator.reverseOrder()).toList()) Files.deleteIfExists(p);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot delete " + dir, e);
        }
    }
}
