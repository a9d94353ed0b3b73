#!/usr/bin/env bash
# Offline type check of the app's Kotlin (android_demo/app/src/main/java) without the Android
# SDK or Google's Maven: kotlinc (JetBrains' kotlin-compiler distribution, fetched once from
# npm) compiles the sources against
#   - the real cascade-core classes (javac'd here),
#   - R / ActivityMainBinding generated from the app's real res/ files (gen_resources.py),
#   - api/: compile-only declarations of the Android, AndroidX, CameraX, Material, coroutines
#     and LiteRT signatures the app calls. LiteRT's are transcribed from LiteRT's Kotlin sources
#     (litert/kotlin/src/main/kotlin/com/google/ai/edge/litert/*.kt); the others follow the
#     libraries' documented signatures. They are never packaged or run.
# It proves the code is well-typed against that reading of the APIs; only a Gradle build with
# the real artifacts proves it against the libraries themselves. Not part of CI (the compiler
# is a 90 MB download); run it after editing the Kotlin:  bash android_demo/tools/kotlin-check/check.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
demo="$(cd "$here/../.." && pwd)"
version=2.4.20
cache="${XDG_CACHE_HOME:-$HOME/.cache}/keras-scan/kotlin-compiler-$version"
kotlinc="${KOTLINC:-$cache/package/bin/kotlinc}"
if [ ! -x "$kotlinc" ]; then
  mkdir -p "$cache"
  (cd "$cache" && npm pack --silent "kotlin-compiler@$version" >/dev/null && tar xzf "kotlin-compiler-$version.tgz" && rm "kotlin-compiler-$version.tgz")
  chmod +x "$cache"/package/bin/*
fi
json=/usr/share/java/com.android.json.jar
[ -f "$json" ] || { echo "needs libandroid-json-java" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
javac --release 11 -cp "$json" -d "$work/core" $(find "$demo/cascade-core/src/main/java" -name '*.java')
python3 "$here/gen_resources.py" "$demo/app/src/main/res" "$work/gen"
"$kotlinc" -jvm-target 11 -Werror -cp "$work/core:$json" -d "$work/out" \
  $(find "$demo/app/src/main/java" -name '*.kt') \
  $(find "$here/api" "$work/gen" -name '*.kt' -o -name '*.java')
echo "Kotlin type check passed ($(find "$demo/app/src/main/java" -name '*.kt' | wc -l) files)"
