package dev.moe4j.dashboard;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.moe4j.routing.Routing;
import dev.moe4j.testing.Chromium;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The ring buffer, the recorder and the page's structure; the page rendered in headless Chromium. */
class DashboardTest {
    @Test
    void theRingKeepsTheLastSamplesOldestFirst() {
        TimeSeries s = new TimeSeries("x", 3);
        assertEquals(0, s.snapshot().size());
        s.add(1, 10);
        s.add(2, 20);
        assertArrayEquals(new double[] {1, 2}, s.snapshot().seconds());
        for (int t = 3; t <= 7; t++) s.add(t, 10 * t);
        TimeSeries.Samples last = s.snapshot();
        assertArrayEquals(new double[] {5, 6, 7}, last.seconds());
        assertArrayEquals(new double[] {50, 60, 70}, last.values());
        assertThrows(IllegalArgumentException.class, () -> s.add(Double.NaN, 1));
        assertThrows(IllegalArgumentException.class, () -> new TimeSeries("y", 1));
    }

    @Test
    void thePageHasAnElementPerCellSeriesBarAndFractionAndEscapesText() {
        Recorder r = recorder();
        String html = Dashboard.html(r.data(), 0);
        assertEquals(2 * 4, Chromium.count(html, "cell"));
        assertEquals(3, Chromium.count(html, "series"), "a series of NaN alone has no path");
        assertEquals(Dashboard.MAX_REBALANCES, Chromium.count(html, "bar before"), "the last rebalances only");
        assertEquals(Dashboard.MAX_REBALANCES, Chromium.count(html, "bar after"));
        assertEquals(2, Chromium.count(html, "roofline"));
        assertTrue(html.contains("a &lt;b&gt; &amp; &quot;c&quot;"), "escaped");
        assertFalse(html.contains("<b>"));
        assertFalse(html.contains("http-equiv=\"refresh\""), "a report does not reload");
        assertTrue(Dashboard.html(r.data(), 2).contains("http-equiv=\"refresh\" content=\"2\""));
        assertFalse(html.contains("src=") || html.contains("href=") || html.contains("<script"), "no external asset");
        String empty = Dashboard.html(new Recorder("empty", 2).data(), 0);
        assertEquals(0, Chromium.count(empty, "cell") + Chromium.count(empty, "series"));
        assertTrue(empty.contains("no MoE layer has run yet"));
    }

    @Test
    void theRecorderCountsRoutedTokensPerExpert() {
        Recorder r = new Recorder("t", 4);
        Routing routing = new Routing(2, 3);
        routing.assign(3, new int[] {0, 1, 1, 2, 3, 1}, new float[] {.5f, .5f, .5f, .5f, .5f, .5f});
        r.routed(5, routing, 4);
        r.routed(5, routing, 4);
        assertArrayEquals(new long[] {2, 6, 2, 2}, r.data().expertLoad().get(0).tokensPerExpert());
        assertEquals(5, r.data().expertLoad().get(0).layer());
    }

    @Test
    void theReportRendersInHeadlessChromium() throws Exception {
        Chromium.require();
        Path file = new Recorder("x", 2).write(Path.of("target/dashboard/synthetic.html"));
        file = recorder().write(file);
        assertTrue(Files.size(file) > 0);
        Chromium.Page page =
                Chromium.render(file.toUri().toString(), Path.of("target/dashboard/synthetic.png"), 1200, 1200);
        System.out.println("synthetic dashboard screenshot: " + page.screenshot());
        assertTrue(Chromium.colours(page.screenshot()) > 10, "the screenshot is (nearly) one colour");
        assertEquals(8, Chromium.count(page.dom(), "cell"));
        assertEquals(3, Chromium.count(page.dom(), "series"));
        assertEquals(Dashboard.MAX_REBALANCES, Chromium.count(page.dom(), "bar after"));
    }

    private static Recorder recorder() {
        Recorder r = new Recorder("a <b> & \"c\"", 16);
        r.facts(List.of("one fact"));
        Routing routing = new Routing(2, 4);
        routing.assign(4, new int[] {0, 1, 1, 2, 3, 1, 0, 1}, new float[8]);
        r.routed(1, routing, 4);
        r.routed(2, routing, 4);
        for (int i = 0; i < 20; i++) {
            r.record("throughput", "tokens/s", "generated", i);
            r.record("throughput", "tokens/s", "prompt", i % 3 == 0 ? Double.NaN : 2 * i);
            r.record("latency", "ms", "TTFT", 5);
            r.record("latency", "ms", "never known", Double.NaN);
        }
        for (int i = 0; i < 50; i++) r.rebalance(1, i, 0.5, 0.9);
        r.roofline("decode", 0.4);
        r.roofline("prefill", Double.NaN);
        return r;
    }
}
