// Generated in jextract's layout from native/include/moe4j.h; regenerate with bindings/jextract.sh.
package dev.moe4j.bindings;

import java.lang.foreign.*;
import java.lang.invoke.*;
import java.util.*;
import java.util.stream.*;

import static java.lang.foreign.ValueLayout.*;
import static java.lang.foreign.MemoryLayout.PathElement.*;

public class moe4j_h {

    moe4j_h() {
        // Should not be called directly
    }

    static final Arena LIBRARY_ARENA = Arena.ofAuto();
    static final boolean TRACE_DOWNCALLS = Boolean.getBoolean("jextract.trace.downcalls");

    static void traceDowncall(String name, Object... args) {
         String traceArgs = Arrays.stream(args)
                       .map(Object::toString)
                       .collect(Collectors.joining(", "));
         System.out.printf("%s(%s)\n", name, traceArgs);
    }

    static MemorySegment findOrThrow(String symbol) {
        return SYMBOL_LOOKUP.find(symbol)
            .orElseThrow(() -> new UnsatisfiedLinkError("unresolved symbol: " + symbol));
    }

    static MethodHandle upcallHandle(Class<?> fi, String name, FunctionDescriptor fdesc) {
        try {
            return MethodHandles.lookup().findVirtual(fi, name, fdesc.toMethodType());
        } catch (ReflectiveOperationException ex) {
            throw new AssertionError(ex);
        }
    }

    static MemoryLayout align(MemoryLayout layout, long align) {
        return switch (layout) {
            case PaddingLayout p -> p;
            case ValueLayout v -> v.withByteAlignment(align);
            case GroupLayout g -> {
                MemoryLayout[] alignedMembers = g.memberLayouts().stream()
                        .map(m -> align(m, align)).toArray(MemoryLayout[]::new);
                yield g instanceof StructLayout ?
                        MemoryLayout.structLayout(alignedMembers) : MemoryLayout.unionLayout(alignedMembers);
            }
            case SequenceLayout s -> MemoryLayout.sequenceLayout(s.elementCount(), align(s.elementLayout(), align));
        };
    }

    static final SymbolLookup SYMBOL_LOOKUP = SymbolLookup.loaderLookup()
            .or(Linker.nativeLinker().defaultLookup());

    public static final ValueLayout.OfBoolean C_BOOL = ValueLayout.JAVA_BOOLEAN;
    public static final ValueLayout.OfByte C_CHAR = ValueLayout.JAVA_BYTE;
    public static final ValueLayout.OfShort C_SHORT = ValueLayout.JAVA_SHORT;
    public static final ValueLayout.OfInt C_INT = ValueLayout.JAVA_INT;
    public static final ValueLayout.OfLong C_LONG_LONG = ValueLayout.JAVA_LONG;
    public static final ValueLayout.OfFloat C_FLOAT = ValueLayout.JAVA_FLOAT;
    public static final ValueLayout.OfDouble C_DOUBLE = ValueLayout.JAVA_DOUBLE;
    public static final AddressLayout C_POINTER = ValueLayout.ADDRESS
            .withTargetLayout(MemoryLayout.sequenceLayout(java.lang.Long.MAX_VALUE, JAVA_BYTE));
    public static final ValueLayout.OfLong C_LONG = ValueLayout.JAVA_LONG;
    private static final int MOE4J_OK = (int)0L;
    /**
     * {@snippet lang=c :
     * enum <anonymous>.MOE4J_OK = 0
     * }
     */
    public static int MOE4J_OK() {
        return MOE4J_OK;
    }
    private static final int MOE4J_ERROR_INVALID_ARGUMENT = (int)1L;
    /**
     * {@snippet lang=c :
     * enum <anonymous>.MOE4J_ERROR_INVALID_ARGUMENT = 1
     * }
     */
    public static int MOE4J_ERROR_INVALID_ARGUMENT() {
        return MOE4J_ERROR_INVALID_ARGUMENT;
    }
    private static final int MOE4J_ERROR_UNSUPPORTED = (int)2L;
    /**
     * {@snippet lang=c :
     * enum <anonymous>.MOE4J_ERROR_UNSUPPORTED = 2
     * }
     */
    public static int MOE4J_ERROR_UNSUPPORTED() {
        return MOE4J_ERROR_UNSUPPORTED;
    }
    private static final int MOE4J_ERROR_OUT_OF_MEMORY = (int)3L;
    /**
     * {@snippet lang=c :
     * enum <anonymous>.MOE4J_ERROR_OUT_OF_MEMORY = 3
     * }
     */
    public static int MOE4J_ERROR_OUT_OF_MEMORY() {
        return MOE4J_ERROR_OUT_OF_MEMORY;
    }
    private static final int MOE4J_ERROR_BACKEND = (int)4L;
    /**
     * {@snippet lang=c :
     * enum <anonymous>.MOE4J_ERROR_BACKEND = 4
     * }
     */
    public static int MOE4J_ERROR_BACKEND() {
        return MOE4J_ERROR_BACKEND;
    }
    private static final int MOE4J_ERROR_INTERNAL = (int)5L;
    /**
     * {@snippet lang=c :
     * enum <anonymous>.MOE4J_ERROR_INTERNAL = 5
     * }
     */
    public static int MOE4J_ERROR_INTERNAL() {
        return MOE4J_ERROR_INTERNAL;
    }
    private static final int MOE4J_F32 = (int)0L;
    /**
     * {@snippet lang=c :
     * enum <anonymous>.MOE4J_F32 = 0
     * }
     */
    public static int MOE4J_F32() {
        return MOE4J_F32;
    }
    private static final int MOE4J_BF16 = (int)1L;
    /**
     * {@snippet lang=c :
     * enum <anonymous>.MOE4J_BF16 = 1
     * }
     */
    public static int MOE4J_BF16() {
        return MOE4J_BF16;
    }
    private static final int MOE4J_F16 = (int)2L;
    /**
     * {@snippet lang=c :
     * enum <anonymous>.MOE4J_F16 = 2
     * }
     */
    public static int MOE4J_F16() {
        return MOE4J_F16;
    }
    private static final int MOE4J_E4M3 = (int)3L;
    /**
     * {@snippet lang=c :
     * enum <anonymous>.MOE4J_E4M3 = 3
     * }
     */
    public static int MOE4J_E4M3() {
        return MOE4J_E4M3;
    }
    private static final int MOE4J_I32 = (int)4L;
    /**
     * {@snippet lang=c :
     * enum <anonymous>.MOE4J_I32 = 4
     * }
     */
    public static int MOE4J_I32() {
        return MOE4J_I32;
    }
    private static final int MOE4J_I64 = (int)5L;
    /**
     * {@snippet lang=c :
     * enum <anonymous>.MOE4J_I64 = 5
     * }
     */
    public static int MOE4J_I64() {
        return MOE4J_I64;
    }
    private static final int MOE4J_U8 = (int)6L;
    /**
     * {@snippet lang=c :
     * enum <anonymous>.MOE4J_U8 = 6
     * }
     */
    public static int MOE4J_U8() {
        return MOE4J_U8;
    }
    private static final int MOE4J_E4M3_P32 = (int)7L;
    /**
     * {@snippet lang=c :
     * enum <anonymous>.MOE4J_E4M3_P32 = 7
     * }
     */
    public static int MOE4J_E4M3_P32() {
        return MOE4J_E4M3_P32;
    }
    private static final int MOE4J_Q8_P16 = (int)8L;
    /**
     * {@snippet lang=c :
     * enum <anonymous>.MOE4J_Q8_P16 = 8
     * }
     */
    public static int MOE4J_Q8_P16() {
        return MOE4J_Q8_P16;
    }
    private static final int MOE4J_BACKEND_CPU = (int)0L;
    /**
     * {@snippet lang=c :
     * enum <anonymous>.MOE4J_BACKEND_CPU = 0
     * }
     */
    public static int MOE4J_BACKEND_CPU() {
        return MOE4J_BACKEND_CPU;
    }
    private static final int MOE4J_BACKEND_CUDA = (int)1L;
    /**
     * {@snippet lang=c :
     * enum <anonymous>.MOE4J_BACKEND_CUDA = 1
     * }
     */
    public static int MOE4J_BACKEND_CUDA() {
        return MOE4J_BACKEND_CUDA;
    }
    private static final int MOE4J_ISA_SCALAR = (int)0L;
    /**
     * {@snippet lang=c :
     * enum <anonymous>.MOE4J_ISA_SCALAR = 0
     * }
     */
    public static int MOE4J_ISA_SCALAR() {
        return MOE4J_ISA_SCALAR;
    }
    private static final int MOE4J_ISA_AVX2 = (int)1L;
    /**
     * {@snippet lang=c :
     * enum <anonymous>.MOE4J_ISA_AVX2 = 1
     * }
     */
    public static int MOE4J_ISA_AVX2() {
        return MOE4J_ISA_AVX2;
    }
    private static final int MOE4J_ISA_AVX512 = (int)2L;
    /**
     * {@snippet lang=c :
     * enum <anonymous>.MOE4J_ISA_AVX512 = 2
     * }
     */
    public static int MOE4J_ISA_AVX512() {
        return MOE4J_ISA_AVX512;
    }
    private static final int MOE4J_ISA_AVX512_BF16 = (int)3L;
    /**
     * {@snippet lang=c :
     * enum <anonymous>.MOE4J_ISA_AVX512_BF16 = 3
     * }
     */
    public static int MOE4J_ISA_AVX512_BF16() {
        return MOE4J_ISA_AVX512_BF16;
    }
    private static final int MOE4J_SCALE_FP32 = (int)0L;
    /**
     * {@snippet lang=c :
     * enum <anonymous>.MOE4J_SCALE_FP32 = 0
     * }
     */
    public static int MOE4J_SCALE_FP32() {
        return MOE4J_SCALE_FP32;
    }
    private static final int MOE4J_SCALE_UE8M0 = (int)1L;
    /**
     * {@snippet lang=c :
     * enum <anonymous>.MOE4J_SCALE_UE8M0 = 1
     * }
     */
    public static int MOE4J_SCALE_UE8M0() {
        return MOE4J_SCALE_UE8M0;
    }
    private static final int MOE4J_MAX_RANK = (int)4L;
    /**
     * {@snippet lang=c :
     * enum <anonymous>.MOE4J_MAX_RANK = 4
     * }
     */
    public static int MOE4J_MAX_RANK() {
        return MOE4J_MAX_RANK;
    }
    private static final int MOE4J_HOST_MEMORY = (int)-1L;
    /**
     * {@snippet lang=c :
     * enum <anonymous>.MOE4J_HOST_MEMORY = -1
     * }
     */
    public static int MOE4J_HOST_MEMORY() {
        return MOE4J_HOST_MEMORY;
    }
    private static final int MOE4J_ISA_BEST = (int)-1L;
    /**
     * {@snippet lang=c :
     * enum <anonymous>.MOE4J_ISA_BEST = -1
     * }
     */
    public static int MOE4J_ISA_BEST() {
        return MOE4J_ISA_BEST;
    }
    private static final int MOE4J_MAX_WEIGHT_GROUPS = (int)65536L;
    /**
     * {@snippet lang=c :
     * enum <anonymous>.MOE4J_MAX_WEIGHT_GROUPS = 65536
     * }
     */
    public static int MOE4J_MAX_WEIGHT_GROUPS() {
        return MOE4J_MAX_WEIGHT_GROUPS;
    }
    private static final int MOE4J_CONTEXT_REPRODUCIBLE = (int)1L;
    /**
     * {@snippet lang=c :
     * enum moe4j_context_flags.MOE4J_CONTEXT_REPRODUCIBLE = 1
     * }
     */
    public static int MOE4J_CONTEXT_REPRODUCIBLE() {
        return MOE4J_CONTEXT_REPRODUCIBLE;
    }
    private static final int MOE4J_CONTEXT_SIMPLE_KERNELS = (int)2L;
    /**
     * {@snippet lang=c :
     * enum moe4j_context_flags.MOE4J_CONTEXT_SIMPLE_KERNELS = 2
     * }
     */
    public static int MOE4J_CONTEXT_SIMPLE_KERNELS() {
        return MOE4J_CONTEXT_SIMPLE_KERNELS;
    }

