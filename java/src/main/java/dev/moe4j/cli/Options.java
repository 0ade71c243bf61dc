package dev.moe4j.cli;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

/** {@code --name value} command-line options, checked against the names a verb accepts. */
final class Options {
    private final String verb;
    private final Map<String, String> values = new LinkedHashMap<>();

    /**
     * @param flags options that take no value
     * @throws IllegalArgumentException on an unknown option or a missing value
     */
    Options(String verb, String[] args, Set<String> valued, Set<String> flags) {
        this.verb = verb;
        for (int i = 0; i < args.length; i++) {
            String name = args[i];
            if (flags.contains(name)) {
                values.put(name, "true");
            } else if (valued.contains(name)) {
                if (i + 1 >= args.length) throw new IllegalArgumentException(name + " needs a value");
                values.put(name, args[++i]);
            } else {
                throw new IllegalArgumentException("unknown option '" + name + "' (" + verb + " takes "
                        + String.join(" ", valued) + (flags.isEmpty() ? "" : " " + String.join(" ", flags)) + ")");
            }
        }
    }

    boolean has(String name) {
        return values.containsKey(name);
    }

    String string(String name) {
        String v = values.get(name);
        if (v == null) throw new IllegalArgumentException(verb + " needs " + name);
        return v;
    }

    String string(String name, String fallback) {
        return values.getOrDefault(name, fallback);
    }

    int positive(String name, int fallback) {
        String v = values.get(name);
        if (v == null) return fallback;
        return parsePositive(name, v);
    }

    int integer(String name) {
        try {
            return Integer.parseInt(string(name));
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(name + " must be an integer, got '" + values.get(name) + "'");
        }
    }

    double number(String name, double fallback) {
        String v = values.get(name);
        if (v == null) return fallback;
        try {
            double d = Double.parseDouble(v);
            if (Double.isFinite(d)) return d;
        } catch (NumberFormatException e) {
            // reported below
        }
        throw new IllegalArgumentException(name + " must be a number, got '" + v + "'");
    }

    long longInteger(String name, long fallback) {
        String v = values.get(name);
        if (v == null) return fallback;
        try {
            return Long.parseLong(v);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(name + " must be an integer, got '" + v + "'");
        }
    }

    static int parsePositive(String name, String v) {
        try {
            int n = Integer.parseInt(v);
            if (n > 0) return n;
        } catch (NumberFormatException e) {
            // reported below
        }
        throw new IllegalArgumentException(name + " must be a positive integer, got '" + v + "'");
    }
}
