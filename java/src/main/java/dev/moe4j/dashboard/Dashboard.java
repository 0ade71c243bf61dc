package dev.moe4j.dashboard;

import dev.moe4j.engine.EngineMetrics;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;

/**
 * Renders a {@link DashboardData} as one self-contained HTML page: inline CSS and inline SVG, no script and no external
 * asset. The SVG elements carry classes a test (or a user's stylesheet) can find: {@code cell} (one heatmap cell per
 * layer and expert), {@code series} (one path per time series with samples), {@code bar before} and {@code bar after}
 * (one pair per rebalance) and {@code roofline} (one bar per fraction). Stateless and thread-safe.
 */
public final class Dashboard {
    private Dashboard() {}

    /** The most rebalances drawn (the latest ones). */
    public static final int MAX_REBALANCES = 48;

    private static final String[] COLOURS = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf"};
    private static final String STYLE = """
            body{font:14px system-ui,sans-serif;margin:24px;color:#222;background:#fafafa}
            h1{font-size:22px;margin:0 0 8px}h2{font-size:16px;margin:24px 0 8px}
            .facts{color:#555;margin:0;padding-left:18px}.panel{background:#fff;border:1px solid #ddd;padding:12px;
            margin-bottom:12px;display:inline-block;vertical-align:top}.none{color:#777;font-style:italic}
            svg text{font:11px system-ui,sans-serif;fill:#333}.axis{stroke:#999;stroke-width:1}
            .series{fill:none;stroke-width:2}.before{fill:#bbb}.after{fill:#2ca02c}.roofline{fill:#1f77b4}
            """;

    /**
     * The page.
     *
     * @param refreshSeconds > 0: the page reloads itself this often (a live dashboard); 0: a static report
     */
    public static String html(DashboardData d, int refreshSeconds) {
        if (refreshSeconds < 0) throw new IllegalArgumentException("refreshSeconds must be ≥ 0, got " + refreshSeconds);
        StringBuilder h = new StringBuilder(16_384);
        h.append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
        if (refreshSeconds > 0)
            h.append("<meta http-equiv=\"refresh\" content=\"")
                    .append(refreshSeconds)
                    .append("\">");
        h.append("<title>")
                .append(escape(d.title()))
                .append("</title><style>")
                .append(STYLE)
                .append("</style>");
        h.append("</head><body>\n<h1>").append(escape(d.title())).append("</h1>\n<ul class=\"facts\">");
        for (String fact : d.facts()) h.append("<li>").append(escape(fact)).append("</li>");
        h.append("</ul>\n");

        h.append("<h2>Expert load per layer (tokens routed to each expert)</h2>\n");
        if (d.expertLoad().isEmpty()) h.append("<p class=\"none\">no MoE layer has run yet</p>\n");
        else heatmap(h, d.expertLoad());

        h.append("<h2>Device balance before and after each rebalance (mean / max device load)</h2>\n");
        if (d.rebalances().isEmpty())
            h.append("<p class=\"none\">no live rebalance yet (experts on one device, or rebalancing off)</p>\n");
        else balance(h, d.rebalances());

        h.append("<h2>Over time</h2>\n");
        if (d.charts().isEmpty()) h.append("<p class=\"none\">no samples yet</p>\n");
        for (DashboardData.Chart c : d.charts()) chart(h, c);

        h.append("<h2>Roofline (fraction of the machine's ceiling reached)</h2>\n");
        if (d.roofline().isEmpty())
            h.append("<p class=\"none\">not measured here (./moe4j bench generate measures the machine)</p>\n");
        else roofline(h, d.roofline());
        return h.append("</body></html>\n").toString();
    }