    private static class moe4j_last_error {
        public static final FunctionDescriptor DESC = FunctionDescriptor.of(
            moe4j_h.C_POINTER
        );

        public static final MemorySegment ADDR = moe4j_h.findOrThrow("moe4j_last_error");

        public static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    /**
     * Function descriptor for:
     * {@snippet lang=c :
     * moe4j_last_error()
     * }
     */
    public static FunctionDescriptor moe4j_last_error$descriptor() {
        return moe4j_last_error.DESC;
    }

    /**
     * Downcall method handle for:
     * {@snippet lang=c :
     * moe4j_last_error()
     * }
     */
    public static MethodHandle moe4j_last_error$handle() {
        return moe4j_last_error.HANDLE;
    }

    /**
     * Address for:
     * {@snippet lang=c :
     * moe4j_last_error()
     * }
     */
    public static MemorySegment moe4j_last_error$address() {
        return moe4j_last_error.ADDR;
    }

    /**
     * {@snippet lang=c :
     * moe4j_last_error()
     * }
     */
    public static MemorySegment moe4j_last_error() {
        var mh$ = moe4j_last_error.HANDLE;
        try {
            if (TRACE_DOWNCALLS) {
                traceDowncall("moe4j_last_error");
            }
            return (MemorySegment)mh$.invokeExact();
        } catch (Error | RuntimeException ex) {
           throw ex;
        } catch (Throwable ex$) {
           throw new AssertionError("should not reach here", ex$);
        }
    }

    private static class moe4j_query_capabilities {
        public static final FunctionDescriptor DESC = FunctionDescriptor.of(
            moe4j_h.C_INT,
            moe4j_h.C_POINTER
        );

        public static final MemorySegment ADDR = moe4j_h.findOrThrow("moe4j_query_capabilities");

        public static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    /**
     * Function descriptor for:
     * {@snippet lang=c :
     * moe4j_query_capabilities(out)
     * }
     */
    public static FunctionDescriptor moe4j_query_capabilities$descriptor() {
        return moe4j_query_capabilities.DESC;
    }

    /**
     * Downcall method handle for:
     * {@snippet lang=c :
     * moe4j_query_capabilities(out)
     * }
     */
    public static MethodHandle moe4j_query_capabilities$handle() {
        return moe4j_query_capabilities.HANDLE;
    }

    /**
     * Address for:
     * {@snippet lang=c :
     * moe4j_query_capabilities(out)
     * }
     */
    public static MemorySegment moe4j_query_capabilities$address() {
        return moe4j_query_capabilities.ADDR;
    }

    /**
     * {@snippet lang=c :
     * moe4j_query_capabilities(out)
     * }
     */
    public static int moe4j_query_capabilities(MemorySegment out) {
        var mh$ = moe4j_query_capabilities.HANDLE;
        try {
            if (TRACE_DOWNCALLS) {
                traceDowncall("moe4j_query_capabilities", out);
            }
            return (int)mh$.invokeExact(out);
        } catch (Error | RuntimeException ex) {
           throw ex;
        } catch (Throwable ex$) {
           throw new AssertionError("should not reach here", ex$);
        }
    }

    private static class moe4j_context_create {
        public static final FunctionDescriptor DESC = FunctionDescriptor.of(
            moe4j_h.C_INT,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER
        );

        public static final MemorySegment ADDR = moe4j_h.findOrThrow("moe4j_context_create");

        public static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    /**
     * Function descriptor for:
     * {@snippet lang=c :
     * moe4j_context_create(options, out)
     * }
     */
    public static FunctionDescriptor moe4j_context_create$descriptor() {
        return moe4j_context_create.DESC;
    }

    /**
     * Downcall method handle for:
     * {@snippet lang=c :
     * moe4j_context_create(options, out)
     * }
     */
    public static MethodHandle moe4j_context_create$handle() {
        return moe4j_context_create.HANDLE;
    }

    /**
     * Address for:
     * {@snippet lang=c :
     * moe4j_context_create(options, out)
     * }
     */
    public static MemorySegment moe4j_context_create$address() {
        return moe4j_context_create.ADDR;
    }

    /**
     * {@snippet lang=c :
     * moe4j_context_create(options, out)
     * }
     */
    public static int moe4j_context_create(MemorySegment options, MemorySegment out) {
        var mh$ = moe4j_context_create.HANDLE;
        try {
            if (TRACE_DOWNCALLS) {
                traceDowncall("moe4j_context_create", options, out);
            }
            return (int)mh$.invokeExact(options, out);
        } catch (Error | RuntimeException ex) {
           throw ex;
        } catch (Throwable ex$) {
           throw new AssertionError("should not reach here", ex$);
        }
    }

    private static class moe4j_context_destroy {
        public static final FunctionDescriptor DESC = FunctionDescriptor.of(
            moe4j_h.C_INT,
            moe4j_h.C_POINTER
        );

        public static final MemorySegment ADDR = moe4j_h.findOrThrow("moe4j_context_destroy");

        public static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    /**
     * Function descriptor for:
     * {@snippet lang=c :
     * moe4j_context_destroy(ctx)
     * }
     */
    public static FunctionDescriptor moe4j_context_destroy$descriptor() {
        return moe4j_context_destroy.DESC;
    }

    /**
     * Downcall method handle for:
     * {@snippet lang=c :
     * moe4j_context_destroy(ctx)
     * }
     */
    public static MethodHandle moe4j_context_destroy$handle() {
        return moe4j_context_destroy.HANDLE;
    }

    /**
     * Address for:
     * {@snippet lang=c :
     * moe4j_context_destroy(ctx)
     * }
     */
    public static MemorySegment moe4j_context_destroy$address() {
        return moe4j_context_destroy.ADDR;
    }

    /**
     * {@snippet lang=c :
     * moe4j_context_destroy(ctx)
     * }
     */
    public static int moe4j_context_destroy(MemorySegment ctx) {
        var mh$ = moe4j_context_destroy.HANDLE;
        try {
            if (TRACE_DOWNCALLS) {
                traceDowncall("moe4j_context_destroy", ctx);
            }
            return (int)mh$.invokeExact(ctx);
        } catch (Error | RuntimeException ex) {
           throw ex;
        } catch (Throwable ex$) {
           throw new AssertionError("should not reach here", ex$);
        }
    }

    private static class moe4j_context_query {
        public static final FunctionDescriptor DESC = FunctionDescriptor.of(
            moe4j_h.C_INT,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER
        );

        public static final MemorySegment ADDR = moe4j_h.findOrThrow("moe4j_context_query");

        public static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    /**
     * Function descriptor for:
     * {@snippet lang=c :
     * moe4j_context_query(ctx, out)
     * }
     */
    public static FunctionDescriptor moe4j_context_query$descriptor() {
        return moe4j_context_query.DESC;
    }

