package dev.moe4j.tokenizer;

import dev.moe4j.internal.Json;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.regex.Pattern;

/**
 * A byte-level BPE tokenizer read from HF's {@code tokenizer.json} and {@code tokenizer_config.json}, as DeepSeek-V2
 * and V3 ship them, giving the same ids as HF {@code tokenizers}.
 *
 * <p>Encoding: added tokens ({@code added_tokens}, special or not) are found first, leftmost-longest; the text between
 * them is pre-tokenized (regex {@code Split}s, then {@code ByteLevel}) and each piece is merged by BPE rank. Decoding
 * maps each id back to its bytes (an added token to its own text) and reads the bytes as UTF-8, each ill-formed part
 * becoming U+FFFD, as HF's ByteLevel decoder does; {@code decode(encode(text)) == text} for every text.
 *
 * <p>Supported configuration, anything else is rejected at load with the field named: model {@code BPE} (no dropout,
 * no subword prefix or suffix); normalizer absent or an empty {@code Sequence}; pre-tokenizer {@code Split} (regex or
 * string pattern, behaviour {@code Isolated}), {@code ByteLevel}, or a {@code Sequence} of them; decoder
 * {@code ByteLevel}. The {@code post_processor} of tokenizer.json is not used: the special tokens that encoding adds
 * come from tokenizer_config.json's {@code add_bos_token} and {@code add_eos_token}, as transformers'
 * LlamaTokenizerFast (DeepSeek's tokenizer_class) adds them.
 *
 * <p>Immutable and thread-safe; the word cache it keeps is bounded and concurrent.
 */
public final class Tokenizer {
    /** The file holding the vocabulary, merges, added tokens, pre-tokenizer and decoder. */
    public static final String TOKENIZER_FILE = "tokenizer.json";

    private final Bpe bpe;
    private final AddedVocabulary added;
    private final PreTokenizer preTokenizer;
    private final Map<String, Integer> addedIds;

    // Indexed by id: the token's text, its bytes for decoding and whether it is special; null where no token.
    private final String[] tokens;
    private final byte[][] tokenBytes;
    private final boolean[] special;

    private final TokenizerConfig config;
    private final int bosId;
    private final int eosId;

    private Tokenizer(
            Bpe bpe, List<AddedToken> addedTokens, PreTokenizer preTokenizer, TokenizerConfig config, Path configFile) {
        this.bpe = bpe;
        this.added = new AddedVocabulary(addedTokens);
        this.preTokenizer = preTokenizer;
        this.config = config;

        int size = 0;
        for (int id : bpe.vocab().values()) size = Math.max(size, id + 1);
        for (AddedToken t : addedTokens) size = Math.max(size, t.id() + 1);
        tokens = new String[size];
        tokenBytes = new byte[size][];
        special = new boolean[size];
        for (var e : bpe.vocab().entrySet()) {
            tokens[e.getValue()] = e.getKey();
            tokenBytes[e.getValue()] = ByteLevel.decodeToken(e.getKey());
        }
        Map<String, Integer> ids = new HashMap<>();
        for (AddedToken t : addedTokens) {
            // An added token's id may also be in the vocabulary; decoding uses the added token, as HF does.
            tokens[t.id()] = t.content();
            tokenBytes[t.id()] = ByteLevel.decodeToken(t.content());
            special[t.id()] = t.special();
            ids.put(t.content(), t.id());
        }
        this.addedIds = Map.copyOf(ids);
        this.bosId = specialId(config.bosToken(), config.addBosToken(), "bos_token", "add_bos_token", configFile);
        this.eosId = specialId(config.eosToken(), config.addEosToken(), "eos_token", "add_eos_token", configFile);
    }

    private int specialId(String text, boolean added, String name, String flag, Path configFile) {
        if (text == null) {
            if (added) {
                throw new IllegalArgumentException(configFile + ": " + flag + " is true but " + name + " is not set");
            }
            return -1;
        }
        OptionalInt id = tokenId(text);
        if (id.isEmpty()) {
            throw new IllegalArgumentException(
                    configFile + ": " + name + " '" + text + "' is not a token of the vocabulary");
        }
        return id.getAsInt();
    }

