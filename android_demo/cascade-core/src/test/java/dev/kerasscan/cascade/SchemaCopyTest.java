package dev.kerasscan.cascade;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.io.File;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.Test;

/** Keeps cascade-core honest about the contract and its platform. */
public class SchemaCopyTest {
  @Test
  public void bundledSchemaIsTheRepositorysSchema() throws Exception {
    File schema = new File(TestSupport.repoRoot(), "tflite/manifest.schema.json");
    assertTrue("missing " + schema, schema.isFile());
    String repo = new String(Files.readAllBytes(schema.toPath()), StandardCharsets.UTF_8);
    String bundled = TestSupport.resource("dev/kerasscan/cascade/manifest.schema.json");
    assertEquals(
        "android_demo/cascade-core/src/main/resources/dev/kerasscan/cascade/manifest.schema.json"
            + " differs from tflite/manifest.schema.json: copy it over",
        repo,
        bundled);
  }

  @Test
  public void coreSourcesHaveNoAndroidImports() throws Exception {
    File src = new File(TestSupport.repoRoot(), "android_demo/cascade-core/src/main/java");
    List<String> offenders = new ArrayList<>();
    int files;
    try (Stream<java.nio.file.Path> s = Files.walk(src.toPath())) {
      List<java.nio.file.Path> java = new ArrayList<>();
      s.filter(p -> p.toString().endsWith(".java")).forEach(java::add);
      files = java.size();
      for (java.nio.file.Path p : java) {
        for (String line : Files.readAllLines(p, StandardCharsets.UTF_8)) {
          if (line.matches("\\s*import\\s+(static\\s+)?(android|androidx|com\\.google\\.ai)\\..*")) {
            offenders.add(p.getFileName() + ": " + line.trim());
          }
        }
      }
    }
    assertTrue("no sources found under " + src, files > 10);
    assertEquals("cascade-core must stay plain Java", new ArrayList<String>(), offenders);
  }
}