    /**
     * Downcall method handle for:
     * {@snippet lang=c :
     * moe4j_context_query(ctx, out)
     * }
     */
    public static MethodHandle moe4j_context_query$handle() {
        return moe4j_context_query.HANDLE;
    }

    /**
     * Address for:
     * {@snippet lang=c :
     * moe4j_context_query(ctx, out)
     * }
     */
    public static MemorySegment moe4j_context_query$address() {
        return moe4j_context_query.ADDR;
    }

    /**
     * {@snippet lang=c :
     * moe4j_context_query(ctx, out)
     * }
     */
    public static int moe4j_context_query(MemorySegment ctx, MemorySegment out) {
        var mh$ = moe4j_context_query.HANDLE;
        try {
            if (TRACE_DOWNCALLS) {
                traceDowncall("moe4j_context_query", ctx, out);
            }
            return (int)mh$.invokeExact(ctx, out);
        } catch (Error | RuntimeException ex) {
           throw ex;
        } catch (Throwable ex$) {
           throw new AssertionError("should not reach here", ex$);
        }
    }

    private static class moe4j_context_kernel_variants {
        public static final FunctionDescriptor DESC = FunctionDescriptor.of(
            moe4j_h.C_INT,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_INT,
            moe4j_h.C_POINTER
        );

        public static final MemorySegment ADDR = moe4j_h.findOrThrow("moe4j_context_kernel_variants");

        public static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    /**
     * Function descriptor for:
     * {@snippet lang=c :
     * moe4j_context_kernel_variants(ctx, out, capacity, count)
     * }
     */
    public static FunctionDescriptor moe4j_context_kernel_variants$descriptor() {
        return moe4j_context_kernel_variants.DESC;
    }

    /**
     * Downcall method handle for:
     * {@snippet lang=c :
     * moe4j_context_kernel_variants(ctx, out, capacity, count)
     * }
     */
    public static MethodHandle moe4j_context_kernel_variants$handle() {
        return moe4j_context_kernel_variants.HANDLE;
    }

    /**
     * Address for:
     * {@snippet lang=c :
     * moe4j_context_kernel_variants(ctx, out, capacity, count)
     * }
     */
    public static MemorySegment moe4j_context_kernel_variants$address() {
        return moe4j_context_kernel_variants.ADDR;
    }

    /**
     * {@snippet lang=c :
     * moe4j_context_kernel_variants(ctx, out, capacity, count)
     * }
     */
    public static int moe4j_context_kernel_variants(MemorySegment ctx, MemorySegment out, int capacity, MemorySegment count) {
        var mh$ = moe4j_context_kernel_variants.HANDLE;
        try {
            if (TRACE_DOWNCALLS) {
                traceDowncall("moe4j_context_kernel_variants", ctx, out, capacity, count);
            }
            return (int)mh$.invokeExact(ctx, out, capacity, count);
        } catch (Error | RuntimeException ex) {
           throw ex;
        } catch (Throwable ex$) {
           throw new AssertionError("should not reach here", ex$);
        }
    }

    private static class moe4j_context_reset_kernel_variants {
        public static final FunctionDescriptor DESC = FunctionDescriptor.of(
            moe4j_h.C_INT,
            moe4j_h.C_POINTER
        );

        public static final MemorySegment ADDR = moe4j_h.findOrThrow("moe4j_context_reset_kernel_variants");

        public static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    /**
     * Function descriptor for:
     * {@snippet lang=c :
     * moe4j_context_reset_kernel_variants(ctx)
     * }
     */
    public static FunctionDescriptor moe4j_context_reset_kernel_variants$descriptor() {
        return moe4j_context_reset_kernel_variants.DESC;
    }

    /**
     * Downcall method handle for:
     * {@snippet lang=c :
     * moe4j_context_reset_kernel_variants(ctx)
     * }
     */
    public static MethodHandle moe4j_context_reset_kernel_variants$handle() {
        return moe4j_context_reset_kernel_variants.HANDLE;
    }

    /**
     * Address for:
     * {@snippet lang=c :
     * moe4j_context_reset_kernel_variants(ctx)
     * }
     */
    public static MemorySegment moe4j_context_reset_kernel_variants$address() {
        return moe4j_context_reset_kernel_variants.ADDR;
    }

    /**
     * {@snippet lang=c :
     * moe4j_context_reset_kernel_variants(ctx)
     * }
     */
    public static int moe4j_context_reset_kernel_variants(MemorySegment ctx) {
        var mh$ = moe4j_context_reset_kernel_variants.HANDLE;
        try {
            if (TRACE_DOWNCALLS) {
                traceDowncall("moe4j_context_reset_kernel_variants", ctx);
            }
            return (int)mh$.invokeExact(ctx);
        } catch (Error | RuntimeException ex) {
           throw ex;
        } catch (Throwable ex$) {
           throw new AssertionError("should not reach here", ex$);
        }
    }
    private static final int MOE4J_FAULT_NONE = (int)0L;
    /**
     * {@snippet lang=c :
     * enum moe4j_fault.MOE4J_FAULT_NONE = 0
     * }
     */
    public static int MOE4J_FAULT_NONE() {
        return MOE4J_FAULT_NONE;
    }
    private static final int MOE4J_FAULT_ALLOCATION = (int)1L;
    /**
     * {@snippet lang=c :
     * enum moe4j_fault.MOE4J_FAULT_ALLOCATION = 1
     * }
     */
    public static int MOE4J_FAULT_ALLOCATION() {
        return MOE4J_FAULT_ALLOCATION;
    }
    private static final int MOE4J_FAULT_TASK_OUT_OF_MEMORY = (int)2L;
    /**
     * {@snippet lang=c :
     * enum moe4j_fault.MOE4J_FAULT_TASK_OUT_OF_MEMORY = 2
     * }
     */
    public static int MOE4J_FAULT_TASK_OUT_OF_MEMORY() {
        return MOE4J_FAULT_TASK_OUT_OF_MEMORY;
    }
    private static final int MOE4J_FAULT_TASK_EXCEPTION = (int)3L;
    /**
     * {@snippet lang=c :
     * enum moe4j_fault.MOE4J_FAULT_TASK_EXCEPTION = 3
     * }
     */
    public static int MOE4J_FAULT_TASK_EXCEPTION() {
        return MOE4J_FAULT_TASK_EXCEPTION;
    }

    private static class moe4j_context_inject_fault {
        public static final FunctionDescriptor DESC = FunctionDescriptor.of(
            moe4j_h.C_INT,
            moe4j_h.C_POINTER,
            moe4j_h.C_INT,
            moe4j_h.C_LONG_LONG
        );

        public static final MemorySegment ADDR = moe4j_h.findOrThrow("moe4j_context_inject_fault");

        public static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    /**
     * Function descriptor for:
     * {@snippet lang=c :
     * moe4j_context_inject_fault(ctx, fault, n)
     * }
     */
    public static FunctionDescriptor moe4j_context_inject_fault$descriptor() {
        return moe4j_context_inject_fault.DESC;
    }

    /**
     * Downcall method handle for:
     * {@snippet lang=c :
     * moe4j_context_inject_fault(ctx, fault, n)
     * }
     */
    public static MethodHandle moe4j_context_inject_fault$handle() {
        return moe4j_context_inject_fault.HANDLE;
    }

    /**
     * Address for:
     * {@snippet lang=c :
     * moe4j_context_inject_fault(ctx, fault, n)
     * }
     */
    public static MemorySegment moe4j_context_inject_fault$address() {
        return moe4j_context_inject_fault.ADDR;
    }

    /**
     * {@snippet lang=c :
     * moe4j_context_inject_fault(ctx, fault, n)
     * }
     */
    public static int moe4j_context_inject_fault(MemorySegment ctx, int fault, long n) {
        var mh$ = moe4j_context_inject_fault.HANDLE;
        try {
            if (TRACE_DOWNCALLS) {
                traceDowncall("moe4j_context_inject_fault", ctx, fault, n);
            }
            return (int)mh$.invokeExact(ctx, fault, n);
        } catch (Error | RuntimeException ex) {
           throw ex;
        } catch (Throwable ex$) {
           throw new AssertionError("should not reach here", ex$);
        }
    }

    private static class moe4j_alloc {
        public static final FunctionDescriptor DESC = FunctionDescriptor.of(
            moe4j_h.C_INT,
            moe4j_h.C_POINTER,
            moe4j_h.C_LONG_LONG,
            moe4j_h.C_POINTER
        );

        public static final MemorySegment ADDR = moe4j_h.findOrThrow("moe4j_alloc");

        public static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    /**
     * Function descriptor for:
     * {@snippet lang=c :
     * moe4j_alloc(ctx, bytes, out)
     * }
     */
    public static FunctionDescriptor moe4j_alloc$descriptor() {
        return moe4j_alloc.DESC;
    }

    /**
     * Downcall method handle for:
     * {@snippet lang=c :
     * moe4j_alloc(ctx, bytes, out)
     * }
     */
    public static MethodHandle moe4j_alloc$handle() {
        return moe4j_alloc.HANDLE;
    }

    /**
     * Address for:
     * {@snippet lang=c :
     * moe4j_alloc(ctx, bytes, out)
     * }
     */
    public static MemorySegment moe4j_alloc$address() {
        return moe4j_alloc.ADDR;
    }

