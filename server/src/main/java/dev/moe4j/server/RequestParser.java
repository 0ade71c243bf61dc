package dev.moe4j.server;

import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.engine.Request;
import dev.moe4j.engine.SamplingParams;
import dev.moe4j.tokenizer.ChatTemplate;
import dev.moe4j.tokenizer.Tokenizer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Reads the OpenAI request bodies into {@link GenerationRequest}s, checking every field it knows; each problem is an
 * {@link ApiException} (HTTP 400) naming the field. Unknown fields are ignored, as vLLM does; known ones this server
 * cannot honour ({@code n} above 1, {@code echo}, {@code suffix}, {@code logit_bias}, tools, JSON response formats)
 * are refused. Immutable and thread-safe.
 */
final class RequestParser {
    /** OpenAI's default {@code max_tokens} for legacy completions. */
    static final int COMPLETION_MAX_TOKENS = 16;

    private final String servedModel;
    private final Tokenizer tokenizer;
    private final ChatTemplate template;
    private final int vocabSize;
    private final int maxPositions;
    private final int chatMaxTokens;

    /**
     * @param tokenizer null when the checkpoint has none (then prompts must be token ids and chat is refused)
     * @param template null when the tokenizer has no chat template (then chat is refused)
     * @param chatMaxTokens {@code max_tokens} of a chat request that gives none
     */
    RequestParser(
            String servedModel,
            Tokenizer tokenizer,
            ChatTemplate template,
            int vocabSize,
            int maxPositions,
            int chatMaxTokens) {
        this.servedModel = servedModel;
        this.tokenizer = tokenizer;
        this.template = template;
        this.vocabSize = vocabSize;
        this.maxPositions = maxPositions;
        this.chatMaxTokens = chatMaxTokens;
    }

    /** A {@code POST /v1/completions} body. */
    GenerationRequest completion(JsonNode body) {
        checkCommon(body);
        refuseIf(has(body, "echo") && bool(body, "echo"), "echo", "echo is not supported");
        refuseIf(has(body, "suffix"), "suffix", "suffix is not supported");
        refuseIf(
                has(body, "best_of") && integer(body, "best_of", 1, Integer.MAX_VALUE) != 1,
                "best_of",
                "best_of must be 1");
        int[] ids = prompt(body);
        int maxTokens =
                has(body, "max_tokens") ? integer(body, "max_tokens", 1, Integer.MAX_VALUE) : COMPLETION_MAX_TOKENS;
        int logprobs = has(body, "logprobs") ? integer(body, "logprobs", 0, SamplingParams.MAX_LOGPROBS) : -1;
        return build(body, ids, maxTokens, logprobs, false, "prompt", "max_tokens");
    }

