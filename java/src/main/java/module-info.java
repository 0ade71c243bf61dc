/**
 * moe4j: DeepSeek-V2/V3-style Mixture-of-Experts models in Java, on native CPU (AVX-512, AVX2, scalar; chosen at run
 * time) and CUDA kernels reached through the Foreign Function and Memory API.
 *
 * <p>A host application reads this module and grants it native access: {@code java --enable-native-access=dev.moe4j
 * --module-path ... --module app/app.Main}. The jar carries the native libraries (Linux x86-64) and extracts them on
 * first use; {@code -Dmoe4j.library.path=DIR} loads them from a folder instead, {@code -Dmoe4j.library=moe4j_cuda}
 * picks the library with the CUDA backend ({@link dev.moe4j.runtime.NativeLibrary}).
 *
 * <p>Where to start: {@link dev.moe4j.engine.Model} loads a Hugging Face checkpoint, {@link dev.moe4j.tokenizer.Tokenizer}
 * its tokenizer, {@link dev.moe4j.engine.Generator} generates (streaming through a listener) and
 * {@link dev.moe4j.engine.Engine} serves concurrent requests with continuous batching. The kernels are usable on their
 * own ({@link dev.moe4j.kernels}, over {@link dev.moe4j.tensor.Tensor}s on a {@link dev.moe4j.runtime.Context}).
 *
 * <p>The FFM bindings of the C ABI ({@code dev.moe4j.bindings}) are inside this module and not exported.
 */
module dev.moe4j {
    requires com.fasterxml.jackson.databind;
    requires jinjava;

    exports dev.moe4j.runtime;
    exports dev.moe4j.tensor;
    exports dev.moe4j.kernels;
    exports dev.moe4j.routing;
    exports dev.moe4j.placement;
    exports dev.moe4j.parallel;
    exports dev.moe4j.model;
    exports dev.moe4j.engine;
    exports dev.moe4j.tokenizer;
    exports dev.moe4j.dashboard;
}