    /**
     * {@snippet lang=c :
     * moe4j_alloc(ctx, bytes, out)
     * }
     */
    public static int moe4j_alloc(MemorySegment ctx, long bytes, MemorySegment out) {
        var mh$ = moe4j_alloc.HANDLE;
        try {
            if (TRACE_DOWNCALLS) {
                traceDowncall("moe4j_alloc", ctx, bytes, out);
            }
            return (int)mh$.invokeExact(ctx, bytes, out);
        } catch (Error | RuntimeException ex) {
           throw ex;
        } catch (Throwable ex$) {
           throw new AssertionError("should not reach here", ex$);
        }
    }

    private static class moe4j_free {
        public static final FunctionDescriptor DESC = FunctionDescriptor.of(
            moe4j_h.C_INT,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER
        );

        public static final MemorySegment ADDR = moe4j_h.findOrThrow("moe4j_free");

        public static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    /**
     * Function descriptor for:
     * {@snippet lang=c :
     * moe4j_free(ctx, ptr)
     * }
     */
    public static FunctionDescriptor moe4j_free$descriptor() {
        return moe4j_free.DESC;
    }

    /**
     * Downcall method handle for:
     * {@snippet lang=c :
     * moe4j_free(ctx, ptr)
     * }
     */
    public static MethodHandle moe4j_free$handle() {
        return moe4j_free.HANDLE;
    }

    /**
     * Address for:
     * {@snippet lang=c :
     * moe4j_free(ctx, ptr)
     * }
     */
    public static MemorySegment moe4j_free$address() {
        return moe4j_free.ADDR;
    }

    /**
     * {@snippet lang=c :
     * moe4j_free(ctx, ptr)
     * }
     */
    public static int moe4j_free(MemorySegment ctx, MemorySegment ptr) {
        var mh$ = moe4j_free.HANDLE;
        try {
            if (TRACE_DOWNCALLS) {
                traceDowncall("moe4j_free", ctx, ptr);
            }
            return (int)mh$.invokeExact(ctx, ptr);
        } catch (Error | RuntimeException ex) {
           throw ex;
        } catch (Throwable ex$) {
           throw new AssertionError("should not reach here", ex$);
        }
    }

    private static class moe4j_copy {
        public static final FunctionDescriptor DESC = FunctionDescriptor.of(
            moe4j_h.C_INT,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER
        );

        public static final MemorySegment ADDR = moe4j_h.findOrThrow("moe4j_copy");

        public static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    /**
     * Function descriptor for:
     * {@snippet lang=c :
     * moe4j_copy(ctx, src, dst)
     * }
     */
    public static FunctionDescriptor moe4j_copy$descriptor() {
        return moe4j_copy.DESC;
    }

    /**
     * Downcall method handle for:
     * {@snippet lang=c :
     * moe4j_copy(ctx, src, dst)
     * }
     */
    public static MethodHandle moe4j_copy$handle() {
        return moe4j_copy.HANDLE;
    }

    /**
     * Address for:
     * {@snippet lang=c :
     * moe4j_copy(ctx, src, dst)
     * }
     */
    public static MemorySegment moe4j_copy$address() {
        return moe4j_copy.ADDR;
    }

    /**
     * {@snippet lang=c :
     * moe4j_copy(ctx, src, dst)
     * }
     */
    public static int moe4j_copy(MemorySegment ctx, MemorySegment src, MemorySegment dst) {
        var mh$ = moe4j_copy.HANDLE;
        try {
            if (TRACE_DOWNCALLS) {
                traceDowncall("moe4j_copy", ctx, src, dst);
            }
            return (int)mh$.invokeExact(ctx, src, dst);
        } catch (Error | RuntimeException ex) {
           throw ex;
        } catch (Throwable ex$) {
           throw new AssertionError("should not reach here", ex$);
        }
    }

    private static class moe4j_synchronize {
        public static final FunctionDescriptor DESC = FunctionDescriptor.of(
            moe4j_h.C_INT,
            moe4j_h.C_POINTER
        );

        public static final MemorySegment ADDR = moe4j_h.findOrThrow("moe4j_synchronize");

        public static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    /**
     * Function descriptor for:
     * {@snippet lang=c :
     * moe4j_synchronize(ctx)
     * }
     */
    public static FunctionDescriptor moe4j_synchronize$descriptor() {
        return moe4j_synchronize.DESC;
    }

    /**
     * Downcall method handle for:
     * {@snippet lang=c :
     * moe4j_synchronize(ctx)
     * }
     */
    public static MethodHandle moe4j_synchronize$handle() {
        return moe4j_synchronize.HANDLE;
    }

    /**
     * Address for:
     * {@snippet lang=c :
     * moe4j_synchronize(ctx)
     * }
     */
    public static MemorySegment moe4j_synchronize$address() {
        return moe4j_synchronize.ADDR;
    }

    /**
     * {@snippet lang=c :
     * moe4j_synchronize(ctx)
     * }
     */
    public static int moe4j_synchronize(MemorySegment ctx) {
        var mh$ = moe4j_synchronize.HANDLE;
        try {
            if (TRACE_DOWNCALLS) {
                traceDowncall("moe4j_synchronize", ctx);
            }
            return (int)mh$.invokeExact(ctx);
        } catch (Error | RuntimeException ex) {
           throw ex;
        } catch (Throwable ex$) {
           throw new AssertionError("should not reach here", ex$);
        }
    }

    private static class moe4j_prefetch {
        public static final FunctionDescriptor DESC = FunctionDescriptor.of(
            moe4j_h.C_INT,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER
        );

        public static final MemorySegment ADDR = moe4j_h.findOrThrow("moe4j_prefetch");

        public static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    /**
     * Function descriptor for:
     * {@snippet lang=c :
     * moe4j_prefetch(ctx, t)
     * }
     */
    public static FunctionDescriptor moe4j_prefetch$descriptor() {
        return moe4j_prefetch.DESC;
    }

    /**
     * Downcall method handle for:
     * {@snippet lang=c :
     * moe4j_prefetch(ctx, t)
     * }
     */
    public static MethodHandle moe4j_prefetch$handle() {
        return moe4j_prefetch.HANDLE;
    }

    /**
     * Address for:
     * {@snippet lang=c :
     * moe4j_prefetch(ctx, t)
     * }
     */
    public static MemorySegment moe4j_prefetch$address() {
        return moe4j_prefetch.ADDR;
    }

    /**
     * {@snippet lang=c :
     * moe4j_prefetch(ctx, t)
     * }
     */
    public static int moe4j_prefetch(MemorySegment ctx, MemorySegment t) {
        var mh$ = moe4j_prefetch.HANDLE;
        try {
            if (TRACE_DOWNCALLS) {
                traceDowncall("moe4j_prefetch", ctx, t);
            }
            return (int)mh$.invokeExact(ctx, t);
        } catch (Error | RuntimeException ex) {
           throw ex;
        } catch (Throwable ex$) {
           throw new AssertionError("should not reach here", ex$);
        }
    }

    private static class moe4j_cast {
        public static final FunctionDescriptor DESC = FunctionDescriptor.of(
            moe4j_h.C_INT,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER
        );

        public static final MemorySegment ADDR = moe4j_h.findOrThrow("moe4j_cast");

        public static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    /**
     * Function descriptor for:
     * {@snippet lang=c :
     * moe4j_cast(ctx, src, dst)
     * }
     */
    public static FunctionDescriptor moe4j_cast$descriptor() {
        return moe4j_cast.DESC;
    }

    /**
     * Downcall method handle for:
     * {@snippet lang=c :
     * moe4j_cast(ctx, src, dst)
     * }
     */
    public static MethodHandle moe4j_cast$handle() {
        return moe4j_cast.HANDLE;
    }

    /**
     * Address for:
     * {@snippet lang=c :
     * moe4j_cast(ctx, src, dst)
     * }
     */
    public static MemorySegment moe4j_cast$address() {
        return moe4j_cast.ADDR;
    }

    /**
     * {@snippet lang=c :
     * moe4j_cast(ctx, src, dst)
     * }
     */
    public static int moe4j_cast(MemorySegment ctx, MemorySegment src, MemorySegment dst) {
        var mh$ = moe4j_cast.HANDLE;
        try {
            if (TRACE_DOWNCALLS) {
                traceDowncall("moe4j_cast", ctx, src, dst);
            }
            return (int)mh$.invokeExact(ctx, src, dst);
        } catch (Error | RuntimeException ex) {
           throw ex;
        } catch (Throwable ex$) {
           throw new AssertionError("should not reach here", ex$);
        }
    }

    private static class moe4j_pack_fp8_weights {
        public static final FunctionDescriptor DESC = FunctionDescriptor.of(
            moe4j_h.C_INT,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER
        );

        public static final MemorySegment ADDR = moe4j_h.findOrThrow("moe4j_pack_fp8_weights");

        public static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    /**
     * Function descriptor for:
     * {@snippet lang=c :
     * moe4j_pack_fp8_weights(ctx, w, packed)
     * }
     */
    public static FunctionDescriptor moe4j_pack_fp8_weights$descriptor() {
        return moe4j_pack_fp8_weights.DESC;
    }

    /**
     * Downcall method handle for:
     * {@snippet lang=c :
     * moe4j_pack_fp8_weights(ctx, w, packed)
     * }
     */
    public static MethodHandle moe4j_pack_fp8_weights$handle() {
        return moe4j_pack_fp8_weights.HANDLE;
    }