    /**
     * Writes the page (a static report) to {@code file}, creating its folder.
     *
     * @return the file's absolute path
     * @throws UncheckedIOException if it cannot be written
     */
    public static Path write(DashboardData d, Path file) {
        Path path = file.toAbsolutePath();
        try {
            if (path.getParent() != null) Files.createDirectories(path.getParent());
            Files.writeString(path, html(d, 0), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the report " + path + ": " + e.getMessage(), e);
        }
        return path;
    }

    // ---------------------------------------------------------------- the parts

    private static void heatmap(StringBuilder h, List<EngineMetrics.LayerLoad> layers) {
        int experts = 0;
        for (EngineMetrics.LayerLoad l : layers) experts = Math.max(experts, l.tokensPerExpert().length);
        double cell = Math.max(3, Math.min(18, 900.0 / Math.max(1, experts)));
        int rowH = 16, left = 60, top = 16;
        double width = Math.max(420, left + experts * cell + 10);
        int height = top + layers.size() * rowH + 8;
        h.append("<div class=\"panel\"><svg class=\"heatmap\" xmlns=\"http://www.w3.org/2000/svg\" width=\"")
                .append(fmt(width))
                .append("\" height=\"")
                .append(height)
                .append("\">");
        h.append("<text x=\"").append(left).append("\" y=\"11\">experts 0..").append(experts - 1);
        h.append(" (colour: share of the layer's busiest expert)</text>");
        for (int row = 0; row < layers.size(); row++) {
            EngineMetrics.LayerLoad l = layers.get(row);
            long[] counts = l.tokensPerExpert();
            long max = 1;
            for (long c : counts) max = Math.max(max, c);
            int y = top + row * rowH;
            h.append("<text x=\"4\" y=\"")
                    .append(y + 12)
                    .append("\">layer ")
                    .append(l.layer())
                    .append("</text>");
            for (int e = 0; e < counts.length; e++) {
                double share = (double) counts[e] / max;
                h.append("<rect class=\"cell\" x=\"")
                        .append(fmt(left + e * cell))
                        .append("\" y=\"")
                        .append(y)
                        .append("\" width=\"")
                        .append(fmt(cell - 1))
                        .append("\" height=\"")
                        .append(rowH - 2)
                        .append("\" fill=\"")
                        .append(heat(share))
                        .append("\"><title>layer ")
                        .append(l.layer())
                        .append(", expert ")
                        .append(e)
                        .append(": ")
                        .append(counts[e])
                        .append(" tokens</title></rect>");
            }
        }
        h.append("</svg></div>\n");
    }

    /** White (0) through yellow to dark red (1). */
    private static String heat(double share) {
        double s = Math.clamp(share, 0, 1);
        int r = (int) Math.round(255 - 80 * s),
                g = (int) Math.round(255 - 235 * s),
                b = (int) Math.round(235 - 215 * s);
        return String.format(Locale.ROOT, "rgb(%d,%d,%d)", r, g, b);
    }

    private static void balance(StringBuilder h, List<DashboardData.Rebalance> all) {
        List<DashboardData.Rebalance> shown = all.subList(Math.max(0, all.size() - MAX_REBALANCES), all.size());
        int barW = 8, gap = 6, plotH = 120, left = 36, top = 10;
        int width = left + shown.size() * (2 * barW + gap) + 10;
        h.append("<div class=\"panel\"><svg class=\"balance\" xmlns=\"http://www.w3.org/2000/svg\" width=\"")
                .append(Math.max(width, 380))
                .append("\" height=\"")
                .append(top + plotH + 34)
                .append("\">");
        axes(h, left, top, width - left, plotH, "1", "0");
        for (int i = 0; i < shown.size(); i++) {
            DashboardData.Rebalance r = shown.get(i);
            int x = left + 4 + i * (2 * barW + gap);
            bar(
                    h,
                    "bar before",
                    x,
                    top,
                    barW,
                    plotH,
                    r.before(),
                    "layer " + r.layer() + ", step " + r.step() + ": before " + fmt(r.before()));
            bar(
                    h,
                    "bar after",
                    x + barW,
                    top,
                    barW,
                    plotH,
                    r.after(),
                    "layer " + r.layer() + ", step " + r.step() + ": after " + fmt(r.after()));
        }
        int legendY = top + plotH + 26;
        h.append("<rect class=\"before\" x=\"").append(left).append("\" y=\"").append(legendY - 9);
        h.append("\" width=\"10\" height=\"10\"/><text x=\"")
                .append(left + 14)
                .append("\" y=\"")
                .append(legendY);
        h.append("\">before</text><rect class=\"after\" x=\"")
                .append(left + 70)
                .append("\" y=\"")
                .append(legendY - 9);
        h.append("\" width=\"10\" height=\"10\"/><text x=\"")
                .append(left + 84)
                .append("\" y=\"")
                .append(legendY);
        h.append("\">after (")
                .append(all.size())
                .append(" rebalances, the last ")
                .append(shown.size());
        h.append(" shown)</text></svg></div>\n");
    }

    private static void bar(StringBuilder h, String cls, int x, int top, int w, int plotH, double v, String title) {
        double height = Double.isFinite(v) ? Math.clamp(v, 0, 1) * plotH : 0;
        h.append("<rect class=\"")
                .append(cls)
                .append("\" x=\"")
                .append(x)
                .append("\" y=\"")
                .append(fmt(top + plotH - height))
                .append("\" width=\"")
                .append(w - 1)
                .append("\" height=\"")
                .append(fmt(height))
                .append("\"><title>")
                .append(escape(title))
                .append("</title></rect>");
    }

    private static void chart(StringBuilder h, DashboardData.Chart c) {
        int legendRows = (Math.max(1, c.series().size()) + 2) / 3;
        int width = 440, left = 52, top = 24, plotW = width - left - 12, plotH = 152;
        int height = top + plotH + 30 + 14 * legendRows;
        double tMin = Double.POSITIVE_INFINITY, tMax = Double.NEGATIVE_INFINITY, vMax = 0;
        for (TimeSeries.Samples s : c.series()) {
            double[] t = s.seconds(), v = s.values();
            for (int i = 0; i < t.length; i++) {
                tMin = Math.min(tMin, t[i]);
                tMax = Math.max(tMax, t[i]);
                if (Double.isFinite(v[i])) vMax = Math.max(vMax, v[i]);
            }
        }
        if (!(tMax > tMin)) {
            tMin = Double.isFinite(tMin) ? tMin - 1 : 0;
            tMax = tMin + 2;
        }
        if (vMax <= 0) vMax = 1;
        h.append("<div class=\"panel\"><svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"")
                .append(width)
                .append("\" height=\"")
                .append(height)
                .append("\"><text x=\"")
                .append(left)
                .append("\" y=\"14\">")
                .append(escape(c.title() + " (" + c.unit() + ")"))
                .append("</text>");
        axes(h, left, top, plotW, plotH, fmt(vMax), "0");
        h.append("<text x=\"")
                .append(left)
                .append("\" y=\"")
                .append(top + plotH + 14)
                .append("\">");
        h.append(fmt(tMin))
                .append(" s</text><text x=\"")
                .append(left + plotW - 40)
                .append("\" y=\"");
        h.append(top + plotH + 14).append("\">").append(fmt(tMax)).append(" s</text>");
        for (int k = 0; k < c.series().size(); k++) {
            TimeSeries.Samples s = c.series().get(k);
            String colour = COLOURS[k % COLOURS.length];
            if (s.size() > 0) {
                StringBuilder d = new StringBuilder();
                double[] t = s.seconds(), v = s.values();
                boolean pen = false;
                for (int i = 0; i < t.length; i++) {
                    if (!Double.isFinite(v[i])) {
                        pen = false;
                        continue;
                    }
                    double x = left + (t[i] - tMin) / (tMax - tMin) * plotW;
                    double y = top + plotH - Math.clamp(v[i] / vMax, 0, 1) * plotH;
                    d.append(pen ? " L" : " M").append(fmt(x)).append(' ').append(fmt(y));
                    // a lone point still shows: a short tick
                    if (!pen && (i + 1 >= t.length || !Double.isFinite(v[i + 1]))) d.append(" l2 0");
                    pen = true;
                }
                if (!d.isEmpty())
                    h.append("<path class=\"series\" stroke=\"")
                            .append(colour)
                            .append("\" d=\"")
                            .append(d.toString().strip())
                            .append("\"><title>")
                            .append(escape(s.name()))
                            .append("</title></path>");
            }
            int ly = top + plotH + 30 + 14 * (k / 3);
            int lx = left + (k % 3) * 125;
            h.append("<rect x=\"").append(lx).append("\" y=\"").append(ly - 9);
            h.append("\" width=\"10\" height=\"10\" fill=\"").append(colour).append("\"/><text x=\"");
            h.append(lx + 14)
                    .append("\" y=\"")
                    .append(ly)
                    .append("\">")
                    .append(escape(s.name()))
                    .append("</text>");
        }
        h.append("</svg></div>\n");
    }

    private static void roofline(StringBuilder h, List<DashboardData.Fraction> fractions) {
        int rowH = 22, left = 260, barMax = 300, top = 6;
        h.append("<div class=\"panel\"><svg class=\"rooflines\" xmlns=\"http://www.w3.org/2000/svg\" width=\"")
                .append(left + barMax + 90)
                .append("\" height=\"")
                .append(top + fractions.size() * rowH + 6)
                .append("\">");
        for (int i = 0; i < fractions.size(); i++) {
            DashboardData.Fraction f = fractions.get(i);
            int y = top + i * rowH;
            double w = Double.isFinite(f.value()) ? Math.clamp(f.value(), 0, 1) * barMax : 0;
            h.append("<text x=\"4\" y=\"")
                    .append(y + 14)
                    .append("\">")
                    .append(escape(f.label()))
                    .append("</text>");
            h.append("<rect x=\"")
                    .append(left)
                    .append("\" y=\"")
                    .append(y + 3)
                    .append("\" width=\"")
                    .append(barMax);
            h.append("\" height=\"14\" fill=\"#eee\"/><rect class=\"roofline\" x=\"")
                    .append(left)
                    .append("\" y=\"");
            h.append(y + 3).append("\" width=\"").append(fmt(w)).append("\" height=\"14\"/><text x=\"");
            h.append(left + barMax + 6).append("\" y=\"").append(y + 14).append("\">");
            h.append(Double.isFinite(f.value()) ? fmt(100 * f.value()) + "%" : "unmeasured")
                    .append("</text>");
        }
        h.append("</svg></div>\n");
    }

    private static void axes(StringBuilder h, int left, int top, int w, int plotH, String high, String low) {
        h.append("<line class=\"axis\" x1=\"")
                .append(left)
                .append("\" y1=\"")
                .append(top)
                .append("\" x2=\"");
        h.append(left)
                .append("\" y2=\"")
                .append(top + plotH)
                .append("\"/><line class=\"axis\" x1=\"")
                .append(left);
        h.append("\" y1=\"")
                .append(top + plotH)
                .append("\" x2=\"")
                .append(left + w)
                .append("\" y2=\"");
        h.append(top + plotH)
                .append("\"/><text x=\"2\" y=\"")
                .append(top + 8)
                .append("\">")
                .append(high);
        h.append("</text><text x=\"2\" y=\"")
                .append(top + plotH)
                .append("\">")
                .append(low)
                .append("</text>");
    }

    /** A number with at most 3 significant decimals, no exponent. */
    static String fmt(double v) {
        if (!Double.isFinite(v)) return "0";
        double a = Math.abs(v);
        String s = String.format(Locale.ROOT, a >= 100 ? "%.0f" : a >= 1 ? "%.2f" : "%.3f", v);
        if (s.contains(".")) s = s.replaceAll("0+$", "").replaceAll("\\.$", "");
        return s.equals("-0") ? "0" : s;
    }

    /** Text for HTML and SVG: &lt;, &gt;, &amp; and quotes escaped. */
    static String escape(String text) {
        StringBuilder s = new StringBuilder(text.length());
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            switch (c) {
                case '<' -> s.append("&lt;");
                case '>' -> s.append("&gt;");
                case '&' -> s.append("&amp;");
                case '"' -> s.append("&quot;");
                case '\'' -> s.append("&#39;");
                default -> s.append(c);
            }
        }
        return s.toString();
    }
}
