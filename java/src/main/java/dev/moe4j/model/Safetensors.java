package dev.moe4j.model;

import dev.moe4j.internal.Json;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.Tensor;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * One memory-mapped safetensors file: an 8-byte little-endian header length, a JSON header mapping each tensor name
 * to its dtype, shape and {@code data_offsets} (relative to the data after the header), then the data.
 *
 * <p>Opening validates the whole header before any tensor is used: the header fits the file, every entry has a
 * supported dtype (F32, BF16, F16, F8_E4M3, I32, I64), a shape whose byte size equals its offsets' span, offsets
 * within the data, no two tensors overlapping and no unclaimed bytes (as the reference implementation requires).
 * Every error is an {@link IllegalArgumentException} naming the file and, where there is one, the tensor.
 *
 * <p>Tensors are views of the mapping (copied only when an offset is not aligned to the element size), valid until
 * {@link #close}. The mapping is in a shared arena, so tensors may be read from any thread.
 */
public final class Safetensors implements AutoCloseable {
    /** The reference implementation's header size limit. */
    static final long MAX_HEADER = 100L << 20;

    /** A tensor's header entry. */
    public record Entry(DType dtype, long[] shape, long begin, long end) {}

    private final Path file;
    private final Arena arena;
    private final MemorySegment data;
    private final Map<String, Entry> entries;
    private final Map<String, String> metadata;

    private Safetensors(
            Path file, Arena arena, MemorySegment data, Map<String, Entry> entries, Map<String, String> metadata) {
        this.file = file;
        this.arena = arena;
        this.data = data;
        this.entries = entries;
        this.metadata = metadata;
    }

    /**
     * Maps and validates a file.
     *
     * @throws IllegalArgumentException if the file is malformed
     * @throws UncheckedIOException if it cannot be read
     */
    public static Safetensors open(Path file) {
        Arena arena = Arena.ofShared();
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = ch.size();
            if (size < 8) throw bad(file, "is " + size + " bytes, too short for a safetensors header");
            MemorySegment all = ch.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
            long headerLength = all.get(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 0);
            if (headerLength < 2 || headerLength > MAX_HEADER || headerLength > size - 8)
                throw bad(file, "header length " + headerLength + " does not fit the file of " + size + " bytes");
            String header =
                    new String(all.asSlice(8, headerLength).toArray(ValueLayout.JAVA_BYTE), StandardCharsets.UTF_8);
            MemorySegment data = all.asSlice(8 + headerLength);
            Map<String, String> metadata = new LinkedHashMap<>();
            Map<String, Entry> entries = parseHeader(file, header, data.byteSize(), metadata);
            return new Safetensors(file, arena, data, entries, metadata);
        } catch (IOException e) {
            arena.close();
            throw new UncheckedIOException("cannot read safetensors file " + file + ": " + e.getMessage(), e);
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    private static Map<String, Entry> parseHeader(
            Path file, String header, long dataBytes, Map<String, String> metadata) {
        Object parsed;
        try {
            parsed = Json.parse(header);
        } catch (IllegalArgumentException e) {
            throw bad(file, "has a bad header: " + e.getMessage());
        }
        if (!(parsed instanceof Map<?, ?> map)) throw bad(file, "has a header that is not a JSON object");
        Map<String, Entry> entries = new LinkedHashMap<>();
        for (var e : map.entrySet()) {
            String name = (String) e.getKey();
            if (name.equals("__metadata__")) {
                if (!(e.getValue() instanceof Map<?, ?> m)) throw bad(file, "has a __metadata__ that is not an object");
                m.forEach((k, v) -> metadata.put(String.valueOf(k), String.valueOf(v)));
                continue;
            }
            entries.put(name, entry(file, name, e.getValue(), dataBytes));
        }
        List<Map.Entry<String, Entry>> byOffset = new ArrayList<>(entries.entrySet());
        byOffset.sort((a, b) -> Long.compare(a.getValue().begin(), b.getValue().begin()));
        long covered = 0;
        String previous = null;
        for (var e : byOffset) {
            Entry t = e.getValue();
            if (t.begin() < covered)
                throw bad(
                        file,
                        "tensors '" + previous + "' and '" + e.getKey() + "' overlap (bytes " + t.begin() + ".."
                                + covered + ")");
            if (t.begin() > covered)
                throw bad(file, "has bytes " + covered + ".." + t.begin() + " of its data that belong to no tensor");
            covered = t.end();
            previous = e.getKey();
        }
        if (covered != dataBytes)
            throw bad(file, "has " + (dataBytes - covered) + " bytes after its last tensor that belong to no tensor");
        return entries;
    }

    private static Entry entry(Path file, String name, Object value, long dataBytes) {
        String where = "tensor '" + name + "'";
        if (!(value instanceof Map<?, ?> m)) throw bad(file, where + " is not a JSON object");
        if (!(m.get("dtype") instanceof String dt)) throw bad(file, where + " has no dtype");
        DType dtype = switch (dt) {
            case "F32" -> DType.F32;
            case "BF16" -> DType.BF16;
            case "F16" -> DType.F16;
            case "F8_E4M3" -> DType.E4M3;
            case "I32" -> DType.I32;
            case "I64" -> DType.I64;
            case "F64", "I8", "U8", "I16", "U16", "U32", "U64", "BOOL", "F8_E5M2" ->
                throw bad(
                        file,
                        where + " has dtype " + dt + ", which moe4j does not read (F32, BF16, F16, F8_E4M3,"
                                + " I32, I64)");
            default -> throw bad(file, where + " has unknown dtype \"" + dt + "\"");
        };
        long[] shape = longs(file, where, "shape", m.get("shape"), -1);
        if (shape.length > Tensor.MAX_RANK)
            throw bad(file, where + " has rank " + shape.length + ", more than " + Tensor.MAX_RANK);
        long[] offsets = longs(file, where, "data_offsets", m.get("data_offsets"), 2);
        long begin = offsets[0], end = offsets[1];
        if (begin > end || end > dataBytes)
            throw bad(
                    file,
                    where + " has data_offsets [" + begin + ", " + end + "] outside the " + dataBytes + " data bytes");
        long bytes = dtype.byteSize();
        try {
            for (long extent : shape) bytes = Math.multiplyExact(bytes, extent);
        } catch (ArithmeticException overflow) {
            throw bad(file, where + " has shape " + Arrays.toString(shape) + ", more bytes than a long counts");
        }
        if (bytes != end - begin)
            throw bad(
                    file,
                    where + " is " + dt + " " + Arrays.toString(shape) + ", " + bytes
                            + " bytes, but its data_offsets span " + (end - begin));
        return new Entry(dtype, shape, begin, end);
    }

    private static long[] longs(Path file, String where, String key, Object value, int length) {
        if (!(value instanceof List<?> list) || (length >= 0 && list.size() != length))
            throw bad(file, where + " has a bad " + key + ": " + value);
        long[] out = new long[list.size()];
        for (int i = 0; i < out.length; i++) {
            if (!(list.get(i) instanceof Long l) || l < 0) throw bad(file, where + " has a bad " + key + ": " + value);
            out[i] = l;
        }
        return out;
    }

    private static IllegalArgumentException bad(Path file, String what) {
        return new IllegalArgumentException("safetensors file " + file + " " + what);
    }

    public Path file() {
        return file;
    }

    public Set<String> names() {
        return Collections.unmodifiableSet(entries.keySet());
    }

    public Map<String, String> metadata() {
        return Collections.unmodifiableMap(metadata);
    }

    /** The header entry of a tensor, or null if the file has none of that name. */
    public Entry entry(String name) {
        return entries.get(name);
    }

    /**
     * A tensor of the file (rank-0 tensors come back as rank 1 of extent 1).
     *
     * @throws IllegalArgumentException naming the file if it has no such tensor
     */
    public Tensor tensor(String name) {
        Entry e = entries.get(name);
        if (e == null) throw bad(file, "has no tensor '" + name + "'");
        long[] shape = e.shape().length == 0 ? new long[] {1} : e.shape();
        MemorySegment bytes = data.asSlice(e.begin(), e.end() - e.begin());
        if (bytes.address() % e.dtype().byteSize() != 0) {
            MemorySegment aligned = arena.allocate(bytes.byteSize(), Tensor.ALIGNMENT);
            aligned.copyFrom(bytes);
            bytes = aligned;
        }
        return Tensor.of(bytes, e.dtype(), shape);
    }

    /** Bytes of the tensor data region (the mapped file less its header). */
    public long byteSize() {
        return data.byteSize();
    }

    /**
     * Gives the file's mapped pages back to the operating system ({@code madvise(MADV_DONTNEED)}): they leave the
     * process's resident memory, and the page cache may drop them first when memory runs short. For a file whose
     * tensors were copied or converted. Its tensors stay valid: the next read of one maps its pages again, from the page
     * cache or the file.
     */
    public void releasePages() {
        data.unload();
    }

    /** Unmaps the file; its tensors become unusable. */
    @Override
    public void close() {
        arena.close();
    }

    /**
     * Writes tensors (contiguous, in map order) and string metadata as a safetensors file, the header padded with
     * spaces to a multiple of 8 bytes as the reference writer does.
     */
    public static void write(Path file, Map<String, Tensor> tensors, Map<String, String> metadata) {
        Map<String, Object> header = new LinkedHashMap<>();
        if (metadata != null && !metadata.isEmpty()) header.put("__metadata__", new LinkedHashMap<>(metadata));
        long offset = 0;
        for (var e : tensors.entrySet()) {
            Tensor t = e.getValue();
            if (!t.isContiguous())
                throw new IllegalArgumentException("tensor '" + e.getKey() + "' is not contiguous: " + t);
            long bytes = t.elementCount() * t.dtype().byteSize();
            List<Object> shape = new ArrayList<>();
            for (long extent : t.shape()) shape.add(extent);
            Map<String, Object> entry = new LinkedHashMap<>();
            entry.put("dtype", name(t.dtype()));
            entry.put("shape", shape);
            entry.put("data_offsets", List.of(offset, offset + bytes));
            header.put(e.getKey(), entry);
            offset += bytes;
        }
        byte[] json = Json.write(header).getBytes(StandardCharsets.UTF_8);
        int padded = (json.length + 7) / 8 * 8;
        try (Arena scratch = Arena.ofConfined();
                FileChannel ch = FileChannel.open(
                        file,
                        StandardOpenOption.CREATE,
                        StandardOpenOption.TRUNCATE_EXISTING,
                        StandardOpenOption.WRITE)) {
            MemorySegment head = scratch.allocate(8 + padded);
            head.set(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 0, padded);
            head.asSlice(8, padded).fill((byte) ' ');
            MemorySegment.copy(MemorySegment.ofArray(json), 0, head, 8, json.length);
            writeFully(ch, head);
            for (Tensor t : tensors.values())
                writeFully(
                        ch, t.segment().asSlice(0, t.elementCount() * t.dtype().byteSize()));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write safetensors file " + file + ": " + e.getMessage(), e);
        }
    }

    private static void writeFully(FileChannel ch, MemorySegment bytes) throws IOException {
        var buffer = bytes.asByteBuffer();
        while (buffer.hasRemaining()) ch.write(buffer);
    }

    static String name(DType dtype) {
        return switch (dtype) {
            case F32 -> "F32";
            case BF16 -> "BF16";
            case F16 -> "F16";
            case E4M3 -> "F8_E4M3";
            case I32 -> "I32";
            case I64 -> "I64";
            default -> throw new IllegalArgumentException("safetensors has no dtype for " + dtype);
        };
    }
}