    /**
     * Address for:
     * {@snippet lang=c :
     * moe4j_pack_fp8_weights(ctx, w, packed)
     * }
     */
    public static MemorySegment moe4j_pack_fp8_weights$address() {
        return moe4j_pack_fp8_weights.ADDR;
    }

    /**
     * {@snippet lang=c :
     * moe4j_pack_fp8_weights(ctx, w, packed)
     * }
     */
    public static int moe4j_pack_fp8_weights(MemorySegment ctx, MemorySegment w, MemorySegment packed) {
        var mh$ = moe4j_pack_fp8_weights.HANDLE;
        try {
            if (TRACE_DOWNCALLS) {
                traceDowncall("moe4j_pack_fp8_weights", ctx, w, packed);
            }
            return (int)mh$.invokeExact(ctx, w, packed);
        } catch (Error | RuntimeException ex) {
           throw ex;
        } catch (Throwable ex$) {
           throw new AssertionError("should not reach here", ex$);
        }
    }

    private static class moe4j_quantize_fp8_per_token {
        public static final FunctionDescriptor DESC = FunctionDescriptor.of(
            moe4j_h.C_INT,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_INT
        );

        public static final MemorySegment ADDR = moe4j_h.findOrThrow("moe4j_quantize_fp8_per_token");

        public static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    /**
     * Function descriptor for:
     * {@snippet lang=c :
     * moe4j_quantize_fp8_per_token(ctx, x, q, scales, scale_format)
     * }
     */
    public static FunctionDescriptor moe4j_quantize_fp8_per_token$descriptor() {
        return moe4j_quantize_fp8_per_token.DESC;
    }

    /**
     * Downcall method handle for:
     * {@snippet lang=c :
     * moe4j_quantize_fp8_per_token(ctx, x, q, scales, scale_format)
     * }
     */
    public static MethodHandle moe4j_quantize_fp8_per_token$handle() {
        return moe4j_quantize_fp8_per_token.HANDLE;
    }

    /**
     * Address for:
     * {@snippet lang=c :
     * moe4j_quantize_fp8_per_token(ctx, x, q, scales, scale_format)
     * }
     */
    public static MemorySegment moe4j_quantize_fp8_per_token$address() {
        return moe4j_quantize_fp8_per_token.ADDR;
    }

    /**
     * {@snippet lang=c :
     * moe4j_quantize_fp8_per_token(ctx, x, q, scales, scale_format)
     * }
     */
    public static int moe4j_quantize_fp8_per_token(MemorySegment ctx, MemorySegment x, MemorySegment q, MemorySegment scales, int scale_format) {
        var mh$ = moe4j_quantize_fp8_per_token.HANDLE;
        try {
            if (TRACE_DOWNCALLS) {
                traceDowncall("moe4j_quantize_fp8_per_token", ctx, x, q, scales, scale_format);
            }
            return (int)mh$.invokeExact(ctx, x, q, scales, scale_format);
        } catch (Error | RuntimeException ex) {
           throw ex;
        } catch (Throwable ex$) {
           throw new AssertionError("should not reach here", ex$);
        }
    }

    private static class moe4j_quantize_fp8_per_block {
        public static final FunctionDescriptor DESC = FunctionDescriptor.of(
            moe4j_h.C_INT,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_INT
        );

        public static final MemorySegment ADDR = moe4j_h.findOrThrow("moe4j_quantize_fp8_per_block");

        public static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    /**
     * Function descriptor for:
     * {@snippet lang=c :
     * moe4j_quantize_fp8_per_block(ctx, w, q, scale_inv, scale_format)
     * }
     */
    public static FunctionDescriptor moe4j_quantize_fp8_per_block$descriptor() {
        return moe4j_quantize_fp8_per_block.DESC;
    }

    /**
     * Downcall method handle for:
     * {@snippet lang=c :
     * moe4j_quantize_fp8_per_block(ctx, w, q, scale_inv, scale_format)
     * }
     */
    public static MethodHandle moe4j_quantize_fp8_per_block$handle() {
        return moe4j_quantize_fp8_per_block.HANDLE;
    }

    /**
     * Address for:
     * {@snippet lang=c :
     * moe4j_quantize_fp8_per_block(ctx, w, q, scale_inv, scale_format)
     * }
     */
    public static MemorySegment moe4j_quantize_fp8_per_block$address() {
        return moe4j_quantize_fp8_per_block.ADDR;
    }

    /**
     * {@snippet lang=c :
     * moe4j_quantize_fp8_per_block(ctx, w, q, scale_inv, scale_format)
     * }
     */
    public static int moe4j_quantize_fp8_per_block(MemorySegment ctx, MemorySegment w, MemorySegment q, MemorySegment scale_inv, int scale_format) {
        var mh$ = moe4j_quantize_fp8_per_block.HANDLE;
        try {
            if (TRACE_DOWNCALLS) {
                traceDowncall("moe4j_quantize_fp8_per_block", ctx, w, q, scale_inv, scale_format);
            }
            return (int)mh$.invokeExact(ctx, w, q, scale_inv, scale_format);
        } catch (Error | RuntimeException ex) {
           throw ex;
        } catch (Throwable ex$) {
           throw new AssertionError("should not reach here", ex$);
        }
    }

    private static class moe4j_dequantize_fp8 {
        public static final FunctionDescriptor DESC = FunctionDescriptor.of(
            moe4j_h.C_INT,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_INT,
            moe4j_h.C_POINTER
        );

        public static final MemorySegment ADDR = moe4j_h.findOrThrow("moe4j_dequantize_fp8");

        public static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    /**
     * Function descriptor for:
     * {@snippet lang=c :
     * moe4j_dequantize_fp8(ctx, q, scales, block_rows, out)
     * }
     */
    public static FunctionDescriptor moe4j_dequantize_fp8$descriptor() {
        return moe4j_dequantize_fp8.DESC;
    }

    /**
     * Downcall method handle for:
     * {@snippet lang=c :
     * moe4j_dequantize_fp8(ctx, q, scales, block_rows, out)
     * }
     */
    public static MethodHandle moe4j_dequantize_fp8$handle() {
        return moe4j_dequantize_fp8.HANDLE;
    }

    /**
     * Address for:
     * {@snippet lang=c :
     * moe4j_dequantize_fp8(ctx, q, scales, block_rows, out)
     * }
     */
    public static MemorySegment moe4j_dequantize_fp8$address() {
        return moe4j_dequantize_fp8.ADDR;
    }

    /**
     * {@snippet lang=c :
     * moe4j_dequantize_fp8(ctx, q, scales, block_rows, out)
     * }
     */
    public static int moe4j_dequantize_fp8(MemorySegment ctx, MemorySegment q, MemorySegment scales, int block_rows, MemorySegment out) {
        var mh$ = moe4j_dequantize_fp8.HANDLE;
        try {
            if (TRACE_DOWNCALLS) {
                traceDowncall("moe4j_dequantize_fp8", ctx, q, scales, block_rows, out);
            }
            return (int)mh$.invokeExact(ctx, q, scales, block_rows, out);
        } catch (Error | RuntimeException ex) {
           throw ex;
        } catch (Throwable ex$) {
           throw new AssertionError("should not reach here", ex$);
        }
    }

    private static class moe4j_fp8_gemm_nt {
        public static final FunctionDescriptor DESC = FunctionDescriptor.of(
            moe4j_h.C_INT,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER
        );

        public static final MemorySegment ADDR = moe4j_h.findOrThrow("moe4j_fp8_gemm_nt");

        public static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    /**
     * Function descriptor for:
     * {@snippet lang=c :
     * moe4j_fp8_gemm_nt(ctx, a, sfa, b, sfb, c, d)
     * }
     */
    public static FunctionDescriptor moe4j_fp8_gemm_nt$descriptor() {
        return moe4j_fp8_gemm_nt.DESC;
    }

    /**
     * Downcall method handle for:
     * {@snippet lang=c :
     * moe4j_fp8_gemm_nt(ctx, a, sfa, b, sfb, c, d)
     * }
     */
    public static MethodHandle moe4j_fp8_gemm_nt$handle() {
        return moe4j_fp8_gemm_nt.HANDLE;
    }

    /**
     * Address for:
     * {@snippet lang=c :
     * moe4j_fp8_gemm_nt(ctx, a, sfa, b, sfb, c, d)
     * }
     */
    public static MemorySegment moe4j_fp8_gemm_nt$address() {
        return moe4j_fp8_gemm_nt.ADDR;
    }

    /**
     * {@snippet lang=c :
     * moe4j_fp8_gemm_nt(ctx, a, sfa, b, sfb, c, d)
     * }
     */
    public static int moe4j_fp8_gemm_nt(MemorySegment ctx, MemorySegment a, MemorySegment sfa, MemorySegment b, MemorySegment sfb, MemorySegment c, MemorySegment d) {
        var mh$ = moe4j_fp8_gemm_nt.HANDLE;
        try {
            if (TRACE_DOWNCALLS) {
                traceDowncall("moe4j_fp8_gemm_nt", ctx, a, sfa, b, sfb, c, d);
            }
            return (int)mh$.invokeExact(ctx, a, sfa, b, sfb, c, d);
        } catch (Error | RuntimeException ex) {
           throw ex;
        } catch (Throwable ex$) {
           throw new AssertionError("should not reach here", ex$);
        }
    }

    private static class moe4j_grouped_fp8_gemm_contiguous {
        public static final FunctionDescriptor DESC = FunctionDescriptor.of(
            moe4j_h.C_INT,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_INT,
            moe4j_h.C_POINTER
        );

