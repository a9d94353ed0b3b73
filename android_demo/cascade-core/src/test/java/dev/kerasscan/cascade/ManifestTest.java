package dev.kerasscan.cascade;

import static dev.kerasscan.cascade.TestSupport.at;
import static dev.kerasscan.cascade.TestSupport.obj;
import static dev.kerasscan.cascade.TestSupport.put;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import org.json.JSONArray;
import org.json.JSONObject;
import org.junit.Test;

public class ManifestTest {
  private static ManifestException rejects(JSONObject m) {
    return assertThrows(ManifestException.class, () -> Manifest.parse(m.toString()));
  }

  private static void assertMessage(Exception e, String... parts) {
    for (String p : parts) {
      assertTrue(
          "message should contain \"" + p + "\": " + e.getMessage(), e.getMessage().contains(p));
    }
  }

  @Test
  public void parsesAValidManifest() {
    Manifest m = Manifest.parse(TestSupport.validManifest().toString());
    assertEquals(3, m.numExits());
    assertEquals(3, m.numClasses());
    assertEquals("dog", m.labels().get(1));
    assertEquals(0.8, m.rule().threshold(0), 0);
    assertEquals(ConfidenceMeasure.MAX_PROB, m.rule().measure());
    assertEquals(Fallback.FINAL, m.rule().fallback());
    Manifest.Variant v = m.variant("int8");
    assertEquals(DType.INT8, v.inputDtype);
    assertEquals("cascade.int8.tflite", v.cascade.file);
    assertEquals("full.int8.tflite", v.fullModel().file);
    TensorSpec img = v.cascade.signatures.get("stage_0").inputs.get("image");
    assertEquals(-128, img.zeroPoint());
    assertEquals(8, m.input().height);
  }

  @Test
  public void rejectsAnotherFormatVersion() {
    JSONObject m = TestSupport.validManifest();
    put(m, "format_version", 2);
    assertMessage(rejects(m), "format_version 2", "reads only format_version 1");
  }

  @Test
  public void rejectsAMissingFormatVersion() {
    JSONObject m = TestSupport.validManifest();
    m.remove("format_version");
    assertMessage(rejects(m), "no format_version");
  }

  @Test
  public void rejectsInvalidJson() {
    ManifestException e =
        assertThrows(ManifestException.class, () -> Manifest.parse("{\"format_version\": 1,"));
    assertMessage(e, "not valid JSON");
  }

  @Test
  public void rejectsPathTraversalInFileNames() {
    for (String bad : new String[] {"../cascade.int8.tflite", "sub/cascade.tflite", ".hidden",
        "..\\x.tflite", "/etc/passwd"}) {
      JSONObject m = TestSupport.validManifest();
      put((JSONObject) at(m, "variants.int8.cascade"), "file", bad);
      put((JSONObject) m.opt("files"), bad, obj("bytes", 1, "sha256", TestSupport.repeat("a", 64)));
      ManifestException e = rejects(m);
      assertTrue(bad + ": " + e.getMessage(),
          e.getMessage().contains("pattern") || e.getMessage().contains("unsafe file name"));
    }
    ManifestException e =
        assertThrows(ManifestException.class, () -> FileNames.requireSafe("../model.tflite"));
    assertMessage(e, "unsafe file name", "\"..\"");
    e = assertThrows(ManifestException.class, () -> FileNames.requireSafe("a/b.tflite"));
    assertMessage(e, "folder separator");
  }

  @Test
  public void rejectsAFileNotListedInFiles() {
    JSONObject m = TestSupport.validManifest();
    ((JSONObject) m.opt("files")).remove("full.int8.tflite");
    assertMessage(rejects(m), "full.int8.tflite", "not listed in files");
  }

  @Test
  public void rejectsMissingQuantizationParams() {
    JSONObject m = TestSupport.validManifest();
    JSONObject probs = (JSONObject) at(m, "variants.int8.cascade.signatures.stage_1.outputs.probs");
    put(probs, "scale", 0);
    assertMessage(rejects(m), "int8", "quantization parameters are missing", "stage_1");

    m = TestSupport.validManifest();
    JSONObject img = (JSONObject) at(m, "variants.int8.exits.2.signatures.serving_default.inputs.image");
    img.remove("scale");
    assertMessage(rejects(m), "the required key \"scale\" is missing");
  }

