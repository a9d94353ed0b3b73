// Plain Java 11 library, no Android dependency: the app's cascade logic, tested on the JVM.
// `gradle :cascade-core:test` runs the same JUnit tests as scripts/test_core.sh (which uses
// javac + Debian jars and is what CI runs).
plugins {
    `java-library`
}

java {
    sourceCompatibility = JavaVersion.VERSION_11
    targetCompatibility = JavaVersion.VERSION_11
}

dependencies {
    // org.json is part of the Android platform; compile against the same implementation.
    compileOnly(libs.android.json)
    testImplementation(libs.android.json)
    testImplementation(libs.junit)
    testImplementation(libs.jna)
}

tasks.withType<JavaCompile>().configureEach {
    // --release 11 (not just -source/-target) so a newer JDK checks against the Java 11 API.
    options.release.set(11)
    options.compilerArgs.addAll(listOf("-Xlint:all", "-Werror"))
    options.encoding = "UTF-8"
}

tasks.test {
    val repo = rootProject.projectDir.parentFile
    systemProperty("keras_scan.repo", repo.absolutePath)
    // The end-to-end test runs tflite/testdata through the LiteRT C library of the repo's venv.
    val litert = fileTree(repo.resolve(".venv/lib")) { include("python3*/site-packages/ai_edge_litert/libLiteRt.so") }
    systemProperty("keras_scan.litert", litert.files.firstOrNull()?.absolutePath ?: "")
    testLogging { events("passed", "failed") }
}
