package dev.moe4j.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.moe4j.testing.DeepSeekFiles;
import dev.moe4j.tokenizer.ChatTemplate.Message;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Chat templates against transformers' apply_chat_template(..., tokenize=False), recorded in the fixture. */
class ChatTemplateTest {
    private final Tokenizer tokenizer = DeepSeekFiles.tokenizer();

    @Test
    void rendersDeepSeekConversationsAsTransformers() {
        ChatTemplate fromTokenizer = ChatTemplate.from(tokenizer);
        ChatTemplate fromDir = ChatTemplate.from(DeepSeekFiles.dir());
        for (Map<String, Object> c : DeepSeekFiles.cases("chat")) {
            List<Message> messages = messages(c.get("messages"));
            boolean prompt = (Boolean) c.get("add_generation_prompt");
            assertEquals(c.get("text"), fromTokenizer.render(messages, prompt), () -> messages + " prompt=" + prompt);
            assertEquals(c.get("text"), fromDir.render(messages, prompt), () -> messages + " prompt=" + prompt);
        }
    }

    @Test
    void whitespaceControlIsJinja2sAsTransformersSetsItUp() {
        Map<String, String> special = tokenizer.config().specialTokens();
        for (Map<String, Object> c : DeepSeekFiles.cases("templates")) {
            String template = (String) c.get("template");
            boolean prompt = (Boolean) c.get("add_generation_prompt");
            String rendered =
                    new ChatTemplate(template, special, "fixture").render(messages(c.get("messages")), prompt);
            assertEquals(c.get("text"), rendered, () -> "template " + template.replace("\n", "\\n"));
        }
    }

    @Test
    void renderedPromptEncodesWithOneBos() {
        String prompt = ChatTemplate.from(tokenizer)
                .render(List.of(new Message("system", "Be brief."), new Message("user", "Hi")), true);
        int[] ids = tokenizer.encode(prompt);
        assertEquals(0, ids[0]);
        assertEquals(128804, ids[ids.length - 1], "ends with <｜Assistant｜>");
        int bos = 0;
        for (int id : ids) if (id == 0) bos++;
        assertEquals(1, bos);
    }

    @Test
    void rendersLongMessagesWhole() {
        String longText = "你好 world {{ x }} ".repeat(20_000);
        String rendered = ChatTemplate.from(tokenizer).render(List.of(new Message("user", longText)), false);
        assertEquals("<｜begin▁of▁sentence｜><｜User｜>" + longText, rendered);
    }

    @Test
    void rendersFromManyThreadsAlike() throws Exception {
        ChatTemplate template = ChatTemplate.from(tokenizer);
        List<Map<String, Object>> cases = DeepSeekFiles.cases("chat");
        ExecutorService pool = Executors.newFixedThreadPool(4);
        try {
            List<Future<Boolean>> results = new ArrayList<>();
            for (int t = 0; t < 4; t++) {
                results.add(pool.submit(() -> {
                    for (int round = 0; round < 5; round++) {
                        for (Map<String, Object> c : cases) {
                            String text = template.render(
                                    messages(c.get("messages")), (Boolean) c.get("add_generation_prompt"));
                            if (!text.equals(c.get("text"))) return false;
                        }
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
    void raiseExceptionRejectsTheMessages() {
        ChatTemplate template = new ChatTemplate(
                "{% if messages[0].role != 'user' %}{{ raise_exception('the first message must be the user') }}{% endif %}ok",
                Map.of(), "a test template");
        assertEquals("ok", template.render(List.of(new Message("user", "x")), false));
        var e = assertThrows(
                IllegalArgumentException.class, () -> template.render(List.of(new Message("system", "x")), false));
        assertTrue(e.getMessage().contains("the first message must be the user"), e.getMessage());
        assertTrue(e.getMessage().contains("a test template"), e.getMessage());
    }

    @Test
    void rejectsBadArguments(@TempDir Path dir) throws Exception {
        ChatTemplate template = ChatTemplate.from(tokenizer);
        assertThrows(IllegalArgumentException.class, () -> template.render(List.of(), true));
        assertThrows(IllegalArgumentException.class, () -> template.render(null, true));
        assertThrows(IllegalArgumentException.class, () -> new Message(null, "x"));
        var e = assertThrows(IllegalArgumentException.class, () -> ChatTemplate.from(dir));
        assertTrue(e.getMessage().contains("tokenizer_config.json"), e.getMessage());
        Files.writeString(dir.resolve("tokenizer_config.json"), "{\"add_bos_token\": false}");
        e = assertThrows(IllegalArgumentException.class, () -> ChatTemplate.from(dir));
        assertTrue(e.getMessage().contains("chat_template"), e.getMessage());
    }

    private static List<Message> messages(Object json) {
        List<Message> messages = new ArrayList<>();
        for (Object m : (List<?>) json) {
            Map<?, ?> map = (Map<?, ?>) m;
            messages.add(new Message((String) map.get("role"), (String) map.get("content")));
        }
        return messages;
    }
}
