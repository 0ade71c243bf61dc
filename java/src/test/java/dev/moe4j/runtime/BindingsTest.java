package dev.moe4j.runtime;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.moe4j.bindings.moe4j_capabilities;
import dev.moe4j.bindings.moe4j_context_info;
import dev.moe4j.bindings.moe4j_context_options;
import dev.moe4j.bindings.moe4j_fp8_weight_groups;
import dev.moe4j.bindings.moe4j_h;
import dev.moe4j.bindings.moe4j_kernel_variant;
import dev.moe4j.bindings.moe4j_tensor;
import java.io.IOException;
import java.lang.foreign.SymbolLookup;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;

/** The checked-in bindings against the built libraries' exported symbols. */
class BindingsTest {
    @Test
    void everyExportedSymbolHasABindingAndEveryBindingResolves() throws Exception {
        Path library = NativeLibrary.capabilities().library();
        Set<String> exported = exportedSymbols(library);
        Set<String> bound = Arrays.stream(moe4j_h.class.getDeclaredMethods())
                .filter(m -> Modifier.isPublic(m.getModifiers()) && Modifier.isStatic(m.getModifiers()))
                .map(Method::getName)
                .filter(n -> n.startsWith("moe4j_") && !n.contains("$"))
                .collect(Collectors.toCollection(TreeSet::new));
        assertTrue(exported.size() >= 9, "suspiciously few exports: " + exported);
        assertEquals(exported, bound, "exports of " + library + " vs bindings in moe4j_h (run bindings/jextract.sh)");
        for (String name : bound)
            assertTrue(SymbolLookup.loaderLookup().find(name).isPresent(), name + " does not resolve");
    }

    @Test
    void cudaLibraryExportsTheSameEntryPoints() throws Exception {
        Path cpu = NativeLibrary.capabilities().library();
        Path cuda = cpu.resolveSibling("libmoe4j_cuda.so");
        Path plain = cpu.resolveSibling("libmoe4j.so");
        if (!Files.exists(cuda)) {
            System.out.println("libmoe4j_cuda.so not built beside " + cpu + " (no nvcc): nothing to compare");
            return;
        }
        assertEquals(exportedSymbols(plain), exportedSymbols(cuda));
    }

    @Test
    void structLayoutsMatchTheHeader() {
        // Sizes and offsets fixed by moe4j.h on LP64; the native side asserts the same numbers at compile time.
        assertEquals(96, moe4j_tensor.sizeof());
        assertEquals(8, moe4j_tensor.size_bytes$offset());
        assertEquals(32, moe4j_tensor.shape$offset());
        assertEquals(64, moe4j_tensor.strides$offset());
        assertEquals(20, moe4j_context_options.sizeof());
        assertEquals(20, moe4j_context_info.sizeof());
        assertEquals(32, moe4j_capabilities.sizeof());
        assertEquals(24, moe4j_fp8_weight_groups.sizeof());
        assertEquals(8, moe4j_fp8_weight_groups.weights$offset());
        assertEquals(16, moe4j_fp8_weight_groups.scales$offset());
        assertEquals(176, moe4j_kernel_variant.sizeof());
        assertEquals(48, moe4j_kernel_variant.variant$offset());
        assertEquals(72, moe4j_kernel_variant.reason$offset());
        assertEquals(168, moe4j_kernel_variant.calls$offset());
    }

    static Set<String> exportedSymbols(Path library) throws IOException, InterruptedException {
        Process nm = new ProcessBuilder("nm", "-D", "--defined-only", library.toString())
                .redirectErrorStream(true)
                .start();
        String out = new String(nm.getInputStream().readAllBytes());
        assertEquals(0, nm.waitFor(), "nm failed on " + library + ": " + out);
        return out.lines()
                .map(l -> l.trim().split("\\s+"))
                .filter(f -> f.length == 3 && f[1].equals("T") && f[2].startsWith("moe4j_"))
                .map(f -> f[2])
                .collect(Collectors.toCollection(TreeSet::new));
    }
}
