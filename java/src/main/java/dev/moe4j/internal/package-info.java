/**
 * Helpers shared by the library's packages and not part of its API: the JSON codec ({@link dev.moe4j.internal.Json}),
 * and grow-only scratch buffers ({@link dev.moe4j.internal.Buffers}). The module does not export this package; the
 * command-line tools, which run on the class path, use the codec too.
 */
package dev.moe4j.internal;
