package dev.moe4j.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.OptionalInt;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A tokenizer small enough that every expected id below is worked out by hand from its merges. */
class HandMadeTokenizerTest {
    // Merge ranks: "b c" 0, "a b" 1, "a bc" 2, "Ġ a" 3, "1 2" 4. Ġ is the byte-level character of a space. Ids are
    // contiguous, added tokens after the vocabulary, as HF writes them (HF's loader renumbers any other layout).
    private static final String TOKENIZER_JSON = """
            {
              "version": "1.0",
              "added_tokens": [
                {"id": 12, "content": "<x>", "single_word": false, "lstrip": false, "rstrip": false,
                 "normalized": false, "special": true},
                {"id": 13, "content": "<m>", "single_word": false, "lstrip": true, "rstrip": true,
                 "normalized": false, "special": false},
                {"id": 14, "content": "ba", "single_word": true, "lstrip": false, "rstrip": false,
                 "normalized": true, "special": false}
              ],
              "normalizer": {"type": "Sequence", "normalizers": []},
              "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": "\\\\p{N}{1,3}"}, "behavior": "Isolated", "invert": false},
                {"type": "Split", "pattern": {"Regex": " ?[a-z]+|\\\\s+"}, "behavior": "Isolated", "invert": false},
                {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}
              ]},
              "post_processor": null,
              "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
              "model": {
                "type": "BPE", "dropout": null, "unk_token": "[UNK]", "continuing_subword_prefix": null,
                "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                "vocab": {"a": 0, "b": 1, "c": 2, "Ġ": 3, "ab": 4, "bc": 5, "abc": 6, "Ġa": 7, "[UNK]": 8,
                          "1": 9, "2": 10, "12": 11},
                "merges": ["b c", "a b", "a bc", "Ġ a", "1 2"]
              }
            }
            """;

    private static Tokenizer tokenizer;

    @BeforeAll
    static void load(@TempDir Path dir) throws Exception {
        Files.writeString(dir.resolve("tokenizer.json"), TOKENIZER_JSON);
        Files.writeString(dir.resolve("tokenizer_config.json"), """
                {"add_bos_token": true, "add_eos_token": true, "bos_token": "<x>",
                 "eos_token": {"__type": "AddedToken", "content": "<m>"}}
                """);
        tokenizer = Tokenizer.load(dir);
    }

    @Test
    void mergesTheLowestRankFirstNotTheLeftmostPair() {
        // a b c: "b c" (rank 0) before "a b" (rank 1), then "a bc" (rank 2). Left to right would give [ab, c].
        assertArrayEquals(new int[] {6}, tokenizer.encode("abc"));
        // Ġ a b c: bc, then a+bc (rank 2) beats Ġ+a (rank 3); Ġ+abc is no merge.
        assertArrayEquals(new int[] {3, 6}, tokenizer.encode(" abc"));
        // Equal ranks merge leftmost first: a b a b -> ab a b -> ab ab.
        assertArrayEquals(new int[] {4, 4}, tokenizer.encode("abab"));
        // Longer than the cached length: the same merges.
        int[] many = new int[1000];
        Arrays.fill(many, 4);
        assertArrayEquals(many, tokenizer.encode("ab".repeat(1000)));
    }

    @Test
    void digitsSplitInThreesAndUnknownSymbolsBecomeUnk() {
        // "1234" -> "123" "4"; 1 2 merge, 3 and 4 are not in the vocabulary.
        assertArrayEquals(new int[] {11, 8, 8}, tokenizer.encode("1234"));
        // "\n" is its own piece (Ċ), not in the vocabulary.
        assertArrayEquals(new int[] {0, 8, 1}, tokenizer.encode("a\nb"));
    }

    @Test
    void addedTokensWithTheirFlags() {
        assertArrayEquals(new int[] {0, 12, 1}, tokenizer.encode("a<x>b"));
        // lstrip and rstrip: <m> takes the spaces around it.
        assertArrayEquals(new int[] {0, 13, 1}, tokenizer.encode("a  <m>  b"));
        // single_word: "ba" is the added token only where no word character touches it.
        assertArrayEquals(new int[] {3, 14}, tokenizer.encode(" ba"));
        assertArrayEquals(new int[] {14, 3, 2}, tokenizer.encode("ba c"));
        assertArrayEquals(new int[] {4, 0}, tokenizer.encode("aba"));
    }