        public static final MemorySegment ADDR = moe4j_h.findOrThrow("moe4j_grouped_fp8_gemm_contiguous");

        public static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    /**
     * Function descriptor for:
     * {@snippet lang=c :
     * moe4j_grouped_fp8_gemm_contiguous(ctx, a, sfa, b, grouped_layout, alignment, d)
     * }
     */
    public static FunctionDescriptor moe4j_grouped_fp8_gemm_contiguous$descriptor() {
        return moe4j_grouped_fp8_gemm_contiguous.DESC;
    }

    /**
     * Downcall method handle for:
     * {@snippet lang=c :
     * moe4j_grouped_fp8_gemm_contiguous(ctx, a, sfa, b, grouped_layout, alignment, d)
     * }
     */
    public static MethodHandle moe4j_grouped_fp8_gemm_contiguous$handle() {
        return moe4j_grouped_fp8_gemm_contiguous.HANDLE;
    }

    /**
     * Address for:
     * {@snippet lang=c :
     * moe4j_grouped_fp8_gemm_contiguous(ctx, a, sfa, b, grouped_layout, alignment, d)
     * }
     */
    public static MemorySegment moe4j_grouped_fp8_gemm_contiguous$address() {
        return moe4j_grouped_fp8_gemm_contiguous.ADDR;
    }

    /**
     * {@snippet lang=c :
     * moe4j_grouped_fp8_gemm_contiguous(ctx, a, sfa, b, grouped_layout, alignment, d)
     * }
     */
    public static int moe4j_grouped_fp8_gemm_contiguous(MemorySegment ctx, MemorySegment a, MemorySegment sfa, MemorySegment b, MemorySegment grouped_layout, int alignment, MemorySegment d) {
        var mh$ = moe4j_grouped_fp8_gemm_contiguous.HANDLE;
        try {
            if (TRACE_DOWNCALLS) {
                traceDowncall("moe4j_grouped_fp8_gemm_contiguous", ctx, a, sfa, b, grouped_layout, alignment, d);
            }
            return (int)mh$.invokeExact(ctx, a, sfa, b, grouped_layout, alignment, d);
        } catch (Error | RuntimeException ex) {
           throw ex;
        } catch (Throwable ex$) {
           throw new AssertionError("should not reach here", ex$);
        }
    }

    private static class moe4j_fp8_expert_ffn_contiguous {
        public static final FunctionDescriptor DESC = FunctionDescriptor.of(
            moe4j_h.C_INT,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_INT,
            moe4j_h.C_POINTER
        );

        public static final MemorySegment ADDR = moe4j_h.findOrThrow("moe4j_fp8_expert_ffn_contiguous");

        public static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    /**
     * Function descriptor for:
     * {@snippet lang=c :
     * moe4j_fp8_expert_ffn_contiguous(ctx, x, sfx, w_gate, w_up, w_down, grouped_layout, alignment, d)
     * }
     */
    public static FunctionDescriptor moe4j_fp8_expert_ffn_contiguous$descriptor() {
        return moe4j_fp8_expert_ffn_contiguous.DESC;
    }

    /**
     * Downcall method handle for:
     * {@snippet lang=c :
     * moe4j_fp8_expert_ffn_contiguous(ctx, x, sfx, w_gate, w_up, w_down, grouped_layout, alignment, d)
     * }
     */
    public static MethodHandle moe4j_fp8_expert_ffn_contiguous$handle() {
        return moe4j_fp8_expert_ffn_contiguous.HANDLE;
    }

    /**
     * Address for:
     * {@snippet lang=c :
     * moe4j_fp8_expert_ffn_contiguous(ctx, x, sfx, w_gate, w_up, w_down, grouped_layout, alignment, d)
     * }
     */
    public static MemorySegment moe4j_fp8_expert_ffn_contiguous$address() {
        return moe4j_fp8_expert_ffn_contiguous.ADDR;
    }

    /**
     * {@snippet lang=c :
     * moe4j_fp8_expert_ffn_contiguous(ctx, x, sfx, w_gate, w_up, w_down, grouped_layout, alignment, d)
     * }
     */
    public static int moe4j_fp8_expert_ffn_contiguous(MemorySegment ctx, MemorySegment x, MemorySegment sfx, MemorySegment w_gate, MemorySegment w_up, MemorySegment w_down, MemorySegment grouped_layout, int alignment, MemorySegment d) {
        var mh$ = moe4j_fp8_expert_ffn_contiguous.HANDLE;
        try {
            if (TRACE_DOWNCALLS) {
                traceDowncall("moe4j_fp8_expert_ffn_contiguous", ctx, x, sfx, w_gate, w_up, w_down, grouped_layout, alignment, d);
            }
            return (int)mh$.invokeExact(ctx, x, sfx, w_gate, w_up, w_down, grouped_layout, alignment, d);
        } catch (Error | RuntimeException ex) {
           throw ex;
        } catch (Throwable ex$) {
           throw new AssertionError("should not reach here", ex$);
        }
    }

    private static class moe4j_mla_decode {
        public static final FunctionDescriptor DESC = FunctionDescriptor.of(
            moe4j_h.C_INT,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_FLOAT,
            moe4j_h.C_INT,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER
        );

        public static final MemorySegment ADDR = moe4j_h.findOrThrow("moe4j_mla_decode");

        public static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    /**
     * Function descriptor for:
     * {@snippet lang=c :
     * moe4j_mla_decode(ctx, q, kcache, block_table, cache_seqlens, softmax_scale, causal, out, lse)
     * }
     */
    public static FunctionDescriptor moe4j_mla_decode$descriptor() {
        return moe4j_mla_decode.DESC;
    }

    /**
     * Downcall method handle for:
     * {@snippet lang=c :
     * moe4j_mla_decode(ctx, q, kcache, block_table, cache_seqlens, softmax_scale, causal, out, lse)
     * }
     */
    public static MethodHandle moe4j_mla_decode$handle() {
        return moe4j_mla_decode.HANDLE;
    }

    /**
     * Address for:
     * {@snippet lang=c :
     * moe4j_mla_decode(ctx, q, kcache, block_table, cache_seqlens, softmax_scale, causal, out, lse)
     * }
     */
    public static MemorySegment moe4j_mla_decode$address() {
        return moe4j_mla_decode.ADDR;
    }

    /**
     * {@snippet lang=c :
     * moe4j_mla_decode(ctx, q, kcache, block_table, cache_seqlens, softmax_scale, causal, out, lse)
     * }
     */
    public static int moe4j_mla_decode(MemorySegment ctx, MemorySegment q, MemorySegment kcache, MemorySegment block_table, MemorySegment cache_seqlens, float softmax_scale, int causal, MemorySegment out, MemorySegment lse) {
        var mh$ = moe4j_mla_decode.HANDLE;
        try {
            if (TRACE_DOWNCALLS) {
                traceDowncall("moe4j_mla_decode", ctx, q, kcache, block_table, cache_seqlens, softmax_scale, causal, out, lse);
            }
            return (int)mh$.invokeExact(ctx, q, kcache, block_table, cache_seqlens, softmax_scale, causal, out, lse);
        } catch (Error | RuntimeException ex) {
           throw ex;
        } catch (Throwable ex$) {
           throw new AssertionError("should not reach here", ex$);
        }
    }

    private static class moe4j_mla_cache_append {
        public static final FunctionDescriptor DESC = FunctionDescriptor.of(
            moe4j_h.C_INT,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER
        );

        public static final MemorySegment ADDR = moe4j_h.findOrThrow("moe4j_mla_cache_append");

        public static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    /**
     * Function descriptor for:
     * {@snippet lang=c :
     * moe4j_mla_cache_append(ctx, kv, slot_mapping, kcache)
     * }
     */
    public static FunctionDescriptor moe4j_mla_cache_append$descriptor() {
        return moe4j_mla_cache_append.DESC;
    }

    /**
     * Downcall method handle for:
     * {@snippet lang=c :
     * moe4j_mla_cache_append(ctx, kv, slot_mapping, kcache)
     * }
     */
    public static MethodHandle moe4j_mla_cache_append$handle() {
        return moe4j_mla_cache_append.HANDLE;
    }

    /**
     * Address for:
     * {@snippet lang=c :
     * moe4j_mla_cache_append(ctx, kv, slot_mapping, kcache)
     * }
     */
    public static MemorySegment moe4j_mla_cache_append$address() {
        return moe4j_mla_cache_append.ADDR;
    }

    /**
     * {@snippet lang=c :
     * moe4j_mla_cache_append(ctx, kv, slot_mapping, kcache)
     * }
     */
    public static int moe4j_mla_cache_append(MemorySegment ctx, MemorySegment kv, MemorySegment slot_mapping, MemorySegment kcache) {
        var mh$ = moe4j_mla_cache_append.HANDLE;
        try {
            if (TRACE_DOWNCALLS) {
                traceDowncall("moe4j_mla_cache_append", ctx, kv, slot_mapping, kcache);
            }
            return (int)mh$.invokeExact(ctx, kv, slot_mapping, kcache);
        } catch (Error | RuntimeException ex) {
           throw ex;
        } catch (Throwable ex$) {
           throw new AssertionError("should not reach here", ex$);
        }
    }

    private static class moe4j_quantize_q8_weights {
        public static final FunctionDescriptor DESC = FunctionDescriptor.of(
            moe4j_h.C_INT,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER
        );

        public static final MemorySegment ADDR = moe4j_h.findOrThrow("moe4j_quantize_q8_weights");

