package dev.moe4j.tokenizer;

import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.JinjavaConfig;
import com.hubspot.jinjava.LegacyOverrides;
import com.hubspot.jinjava.interpret.RenderResult;
import com.hubspot.jinjava.interpret.TemplateError;
import com.hubspot.jinjava.lib.fn.ELFunctionDefinition;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * A model's chat template (tokenizer_config.json's {@code chat_template}), rendered by the Jinja engine Jinjava set
 * up as HF transformers sets up jinja2 for {@code apply_chat_template(..., tokenize=False)}: {@code trim_blocks} and
 * {@code lstrip_blocks} on, one trailing newline of the template dropped, newlines in the template read as
 * {@code \n}, and {@code raise_exception(message)} available. The template sees {@code messages} (a list of objects
 * with {@code role} and {@code content}), {@code add_generation_prompt}, and the special tokens the config names
 * ({@code bos_token}, {@code eos_token}, {@code pad_token}, {@code unk_token}) as text.
 *
 * <p>Immutable and thread-safe: each render has its own interpreter.
 */
public final class ChatTemplate {
    /**
     * One chat message.
     *
     * @param role who speaks: "system", "user", "assistant" or "tool" for DeepSeek's template
     * @param content the text
     */
    public record Message(String role, String content) {
        /** @throws IllegalArgumentException if role or content is null */
        public Message {
            if (role == null) throw new IllegalArgumentException("role is null");
            if (content == null) throw new IllegalArgumentException("content is null");
        }
    }

    private static final Jinjava JINJAVA = engine();

    private static final Pattern LINE_START_BEFORE_TAG = Pattern.compile("(?md)^[ \t]+(?=\\{%(?![+])|\\{#)");

    private final String source;
    private final Map<String, String> specialTokens;
    private final String origin; // where the template came from, for error messages

    ChatTemplate(String source, Map<String, String> specialTokens, String origin) {
        this.source = jinja2Source(source);
        this.specialTokens = Map.copyOf(specialTokens);
        this.origin = origin;
    }

    /**
     * The template of the tokenizer's tokenizer_config.json.
     *
     * @throws IllegalArgumentException if tokenizer is null or its config has no chat_template
     */
    public static ChatTemplate from(Tokenizer tokenizer) {
        if (tokenizer == null) throw new IllegalArgumentException("tokenizer is null");
        return from(tokenizer.config(), "the tokenizer's " + TokenizerConfig.FILE);
    }

    /**
     * The template of {@code dir/tokenizer_config.json} (tokenizer.json is not read).
     *
     * @throws IllegalArgumentException naming the file if it is missing, malformed or has no chat_template
     * @throws java.io.UncheckedIOException naming the file if it cannot be read
     */
    public static ChatTemplate from(Path dir) {
        if (dir == null) throw new IllegalArgumentException("dir is null");
        Path file = dir.resolve(TokenizerConfig.FILE);
        if (!Files.isRegularFile(file)) throw new IllegalArgumentException("no " + TokenizerConfig.FILE + " in " + dir);
        return from(TokenizerConfig.read(file), file.toString());
    }

    private static ChatTemplate from(TokenizerConfig config, String where) {
        if (config.chatTemplate() == null) throw new IllegalArgumentException(where + " has no chat_template");
        return new ChatTemplate(config.chatTemplate(), config.specialTokens(), where);
    }

    /**
     * Renders a conversation as the prompt text.
     *
     * @param messages the conversation, at least one message (HF refuses an empty one too)
     * @param addGenerationPrompt end with the text that starts the assistant's reply
     * @return the text, special tokens written out (encode it with {@link Tokenizer#encode(String)}: the template
     *     already wrote the BOS token)
     * @throws IllegalArgumentException if messages is null, empty or holds null, or if the template rejects them
     *     ({@code raise_exception}) or fails, with the template's message and the file it came from
     */
    public String render(List<Message> messages, boolean addGenerationPrompt) {
        if (messages == null) throw new IllegalArgumentException("messages is null");
        if (messages.isEmpty()) throw new IllegalArgumentException("messages is empty");
        List<Map<String, Object>> list = new ArrayList<>(messages.size());
        for (int i = 0; i < messages.size(); i++) {
            Message m = messages.get(i);
            if (m == null) throw new IllegalArgumentException("messages[" + i + "] is null");
            Map<String, Object> map = new HashMap<>();
            map.put("role", m.role());
            map.put("content", m.content());
            list.add(map);
        }
        Map<String, Object> context = new HashMap<>(specialTokens);
        context.put("messages", list);
        context.put("add_generation_prompt", addGenerationPrompt);
        RenderResult result = JINJAVA.renderForResult(source, context);
        for (TemplateError error : result.getErrors()) {
            if (error.getSeverity() != TemplateError.ErrorType.FATAL) continue;
            for (Throwable t = error.getException(); t != null; t = t.getCause()) {
                if (t instanceof TemplateFunctions.Raised raised) {
                    throw new IllegalArgumentException(
                            "the chat template of " + origin + " rejects the messages: " + raised.getMessage());
                }
            }
            throw new IllegalArgumentException(
                    "the chat template of " + origin + " failed on the messages: " + error.getMessage());
        }
        return result.getOutput();
    }

    private static Jinjava engine() {
        JinjavaConfig config = JinjavaConfig.newBuilder()
                .withTrimBlocks(true)
                // lstrip_blocks is applied to the source (see jinja2Source): Jinjava's also strips spaces before a
                // tag in the middle of a line ("a, {% endif %}" loses its space), which jinja2 does not.
                .withLstripBlocks(false)
                // The source is prepared as jinja2 reads it, so Jinjava keeps its last newline.
                .withKeepTrailingNewline(true)
                // Without this Jinjava renders template syntax found in the output, e.g. "{{" in a user's message.
                .withNestedInterpretationEnabled(false)
                // {{- x -}} and {#- c -#} trim whitespace as in Jinja.
                .withLegacyOverrides(LegacyOverrides.newBuilder()
                        .withUseTrimmingForNotesAndExpressions(true)
                        .build())
                .build();
        Jinjava jinjava = new Jinjava(config);
        jinjava.getGlobalContext()
                .registerFunction(new ELFunctionDefinition(
                        "", "raise_exception", TemplateFunctions.class, "raiseException", String.class));
        return jinjava;
    }

    /**
     * The source as jinja2 lexes it in transformers' environment: every newline read as \n; lstrip_blocks, i.e. the
     * spaces and tabs between a line's start and a block tag or comment removed (not before {@code {%+}); and,
     * without keep_trailing_newline, one newline at the very end dropped.
     */
    private static String jinja2Source(String template) {
        String source = template.replace("\r\n", "\n").replace('\r', '\n');
        source = LINE_START_BEFORE_TAG.matcher(source).replaceAll("");
        return source.endsWith("\n") ? source.substring(0, source.length() - 1) : source;
    }
}
