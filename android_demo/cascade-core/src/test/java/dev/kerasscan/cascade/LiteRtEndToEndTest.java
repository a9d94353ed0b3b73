package dev.kerasscan.cascade;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.File;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.json.JSONArray;
import org.json.JSONObject;
import org.junit.BeforeClass;
import org.junit.Test;

/**
 * End to end on the JVM against real models: tflite/testdata's exported cascade runs through
 * cascade-core with a StageRunner over the LiteRT C library (JNA), the same code path as the
 * app, and must reproduce what tflite/testdata/expected.json records (labels, exit indices,
 * every stage's probabilities; the raw int8 values exactly).
 */
public class LiteRtEndToEndTest {
  private static File testdata;
  private static File exportDir;
  private static File library;
  private static JSONObject expected;
  private static Npy images;
  private static Manifest manifest;

  @BeforeClass
  public static void locate() throws Exception {
    File repo = TestSupport.repoRoot();
    testdata = new File(repo, "tflite/testdata");
    File expectedFile = new File(testdata, "expected.json");
    if (!expectedFile.isFile()) {
      fail("missing " + expectedFile + ": the exporter's conformance vectors are needed"
          + " (python tflite/testdata/regenerate.py writes them)");
    }
    expected = TestSupport.json(
        new String(Files.readAllBytes(expectedFile.toPath()), StandardCharsets.UTF_8));
    exportDir = new File(testdata, expected.optString("export"));
    images = Npy.read(new File(testdata, expected.optString("images")));
    String lib = System.getProperty("keras_scan.litert", "");
    library = new File(lib);
    if (lib.isEmpty() || !library.isFile()) {
      fail("the LiteRT C library libLiteRt.so was not found (looked under"
          + " .venv/lib/python3*/site-packages/ai_edge_litert/; got \"" + lib + "\"): create"
          + " the venv with `make test` (it installs ai-edge-litert) before test_core.sh");
    }
    manifest = Manifest.load(new DirectoryExportSource(exportDir));
  }

  /** A runner that records which signatures ran. */
  private static final class Recording implements StageRunner {
    final StageRunner inner;
    final List<String> calls = new ArrayList<>();

    Recording(StageRunner inner) {
      this.inner = inner;
    }

    @Override
    public Map<String, Tensor> run(ModelCall call, Tensor input) throws Exception {
      calls.add(call.signatureKey);
      return inner.run(call, input);
    }

    @Override
    public void close() {
      inner.close();
    }
  }

  @Test
  public void theRealManifestValidatesAndEveryFileVerifies() {
    assertEquals(3, manifest.numExits());
    assertEquals(10, manifest.labels().size());
    FileVerifier.verify(manifest, new DirectoryExportSource(exportDir), manifest.files().keySet());
    JSONObject th = expected.optJSONObject("thresholds");
    assertEquals(th.optJSONArray("values").optDouble(0), manifest.rule().threshold(0), 0);
    assertEquals(th.optString("measure"), manifest.rule().measure().jsonName());
  }

  @Test
  public void manifestTensorSpecsMatchWhatTheModelFilesDeclare() throws Exception {
    try (LiteRtJnaRunner runner = new LiteRtJnaRunner(library, exportDir)) {
      int checked = 0;
      for (Manifest.Variant v : manifest.variants().values()) {
        List<Manifest.ModelFile> files = new ArrayList<>(v.exits);
        files.add(v.cascade);
        files.addAll(v.stages);
        for (Manifest.ModelFile f : files) {
          for (Manifest.Signature s : f.signatures.values()) {
            Map<String, LiteRtJnaRunner.Declared> declared = runner.declared(f.file, s.key);
            assertEquals(f.file + ":" + s.key, s.inputs.size() + s.outputs.size(), declared.size());
            for (int side = 0; side < 2; side++) {
              Map<String, TensorSpec> specs = side == 0 ? s.inputs : s.outputs;
              for (Map.Entry<String, TensorSpec> e : specs.entrySet()) {
                String where = f.file + ":" + s.key + " " + e.getKey();
                LiteRtJnaRunner.Declared d = declared.get((side == 0 ? "in:" : "out:") + e.getKey());
                assertTrue(where + " is not in the model file: " + declared.keySet(), d != null);
                TensorSpec t = e.getValue();
                assertArrayEquals(where, t.shape(), d.shape);
                assertEquals(where, LiteRtJnaRunner.elementType(t.dtype()), d.elementType);
                assertEquals(where + " scale", t.scale(), d.scale, t.scale() * 1e-6);
                assertEquals(where + " zero point", t.zeroPoint(), d.zeroPoint);
                checked++;
              }
            }
          }
        }
      }
      assertTrue("checked " + checked + " tensors", checked >= 40);
    }
  }

