package dev.moe4j.internal;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.json.JsonMapper;
import java.util.List;
import java.util.Map;

/**
 * The project's one JSON codec (Jackson, configured once here): parsing into {@code Map<String, Object>}
 * (insertion-ordered), {@code List<Object>}, {@link String}, {@link Long} (integers; {@link java.math.BigInteger} past
 * its range), {@link Double} (other numbers), {@link Boolean} and null; and writing such values back as compact JSON.
 * Strict RFC 8259 (no comments, NaN or trailing text) except that a duplicate key keeps the last value, as Python's
 * json does. Used for HF {@code config.json}, safetensors headers, checkpoint indexes, tokenizer files and the CLI's
 * JSON output. Thread-safe.
 */
public final class Json {
    private Json() {}

    // Nesting deeper than this is an attack, not a model file; strings and documents keep Jackson's generous limits
    // (a tokenizer.json is several MB).
    private static final int MAX_NESTING = 256;

    private static final JsonMapper MAPPER = JsonMapper.builder()
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .disable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS)
            .build();

    static {
        MAPPER.getFactory()
                .setStreamReadConstraints(StreamReadConstraints.builder()
                        .maxNestingDepth(MAX_NESTING)
                        .maxStringLength(Integer.MAX_VALUE / 2)
                        .build());
    }

    /**
     * @throws IllegalArgumentException describing the first syntax error and where it is (line and column)
     */
    public static Object parse(String text) {
        try {
            return widenInts(MAPPER.readValue(text, Object.class));
        } catch (JacksonException e) {
            throw new IllegalArgumentException("bad JSON: " + e.getOriginalMessage() + locationOf(e), e);
        }
    }

    // Jackson reads small integers as Integer (USE_LONG_FOR_INTS would fail past long's range instead of giving a
    // BigInteger); callers get one integer type.
    @SuppressWarnings("unchecked")
    private static Object widenInts(Object value) {
        switch (value) {
            case Integer i -> {
                return (long) i;
            }
            case Map<?, ?> map -> ((Map<Object, Object>) map).replaceAll((k, v) -> widenInts(v));
            case List<?> list -> ((List<Object>) list).replaceAll(Json::widenInts);
            case null, default -> {}
        }
        return value;
    }

    private static String locationOf(JacksonException e) {
        var at = e.getLocation();
        return at == null ? "" : " (line " + at.getLineNr() + ", column " + at.getColumnNr() + ")";
    }

    /**
     * Writes a value made of maps, lists, strings, numbers, booleans and null as compact JSON.
     *
     * @throws IllegalArgumentException for NaN or an infinite number (JSON has none) or a value of another type
     */
    public static String write(Object value) {
        check(value);
        try {
            return MAPPER.writeValueAsString(value);
        } catch (JacksonException e) {
            throw new IllegalArgumentException("cannot write JSON: " + e.getOriginalMessage(), e);
        }
    }

    private static void check(Object value) {
        switch (value) {
            case null -> {}
            case String s -> {}
            case Boolean b -> {}
            case Double d when d.isNaN() || d.isInfinite() -> throw new IllegalArgumentException("JSON has no " + d);
            case Float f when f.isNaN() || f.isInfinite() -> throw new IllegalArgumentException("JSON has no " + f);
            case Number n -> {}
            case Map<?, ?> map -> map.values().forEach(Json::check);
            case List<?> list -> list.forEach(Json::check);
            default ->
                throw new IllegalArgumentException(
                        "cannot write " + value.getClass().getName() + " as JSON");
        }
    }
}
