/**
 * Helpers shared by the library's packages and not part of its API: the JSON codec ({@link dev.moe4j.internal.Json}),
 * grow-only scratch buffers ({@link dev.moe4j.internal.Buffers}) and the count of Java time inside native calls
 * that profilers take off ({@link dev.moe4j.internal.CallClock}). The module does not export this package; the
 * command-line tools, which run on the class path, use the codec too.
 */
package dev.moe4j.internal;
