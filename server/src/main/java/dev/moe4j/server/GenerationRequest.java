package dev.moe4j.server;

import dev.moe4j.engine.Request;

/**
 * One {@code /v1/completions} or {@code /v1/chat/completions} request, checked and translated for the engine.
 *
 * @param request what the engine runs (the prompt as token ids: tokenized, or chat-templated and tokenized)
 * @param chat whether it came as a chat completion
 * @param stream whether the answer goes out as server-sent events
 * @param includeUsage with {@code stream}: whether a last chunk carries the token counts
 * @param logprobs alternatives reported per token, or -1 when no log-probabilities are asked for
 * @param promptParam the field that holds the prompt ("prompt" or "messages"), for errors about it
 * @param maxTokensParam the field that limits the new tokens ("max_tokens" or "max_completion_tokens")
 */
record GenerationRequest(
        Request request,
        boolean chat,
        boolean stream,
        boolean includeUsage,
        int logprobs,
        String promptParam,
        String maxTokensParam) {}