    /**
     * Reads {@code dir/tokenizer.json} and, when present, {@code dir/tokenizer_config.json} (without it no special
     * tokens are added, and bos/eos are absent).
     *
     * @param dir a folder holding HF tokenizer files
     * @return the tokenizer
     * @throws IllegalArgumentException naming the file if tokenizer.json is missing, is not valid JSON, or uses a
     *     configuration this class does not implement (the message names the field); or if tokenizer_config.json is
     *     malformed
     * @throws UncheckedIOException naming the file if it exists but cannot be read
     */
    public static Tokenizer load(Path dir) {
        if (dir == null) throw new IllegalArgumentException("dir is null");
        Path file = dir.resolve(TOKENIZER_FILE);
        if (!Files.isRegularFile(file)) {
            throw new IllegalArgumentException(
                    "no " + TOKENIZER_FILE + " in " + dir + " (" + file + " does not exist)");
        }
        Path configFile = dir.resolve(TokenizerConfig.FILE);
        TokenizerConfig config =
                Files.isRegularFile(configFile) ? TokenizerConfig.read(configFile) : TokenizerConfig.empty();
        String text;
        try {
            text = Files.readString(file, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + file + ": " + e.getMessage(), e);
        }
        Bpe bpe;
        List<AddedToken> addedTokens;
        PreTokenizer preTokenizer;
        try {
            Map<?, ?> root = object(Json.parse(text), "the top level");
            bpe = model(object(root.get("model"), "model"));
            addedTokens = addedTokens(root.get("added_tokens"));
            checkNormalizer(root.get("normalizer"));
            preTokenizer = new PreTokenizer(preTokenizerSteps(root.get("pre_tokenizer")));
            checkDecoder(root.get("decoder"));
        } catch (IllegalArgumentException | ClassCastException e) {
            throw new IllegalArgumentException("bad tokenizer file " + file + ": " + e.getMessage(), e);
        }
        return new Tokenizer(bpe, addedTokens, preTokenizer, config, configFile);
    }

    // ------------------------------------------------------------------ reading tokenizer.json

    private static Bpe model(Map<?, ?> model) {
        if (!"BPE".equals(model.get("type"))) throw unsupported("model.type", model.get("type"));
        if (model.get("dropout") instanceof Number d && d.doubleValue() != 0) throw unsupported("model.dropout", d);
        for (String field : List.of("continuing_subword_prefix", "end_of_word_suffix")) {
            if (model.get(field) instanceof String s && !s.isEmpty()) throw unsupported("model." + field, s);
        }
        Map<String, Integer> vocab = new HashMap<>();
        for (var e : object(model.get("vocab"), "model.vocab").entrySet()) {
            vocab.put((String) e.getKey(), id(e.getValue(), "model.vocab['" + e.getKey() + "']"));
        }
        List<String[]> merges = new ArrayList<>();
        for (Object merge : list(model.get("merges"), "model.merges")) merges.add(mergePair(merge, merges.size()));
        return new Bpe(
                vocab,
                merges,
                (String) model.get("unk_token"),
                Boolean.TRUE.equals(model.get("fuse_unk")),
                Boolean.TRUE.equals(model.get("byte_fallback")),
                Boolean.TRUE.equals(model.get("ignore_merges")));
    }

    /** A merge is written "left right" (older files) or ["left", "right"]. */
    private static String[] mergePair(Object merge, int rank) {
        if (merge instanceof String s) {
            int space = s.indexOf(' ');
            if (space > 0 && space < s.length() - 1 && s.indexOf(' ', space + 1) < 0) {
                return new String[] {s.substring(0, space), s.substring(space + 1)};
            }
        } else if (merge instanceof List<?> pair
                && pair.size() == 2
                && pair.get(0) instanceof String l
                && pair.get(1) instanceof String r) {
            return new String[] {l, r};
        }
        throw new IllegalArgumentException("model.merges[" + rank + "] is not a pair of tokens: " + merge);
    }

