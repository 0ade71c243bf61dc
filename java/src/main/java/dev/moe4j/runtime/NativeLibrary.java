package dev.moe4j.runtime;

import dev.moe4j.bindings.moe4j_capabilities;
import dev.moe4j.bindings.moe4j_h;
import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;

/**
 * Loads the native library once per JVM and turns native statuses into exceptions.
 *
 * <p>Which library: the system property {@code moe4j.library} names it, {@code moe4j} (CPU, the default) or
 * {@code moe4j_cuda} (CPU and CUDA backends). Where from, first match wins:
 *
 * <ol>
 *   <li>{@code -Dmoe4j.library.path=DIR} (or the file itself): when set, the only place looked at;
 *   <li>the native build folder {@code build/native/lib} of the working directory or of a parent of the
 *       folder this class was loaded from;
 *   <li>the jar ({@code /native/linux-x86_64/}), extracted to a temporary file.
 * </ol>
 *
 * A failure throws {@link UnsatisfiedLinkError} listing every place tried and why each failed.
 * Thread-safe.
 */
public final class NativeLibrary {
    /** The C ABI version this Java layer was written against. */
    public static final int ABI_VERSION = 10;

    private static final String RESOURCE_DIR = "/native/linux-x86_64/";

    private static volatile Capabilities loaded;

    private NativeLibrary() {}

    /** Loads the library if not yet loaded and returns what it offers. */
    public static Capabilities capabilities() {
        Capabilities caps = loaded;
        if (caps == null) {
            synchronized (NativeLibrary.class) {
                caps = loaded;
                if (caps == null) loaded = caps = load();
            }
        }
        return caps;
    }

    /**
     * Throws {@link Moe4jException} with the calling thread's native message unless status is OK. Must be
     * called on the thread that made the failing call, before it makes another.
     */
    public static void check(int status, String function) {
        if (status != moe4j_h.MOE4J_OK()) throw new Moe4jException(status, function, lastError());
    }

    /**
     * Runs a native call and {@link #check}s its status; times it when a {@link Profiler} is active on this thread.
     */
    public static void call(String function, java.util.function.IntSupplier nativeCall) {
        Profiler profiler = Profiler.current();
        if (profiler == null) {
            check(nativeCall.getAsInt(), function);
            return;
        }
        long t0 = System.nanoTime();
        int status = nativeCall.getAsInt();
        profiler.record(function, System.nanoTime() - t0);
        check(status, function);
    }

    /** The calling thread's native message for its last failed call, "" if none. */
    public static String lastError() {
        MemorySegment message = moe4j_h.moe4j_last_error();
        return message.equals(MemorySegment.NULL)
                ? ""
                : message.reinterpret(Long.MAX_VALUE).getString(0);
    }

    private static Capabilities load() {
        String os = System.getProperty("os.name"), arch = System.getProperty("os.arch");
        if (!os.toLowerCase().startsWith("linux") || !(arch.equals("amd64") || arch.equals("x86_64")))
            throw new UnsatisfiedLinkError(
                    "moe4j's native library is built for Linux x86-64; this JVM runs on " + os + " " + arch);
        String name = System.getProperty("moe4j.library", "moe4j");
        if (!name.equals("moe4j") && !name.equals("moe4j_cuda"))
            throw new UnsatisfiedLinkError(
                    "-Dmoe4j.library=" + name + " names no moe4j library: use moe4j or moe4j_cuda");
        String file = "lib" + name + ".so";
        List<String> tried = new ArrayList<>();
        Path path = loadFirst(file, tried);
        if (path == null)
            throw new UnsatisfiedLinkError("could not load " + file + "; tried:\n  " + String.join("\n  ", tried)
                    + "\nBuild it with `./moe4j build` (or point -Dmoe4j.library.path at the folder holding it).");
        return query(path);
    }

    private static Path loadFirst(String file, List<String> tried) {
        String explicit = System.getProperty("moe4j.library.path");
        if (explicit != null && !explicit.isBlank()) {
            Path p = Path.of(explicit);
            return tryLoad(Files.isDirectory(p) ? p.resolve(file) : p, "-Dmoe4j.library.path", tried);
        }
        for (Path dir : buildFolders()) {
            Path loadedFrom = tryLoad(dir.resolve(file), "build folder", tried);
            if (loadedFrom != null) return loadedFrom;
        }
        return tryLoad(extractFromJar(file, tried), "jar", tried);
    }

    private static Path tryLoad(Path candidate, String source, List<String> tried) {
        if (candidate == null) return null;
        if (!Files.isRegularFile(candidate)) {
            tried.add(candidate + " (" + source + "): not found");
            return null;
        }
        try {
            System.load(candidate.toAbsolutePath().toString());
            return candidate.toAbsolutePath();
        } catch (UnsatisfiedLinkError e) {
            tried.add(candidate + " (" + source + "): " + e.getMessage());
            return null;
        }
    }

    private static List<Path> buildFolders() {
        List<Path> dirs = new ArrayList<>();
        dirs.add(Path.of("").toAbsolutePath().resolve("build/native/lib"));
        try {
            var source = NativeLibrary.class.getProtectionDomain().getCodeSource();
            if (source != null) {
                for (Path p = Path.of(source.getLocation().toURI()).getParent(); p != null; p = p.getParent()) {
                    Path dir = p.resolve("build/native/lib");
                    if (!dirs.contains(dir) && Files.isDirectory(dir)) {
                        dirs.add(dir);
                        break;
                    }
                }
            }
        } catch (URISyntaxException | SecurityException e) {
            // The code source is only a hint; the working directory and the jar are still tried.
        }
        return dirs;
    }

    private static Path extractFromJar(String file, List<String> tried) {
        try (InputStream in = NativeLibrary.class.getResourceAsStream(RESOURCE_DIR + file)) {
            if (in == null) {
                tried.add("jar resource " + RESOURCE_DIR + file + ": not packaged");
                return null;
            }
            Path dir = Files.createTempDirectory("moe4j-native");
            Path target = dir.resolve(file);
            Files.copy(in, target, StandardCopyOption.REPLACE_EXISTING);
            target.toFile().deleteOnExit();
            dir.toFile().deleteOnExit();
            return target;
        } catch (IOException e) {
            tried.add("jar resource " + RESOURCE_DIR + file + ": extraction failed: " + e.getMessage());
            return null;
        }
    }

    private static Capabilities query(Path path) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment caps = moe4j_capabilities.allocate(arena);
            check(moe4j_h.moe4j_query_capabilities(caps), "moe4j_query_capabilities");
            int abi = moe4j_capabilities.abi_version(caps);
            if (abi != ABI_VERSION)
                throw new UnsatisfiedLinkError(
                        path + " implements C ABI version " + abi + " but this moe4j jar expects " + ABI_VERSION
                                + ": rebuild the native library (./moe4j build) or use the matching jar");
            return new Capabilities(
                    path,
                    abi,
                    moe4j_capabilities.version_major(caps) + "." + moe4j_capabilities.version_minor(caps) + "."
                            + moe4j_capabilities.version_patch(caps),
                    Isa.of(moe4j_capabilities.cpu_isa(caps)),
                    moe4j_capabilities.cpu_threads(caps),
                    moe4j_capabilities.cuda_compiled(caps) != 0,
                    moe4j_capabilities.cuda_device_count(caps));
        }
    }
}