  @Test
  public void rejectsSchemaViolations() throws Exception {
    JSONObject m = TestSupport.validManifest();
    put((JSONObject) m.opt("thresholds"), "measure", "top5");
    assertMessage(rejects(m), "thresholds/measure", "must be one of");

    m = TestSupport.validManifest();
    put(m, "surprise", 1);
    assertMessage(rejects(m), "surprise", "unknown key");

    m = TestSupport.validManifest();
    put((JSONObject) m.opt("input"), "channels", 4);
    assertMessage(rejects(m), "input/channels");

    m = TestSupport.validManifest();
    ((JSONArray) at(m, "thresholds.values")).put(1.5);
    assertMessage(rejects(m), "thresholds/values/2", "<= 1");

    m = TestSupport.validManifest();
    put((JSONObject) ((JSONObject) m.opt("files")).opt("cascade.int8.tflite"), "sha256", "XYZ");
    assertMessage(rejects(m), "sha256", "does not match the pattern");
  }

  /**
   * Thresholds must be finite numbers in [0, 1]: one case per line, each written into
   * manifest.json as raw JSON text (NaN and Infinity are not JSON, but lenient parsers read
   * them, and JSON Schema's minimum/maximum alone let NaN through).
   */
  @Test
  public void rejectsThresholdsThatAreNotFiniteNumbersIn01() throws Exception {
    String[][] cases = {
      // {JSON text of thresholds.values[1], what the message must show}
      {"NaN", "NaN"},
      {"Infinity", "Infinity"},
      {"-Infinity", "-Infinity"},
      {"-0.1", "-0.1"},
      {"1.5", "1.5"},
      {"\"0.5\"", "0.5"},
      {"true", "true"},
    };
    for (String[] c : cases) {
      JSONObject m = TestSupport.validManifest();
      ((JSONArray) at(m, "thresholds.values")).put(1, "@@threshold@@");
      String text = m.toString().replace("\"@@threshold@@\"", c[0]);
      ManifestException e =
          assertThrows(c[0], ManifestException.class, () -> Manifest.parse(text));
      assertMessage(e, "thresholds/values/1", c[1]);
    }
    // The rule itself refuses them too, whoever builds it.
    for (double bad : new double[] {Double.NaN, Double.POSITIVE_INFINITY, -0.1, 1.5}) {
      ManifestException e =
          assertThrows(
              ManifestException.class,
              () ->
                  new ExitRule(
                      new double[] {0.5, bad}, ConfidenceMeasure.MAX_PROB, Fallback.FINAL));
      assertMessage(e, "thresholds[1]", String.valueOf(bad), "outside [0, 1]");
    }
  }

  @Test
  public void rejectsInconsistentCounts() throws Exception {
    JSONObject m = TestSupport.validManifest();
    ((JSONArray) m.opt("labels")).put("fish");
    assertMessage(rejects(m), "labels has 4 entries but model.num_classes is 3");

    m = TestSupport.validManifest();
    ((JSONArray) at(m, "thresholds.values")).put(0.5);
    assertMessage(rejects(m), "thresholds/values has 3 values but there are 2 shallow exits");

    m = TestSupport.validManifest();
    put(m, "default_variant", "float32");
    assertMessage(rejects(m), "default_variant \"float32\"");
  }

  @Test
  public void rejectsAnImageInputThatDoesNotMatchTheInput() {
    JSONObject m = TestSupport.validManifest();
    put((JSONObject) m.opt("input"), "channels", 3);
    assertMessage(rejects(m), "does not match input (1, 8, 8, 3)");
  }

  @Test
  public void rejectsBrokenStageChaining() {
    JSONObject m = TestSupport.validManifest();
    JSONObject in = (JSONObject) at(m, "variants.int8.cascade.signatures.stage_2.inputs.features");
    put(in, "shape", TestSupport.array(1, 7));
    assertMessage(rejects(m), "stage_2", "gives features");
  }

  @Test
  public void loadsFromAnExportFolderAndReportsAMissingManifest() throws Exception {
    java.io.File dir = java.nio.file.Files.createTempDirectory("manifest").toFile();
    try {
      ManifestException e =
          assertThrows(
              ManifestException.class, () -> Manifest.load(new DirectoryExportSource(dir)));
      assertMessage(e, "manifest.json is missing in " + dir.getPath());
      TestSupport.writeExport(dir);
      assertEquals("tiny", Manifest.load(new DirectoryExportSource(dir)).modelName());
    } finally {
      for (java.io.File f : dir.listFiles()) {
        f.delete();
      }
      dir.delete();
    }
  }
}
