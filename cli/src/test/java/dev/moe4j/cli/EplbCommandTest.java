package dev.moe4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.moe4j.internal.Json;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class EplbCommandTest {
    @TempDir
    Path dir;

    String capture(String... args) {
        PrintStream old = System.out;
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        System.setOut(new PrintStream(bytes, true));
        try {
            assertEquals(0, EplbCommand.run(args));
        } finally {
            System.setOut(old);
        }
        return bytes.toString();
    }

    @Test
    void csvAndJsonLoadsGiveThePublishedPlacement() throws IOException {
        Path csv = dir.resolve("load.csv"), json = dir.resolve("load.json");
        Files.writeString(csv, "90,132,40,61,104,165,39,4,73,56,183,86\n20,107,104,64,19,197,187,157,172,86,16,27\n");
        Files.writeString(
                json, "[[90,132,40,61,104,165,39,4,73,56,183,86],[20,107,104,64,19,197,187,157,172,86,16,27]]");
        for (Path file : List.of(csv, json)) {
            String out = capture(
                    "--load",
                    file.toString(),
                    "--replicas",
                    "16",
                    "--groups",
                    "4",
                    "--nodes",
                    "2",
                    "--devices",
                    "8",
                    "--json");
            Map<?, ?> m = (Map<?, ?>) Json.parse(out.strip());
            assertEquals(
                    List.of(5L, 6L, 5L, 7L, 8L, 4L, 3L, 4L, 10L, 9L, 10L, 2L, 0L, 1L, 11L, 1L),
                    ((List<?>) m.get("phy2log")).get(0));
            assertEquals(2, ((List<?>) m.get("log2phy")).size());
            assertEquals(12, ((List<?>) ((List<?>) m.get("logcnt")).get(1)).size());
        }
        String table = capture(
                "--load",
                csv.toString(),
                "--replicas",
                "16",
                "--groups",
                "4",
                "--nodes",
                "2",
                "--devices",
                "8",
                "--policy",
                "refined");
        assertTrue(table.contains("device   7") && table.contains("max/mean device load"), table);
    }

    @Test
    void badFilesAndArgumentsAreNamed() throws IOException {
        Path bad = dir.resolve("bad.csv");
        Files.writeString(bad, "1,2,x\n");
        var e = assertThrows(
                IllegalArgumentException.class,
                () -> EplbCommand.run(new String[] {"--load", bad.toString(), "--replicas", "4", "--devices", "2"}));
        assertTrue(e.getMessage().contains("line 1, column 3"), e.getMessage());
        Path ok = dir.resolve("ok.csv");
        Files.writeString(ok, "1,2,3,4\n");
        var notDivisible = assertThrows(
                IllegalArgumentException.class,
                () -> EplbCommand.run(new String[] {"--load", ok.toString(), "--replicas", "6", "--devices", "4"}));
        assertTrue(notDivisible.getMessage().contains("divisible by devices"), notDivisible.getMessage());
    }
}
