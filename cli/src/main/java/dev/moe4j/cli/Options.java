package dev.moe4j.cli;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

/**
 * {@code --name value} command-line options, checked against the names a verb accepts. Public for the verbs that live
 * in other modules (the server's {@code serve} and {@code bench serve}); not thread-safe.
 */
public final class Options {
    private final String verb;
    private final Map<String, String> values = new LinkedHashMap<>();

    /**
     * @param verb names the command in messages
     * @param valued options that take a value
     * @param flags options that take no value
     * @throws IllegalArgumentException on an unknown option or a missing value
     */
    public Options(String verb, String[] args, Set<String> valued, Set<String> flags) {
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

    /** Whether the option was given. */
    public boolean has(String name) {
        return values.containsKey(name);
    }

    /**
     * The option's value.
     *
     * @throws IllegalArgumentException if it was not given
     */
    public String string(String name) {
        String v = values.get(name);
        if (v == null) throw new IllegalArgumentException(verb + " needs " + name);
        return v;
    }

    /** The option's value, or {@code fallback} when it was not given. */
    public String string(String name, String fallback) {
        return values.getOrDefault(name, fallback);
    }

    /**
     * The option's value as an integer ≥ 1, or {@code fallback} when it was not given.
     *
     * @throws IllegalArgumentException if the value is not a positive integer
     */
    public int positive(String name, int fallback) {
        String v = values.get(name);
        if (v == null) return fallback;
        return parsePositive(name, v);
    }

    /**
     * The option's value as an integer.
     *
     * @throws IllegalArgumentException if it was not given or is not an integer
     */
    public int integer(String name) {
        try {
            return Integer.parseInt(string(name));
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(name + " must be an integer, got '" + values.get(name) + "'");
        }
    }

    /**
     * The option's value as a finite number, or {@code fallback} when it was not given.
     *
     * @throws IllegalArgumentException if the value is not a finite number
     */
    public double number(String name, double fallback) {
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