    /** A {@code POST /v1/chat/completions} body. */
    GenerationRequest chat(JsonNode body) {
        checkCommon(body);
        for (String unsupported : List.of("tools", "tool_choice", "functions", "function_call"))
            refuseIf(has(body, unsupported), unsupported, unsupported + " is not supported");
        if (has(body, "response_format")) {
            JsonNode format = body.get("response_format");
            refuseIf(
                    !format.isObject() || !"text".equals(format.path("type").asText(null)),
                    "response_format",
                    "response_format: only {\"type\": \"text\"} is supported");
        }
        int[] ids = messages(body);
        String maxField = has(body, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
        int maxTokens = has(body, maxField) ? integer(body, maxField, 1, Integer.MAX_VALUE) : chatMaxTokens;
        boolean logprobs = has(body, "logprobs") && bool(body, "logprobs");
        refuseIf(has(body, "top_logprobs") && !logprobs, "top_logprobs", "top_logprobs needs logprobs set to true");
        int top = has(body, "top_logprobs") ? integer(body, "top_logprobs", 0, SamplingParams.MAX_LOGPROBS) : 0;
        return build(body, ids, maxTokens, logprobs ? top : -1, true, "messages", maxField);
    }

    private void checkCommon(JsonNode body) {
        if (!body.isObject()) throw ApiException.invalid(null, "the request body must be a JSON object");
        if (!has(body, "model")) throw ApiException.invalid("model", "model is required");
        String model = string(body, "model");
        if (!model.equals(servedModel))
            throw ApiException.invalid(
                    "model", "the model '" + model + "' does not exist; this server serves '" + servedModel + "'");
        refuseIf(has(body, "n") && integer(body, "n", 1, Integer.MAX_VALUE) != 1, "n", "n must be 1");
        if (has(body, "logit_bias")) {
            JsonNode bias = body.get("logit_bias");
            refuseIf(!bias.isObject() || !bias.isEmpty(), "logit_bias", "logit_bias is not supported");
        }
    }

    private GenerationRequest build(
            JsonNode body,
            int[] ids,
            int maxTokens,
            int logprobs,
            boolean chat,
            String promptParam,
            String maxTokensParam) {
        SamplingParams s = SamplingParams.defaults()
                .withTemperature(has(body, "temperature") ? number(body, "temperature", 0, 2, "[0, 2]") : 1)
                .withTopP(has(body, "top_p") ? number(body, "top_p", Double.MIN_VALUE, 1, "(0, 1]") : 1)
                .withMinP(has(body, "min_p") ? number(body, "min_p", 0, Math.nextDown(1.0), "[0, 1)") : 0)
                .withPresencePenalty(
                        has(body, "presence_penalty") ? number(body, "presence_penalty", -2, 2, "[-2, 2]") : 0)
                .withFrequencyPenalty(
                        has(body, "frequency_penalty") ? number(body, "frequency_penalty", -2, 2, "[-2, 2]") : 0)
                .withLogprobs(Math.max(0, logprobs))
                // no seed: a fresh one per request, so that unseeded sampling varies as OpenAI's does
                .withSeed(
                        has(body, "seed")
                                ? longInteger(body, "seed")
                                : ThreadLocalRandom.current().nextLong());
        if (has(body, "top_k")) s = s.withTopK(Math.max(0, integer(body, "top_k", -1, Integer.MAX_VALUE)));
        if (has(body, "repetition_penalty"))
            s = s.withRepetitionPenalty(
                    number(body, "repetition_penalty", Double.MIN_VALUE, Double.MAX_VALUE, "(0, ∞)"));
        boolean stream = has(body, "stream") && bool(body, "stream");
        boolean includeUsage = false;
        if (has(body, "stream_options")) {
            refuseIf(!stream, "stream_options", "stream_options is only allowed when stream is true");
            JsonNode options = body.get("stream_options");
            if (!options.isObject()) throw ApiException.invalid("stream_options", "stream_options must be an object");
            includeUsage =
                    has(options, "include_usage") && bool(options, "include_usage", "stream_options.include_usage");
        }
        Request request = new Request(ids, null, s, maxTokens, stopTokenIds(body), stops(body));
        return new GenerationRequest(request, chat, stream, includeUsage, logprobs, promptParam, maxTokensParam);
    }

    // ---------------------------------------------------------------- prompts

    private int[] prompt(JsonNode body) {
        if (!has(body, "prompt")) throw ApiException.invalid("prompt", "prompt is required");
        JsonNode p = body.get("prompt");
        if (p.isArray() && p.size() == 1 && (p.get(0).isTextual() || p.get(0).isArray())) p = p.get(0);
        int[] ids;
        if (p.isTextual()) {
            if (p.asText().isEmpty()) throw ApiException.invalid("prompt", "prompt is empty");
            if (tokenizer == null)
                throw ApiException.invalid(
                        "prompt",
                        "the model has no tokenizer (tokenizer.json); send the prompt as an array of token ids");
            ids = tokenizer.encode(p.asText(), true);
        } else if (p.isArray()) {
            if (p.isEmpty()) throw ApiException.invalid("prompt", "prompt is empty");
            ids = new int[p.size()];
            for (int i = 0; i < ids.length; i++) {
                JsonNode id = p.get(i);
                if (!id.isIntegralNumber() || !id.canConvertToInt() || id.intValue() < 0 || id.intValue() >= vocabSize)
                    throw ApiException.invalid(
                            "prompt",
                            "prompt must be a string, an array of token ids in [0, " + vocabSize
                                    + ") or an array of one string or one id array; prompt[" + i + "] is " + id);
                ids[i] = id.intValue();
            }
        } else {
            throw ApiException.invalid(
                    "prompt",
                    "prompt must be a string, an array of token ids or an array of one string (one prompt"
                            + " per request)");
        }
        checkLength(ids, "prompt");
        return ids;
    }

    private int[] messages(JsonNode body) {
        if (!has(body, "messages")) throw ApiException.invalid("messages", "messages is required");
        JsonNode list = body.get("messages");
        if (!list.isArray() || list.isEmpty())
            throw ApiException.invalid("messages", "messages must be a non-empty array of messages");
        if (template == null)
            throw ApiException.invalid(
                    "messages",
                    "the model has no chat template (tokenizer_config.json's chat_template); use /v1/completions");
        List<ChatTemplate.Message> messages = new ArrayList<>();
        for (int i = 0; i < list.size(); i++) {
            String at = "messages[" + i + "]";
            JsonNode m = list.get(i);
            if (!m.isObject()) throw ApiException.invalid(at, at + " must be an object with role and content");
            if (!has(m, "role")) throw ApiException.invalid(at + ".role", at + ".role is required");
            String role = string(m, "role", at + ".role");
            messages.add(new ChatTemplate.Message(role, content(m, at + ".content")));
        }
        String text;
        try {
            text = template.render(messages, true);
        } catch (IllegalArgumentException e) {
            throw ApiException.invalid("messages", e.getMessage());
        }
        int[] ids = tokenizer.encode(text, false); // the template writes the BOS token itself
        checkLength(ids, "messages");
        return ids;
    }

    /** A message's text: a string, an array of text parts (joined), or nothing (null or missing: empty). */
    private static String content(JsonNode message, String at) {
        JsonNode c = message.get("content");
        if (c == null || c.isNull()) return "";
        if (c.isTextual()) return c.asText();
        if (!c.isArray()) throw ApiException.invalid(at, at + " must be a string or an array of text parts");
        StringBuilder text = new StringBuilder();
        for (int i = 0; i < c.size(); i++) {
            JsonNode part = c.get(i);
            String partAt = at + "[" + i + "]";
            if (!part.isObject()
                    || !"text".equals(part.path("type").asText(null))
                    || !part.path("text").isTextual())
                throw ApiException.invalid(
                        partAt, partAt + " must be {\"type\": \"text\", \"text\": ...}; only text parts are supported");
            text.append(part.get("text").asText());
        }
        return text.toString();
    }

    private void checkLength(int[] ids, String param) {
        if (ids.length >= maxPositions)
            throw ApiException.invalid(
                    param,
                    "the prompt has " + ids.length + " tokens but the model's context is " + maxPositions
                            + " tokens, which leaves no room for a completion");
    }

    private List<String> stops(JsonNode body) {
        if (!has(body, "stop")) return List.of();
        JsonNode stop = body.get("stop");
        List<String> stops = new ArrayList<>();
        if (stop.isTextual()) stops.add(stop.asText());
        else if (stop.isArray()) {
            for (JsonNode s : stop) {
                if (!s.isTextual()) throw ApiException.invalid("stop", "stop must be a string or an array of strings");
                stops.add(s.asText());
            }
        } else throw ApiException.invalid("stop", "stop must be a string or an array of strings");
        if (stops.contains("")) throw ApiException.invalid("stop", "stop holds an empty string");
        return stops;
    }

    private List<Integer> stopTokenIds(JsonNode body) {
        if (!has(body, "stop_token_ids")) return List.of();
        JsonNode list = body.get("stop_token_ids");
        if (!list.isArray())
            throw ApiException.invalid("stop_token_ids", "stop_token_ids must be an array of token ids");
        List<Integer> ids = new ArrayList<>();
        for (JsonNode id : list) {
            if (!id.isIntegralNumber() || !id.canConvertToInt() || id.intValue() < 0 || id.intValue() >= vocabSize)
                throw ApiException.invalid(
                        "stop_token_ids", "stop_token_ids must hold token ids in [0, " + vocabSize + "), got " + id);
            ids.add(id.intValue());
        }
        return ids;
    }

    // ---------------------------------------------------------------- fields

    /** Whether the field is there and not null (OpenAI clients send null for "not given"). */
    private static boolean has(JsonNode body, String field) {
        JsonNode v = body.get(field);
        return v != null && !v.isNull();
    }

    private static void refuseIf(boolean condition, String param, String message) {
        if (condition) throw ApiException.invalid(param, message);
    }

    private static String string(JsonNode body, String field) {
        return string(body, field, field);
    }

    private static String string(JsonNode body, String field, String param) {
        JsonNode v = body.get(field);
        if (!v.isTextual()) throw ApiException.invalid(param, param + " must be a string, got " + v);
        return v.asText();
    }

    private static boolean bool(JsonNode body, String field) {
        return bool(body, field, field);
    }

    private static boolean bool(JsonNode body, String field, String param) {
        JsonNode v = body.get(field);
        if (!v.isBoolean()) throw ApiException.invalid(param, param + " must be true or false, got " + v);
        return v.booleanValue();
    }

    private static int integer(JsonNode body, String field, int min, int max) {
        JsonNode v = body.get(field);
        if (!v.isIntegralNumber() || !v.canConvertToInt() || v.intValue() < min || v.intValue() > max)
            throw ApiException.invalid(
                    field,
                    field + " must be an integer "
                            + (max == Integer.MAX_VALUE ? "≥ " + min : "in [" + min + ", " + max + "]") + ", got " + v);
        return v.intValue();
    }

    private static long longInteger(JsonNode body, String field) {
        JsonNode v = body.get(field);
        if (!v.isIntegralNumber() || !v.canConvertToLong())
            throw ApiException.invalid(field, field + " must be a 64-bit integer, got " + v);
        return v.longValue();
    }

    /** A number in [min, max]; {@code range} says so in the error message. */
    private static double number(JsonNode body, String field, double min, double max, String range) {
        JsonNode v = body.get(field);
        if (!v.isNumber() || !(v.doubleValue() >= min && v.doubleValue() <= max))
            throw ApiException.invalid(field, field + " must be a number in " + range + ", got " + v);
        return v.doubleValue();
    }
}