  private static void checkVariant(String mode) throws Exception {
    JSONObject spec = expected.optJSONObject("variants").optJSONObject(mode);
    JSONArray cases = spec.optJSONArray("cases");
    double tolerance = spec.optDouble("tolerance");
    Manifest.Variant v = manifest.variant(mode);
    int h = images.shape[1];
    int w = images.shape[2];
    int c = images.shape[3];
    assertEquals(cases.length(), images.shape[0]);
    Recording runner = new Recording(new LiteRtJnaRunner(library, exportDir));
    int[] perExit = new int[manifest.numExits()];
    try (ScanCascade cascade = new ScanCascade(manifest, mode, runner)) {
      for (int i = 0; i < cases.length(); i++) {
        JSONObject want = cases.optJSONObject(i);
        String what = mode + " image " + i;
        float[] px = images.item(i);

        // 1. Early exit, as the app runs it.
        runner.calls.clear();
        CascadeResult r = cascade.classifyPixels(px, h, w, c, ScanCascade.Mode.SCALABLE);
        int exit = want.optInt("exit_index");
        assertEquals(what + " exit", exit, r.exitIndex);
        assertEquals(what + " label", want.optInt("label"), r.prediction);
        assertEquals(what + " probability", want.optDouble("probability"), r.probability,
            Math.max(tolerance, 1e-6));
        List<String> ran = new ArrayList<>();
        for (int s = 0; s <= exit; s++) {
          ran.add("stage_" + s);
        }
        assertEquals(what + ": only the stages up to the answering exit run", ran, runner.calls);
        assertEquals(exit + 1, r.exitProbs.size());
        assertEquals(exit + 2, r.timings.size());
        perExit[exit]++;

        // 2. Every stage, compared with every recorded probability.
        CascadeResult all = cascade.runAllStages(px, h, w, c);
        assertEquals(what, exit, all.exitIndex);
        assertEquals(what, want.optInt("label"), all.prediction);
        JSONArray stageProbs = want.optJSONArray("stage_probs");
        JSONArray stageQ = want.optJSONArray("stage_probs_q");
        for (int s = 0; s < manifest.numExits(); s++) {
          float[] got = all.exitProbs.get(s);
          JSONArray p = stageProbs.optJSONArray(s);
          TensorSpec probsSpec = v.cascade.signatures.get("stage_" + s).outputs.get("probs");
          for (int j = 0; j < got.length; j++) {
            String at = what + " stage " + s + " class " + j;
            assertEquals(at, p.optDouble(j), got[j], Math.max(tolerance, 1e-6));
            if (stageQ != null) {
              long q = Math.round(got[j] / probsSpec.scale()) + probsSpec.zeroPoint();
              assertEquals(at + " (raw int8)", stageQ.optJSONArray(s).optLong(j), q);
            }
          }
          if (s <= exit) {
            assertArrayEquals(what + " stage " + s, r.exitProbs.get(s), got, 0f);
          }
        }

        // 3. The same pixels as an ARGB bitmap (the camera / gallery path) answer the same.
        int[] argb = new int[h * w];
        for (int p = 0; p < h * w; p++) {
          int red = (int) px[p * c];
          int green = (int) px[p * c + (c == 3 ? 1 : 0)];
          int blue = (int) px[p * c + (c == 3 ? 2 : 0)];
          argb[p] = 0xff000000 | (red << 16) | (green << 8) | blue;
        }
        if (c == 3) {
          CascadeResult viaArgb = cascade.classifyArgb(argb, w, h, ScanCascade.Mode.SCALABLE);
          assertEquals(what + " via ARGB", r.prediction, viaArgb.prediction);
          assertEquals(what + " via ARGB", r.exitIndex, viaArgb.exitIndex);
          assertArrayEquals(what + " via ARGB", r.exitProbs.get(exit), viaArgb.exitProbs.get(exit), 0f);
        }
      }
    }
    for (int e = 0; e < perExit.length; e++) {
      assertTrue(mode + ": exit " + e + " answered no test image " + Arrays.toString(perExit),
          perExit[e] > 0);
    }
  }

  @Test
  public void int8CascadeReproducesThePythonReference() throws Exception {
    checkVariant("int8");
  }

  @Test
  public void float32CascadeReproducesThePythonReference() throws Exception {
    checkVariant("float32");
  }

  @Test
  public void fullModelModeRunsTheFinalExitFileAlone() throws Exception {
    int h = images.shape[1];
    int w = images.shape[2];
    int c = images.shape[3];
    for (String mode : new String[] {"float32", "int8"}) {
      Recording runner = new Recording(new LiteRtJnaRunner(library, exportDir));
      try (ScanCascade cascade = new ScanCascade(manifest, mode, runner)) {
        int agree = 0;
        for (int i = 0; i < images.shape[0]; i++) {
          runner.calls.clear();
          CascadeResult full = cascade.classifyPixels(images.item(i), h, w, c, ScanCascade.Mode.FULL);
          assertEquals(List.of("full"), runner.calls);
          assertEquals(manifest.numExits() - 1, full.exitIndex);
          assertEquals(manifest.exits().get(2).standaloneMacs, full.macs);
          float[] last = cascade.runAllStages(images.item(i), h, w, c).exitProbs.get(2);
          float[] p = full.exitProbs.get(0);
          double sum = 0;
          for (int j = 0; j < p.length; j++) {
            sum += p[j];
            if (mode.equals("float32")) {
              // The same final exit computed by a separately converted file.
              assertEquals(mode + " image " + i + " class " + j, last[j], p[j], 1e-4);
            }
          }
          assertEquals(1.0, sum, 0.05);
          agree += ConfidenceMeasure.argmax(last) == full.prediction ? 1 : 0;
        }
        if (mode.equals("float32")) {
          assertEquals(images.shape[0], agree);
        }
      }
    }
  }
}
