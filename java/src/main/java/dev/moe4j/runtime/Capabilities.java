package dev.moe4j.runtime;

import java.nio.file.Path;

/**
 * What the loaded native library and this machine offer.
 *
 * @param library the file the native library was loaded from
 * @param abiVersion the C ABI version of the library
 * @param version the library version, "major.minor.patch"
 * @param cpuIsa the best CPU path available (after the MOE4J_MAX_ISA environment cap)
 * @param cpuThreads hardware threads available to this process
 * @param cudaCompiled whether the library contains the CUDA backend
 * @param cudaDeviceCount usable CUDA devices; 0 without a driver or devices
 */
public record Capabilities(
        Path library,
        int abiVersion,
        String version,
        Isa cpuIsa,
        int cpuThreads,
        boolean cudaCompiled,
        int cudaDeviceCount) {}
