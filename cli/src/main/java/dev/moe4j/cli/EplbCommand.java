package dev.moe4j.cli;

import dev.moe4j.internal.Json;
import dev.moe4j.placement.Eplb;
import dev.moe4j.placement.Placement;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * {@code eplb}: expert placement from a load file. The file is CSV (one layer per line, one number per expert) or a
 * JSON array of arrays. Prints a table of devices, their experts and loads, or with {@code --json} EPLB's three
 * arrays.
 */
final class EplbCommand {
    private EplbCommand() {}

    static final String USAGE = "eplb --load FILE --replicas R --groups G --nodes N --devices D"
            + " [--policy deepseek|refined|hierarchical|global|balanced-locality] [--cross-node-cost C] [--json]";

    static int run(String[] args) {
        Options o = new Options(
                "eplb",
                args,
                Set.of("--load", "--replicas", "--groups", "--nodes", "--devices", "--policy", "--cross-node-cost"),
                Set.of("--json"));
        Path file = Path.of(o.string("--load"));
        double[][] load = readLoad(file);
        Eplb.Policy policy = Eplb.Policy.parse(o.string("--policy", "deepseek"));
        if (policy == Eplb.Policy.BALANCED_LOCALITY && !o.has("--cross-node-cost"))
            throw new IllegalArgumentException("--policy balanced-locality needs --cross-node-cost C (the cost of one"
                    + " token sent across nodes, in tokens of load on the most loaded device)");
        int groups = o.positive("--groups", 1), nodes = o.positive("--nodes", 1);
        Placement p = Eplb.rebalance(
                load,
                o.positive("--replicas", 0),
                groups,
                nodes,
                o.positive("--devices", 0),
                policy,
                o.number("--cross-node-cost", 0));
        if (o.has("--json")) {
            Map<String, Object> out = new LinkedHashMap<>();
            out.put("phy2log", p.phy2log());
            out.put("log2phy", p.log2phy());
            out.put("logcnt", p.logcnt());
            System.out.println(Json.write(lists(out)));
            return 0;
        }
        for (int l = 0; l < p.layers(); l++) {
            double[] deviceLoad = p.deviceLoads(l, load[l]);
            System.out.printf(
                    "layer %d: max/mean device load %.3f, cross-node tokens %.1f (%s policy)%n",
                    l,
                    p.imbalance(l, load[l]),
                    p.crossNodeTokens(l, load[l], groups, nodes),
                    policy.name().toLowerCase().replace('_', '-'));
            int per = p.slotsPerDevice();
            for (int d = 0; d < p.devices(); d++) {
                StringBuilder experts = new StringBuilder();
                for (int s = d * per; s < (d + 1) * per; s++) {
                    int e = p.phy2log()[l][s];
                    experts.append(' ').append(e);
                    if (p.logcnt()[l][e] > 1) experts.append("/").append(p.logcnt()[l][e]);
                }
                System.out.printf("  device %3d  load %10.1f  experts%s%n", d, deviceLoad[d], experts);
            }
        }
        System.out.println("(e/n: expert e, one of its n replicas, each taking 1/n of its load)");
        return 0;
    }

    /** CSV (one layer per line) or a JSON array of arrays of numbers. */
    static double[][] readLoad(Path file) {
        String text;
        try {
            text = Files.readString(file).strip();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read load file " + file + ": " + e.getMessage(), e);
        }
        List<double[]> layers = new ArrayList<>();
        if (text.startsWith("[")) {
            Object parsed;
            try {
                parsed = Json.parse(text);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("load file " + file + ": " + e.getMessage(), e);
            }
            if (!(parsed instanceof List<?> rows))
                throw new IllegalArgumentException("load file " + file + " is not a JSON array of arrays");
            for (Object row : rows) {
                if (!(row instanceof List<?> values))
                    throw new IllegalArgumentException(
                            "load file " + file + ": layer " + layers.size() + " is not an array");
                double[] v = new double[values.size()];
                for (int i = 0; i < v.length; i++) {
                    if (!(values.get(i) instanceof Number n))
                        throw new IllegalArgumentException("load file " + file + ": layer " + layers.size()
                                + ", expert " + i + " is not a number");
                    v[i] = n.doubleValue();
                }
                layers.add(v);
            }
        } else {
            String[] lines = text.split("\\R");
            for (int line = 0; line < lines.length; line++) {
                if (lines[line].isBlank()) continue;
                String[] cells = lines[line].split(",");
                double[] v = new double[cells.length];
                for (int i = 0; i < cells.length; i++) {
                    try {
                        v[i] = Double.parseDouble(cells[i].strip());
                    } catch (NumberFormatException e) {
                        throw new IllegalArgumentException("load file " + file + ", line " + (line + 1) + ", column "
                                + (i + 1) + ": '" + cells[i].strip() + "' is not a number");
                    }
                }
                layers.add(v);
            }
        }
        if (layers.isEmpty()) throw new IllegalArgumentException("load file " + file + " holds no layer");
        return layers.toArray(double[][]::new);
    }

    /** int arrays (any depth) as lists, for the JSON writer. */
    private static Object lists(Object value) {
        return switch (value) {
            case int[] a -> Arrays.stream(a).boxed().toList();
            case Object[] a -> Arrays.stream(a).map(EplbCommand::lists).toList();
            case Map<?, ?> m -> {
                Map<String, Object> out = new LinkedHashMap<>();
                m.forEach((k, v) -> out.put((String) k, lists(v)));
                yield out;
            }
            default -> value;
        };
    }
}
