package dev.moe4j.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.moe4j.dashboard.Dashboard;
import dev.moe4j.engine.Engine;
import dev.moe4j.engine.EngineMetrics;
import dev.moe4j.engine.Model;
import dev.moe4j.testing.Chromium;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** {@code GET /dashboard} of a serving engine with experts over two devices, rendered in headless Chromium. */
@Timeout(300)
class DashboardPageTest {
    @Test
    void theLiveDashboardRendersEveryPartInHeadlessChromium() throws Exception {
        Chromium.require();
        try (Model model = Model.load(
                TestServers.checkpoint(),
                Model.Options.defaults().withCacheTokens(2048).withExpertDevices(2),
                null)) {
            int moeLayers = model.expertParallel().size();
            int experts = model.config().nRoutedExperts();
            assertTrue(moeLayers > 0, "the test checkpoint has MoE layers");
            try (OpenAiServer server = new OpenAiServer(
                    new Engine(
                            model,
                            TestServers.tokenizer(),
                            Engine.Options.defaults().withRebalanceEvery(2)),
                    OpenAiServer.Options.defaults("tiny").withPort(0))) {
                List<CompletableFuture<HttpResponse<String>>> answers = new ArrayList<>();
                for (int i = 0; i < 4; i++) {
                    String body = "{\"model\": \"tiny\", \"prompt\": \"Request " + i + " says\", \"max_tokens\": 24,"
                            + " \"temperature\": 0" + (i % 2 == 0 ? ", \"stream\": true" : "") + "}";
                    answers.add(CompletableFuture.supplyAsync(() -> TestServers.post(server, "/v1/completions", body)));
                }
                for (var a : answers)
                    assertEquals(200, a.get(120, TimeUnit.SECONDS).statusCode());
                EngineMetrics m = TestServers.await(
                        server.engine()::metrics, x -> x.running() == 0 && x.finished() == 4, "all four finished");
                assertTrue(m.rebalances() > 0, "the engine rebalanced: " + m);
                // two samples of the sampler after the last request: the page shows the final state
                Thread.sleep(2500L * OpenAiServer.DASHBOARD_SAMPLE_SECONDS);

                HttpResponse<String> raw = TestServers.get(server, "/dashboard");
                assertEquals(200, raw.statusCode());
                assertTrue(raw.headers().firstValue("Content-Type").orElse("").startsWith("text/html"));
                Chromium.Page page = Chromium.render(
                        TestServers.uri(server, "/dashboard").toString(),
                        Path.of("target/dashboard/serve.png"),
                        1400,
                        1800);
                System.out.println("/dashboard screenshot: " + page.screenshot());
                assertTrue(Chromium.colours(page.screenshot()) > 10, "the screenshot is (nearly) one colour");
                String dom = page.dom();
                assertEquals(moeLayers * experts, Chromium.count(dom, "cell"), "a heatmap cell per layer and expert");
                // tokens/s: prompt, generated; latency: TTFT and TPOT p50 and p90; KV cache in use
                assertEquals(7, Chromium.count(dom, "series"), "a path per time series");
                int shown =
                        Math.min(Dashboard.MAX_REBALANCES, m.recentRebalances().size());
                assertEquals(shown, Chromium.count(dom, "bar before"), "a bar per rebalance, before");
                assertEquals(shown, Chromium.count(dom, "bar after"), "and after");
                assertTrue(dom.contains("4 finished"), "the facts line counts the requests");
            }
        }
    }
}
