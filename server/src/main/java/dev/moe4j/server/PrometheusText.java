package dev.moe4j.server;

import dev.moe4j.engine.EngineMetrics;
import java.util.Locale;

/**
 * {@link EngineMetrics} in the Prometheus text exposition format (version 0.0.4): every metric named {@code moe4j_…}
 * with its HELP and TYPE lines; counters end in {@code _total}, times are in seconds; TTFT and TPOT are summaries
 * (quantiles 0.5, 0.9, 0.99 over the engine's last requests, and the sum and count of all).
 */
final class PrometheusText {
    /** The exposition format's content type. */
    static final String CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

    private final StringBuilder out = new StringBuilder();

    private PrometheusText() {}

    static String of(EngineMetrics m) {
        PrometheusText p = new PrometheusText();
        p.gauge("moe4j_requests_waiting", "Requests waiting for admission.", m.queued());
        p.gauge("moe4j_requests_running", "Requests admitted (holding KV cache blocks).", m.running());
        p.gauge("moe4j_kv_cache_blocks_used", "KV cache blocks reserved by running requests.", m.cacheBlocksUsed());
        p.gauge(
                "moe4j_kv_cache_blocks_free",
                "KV cache blocks free for new requests.",
                m.cacheBlocksTotal() - m.cacheBlocksUsed());
        p.counter("moe4j_prompt_tokens_total", "Prompt tokens run.", m.promptTokens());
        p.counter("moe4j_generation_tokens_total", "Tokens generated.", m.generatedTokens());
        p.gauge(
                "moe4j_prompt_tokens_per_second",
                "Prompt tokens per second over the last " + EngineMetrics.RATE_WINDOW_SECONDS + " s.",
                m.promptTokensPerSecond());
        p.gauge(
                "moe4j_generation_tokens_per_second",
                "Generated tokens per second over the last " + EngineMetrics.RATE_WINDOW_SECONDS + " s.",
                m.generatedTokensPerSecond());
        p.counter(
                "moe4j_requests_finished_total",
                "Requests that ended with a result (stop, length or cancelled).",
                m.finished());
        p.counter("moe4j_requests_cancelled_total", "Finished requests that were cancelled.", m.cancelled());
        p.counter("moe4j_requests_failed_total", "Requests that failed in the model.", m.failed());
        p.counter(
                "moe4j_requests_rejected_total",
                "Requests refused at submission (queue full, larger than the cache, shutting down).",
                m.rejected());
        p.counter("moe4j_engine_steps_total", "Model steps run.", m.steps());
        p.summary(
                "moe4j_time_to_first_token_seconds",
                "Seconds from submission to the first token.",
                m.timeToFirstToken());
        p.summary(
                "moe4j_time_per_output_token_seconds",
                "Seconds between a request's tokens after the first (the request's mean).",
                m.timePerOutputToken());
        p.header("moe4j_expert_tokens_total", "Tokens routed to each expert of each MoE layer.", "counter");
        for (EngineMetrics.LayerLoad l : m.expertLoad()) {
            long[] tokens = l.tokensPerExpert();
            for (int e = 0; e < tokens.length; e++)
                p.sample("moe4j_expert_tokens_total{layer=\"" + l.layer() + "\",expert=\"" + e + "\"}", tokens[e]);
        }
        p.header(
                "moe4j_expert_load_imbalance",
                "Per MoE layer, the most loaded expert's tokens over the mean (1 is perfect balance).",
                "gauge");
        for (EngineMetrics.LayerLoad l : m.expertLoad()) {
            long[] tokens = l.tokensPerExpert();
            long max = 0, sum = 0;
            for (long t : tokens) {
                max = Math.max(max, t);
                sum += t;
            }
            double mean = (double) sum / tokens.length;
            p.sample("moe4j_expert_load_imbalance{layer=\"" + l.layer() + "\"}", sum == 0 ? Double.NaN : max / mean);
        }
        p.header(
                "moe4j_device_balance",
                "Per expert-parallel MoE layer, mean over max of the last step's per-device work (1 is perfect).",
                "gauge");
        for (EngineMetrics.LayerBalance b : m.deviceBalance())
            p.sample("moe4j_device_balance{layer=\"" + b.layer() + "\"}", b.balance());
        p.counter("moe4j_rebalances_total", "Expert placements changed by live rebalancing.", m.rebalances());
        return p.out.toString();
    }

    private void gauge(String name, String help, double value) {
        header(name, help, "gauge");
        sample(name, value);
    }

    private void counter(String name, String help, long value) {
        header(name, help, "counter");
        sample(name, value);
    }

    private void summary(String name, String help, EngineMetrics.Percentiles p) {
        header(name, help, "summary");
        sample(name + "{quantile=\"0.5\"}", p.p50());
        sample(name + "{quantile=\"0.9\"}", p.p90());
        sample(name + "{quantile=\"0.99\"}", p.p99());
        sample(name + "_sum", p.sum());
        sample(name + "_count", p.count());
    }

    private void header(String name, String help, String type) {
        out.append("# HELP ").append(name).append(' ').append(help).append('\n');
        out.append("# TYPE ").append(name).append(' ').append(type).append('\n');
    }

    private void sample(String series, double value) {
        out.append(series).append(' ');
        if (Double.isNaN(value)) out.append("NaN");
        else if (value == Math.rint(value) && Math.abs(value) < 1e15) out.append((long) value);
        else out.append(String.format(Locale.ROOT, "%.6g", value));
        out.append('\n');
    }
}
