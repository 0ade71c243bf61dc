package dev.moe4j.testing;

import static org.junit.platform.engine.discovery.DiscoverySelectors.selectPackage;
import static org.junit.platform.launcher.TagFilter.excludeTags;
import static org.junit.platform.launcher.TagFilter.includeTags;

import java.io.PrintWriter;
import org.junit.platform.engine.TestExecutionResult;
import org.junit.platform.launcher.TestExecutionListener;
import org.junit.platform.launcher.TestIdentifier;
import org.junit.platform.launcher.core.LauncherDiscoveryRequestBuilder;
import org.junit.platform.launcher.core.LauncherFactory;
import org.junit.platform.launcher.listeners.SummaryGeneratingListener;
import org.junit.platform.launcher.listeners.TestExecutionSummary;

/**
 * Runs the tests of one tag without Maven: {@code java -cp <test classpath> dev.moe4j.testing.TaggedTests gpu
 * [--exclude multi-gpu]...}, from the module's folder ({@code java/}, where the fixtures' relative paths lead). For
 * machines that have a JVM but no Maven or network, the GPU machines {@code bench/gpu.sh} runs on. Prints each
 * failure and the counts; exits 1 when a test failed, when none ran, or when one was skipped (an aborted assumption:
 * on a GPU machine a skipped GPU test means the GPU was not used, which is a failure of the run, not a pass).
 */
public final class TaggedTests {
    private TaggedTests() {}

    public static void main(String[] args) {
        if (args.length % 2 != 1) usage();
        var request = LauncherDiscoveryRequestBuilder.request()
                .selectors(selectPackage("dev.moe4j"))
                .filters(includeTags(args[0]));
        for (int i = 1; i < args.length; i += 2) {
            if (!args[i].equals("--exclude")) usage();
            request.filters(excludeTags(args[i + 1]));
        }
        var summary = new SummaryGeneratingListener();
        LauncherFactory.create().execute(request.build(), summary, new Progress());
        TestExecutionSummary s = summary.getSummary();
        PrintWriter out = new PrintWriter(System.out, true);
        s.printFailuresTo(out, 25);
        s.printTo(out);
        boolean ok = s.getTotalFailureCount() == 0 && s.getTestsSucceededCount() > 0 && s.getTestsAbortedCount() == 0;
        if (s.getTestsAbortedCount() > 0)
            out.println(s.getTestsAbortedCount() + " test(s) of tag '" + args[0] + "' skipped: see the reasons above");
        out.println(ok ? "tag '" + args[0] + "': all tests passed" : "tag '" + args[0] + "': FAILED");
        System.exit(ok ? 0 : 1);
    }

    private static void usage() {
        System.err.println("usage: TaggedTests <tag> [--exclude <tag>]...");
        System.exit(2);
    }

    /** One line per test when it starts and one when it ends, flushed at once. */
    private static final class Progress implements TestExecutionListener {
        private long started;

        @Override
        public void executionStarted(TestIdentifier test) {
            if (!test.isTest()) return;
            started = System.nanoTime();
            System.out.println("start " + name(test));
            System.out.flush();
        }

        @Override
        public void executionFinished(TestIdentifier test, TestExecutionResult result) {
            if (!test.isTest()) return;
            System.out.printf(
                    "%s %s (%.1f s)%n",
                    result.getStatus().name().toLowerCase(), name(test), (System.nanoTime() - started) / 1e9);
            System.out.flush();
        }

        @Override
        public void executionSkipped(TestIdentifier test, String reason) {
            if (test.isTest()) System.out.println("skipped " + name(test) + ": " + reason);
        }

        private static String name(TestIdentifier test) {
            String id = test.getUniqueId();
            int cls = id.indexOf("[class:");
            return (cls < 0 ? "" : id.substring(cls + 7, id.indexOf(']', cls)).replaceFirst(".*\\.", "") + ".")
                    + test.getDisplayName();
        }
    }
}