    @Test
    void specialTokensFromTheConfig() {
        assertEquals(OptionalInt.of(12), tokenizer.bosId());
        assertEquals(OptionalInt.of(13), tokenizer.eosId());
        assertArrayEquals(new int[] {12, 6, 13}, tokenizer.encode("abc", true));
        assertArrayEquals(new int[] {12, 13}, tokenizer.encode("", true));
    }

    @Test
    void decodesAndSkipsOnlySpecialTokens() {
        assertEquals("a<x>b", tokenizer.decode(new int[] {0, 12, 1}));
        assertEquals("ab", tokenizer.decode(new int[] {0, 12, 1}, true));
        assertEquals("a<m>b", tokenizer.decode(new int[] {0, 13, 1}, true));
        assertEquals(" abc", tokenizer.decode(new int[] {3, 6}));
        assertEquals(15, tokenizer.vocabSize());
        var e = assertThrows(IllegalArgumentException.class, () -> tokenizer.decode(new int[] {15}));
        assertTrue(e.getMessage().contains("15"), e.getMessage());
    }

    @Test
    void byteLevelWithPrefixSpaceAndGpt2Split(@TempDir Path dir) throws Exception {
        String json = TOKENIZER_JSON
                .replaceFirst(
                        "(?s)\"pre_tokenizer\": \\{.*?\\]\\},",
                        "\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"use_regex\": true},")
                .replace(
                        "[\"b c\", \"a b\", \"a bc\", \"Ġ a\", \"1 2\"]",
                        "[[\"b\", \"c\"], [\"a\", \"b\"], [\"a\", \"bc\"], [\"Ġ\", \"a\"], [\"1\", \"2\"]]");
        Files.writeString(dir.resolve("tokenizer.json"), json);
        Tokenizer t = Tokenizer.load(dir);
        // " abc" " abab" after the prefix space; every piece between added tokens gets its own.
        assertArrayEquals(new int[] {3, 6, 3, 4, 4}, t.encode("abc abab"));
        assertArrayEquals(new int[] {3, 6, 12, 3, 6}, t.encode("abc<x>abc"));
        assertArrayEquals(new int[] {3, 4, 3, 3, 8, 3, 4}, t.encode("ab  \n ab"));
    }

    @Test
    void configErrorsNameTheFileAndField(@TempDir Path dir) throws Exception {
        Files.writeString(dir.resolve("tokenizer.json"), TOKENIZER_JSON);
        Files.writeString(dir.resolve("tokenizer_config.json"), "{\"add_bos_token\": true}");
        var e = assertThrows(IllegalArgumentException.class, () -> Tokenizer.load(dir));
        assertTrue(
                e.getMessage().contains("tokenizer_config.json")
                        && e.getMessage().contains("bos_token"),
                e.getMessage());

        Files.delete(dir.resolve("tokenizer_config.json"));
        Files.writeString(dir.resolve("tokenizer.json"), TOKENIZER_JSON.replace("\"b c\"", "\"b z\""));
        e = assertThrows(IllegalArgumentException.class, () -> Tokenizer.load(dir));
        assertTrue(e.getMessage().contains("merge 0") && e.getMessage().contains("'z'"), e.getMessage());

        Files.writeString(dir.resolve("tokenizer.json"), TOKENIZER_JSON.replace("\"Isolated\"", "\"Removed\""));
        e = assertThrows(IllegalArgumentException.class, () -> Tokenizer.load(dir));
        assertTrue(e.getMessage().contains("Split.behavior"), e.getMessage());

        Files.writeString(dir.resolve("tokenizer.json"), TOKENIZER_JSON.replace("[a-z]+|", "[a-z+|"));
        e = assertThrows(IllegalArgumentException.class, () -> Tokenizer.load(dir));
        assertTrue(e.getMessage().contains("regex"), e.getMessage());
    }
}
