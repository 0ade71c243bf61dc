#!/usr/bin/env bash
# Runs the example on the module path: ./run.sh CHECKPOINT_DIR [PROMPT [MAX_NEW_TOKENS]] (after `mvn package`).
# moe4j and the modules it reads (Jackson, jinjava) go on the module path, the rest of jinjava's dependencies on the
# class path (two of them split the package javax.annotation, which the module path refuses). Native access is granted
# to module dev.moe4j alone; ALL-DEFAULT resolves the JDK modules class-path code may use. JAVA_HOME names a JDK >= 22
# (else java on PATH).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
java=${JAVA_HOME:+$JAVA_HOME/bin/}java
modules=("$here"/target/moe4j-example-*.jar)
classpath=()
IFS=: read -r -a jars <<<"$(cat "$here/target/classpath.txt")" # the dependencies' jars in the local Maven repository
for jar in "${jars[@]}"; do
  case "$(basename "$jar")" in
    moe4j-*.jar | jackson-core-*.jar | jackson-databind-*.jar | jackson-annotations-*.jar | jinjava-*.jar) modules+=("$jar") ;;
    *) classpath+=("$jar") ;;
  esac
done
IFS=:
exec "$java" --enable-native-access=dev.moe4j --module-path "${modules[*]}" --class-path "${classpath[*]}" \
  --add-modules ALL-DEFAULT --module dev.moe4j.example/dev.moe4j.example.StreamGeneration "$@"