    private static List<AddedToken> addedTokens(Object json) {
        List<AddedToken> tokens = new ArrayList<>();
        if (json == null) return tokens;
        for (Object entry : list(json, "added_tokens")) {
            String where = "added_tokens[" + tokens.size() + "]";
            Map<?, ?> t = object(entry, where);
            if (!(t.get("content") instanceof String content) || content.isEmpty()) {
                throw new IllegalArgumentException(where + ".content is not a non-empty string");
            }
            tokens.add(new AddedToken(
                    content,
                    id(t.get("id"), where + ".id"),
                    Boolean.TRUE.equals(t.get("special")),
                    Boolean.TRUE.equals(t.get("single_word")),
                    Boolean.TRUE.equals(t.get("lstrip")),
                    Boolean.TRUE.equals(t.get("rstrip")),
                    Boolean.TRUE.equals(t.get("normalized"))));
        }
        return tokens;
    }

    /** Only the identity: DeepSeek's normalizer is an empty Sequence. */
    private static void checkNormalizer(Object json) {
        if (json == null) return;
        Map<?, ?> n = object(json, "normalizer");
        boolean empty = "Sequence".equals(n.get("type"))
                && list(n.get("normalizers"), "normalizer.normalizers").isEmpty();
        if (!empty) throw unsupported("normalizer", Json.write(n));
    }

    private static List<PreTokenizer.Step> preTokenizerSteps(Object json) {
        List<PreTokenizer.Step> steps = new ArrayList<>();
        if (json == null) return steps;
        Map<?, ?> p = object(json, "pre_tokenizer");
        Object type = p.get("type");
        if ("Sequence".equals(type)) {
            for (Object inner : list(p.get("pretokenizers"), "pre_tokenizer.pretokenizers")) {
                steps.addAll(preTokenizerSteps(inner));
            }
        } else if ("Split".equals(type)) {
            if (!"Isolated".equals(p.get("behavior"))) throw unsupported("Split.behavior", p.get("behavior"));
            // With Isolated both matches and gaps become pieces, so invert changes nothing.
            Map<?, ?> pattern = object(p.get("pattern"), "Split.pattern");
            if (pattern.get("Regex") instanceof String regex) {
                steps.add(PreTokenizer.splitStep(regex));
            } else if (pattern.get("String") instanceof String literal) {
                steps.add(PreTokenizer.splitStep(Pattern.quote(literal)));
            } else {
                throw unsupported("Split.pattern", Json.write(pattern));
            }
        } else if ("ByteLevel".equals(type)) {
            steps.add(new PreTokenizer.ByteLevelStep(
                    Boolean.TRUE.equals(p.get("add_prefix_space")), !Boolean.FALSE.equals(p.get("use_regex"))));
        } else {
            throw unsupported("pre_tokenizer.type", type);
        }
        return steps;
    }

    private static void checkDecoder(Object json) {
        Object type = json == null ? null : object(json, "decoder").get("type");
        if (!"ByteLevel".equals(type)) throw unsupported("decoder.type", type);
    }

    private static IllegalArgumentException unsupported(String field, Object value) {
        return new IllegalArgumentException(field + " " + value + " is not supported");
    }

    private static Map<?, ?> object(Object json, String what) {
        if (json instanceof Map<?, ?> m) return m;
        throw new IllegalArgumentException(what + " is not a JSON object");
    }

    private static List<?> list(Object json, String what) {
        if (json instanceof List<?> l) return l;
        throw new IllegalArgumentException(what + " is not a JSON array");
    }

    private static int id(Object json, String what) {
        if (json instanceof Long l && l >= 0 && l <= Integer.MAX_VALUE - 1) return (int) (long) l;
        throw new IllegalArgumentException(what + " is not a token id: " + json);
    }

    // ------------------------------------------------------------------ encoding

    /**
     * Encodes text without adding special tokens ({@code add_special_tokens=False} in HF). Special tokens written in
     * the text, such as {@code <｜User｜>}, are still recognised.
     *
     * @param text any text, possibly empty
     * @return the token ids
     * @throws IllegalArgumentException if text is null
     */
    public int[] encode(String text) {
        return encode(text, false);
    }

    /**
     * Encodes text; with {@code addSpecialTokens} the BOS id goes first when tokenizer_config.json's
     * {@code add_bos_token} is true and the EOS id last when {@code add_eos_token} is.
     *
     * @throws IllegalArgumentException if text is null
     */
    public int[] encode(String text, boolean addSpecialTokens) {
        if (text == null) throw new IllegalArgumentException("text is null");
        Bpe.IntList ids = new Bpe.IntList(text.length() / 3 + 2);
        if (addSpecialTokens && config.addBosToken()) ids.add(bosId);
        for (AddedVocabulary.Piece piece : added.split(text)) {
            if (piece.isToken()) {
                ids.add(piece.id());
            } else {
                for (String word : preTokenizer.split(piece.text())) bpe.encode(word, ids);
            }
        }
        if (addSpecialTokens && config.addEosToken()) ids.add(eosId);
        return ids.toArray();
    }