        public static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    /**
     * Function descriptor for:
     * {@snippet lang=c :
     * moe4j_quantize_q8_weights(ctx, w, q, scales)
     * }
     */
    public static FunctionDescriptor moe4j_quantize_q8_weights$descriptor() {
        return moe4j_quantize_q8_weights.DESC;
    }

    /**
     * Downcall method handle for:
     * {@snippet lang=c :
     * moe4j_quantize_q8_weights(ctx, w, q, scales)
     * }
     */
    public static MethodHandle moe4j_quantize_q8_weights$handle() {
        return moe4j_quantize_q8_weights.HANDLE;
    }

    /**
     * Address for:
     * {@snippet lang=c :
     * moe4j_quantize_q8_weights(ctx, w, q, scales)
     * }
     */
    public static MemorySegment moe4j_quantize_q8_weights$address() {
        return moe4j_quantize_q8_weights.ADDR;
    }

    /**
     * {@snippet lang=c :
     * moe4j_quantize_q8_weights(ctx, w, q, scales)
     * }
     */
    public static int moe4j_quantize_q8_weights(MemorySegment ctx, MemorySegment w, MemorySegment q, MemorySegment scales) {
        var mh$ = moe4j_quantize_q8_weights.HANDLE;
        try {
            if (TRACE_DOWNCALLS) {
                traceDowncall("moe4j_quantize_q8_weights", ctx, w, q, scales);
            }
            return (int)mh$.invokeExact(ctx, w, q, scales);
        } catch (Error | RuntimeException ex) {
           throw ex;
        } catch (Throwable ex$) {
           throw new AssertionError("should not reach here", ex$);
        }
    }

    private static class moe4j_q8_gemm_nt {
        public static final FunctionDescriptor DESC = FunctionDescriptor.of(
            moe4j_h.C_INT,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER
        );

        public static final MemorySegment ADDR = moe4j_h.findOrThrow("moe4j_q8_gemm_nt");

        public static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    /**
     * Function descriptor for:
     * {@snippet lang=c :
     * moe4j_q8_gemm_nt(ctx, a, b, sfb, d)
     * }
     */
    public static FunctionDescriptor moe4j_q8_gemm_nt$descriptor() {
        return moe4j_q8_gemm_nt.DESC;
    }

    /**
     * Downcall method handle for:
     * {@snippet lang=c :
     * moe4j_q8_gemm_nt(ctx, a, b, sfb, d)
     * }
     */
    public static MethodHandle moe4j_q8_gemm_nt$handle() {
        return moe4j_q8_gemm_nt.HANDLE;
    }

    /**
     * Address for:
     * {@snippet lang=c :
     * moe4j_q8_gemm_nt(ctx, a, b, sfb, d)
     * }
     */
    public static MemorySegment moe4j_q8_gemm_nt$address() {
        return moe4j_q8_gemm_nt.ADDR;
    }

    /**
     * {@snippet lang=c :
     * moe4j_q8_gemm_nt(ctx, a, b, sfb, d)
     * }
     */
    public static int moe4j_q8_gemm_nt(MemorySegment ctx, MemorySegment a, MemorySegment b, MemorySegment sfb, MemorySegment d) {
        var mh$ = moe4j_q8_gemm_nt.HANDLE;
        try {
            if (TRACE_DOWNCALLS) {
                traceDowncall("moe4j_q8_gemm_nt", ctx, a, b, sfb, d);
            }
            return (int)mh$.invokeExact(ctx, a, b, sfb, d);
        } catch (Error | RuntimeException ex) {
           throw ex;
        } catch (Throwable ex$) {
           throw new AssertionError("should not reach here", ex$);
        }
    }

    private static class moe4j_gemm_nt {
        public static final FunctionDescriptor DESC = FunctionDescriptor.of(
            moe4j_h.C_INT,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER
        );

        public static final MemorySegment ADDR = moe4j_h.findOrThrow("moe4j_gemm_nt");

        public static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    /**
     * Function descriptor for:
     * {@snippet lang=c :
     * moe4j_gemm_nt(ctx, a, b, c, d)
     * }
     */
    public static FunctionDescriptor moe4j_gemm_nt$descriptor() {
        return moe4j_gemm_nt.DESC;
    }

    /**
     * Downcall method handle for:
     * {@snippet lang=c :
     * moe4j_gemm_nt(ctx, a, b, c, d)
     * }
     */
    public static MethodHandle moe4j_gemm_nt$handle() {
        return moe4j_gemm_nt.HANDLE;
    }

    /**
     * Address for:
     * {@snippet lang=c :
     * moe4j_gemm_nt(ctx, a, b, c, d)
     * }
     */
    public static MemorySegment moe4j_gemm_nt$address() {
        return moe4j_gemm_nt.ADDR;
    }

    /**
     * {@snippet lang=c :
     * moe4j_gemm_nt(ctx, a, b, c, d)
     * }
     */
    public static int moe4j_gemm_nt(MemorySegment ctx, MemorySegment a, MemorySegment b, MemorySegment c, MemorySegment d) {
        var mh$ = moe4j_gemm_nt.HANDLE;
        try {
            if (TRACE_DOWNCALLS) {
                traceDowncall("moe4j_gemm_nt", ctx, a, b, c, d);
            }
            return (int)mh$.invokeExact(ctx, a, b, c, d);
        } catch (Error | RuntimeException ex) {
           throw ex;
        } catch (Throwable ex$) {
           throw new AssertionError("should not reach here", ex$);
        }
    }

    private static class moe4j_grouped_fp8_gemm_masked {
        public static final FunctionDescriptor DESC = FunctionDescriptor.of(
            moe4j_h.C_INT,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER
        );

        public static final MemorySegment ADDR = moe4j_h.findOrThrow("moe4j_grouped_fp8_gemm_masked");

        public static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    /**
     * Function descriptor for:
     * {@snippet lang=c :
     * moe4j_grouped_fp8_gemm_masked(ctx, a, sfa, b, masked_m, d)
     * }
     */
    public static FunctionDescriptor moe4j_grouped_fp8_gemm_masked$descriptor() {
        return moe4j_grouped_fp8_gemm_masked.DESC;
    }

    /**
     * Downcall method handle for:
     * {@snippet lang=c :
     * moe4j_grouped_fp8_gemm_masked(ctx, a, sfa, b, masked_m, d)
     * }
     */
    public static MethodHandle moe4j_grouped_fp8_gemm_masked$handle() {
        return moe4j_grouped_fp8_gemm_masked.HANDLE;
    }

    /**
     * Address for:
     * {@snippet lang=c :
     * moe4j_grouped_fp8_gemm_masked(ctx, a, sfa, b, masked_m, d)
     * }
     */
    public static MemorySegment moe4j_grouped_fp8_gemm_masked$address() {
        return moe4j_grouped_fp8_gemm_masked.ADDR;
    }

    /**
     * {@snippet lang=c :
     * moe4j_grouped_fp8_gemm_masked(ctx, a, sfa, b, masked_m, d)
     * }
     */
    public static int moe4j_grouped_fp8_gemm_masked(MemorySegment ctx, MemorySegment a, MemorySegment sfa, MemorySegment b, MemorySegment masked_m, MemorySegment d) {
        var mh$ = moe4j_grouped_fp8_gemm_masked.HANDLE;
        try {
            if (TRACE_DOWNCALLS) {
                traceDowncall("moe4j_grouped_fp8_gemm_masked", ctx, a, sfa, b, masked_m, d);
            }
            return (int)mh$.invokeExact(ctx, a, sfa, b, masked_m, d);
        } catch (Error | RuntimeException ex) {
           throw ex;
        } catch (Throwable ex$) {
           throw new AssertionError("should not reach here", ex$);
        }
    }

    private static class moe4j_gather_rows {
        public static final FunctionDescriptor DESC = FunctionDescriptor.of(
            moe4j_h.C_INT,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER
        );

        public static final MemorySegment ADDR = moe4j_h.findOrThrow("moe4j_gather_rows");

        public static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    /**
     * Function descriptor for:
     * {@snippet lang=c :
     * moe4j_gather_rows(ctx, src, index, dst)
     * }
     */
    public static FunctionDescriptor moe4j_gather_rows$descriptor() {
        return moe4j_gather_rows.DESC;
    }

    /**
     * Downcall method handle for:
     * {@snippet lang=c :
     * moe4j_gather_rows(ctx, src, index, dst)
     * }
     */
    public static MethodHandle moe4j_gather_rows$handle() {
        return moe4j_gather_rows.HANDLE;
    }

    /**
     * Address for:
     * {@snippet lang=c :
     * moe4j_gather_rows(ctx, src, index, dst)
     * }
     */
    public static MemorySegment moe4j_gather_rows$address() {
        return moe4j_gather_rows.ADDR;
    }

    /**
     * {@snippet lang=c :
     * moe4j_gather_rows(ctx, src, index, dst)
     * }
     */
    public static int moe4j_gather_rows(MemorySegment ctx, MemorySegment src, MemorySegment index, MemorySegment dst) {
        var mh$ = moe4j_gather_rows.HANDLE;
        try {
            if (TRACE_DOWNCALLS) {
                traceDowncall("moe4j_gather_rows", ctx, src, index, dst);
            }
            return (int)mh$.invokeExact(ctx, src, index, dst);
        } catch (Error | RuntimeException ex) {
           throw ex;
        } catch (Throwable ex$) {
           throw new AssertionError("should not reach here", ex$);
        }
    }

