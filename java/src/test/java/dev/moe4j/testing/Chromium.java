package dev.moe4j.testing;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.awt.image.BufferedImage;
import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Assumptions;

/**
 * Headless Chromium for the dashboard tests: a page's screenshot and its DOM after loading. {@code ./moe4j test}
 * installs Debian's {@code chromium}; where none is found (a developer's machine) the tests that need it are skipped
 * with a message saying so.
 */
public final class Chromium {
    private Chromium() {}

    /** A rendered page: the screenshot (PNG) and the DOM as Chromium serialized it. */
    public record Page(Path screenshot, String dom) {}

    /** Chromium's executable on the PATH (or in {@code -Dmoe4j.test.chromium}), or empty. */
    public static Optional<Path> find() {
        String configured = System.getProperty("moe4j.test.chromium");
        if (configured != null) return Optional.of(Path.of(configured)).filter(Files::isExecutable);
        for (String dir : System.getenv().getOrDefault("PATH", "/usr/bin").split(File.pathSeparator))
            for (String name : List.of("chromium", "chromium-browser", "google-chrome")) {
                Path p = Path.of(dir, name);
                if (Files.isExecutable(p)) return Optional.of(p);
            }
        return Optional.empty();
    }

    /** Skips the calling test, with a message, when there is no Chromium. */
    public static Path require() {
        Optional<Path> chromium = find();
        Assumptions.assumeTrue(
                chromium.isPresent(),
                "no chromium on the PATH: install Debian's chromium (./moe4j test installs it) to render the"
                        + " dashboard");
        return chromium.orElseThrow();
    }

    /**
     * Loads {@code url} in headless Chromium twice: once for a screenshot of {@code width} x {@code height} pixels
     * written to {@code screenshot}, once for the DOM.
     */
    public static Page render(String url, Path screenshot, int width, int height) {
        Path chromium = require();
        try {
            Files.createDirectories(screenshot.toAbsolutePath().getParent());
            Files.deleteIfExists(screenshot);
            run(
                    chromium,
                    List.of(
                            "--screenshot=" + screenshot.toAbsolutePath(),
                            "--window-size=" + width + "," + height,
                            url));
            String dom = run(chromium, List.of("--dump-dom", url));
            assertTrue(Files.size(screenshot) > 0, "the screenshot " + screenshot + " is empty");
            return new Page(screenshot.toAbsolutePath(), dom);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static String run(Path chromium, List<String> args) throws IOException {
        Path profile = Files.createTempDirectory("moe4j-chromium-");
        List<String> command = new ArrayList<>(List.of(
                chromium.toString(),
                "--headless",
                "--no-sandbox", // tests may run as root
                "--disable-gpu",
                "--hide-scrollbars",
                "--no-first-run",
                "--user-data-dir=" + profile));
        command.addAll(args);
        Path log = Files.createTempFile("moe4j-chromium-", ".log");
        Process p = new ProcessBuilder(command).redirectError(log.toFile()).start();
        try {
            byte[] out = p.getInputStream().readAllBytes();
            if (!p.waitFor(120, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new AssertionError("chromium ran longer than 120 s: " + command);
            }
            assertEquals(0, p.exitValue(), "chromium failed: " + command + "\n" + Files.readString(log));
            return new String(out, StandardCharsets.UTF_8);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        } finally {
            delete(profile);
            Files.deleteIfExists(log);
        }
    }

    private static void delete(Path dir) throws IOException {
        try (Stream<Path> files = Files.walk(dir)) {
            for (Path p : files.sorted(Comparator.reverseOrder()).toList()) Files.deleteIfExists(p);
        }
    }

    /** The distinct colours of a PNG (1 for a blank page). */
    public static int colours(Path png) {
        try {
            BufferedImage image = ImageIO.read(png.toFile());
            assertTrue(image != null && image.getWidth() > 0 && image.getHeight() > 0, png + " is not a PNG image");
            Set<Integer> colours = new HashSet<>();
            for (int y = 0; y < image.getHeight(); y++)
                for (int x = 0; x < image.getWidth(); x++) colours.add(image.getRGB(x, y));
            return colours.size();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** How many elements of the DOM carry exactly this class attribute. */
    public static int count(String dom, String classAttribute) {
        Matcher m = Pattern.compile("class=\"" + Pattern.quote(classAttribute) + "\"")
                .matcher(dom);
        int n = 0;
        while (m.find()) n++;
        return n;
    }
}
