package dev.moe4j.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.engine.Result;
import dev.moe4j.engine.Sampler;
import dev.moe4j.tokenizer.Tokenizer;
import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * The OpenAI response bodies of one request: the whole answer ({@code text_completion} / {@code chat.completion}) or
 * its stream's chunks ({@code text_completion} / {@code chat.completion.chunk}), with log-probabilities in the legacy
 * completions shape or the chat shape. Not thread-safe: one per request (it counts the text offsets streamed).
 */
final class Responses {
    private static final JsonNodeFactory NODES = JsonNodeFactory.instance;

    private final String id;
    private final long created;
    private final String model;
    private final GenerationRequest request;
    private final Tokenizer tokenizer;
    private int textOffset; // characters of token text streamed so far (legacy logprobs' text_offset)

    /**
     * @param created seconds since the epoch
     * @param tokenizer spells tokens in log-probabilities; null: they are written {@code token_id:N}
     */
    Responses(String id, long created, String model, GenerationRequest request, Tokenizer tokenizer) {
        this.id = id;
        this.created = created;
        this.model = model;
        this.request = request;
        this.tokenizer = tokenizer;
    }

    /** The answer of a request that did not stream. */
    ObjectNode complete(Result result, int promptTokens) {
        ObjectNode choice = NODES.objectNode().put("index", 0);
        String text = result.text() == null ? "" : result.text();
        if (request.chat())
            choice.set("message", NODES.objectNode().put("role", "assistant").put("content", text));
        else choice.put("text", text);
        choice.set("logprobs", logprobs(result.choices()));
        choice.put("finish_reason", result.finishReason().apiName());
        ObjectNode body = head(request.chat() ? "chat.completion" : "text_completion");
        body.set("choices", NODES.arrayNode().add(choice));
        body.set("usage", usage(promptTokens, result.completionTokens()));
        return body;
    }

    /** A chat stream's first chunk: the assistant's role, no text yet. */
    ObjectNode roleChunk() {
        return chunk(NODES.objectNode().put("role", "assistant").put("content", ""), NODES.nullNode(), null);
    }

    /** The chunk of one generated token: the text it releases (may be empty) and, when asked, its logprobs. */
    ObjectNode tokenChunk(Sampler.Choice choice, String text) {
        String released = text == null ? "" : text;
        JsonNode logprobs = logprobs(List.of(choice));
        return chunk(
                request.chat() ? NODES.objectNode().put("content", released) : NODES.textNode(released),
                logprobs,
                null);
    }

    /** The chunk that ends the stream's one choice. */
    ObjectNode finishChunk(Result.FinishReason reason) {
        return chunk(request.chat() ? NODES.objectNode() : NODES.textNode(""), NODES.nullNode(), reason.apiName());
    }

    /** The last chunk when the client asked for usage: no choices, the counts. */
    ObjectNode usageChunk(int promptTokens, int completionTokens) {
        ObjectNode body = head(chunkObject());
        body.set("choices", NODES.arrayNode());
        body.set("usage", usage(promptTokens, completionTokens));
        return body;
    }

    /** The OpenAI error object. */
    static ObjectNode error(String type, String param, String message) {
        ObjectNode error = NODES.objectNode().put("message", message).put("type", type);
        error.put("param", param);
        error.putNull("code");
        return NODES.objectNode().set("error", error);
    }

    /** The {@code usage} object. */
    static ObjectNode usage(int promptTokens, int completionTokens) {
        return NODES.objectNode()
                .put("prompt_tokens", promptTokens)
                .put("completion_tokens", completionTokens)
                .put("total_tokens", promptTokens + completionTokens);
    }

    private ObjectNode chunk(JsonNode delta, JsonNode logprobs, String finishReason) {
        ObjectNode choice = NODES.objectNode().put("index", 0);
        choice.set(request.chat() ? "delta" : "text", delta);
        choice.set("logprobs", logprobs);
        choice.put("finish_reason", finishReason);
        ObjectNode body = head(chunkObject());
        body.set("choices", NODES.arrayNode().add(choice));
        if (request.includeUsage()) body.putNull("usage");
        return body;
    }

    private String chunkObject() {
        return request.chat() ? "chat.completion.chunk" : "text_completion";
    }

    private ObjectNode head(String object) {
        return NODES.objectNode()
                .put("id", id)
                .put("object", object)
                .put("created", created)
                .put("model", model);
    }

    /** The log-probabilities of these tokens in the request's shape, or null when it asked for none. */
    private JsonNode logprobs(List<Sampler.Choice> choices) {
        if (request.logprobs() < 0) return NODES.nullNode();
        if (request.chat()) {
            ArrayNode content = NODES.arrayNode();
            for (Sampler.Choice c : choices) {
                ObjectNode entry = chatLogprob(c.token(), c.logprob());
                ArrayNode top = entry.putArray("top_logprobs");
                for (int i = 0; i < c.topTokens().length; i++)
                    top.add(chatLogprob(c.topTokens()[i], c.topLogprobs()[i]));
                content.add(entry);
            }
            return NODES.objectNode().set("content", content);
        }
        ObjectNode legacy = NODES.objectNode();
        ArrayNode tokens = legacy.putArray("tokens"), logprobs = legacy.putArray("token_logprobs");
        ArrayNode tops = legacy.putArray("top_logprobs"), offsets = legacy.putArray("text_offset");
        for (Sampler.Choice c : choices) {
            String token = spell(c.token());
            tokens.add(token);
            logprobs.add(c.logprob());
            ObjectNode top = tops.addObject();
            for (int i = 0; i < c.topTokens().length; i++) top.put(spell(c.topTokens()[i]), c.topLogprobs()[i]);
            offsets.add(textOffset);
            textOffset += token.length();
        }
        return legacy;
    }

    private ObjectNode chatLogprob(int token, float logprob) {
        String text = spell(token);
        ObjectNode entry = NODES.objectNode().put("token", text).put("logprob", logprob);
        ArrayNode bytes = entry.putArray("bytes");
        for (byte b : text.getBytes(StandardCharsets.UTF_8)) bytes.add(b & 0xFF);
        return entry;
    }

    /** A token as text: decoded alone (special tokens written out), or {@code token_id:N} without a tokenizer. */
    private String spell(int token) {
        return tokenizer != null && token < tokenizer.vocabSize()
                ? tokenizer.decode(new int[] {token})
                : "token_id:" + token;
    }
}
