package dev.moe4j.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.moe4j.testing.DeepSeekFiles;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The DeepSeek-V3 tokenizer against HF's outputs recorded in the fixture. */
class TokenizerTest {
    private final Tokenizer tokenizer = DeepSeekFiles.tokenizer();

    @Test
    void encodesEveryCorpusTextAsHfTokenizers() {
        List<String> mismatches = new ArrayList<>();
        List<Map<String, Object>> cases = DeepSeekFiles.cases("encode");
        for (Map<String, Object> c : cases) {
            String text = (String) c.get("text");
            int[] expected = DeepSeekFiles.ids(c.get("ids"));
            int[] actual = tokenizer.encode(text);
            if (!Arrays.equals(expected, actual)) {
                mismatches.add(quoted(text) + "\n   expected " + Arrays.toString(expected) + "\n   actual   "
                        + Arrays.toString(actual));
            }
        }
        assertTrue(cases.size() > 300, "the corpus has " + cases.size() + " texts");
        assertTrue(
                mismatches.isEmpty(),
                mismatches.size() + " of " + cases.size() + " texts differ, e.g.:\n"
                        + String.join("\n", mismatches.subList(0, Math.min(5, mismatches.size()))));
    }

    @Test
    void decodeOfEncodeIsTheText() {
        for (Map<String, Object> c : DeepSeekFiles.cases("encode")) {
            String text = (String) c.get("text");
            assertEquals(text, tokenizer.decode(tokenizer.encode(text)), () -> quoted(text));
            assertEquals(text, tokenizer.decode(DeepSeekFiles.ids(c.get("ids"))), () -> quoted(text));
        }
    }

    @Test
    void decodesAsHfTokenizers() {
        for (Map<String, Object> c : DeepSeekFiles.cases("decode")) {
            int[] ids = DeepSeekFiles.ids(c.get("ids"));
            boolean skip = (Boolean) c.get("skip_special_tokens");
            assertEquals(c.get("text"), tokenizer.decode(ids, skip), () -> Arrays.toString(ids) + " skip=" + skip);
        }
    }

    @Test
    void addsBosAsTransformersDoes() {
        for (Map<String, Object> c : DeepSeekFiles.cases("encode_special")) {
            String text = (String) c.get("text");
            assertArrayEquals(DeepSeekFiles.ids(c.get("ids")), tokenizer.encode(text, true), () -> quoted(text));
        }
        assertEquals(OptionalInt.of(0), tokenizer.bosId());
        assertEquals(OptionalInt.of(1), tokenizer.eosId());
        int[] plain = tokenizer.encode("Hello world");
        int[] withBos = tokenizer.encode("Hello world", true);
        assertEquals(plain.length + 1, withBos.length);
        assertEquals(0, withBos[0]);
    }

    @Test
    void vocabularyLookups() {
        assertEquals(128815, tokenizer.vocabSize());
        assertEquals(OptionalInt.of(128803), tokenizer.tokenId("<｜User｜>"));
        assertEquals("<｜User｜>", tokenizer.token(128803));
        assertEquals("Ġworld", tokenizer.token(2058));
        assertEquals(OptionalInt.of(2058), tokenizer.tokenId("Ġworld"));
        assertEquals(OptionalInt.empty(), tokenizer.tokenId("no such token"));
        assertTrue(tokenizer.isSpecial(0));
        assertFalse(tokenizer.isSpecial(128803), "<｜User｜> is an added token but not special");
    }

    @Test
    void specialTokensInsideTextAreSingleIds() {
        assertArrayEquals(new int[] {0}, tokenizer.encode("<｜begin▁of▁sentence｜>"));
        int[] ids = tokenizer.encode("hi<｜User｜>there<｜Assistant｜>");
        assertEquals(128803, ids[1], Arrays.toString(ids));
        assertEquals(128804, ids[ids.length - 1], Arrays.toString(ids));
        // A token cut short is plain text.
        for (int id : tokenizer.encode("<｜User and <｜Assistant")) {
            assertTrue(id < 128000, "no added token in a partial match: " + id);
        }
        assertEquals("hi<｜User｜>there", tokenizer.decode(tokenizer.encode("hi<｜User｜>there"), true));
        assertEquals("hi", tokenizer.decode(tokenizer.encode("hi<｜end▁of▁sentence｜>"), true));
    }

    @Test
    void preTokenizerSplitsDigitsInThreesAndCjkApart() {
        assertEquals(List.of("123", "45"), tokens("12345"));
        assertEquals(List.of("Ġ", "123", "456", "7"), tokens(" 1234567"));
        // The CJK split runs before the letter rule, so the Latin word never joins the Han characters.
        assertEquals("abc", tokens("abc你好").get(0));
        // Whitespace before a newline stays with it; a lone trailing run is its own piece.
        assertEquals(List.of("a", "ĠĠĊ", "b"), tokens("a  \nb"));
    }

