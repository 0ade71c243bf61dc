/** A host application of moe4j: loads a checkpoint and streams a generation. */
module dev.moe4j.example {
    requires dev.moe4j;
}
