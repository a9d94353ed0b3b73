#!/usr/bin/env bash
# Compiles android_demo/cascade-core (plain Java 11) and its tests with javac and runs them
# with JUnit 4, including the end-to-end test that runs tflite/testdata's exported cascade
# through the LiteRT C library of the repository's Python venv (.venv, made by `make test`).
# Needs the Debian packages listed in apt-packages.txt next to this script.
# Last line of output: "N passed, N failed"; exit status non-zero on any failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
core="$repo/android_demo/cascade-core"

fail_setup() {
  echo "test_core.sh: $*" >&2
  echo "0 passed, 1 failed"
  exit 1
}

command -v javac >/dev/null || fail_setup "javac not found: apt-get install default-jdk-headless"

jar_of() { # first existing jar among the candidates
  for j in "$@"; do
    if [ -f "$j" ]; then echo "$j"; return 0; fi
  done
  return 1
}
J=/usr/share/java
junit="$(jar_of $J/junit4.jar)" || fail_setup "junit4 missing: apt-get install junit4"
hamcrest="$(jar_of $J/hamcrest-core.jar $J/hamcrest.jar $J/hamcrest-all.jar)" \
  || fail_setup "hamcrest missing: apt-get install libhamcrest-java"
json="$(jar_of $J/com.android.json.jar $J/json.jar)" \
  || fail_setup "org.json missing: apt-get install libandroid-json-java"
jna="$(jar_of $J/jna.jar)" || fail_setup "JNA missing: apt-get install libjna-java"

# The LiteRT C library the ai-edge-litert wheel ships. Not finding it is NOT a skip: the
# end-to-end test receives an empty path and fails with a message saying what is missing.
litert=""
for cand in "$repo"/.venv/lib/python3*/site-packages/ai_edge_litert/libLiteRt.so; do
  if [ -f "$cand" ]; then litert="$cand"; break; fi
done
if [ -z "$litert" ]; then
  echo "test_core.sh: WARNING: no libLiteRt.so under $repo/.venv/lib/python3*/site-packages/ai_edge_litert/ (run \`make test\` or create .venv first); the end-to-end test will fail" >&2
fi

build="$(mktemp -d "${TMPDIR:-/tmp}/cascade-core.XXXXXX")"
trap 'rm -rf "$build"' EXIT
mkdir -p "$build/main" "$build/test"

find "$core/src/main/java" -name '*.java' > "$build/main.txt"
find "$core/src/test/java" -name '*.java' > "$build/test.txt"

echo "== javac cascade-core (Java 11)"
javac --release 11 -encoding UTF-8 -Xlint:all -Werror -cp "$json" -d "$build/main" @"$build/main.txt"
cp -r "$core/src/main/resources/." "$build/main/"
echo "== javac tests"
cp_test="$build/main:$junit:$hamcrest:$json:$jna"
javac --release 11 -encoding UTF-8 -cp "$cp_test" -d "$build/test" @"$build/test.txt"
if [ -d "$core/src/test/resources" ]; then cp -r "$core/src/test/resources/." "$build/test/"; fi

# Every *Test class, found from the compiled classes (nested classes excluded).
tests="$(cd "$build/test" && find . -name '*Test.class' ! -name '*$*' | sed 's|^\./||; s|\.class$||; s|/|.|g' | sort)"
[ -n "$tests" ] || fail_setup "no test classes compiled"

echo "== JUnit"
# A small heap and the C1 compiler keep the JVM light on a shared machine.
set +e
java -Xmx512m -XX:TieredStopAtLevel=1 \
  -Dkeras_scan.repo="$repo" \
  -Dkeras_scan.litert="$litert" \
  -cp "$build/test:$cp_test" \
  dev.kerasscan.cascade.TestMain $tests
status=$?
set -e
exit $status