    @Test
    void streamDecoderMatchesDecodeAndNeverSplitsACharacter() {
        for (Map<String, Object> c : DeepSeekFiles.cases("encode")) {
            String text = (String) c.get("text");
            int[] ids = DeepSeekFiles.ids(c.get("ids"));
            StreamDecoder stream = tokenizer.streamDecoder(false);
            StringBuilder out = new StringBuilder();
            for (int id : ids) {
                String piece = stream.push(id);
                assertFalse(
                        piece.indexOf('\uFFFD') >= 0 && text.indexOf('\uFFFD') < 0, () -> "U+FFFD in " + quoted(text));
                out.append(piece);
            }
            out.append(stream.flush());
            assertEquals(tokenizer.decode(ids), out.toString(), () -> quoted(text));
        }
    }

    @Test
    void streamDecoderHoldsAnEmojiUntilItsLastByte() {
        int[] ids = tokenizer.encode("😀");
        assertEquals(2, ids.length, "the fixture shows 😀 as two byte-level tokens");
        StreamDecoder stream = tokenizer.streamDecoder(false);
        assertEquals("", stream.push(ids[0]));
        assertEquals("😀", stream.push(ids[1]));
        assertEquals("", stream.flush());
        // A character never completed becomes one U+FFFD at the end, as decode gives it.
        assertEquals("", stream.push(ids[0]));
        assertEquals("\uFFFD", stream.flush());
        assertEquals("\uFFFD", tokenizer.decode(new int[] {ids[0]}));
    }

    @Test
    void streamDecoderMatchesDecodeOnIllFormedBytes() {
        for (Map<String, Object> c : DeepSeekFiles.cases("decode")) {
            int[] ids = DeepSeekFiles.ids(c.get("ids"));
            boolean skip = (Boolean) c.get("skip_special_tokens");
            StreamDecoder stream = tokenizer.streamDecoder(skip);
            StringBuilder out = new StringBuilder();
            for (int id : ids) out.append(stream.push(id));
            out.append(stream.flush());
            assertEquals(c.get("text"), out.toString(), () -> Arrays.toString(ids));
        }
    }

    @Test
    void rejectsIdsOutsideTheVocabulary() {
        var e = assertThrows(IllegalArgumentException.class, () -> tokenizer.decode(new int[] {5, 128815}));
        assertTrue(e.getMessage().contains("128815"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> tokenizer.token(-1));
        assertTrue(e.getMessage().contains("-1"), e.getMessage());
        StreamDecoder stream = tokenizer.streamDecoder(false);
        e = assertThrows(IllegalArgumentException.class, () -> stream.push(1 << 20));
        assertTrue(e.getMessage().contains(String.valueOf(1 << 20)), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> tokenizer.encode(null));
    }

    @Test
    void encodesFromManyThreadsAlike() throws Exception {
        List<Map<String, Object>> cases = DeepSeekFiles.cases("encode");
        ExecutorService pool = Executors.newFixedThreadPool(4);
        try {
            List<Future<Boolean>> results = new ArrayList<>();
            for (int t = 0; t < 4; t++) {
                results.add(pool.submit(() -> {
                    for (Map<String, Object> c : cases) {
                        int[] expected = DeepSeekFiles.ids(c.get("ids"));
                        if (!Arrays.equals(expected, tokenizer.encode((String) c.get("text")))) return false;
                    }
                    return true;
                }));
            }
            for (Future<Boolean> r : results) assertTrue(r.get());
        } finally {
            pool.shutdown();
        }
    }

    @Test
    void missingOrCorruptFilesAreNamed(@TempDir Path dir) throws Exception {
        var e = assertThrows(IllegalArgumentException.class, () -> Tokenizer.load(dir));
        assertTrue(e.getMessage().contains("tokenizer.json"), e.getMessage());

        Path file = dir.resolve("tokenizer.json");
        Files.writeString(file, "{\"model\": {\"type\": \"BPE\", ");
        e = assertThrows(IllegalArgumentException.class, () -> Tokenizer.load(dir));
        assertTrue(e.getMessage().contains(file.toString()), e.getMessage());

        Files.writeString(
                file, "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}, \"decoder\": {\"type\": \"ByteLevel\"}}");
        e = assertThrows(IllegalArgumentException.class, () -> Tokenizer.load(dir));
        assertTrue(e.getMessage().contains("model.type") && e.getMessage().contains(file.toString()), e.getMessage());
    }

    private List<String> tokens(String text) {
        List<String> tokens = new ArrayList<>();
        for (int id : tokenizer.encode(text)) tokens.add(tokenizer.token(id));
        return tokens;
    }

    private static String quoted(String text) {
        String shown = text.length() > 80 ? text.substring(0, 80) + "..." : text;
        return "'" + shown.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t") + "'";
    }
}