    private static class moe4j_combine_rows {
        public static final FunctionDescriptor DESC = FunctionDescriptor.of(
            moe4j_h.C_INT,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER
        );

        public static final MemorySegment ADDR = moe4j_h.findOrThrow("moe4j_combine_rows");

        public static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    /**
     * Function descriptor for:
     * {@snippet lang=c :
     * moe4j_combine_rows(ctx, rows, index, weights, base, out)
     * }
     */
    public static FunctionDescriptor moe4j_combine_rows$descriptor() {
        return moe4j_combine_rows.DESC;
    }

    /**
     * Downcall method handle for:
     * {@snippet lang=c :
     * moe4j_combine_rows(ctx, rows, index, weights, base, out)
     * }
     */
    public static MethodHandle moe4j_combine_rows$handle() {
        return moe4j_combine_rows.HANDLE;
    }

    /**
     * Address for:
     * {@snippet lang=c :
     * moe4j_combine_rows(ctx, rows, index, weights, base, out)
     * }
     */
    public static MemorySegment moe4j_combine_rows$address() {
        return moe4j_combine_rows.ADDR;
    }

    /**
     * {@snippet lang=c :
     * moe4j_combine_rows(ctx, rows, index, weights, base, out)
     * }
     */
    public static int moe4j_combine_rows(MemorySegment ctx, MemorySegment rows, MemorySegment index, MemorySegment weights, MemorySegment base, MemorySegment out) {
        var mh$ = moe4j_combine_rows.HANDLE;
        try {
            if (TRACE_DOWNCALLS) {
                traceDowncall("moe4j_combine_rows", ctx, rows, index, weights, base, out);
            }
            return (int)mh$.invokeExact(ctx, rows, index, weights, base, out);
        } catch (Error | RuntimeException ex) {
           throw ex;
        } catch (Throwable ex$) {
           throw new AssertionError("should not reach here", ex$);
        }
    }

    private static class moe4j_rms_norm {
        public static final FunctionDescriptor DESC = FunctionDescriptor.of(
            moe4j_h.C_INT,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_FLOAT,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER
        );

        public static final MemorySegment ADDR = moe4j_h.findOrThrow("moe4j_rms_norm");

        public static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    /**
     * Function descriptor for:
     * {@snippet lang=c :
     * moe4j_rms_norm(ctx, x, residual, weight, eps, sum_out, y)
     * }
     */
    public static FunctionDescriptor moe4j_rms_norm$descriptor() {
        return moe4j_rms_norm.DESC;
    }

    /**
     * Downcall method handle for:
     * {@snippet lang=c :
     * moe4j_rms_norm(ctx, x, residual, weight, eps, sum_out, y)
     * }
     */
    public static MethodHandle moe4j_rms_norm$handle() {
        return moe4j_rms_norm.HANDLE;
    }

    /**
     * Address for:
     * {@snippet lang=c :
     * moe4j_rms_norm(ctx, x, residual, weight, eps, sum_out, y)
     * }
     */
    public static MemorySegment moe4j_rms_norm$address() {
        return moe4j_rms_norm.ADDR;
    }

    /**
     * {@snippet lang=c :
     * moe4j_rms_norm(ctx, x, residual, weight, eps, sum_out, y)
     * }
     */
    public static int moe4j_rms_norm(MemorySegment ctx, MemorySegment x, MemorySegment residual, MemorySegment weight, float eps, MemorySegment sum_out, MemorySegment y) {
        var mh$ = moe4j_rms_norm.HANDLE;
        try {
            if (TRACE_DOWNCALLS) {
                traceDowncall("moe4j_rms_norm", ctx, x, residual, weight, eps, sum_out, y);
            }
            return (int)mh$.invokeExact(ctx, x, residual, weight, eps, sum_out, y);
        } catch (Error | RuntimeException ex) {
           throw ex;
        } catch (Throwable ex$) {
           throw new AssertionError("should not reach here", ex$);
        }
    }

    private static class moe4j_rope {
        public static final FunctionDescriptor DESC = FunctionDescriptor.of(
            moe4j_h.C_INT,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_FLOAT,
            moe4j_h.C_POINTER
        );

        public static final MemorySegment ADDR = moe4j_h.findOrThrow("moe4j_rope");

        public static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    /**
     * Function descriptor for:
     * {@snippet lang=c :
     * moe4j_rope(ctx, x, positions, freqs, rotation_scale, out)
     * }
     */
    public static FunctionDescriptor moe4j_rope$descriptor() {
        return moe4j_rope.DESC;
    }

    /**
     * Downcall method handle for:
     * {@snippet lang=c :
     * moe4j_rope(ctx, x, positions, freqs, rotation_scale, out)
     * }
     */
    public static MethodHandle moe4j_rope$handle() {
        return moe4j_rope.HANDLE;
    }

    /**
     * Address for:
     * {@snippet lang=c :
     * moe4j_rope(ctx, x, positions, freqs, rotation_scale, out)
     * }
     */
    public static MemorySegment moe4j_rope$address() {
        return moe4j_rope.ADDR;
    }

    /**
     * {@snippet lang=c :
     * moe4j_rope(ctx, x, positions, freqs, rotation_scale, out)
     * }
     */
    public static int moe4j_rope(MemorySegment ctx, MemorySegment x, MemorySegment positions, MemorySegment freqs, float rotation_scale, MemorySegment out) {
        var mh$ = moe4j_rope.HANDLE;
        try {
            if (TRACE_DOWNCALLS) {
                traceDowncall("moe4j_rope", ctx, x, positions, freqs, rotation_scale, out);
            }
            return (int)mh$.invokeExact(ctx, x, positions, freqs, rotation_scale, out);
        } catch (Error | RuntimeException ex) {
           throw ex;
        } catch (Throwable ex$) {
           throw new AssertionError("should not reach here", ex$);
        }
    }

    private static class moe4j_silu_mul {
        public static final FunctionDescriptor DESC = FunctionDescriptor.of(
            moe4j_h.C_INT,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER
        );

        public static final MemorySegment ADDR = moe4j_h.findOrThrow("moe4j_silu_mul");

        public static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    /**
     * Function descriptor for:
     * {@snippet lang=c :
     * moe4j_silu_mul(ctx, gate, up, out)
     * }
     */
    public static FunctionDescriptor moe4j_silu_mul$descriptor() {
        return moe4j_silu_mul.DESC;
    }

    /**
     * Downcall method handle for:
     * {@snippet lang=c :
     * moe4j_silu_mul(ctx, gate, up, out)
     * }
     */
    public static MethodHandle moe4j_silu_mul$handle() {
        return moe4j_silu_mul.HANDLE;
    }

    /**
     * Address for:
     * {@snippet lang=c :
     * moe4j_silu_mul(ctx, gate, up, out)
     * }
     */
    public static MemorySegment moe4j_silu_mul$address() {
        return moe4j_silu_mul.ADDR;
    }

    /**
     * {@snippet lang=c :
     * moe4j_silu_mul(ctx, gate, up, out)
     * }
     */
    public static int moe4j_silu_mul(MemorySegment ctx, MemorySegment gate, MemorySegment up, MemorySegment out) {
        var mh$ = moe4j_silu_mul.HANDLE;
        try {
            if (TRACE_DOWNCALLS) {
                traceDowncall("moe4j_silu_mul", ctx, gate, up, out);
            }
            return (int)mh$.invokeExact(ctx, gate, up, out);
        } catch (Error | RuntimeException ex) {
           throw ex;
        } catch (Throwable ex$) {
           throw new AssertionError("should not reach here", ex$);
        }
    }

    private static class moe4j_logits_stats {
        public static final FunctionDescriptor DESC = FunctionDescriptor.of(
            moe4j_h.C_INT,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER,
            moe4j_h.C_POINTER
        );

        public static final MemorySegment ADDR = moe4j_h.findOrThrow("moe4j_logits_stats");

        public static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    /**
     * Function descriptor for:
     * {@snippet lang=c :
     * moe4j_logits_stats(ctx, logits, argmax, sum_exp)
     * }
     */
    public static FunctionDescriptor moe4j_logits_stats$descriptor() {
        return moe4j_logits_stats.DESC;
    }

    /**
     * Downcall method handle for:
     * {@snippet lang=c :
     * moe4j_logits_stats(ctx, logits, argmax, sum_exp)
     * }
     */
    public static MethodHandle moe4j_logits_stats$handle() {
        return moe4j_logits_stats.HANDLE;
    }

    /**
     * Address for:
     * {@snippet lang=c :
     * moe4j_logits_stats(ctx, logits, argmax, sum_exp)
     * }
     */
    public static MemorySegment moe4j_logits_stats$address() {
        return moe4j_logits_stats.ADDR;
    }

    /**
     * {@snippet lang=c :
     * moe4j_logits_stats(ctx, logits, argmax, sum_exp)
     * }
     */
    public static int moe4j_logits_stats(MemorySegment ctx, MemorySegment logits, MemorySegment argmax, MemorySegment sum_exp) {
        var mh$ = moe4j_logits_stats.HANDLE;
        try {
            if (TRACE_DOWNCALLS) {
                traceDowncall("moe4j_logits_stats", ctx, logits, argmax, sum_exp);
            }
            return (int)mh$.invokeExact(ctx, logits, argmax, sum_exp);
        } catch (Error | RuntimeException ex) {
           throw ex;
        } catch (Throwable ex$) {
           throw new AssertionError("should not reach here", ex$);
        }
    }
}