    // ------------------------------------------------------------------ decoding

    /**
     * Decodes ids into text, special tokens included ({@code skip_special_tokens=False}).
     *
     * @throws IllegalArgumentException if ids is null or holds an id that is no token, naming it
     */
    public String decode(int[] ids) {
        return decode(ids, false);
    }

    /**
     * Decodes ids into text. The ids' bytes are concatenated and read as UTF-8; each ill-formed part (a sequence cut
     * short, for instance) becomes one U+FFFD.
     *
     * @param skipSpecialTokens leave out the added tokens marked special (non-special added tokens stay)
     * @throws IllegalArgumentException if ids is null or holds an id that is no token, naming it
     */
    public String decode(int[] ids, boolean skipSpecialTokens) {
        if (ids == null) throw new IllegalArgumentException("ids is null");
        int length = 0;
        for (int id : ids) {
            checkId(id);
            if (!(skipSpecialTokens && special[id])) length += tokenBytes[id].length;
        }
        byte[] bytes = new byte[length];
        int at = 0;
        for (int id : ids) {
            if (skipSpecialTokens && special[id]) continue;
            System.arraycopy(tokenBytes[id], 0, bytes, at, tokenBytes[id].length);
            at += tokenBytes[id].length;
        }
        StringBuilder text = new StringBuilder(length);
        Utf8.decode(bytes, 0, length, text, true);
        return text.toString();
    }

    /**
     * A decoder for one sequence generated token by token; see {@link StreamDecoder}.
     *
     * @param skipSpecialTokens leave out the added tokens marked special
     */
    public StreamDecoder streamDecoder(boolean skipSpecialTokens) {
        return new StreamDecoder(this, skipSpecialTokens);
    }

    /** The bytes id stands for in decoding, empty when it is special and those are skipped. */
    byte[] bytes(int id, boolean skipSpecialTokens) {
        checkId(id);
        return skipSpecialTokens && special[id] ? new byte[0] : tokenBytes[id];
    }

    private void checkId(int id) {
        if (id < 0 || id >= tokens.length || tokens[id] == null) {
            throw new IllegalArgumentException(
                    "token id " + id + " is not in the vocabulary (size " + tokens.length + ")");
        }
    }

    // ------------------------------------------------------------------ vocabulary

    /** One more than the largest id of the vocabulary and the added tokens. */
    public int vocabSize() {
        return tokens.length;
    }

    /** The beginning-of-sequence id (tokenizer_config.json's bos_token), empty when the config names none. */
    public OptionalInt bosId() {
        return bosId < 0 ? OptionalInt.empty() : OptionalInt.of(bosId);
    }

    /** The end-of-sequence id (tokenizer_config.json's eos_token), empty when the config names none. */
    public OptionalInt eosId() {
        return eosId < 0 ? OptionalInt.empty() : OptionalInt.of(eosId);
    }

    /**
     * The id of a token written as it is stored: an added token's text (e.g. {@code <｜User｜>}) or a vocabulary entry
     * in byte-level characters (e.g. {@code Ġworld} for " world").
     *
     * @return the id, or empty when there is no such token
     * @throws IllegalArgumentException if token is null
     */
    public OptionalInt tokenId(String token) {
        if (token == null) throw new IllegalArgumentException("token is null");
        Integer added = addedIds.get(token);
        if (added != null) return OptionalInt.of(added);
        int id = bpe.id(token);
        return id < 0 ? OptionalInt.empty() : OptionalInt.of(id);
    }

    /**
     * The token an id stands for, as stored (byte-level characters for vocabulary entries).
     *
     * @throws IllegalArgumentException if id is no token, naming it
     */
    public String token(int id) {
        checkId(id);
        return tokens[id];
    }

    /** Whether id is an added token marked special. */
    public boolean isSpecial(int id) {
        checkId(id);
        return special[id];
    }

    TokenizerConfig config() {
        return config;
    }
}
