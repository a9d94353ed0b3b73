package dev.kerasscan.cascade;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.awt.image.BufferedImage;
import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.List;
import javax.imageio.ImageIO;
import org.json.JSONArray;
import org.json.JSONObject;
import org.junit.Test;

/**
 * Replays tflite/testdata/conformance/, the vectors keras_scan and scan_lite replay too
 * (written by tflite/testdata/make_conformance.py): the exit rule and confidence measures,
 * quantization with ties and differing scales, image fitting from random, Fashion-MNIST and
 * PNG inputs, and invalid manifests each refused with an error naming the location.
 */
public class ConformanceTest {
  private static JSONObject vectors(String name) throws IOException {
    File f = new File(TestSupport.repoRoot(), "tflite/testdata/conformance/" + name);
    return TestSupport.json(new String(Files.readAllBytes(f.toPath()), StandardCharsets.UTF_8));
  }

  private static float[] floats(JSONArray a) {
    float[] out = new float[a.length()];
    for (int i = 0; i < out.length; i++) {
      out[i] = (float) a.optDouble(i);
    }
    return out;
  }

  private static DType dtype(JSONObject t) {
    return DType.fromJson(t.optString("dtype"));
  }

  private static TensorSpec spec(JSONObject t, int n) {
    return new TensorSpec(
        "t", new int[] {1, n}, dtype(t), t.optDouble("scale"), t.optLong("zero_point"));
  }

  private static long[] raw(Tensor t) {
    long[] out = new long[t.spec().elementCount()];
    for (int i = 0; i < out.length; i++) {
      out[i] = (long) t.rawValue(i);
    }
    return out;
  }

  private static Tensor tensorOf(TensorSpec s, JSONArray q) {
    // Quantized values -> the tensor's bytes, through dequantize -> quantize being exact
    // for in-range integers; checked below by reading them back.
    float[] real = new float[q.length()];
    for (int i = 0; i < real.length; i++) {
      real[i] = (float) (s.scale() * (q.optLong(i) - s.zeroPoint()));
    }
    Tensor t = Quantization.fromReal(s, real);
    for (int i = 0; i < real.length; i++) {
      assertEquals("raw value " + i, q.optLong(i), (long) t.rawValue(i));
    }
    return t;
  }

  // ------------------------------------------------------------------------------ exit rule

  @Test
  public void exitRule() throws Exception {
    JSONObject doc = vectors("exit_rule.json");
    JSONArray pa = doc.optJSONArray("probs");
    float[][][] p = new float[pa.length()][][];
    for (int e = 0; e < p.length; e++) {
      JSONArray rows = pa.optJSONArray(e);
      p[e] = new float[rows.length()][];
      for (int i = 0; i < rows.length(); i++) {
        p[e][i] = floats(rows.optJSONArray(i));
      }
    }
    double tol = doc.optDouble("confidence_tolerance");
    JSONObject conf = doc.optJSONObject("confidence");
    for (ConfidenceMeasure m : ConfidenceMeasure.values()) {
      for (int e = 0; e < p.length; e++) {
        for (int i = 0; i < p[e].length; i++) {
          double want = conf.optJSONArray(m.jsonName()).optJSONArray(e).optDouble(i);
          assertEquals(m + " exit " + e + " sample " + i, want, m.of(p[e][i]), tol);
        }
      }
    }
    int k = p.length - 1;
    JSONArray cases = doc.optJSONArray("cases");
    assertEquals(30, cases.length());
    int early = 0;
    for (int c = 0; c < cases.length(); c++) {
      JSONObject cs = cases.optJSONObject(c);
      JSONArray th = cs.optJSONArray("thresholds");
      double[] t = new double[th.length()];
      for (int i = 0; i < t.length; i++) {
        t[i] = th.optDouble(i);
      }
      ExitRule rule =
          new ExitRule(
              t,
              ConfidenceMeasure.fromJson(cs.optString("measure")),
              Fallback.fromJson(cs.optString("fallback")));
      for (int i = 0; i < p[0].length; i++) {
        int exit = k;
        for (int e = 0; e < k; e++) {
          if (rule.shouldExit(e, p[e][i])) {
            exit = e;
            break;
          }
        }
        List<float[]> all = new ArrayList<>();
        for (float[][] exitProbs : p) {
          all.add(exitProbs[i]);
        }
        int pred = exit < k ? ConfidenceMeasure.argmax(p[exit][i]) : rule.finalPrediction(all);
        String what = "case " + c + " sample " + i;
        assertEquals(what, cs.optJSONArray("exit_index").optInt(i), exit);
        assertEquals(what, cs.optJSONArray("predictions").optInt(i), pred);
        early += exit < k ? 1 : 0;
      }
    }
    assertTrue("the vectors must exercise early exits", early > 100);
  }

  // --------------------------------------------------------------------------- quantization

  @Test
  public void quantize() throws Exception {
    JSONArray cases = vectors("quantization.json").optJSONArray("quantize");
    assertTrue(cases.length() >= 5);
    for (int c = 0; c < cases.length(); c++) {
      JSONObject cs = cases.optJSONObject(c);
      float[] real = floats(cs.optJSONArray("real"));
      Tensor t = Quantization.fromReal(spec(cs.optJSONObject("tensor"), real.length), real);
      JSONArray want = cs.optJSONArray("q");
      long[] got = raw(t);
      for (int i = 0; i < got.length; i++) {
        assertEquals(cs.optString("name") + " value " + i, want.optLong(i), got[i]);
      }
    }
  }

  @Test
  public void dequantize() throws Exception {
    JSONArray cases = vectors("quantization.json").optJSONArray("dequantize");
    for (int c = 0; c < cases.length(); c++) {
      JSONObject cs = cases.optJSONObject(c);
      JSONArray q = cs.optJSONArray("q");
      Tensor t = tensorOf(spec(cs.optJSONObject("tensor"), q.length()), q);
      assertArrayEquals(
          cs.optString("name"),
          floats(cs.optJSONArray("real")),
          Quantization.dequantize(t),
          0f);
    }
  }

  @Test
  public void requantize() throws Exception {
    JSONArray cases = vectors("quantization.json").optJSONArray("requantize");
    for (int c = 0; c < cases.length(); c++) {
      JSONObject cs = cases.optJSONObject(c);
      JSONArray q = cs.optJSONArray("q");
      Tensor src = tensorOf(spec(cs.optJSONObject("src"), q.length()), q);
      Tensor out =
          Quantization.requantize(src, spec(cs.optJSONObject("dst"), q.length()));
      JSONArray want = cs.optJSONArray("expected");
      long[] got = raw(out);
      for (int i = 0; i < got.length; i++) {
        assertEquals(cs.optString("name") + " value " + i, want.optLong(i), got[i]);
      }
    }
  }

  // -------------------------------------------------------------------------- image fitting

  private static ImagePreprocessor preprocessor(int h, int w, int c) {
    return new ImagePreprocessor(new Manifest.InputSpec(h, w, c, 0, 255));
  }

  /** A PNG decoded as the app's Bitmap path sees it: H x W x 3 (or 1 for grey), alpha dropped. */
  private static float[] decodePng(File f, int channels) throws IOException {
    BufferedImage img = ImageIO.read(f);
    int h = img.getHeight();
    int w = img.getWidth();
    float[] out = new float[h * w * channels];
    for (int y = 0; y < h; y++) {
      for (int x = 0; x < w; x++) {
        if (channels == 1) {
          out[y * w + x] = img.getRaster().getSample(x, y, 0);
        } else {
          for (int b = 0; b < 3; b++) {
            out[(y * w + x) * 3 + b] = img.getRaster().getSample(x, y, b);
          }
        }
      }
    }
    return out;
  }

  @Test
  public void imageFitting() throws Exception {
    JSONObject doc = vectors("image_fitting.json");
    double tol = doc.optDouble("tolerance");
    JSONObject png = doc.optJSONObject("png");
    File pngDir = new File(TestSupport.repoRoot(), "tflite/testdata/conformance/png");
    JSONArray cases = doc.optJSONArray("cases");
    int fromPng = 0;
    for (int c = 0; c < cases.length(); c++) {
      JSONObject cs = cases.optJSONObject(c);
      String source = cs.optString("source");
      JSONArray shape = cs.optJSONArray("shape");
      float[] image;
      if (source.endsWith(".png")) {
        image = decodePng(new File(pngDir, source), shape.optInt(2));
        assertArrayEquals(
            source + " decoded", floats(png.optJSONObject(source).optJSONArray("pixels")), image, 0f);
        fromPng++;
      } else {
        image = floats(cs.optJSONArray("image"));
      }
      JSONArray target = cs.optJSONArray("target");
      ImagePreprocessor p = preprocessor(target.optInt(0), target.optInt(1), target.optInt(2));
      float[] got = p.fit(image, shape.optInt(0), shape.optInt(1), shape.optInt(2));
      float[] want = floats(cs.optJSONArray("fitted"));
      assertEquals(source + " -> " + target + " length", want.length, got.length);
      for (int j = 0; j < got.length; j++) {
        assertEquals(source + " -> " + target + " value " + j, want[j], got[j], tol);
      }
    }
    assertTrue("the vectors must include PNG inputs", fromPng >= 3);
  }

  // ---------------------------------------------------------------------- invalid manifests

  private static Object parent(Object root, String[] tokens) {
    Object node = root;
    for (int i = 0; i < tokens.length - 1; i++) {
      node =
          node instanceof JSONArray
              ? ((JSONArray) node).opt(Integer.parseInt(tokens[i]))
              : ((JSONObject) node).opt(tokens[i]);
    }
    return node;
  }

  /** JSON Patch (add / remove / replace) on org.json values, as RFC 6902 defines them. */
  static void applyPatch(JSONObject doc, JSONArray patch) throws Exception {
    for (int s = 0; s < patch.length(); s++) {
      JSONObject step = patch.optJSONObject(s);
      String[] tokens = step.optString("path").substring(1).split("/", -1);
      for (int i = 0; i < tokens.length; i++) {
        tokens[i] = tokens[i].replace("~1", "/").replace("~0", "~");
      }
      Object node = parent(doc, tokens);
      String last = tokens[tokens.length - 1];
      String op = step.optString("op");
      if (node instanceof JSONArray) {
        JSONArray a = (JSONArray) node;
        int index = last.equals("-") ? a.length() : Integer.parseInt(last);
        List<Object> items = new ArrayList<>();
        for (int i = 0; i < a.length(); i++) {
          items.add(a.opt(i));
        }
        if (op.equals("remove")) {
          items.remove(index);
        } else if (op.equals("add")) {
          items.add(index, step.opt("value"));
        } else {
          items.set(index, step.opt("value"));
        }
        while (a.length() > 0) {
          a.remove(a.length() - 1);
        }
        for (Object item : items) {
          a.put(item);
        }
      } else if (op.equals("remove")) {
        ((JSONObject) node).remove(last);
      } else {
        ((JSONObject) node).put(last, step.opt("value"));
      }
    }
  }

  @Test
  public void invalidManifests() throws Exception {
    JSONObject doc = vectors("invalid_manifests.json");
    File base = new File(TestSupport.repoRoot(), "tflite/testdata/" + doc.optString("base"));
    String baseText = new String(Files.readAllBytes(base.toPath()), StandardCharsets.UTF_8);
    Manifest.parse(baseText); // the base itself is valid
    String mark = "\"" + doc.optString("nan_mark") + "\"";
    JSONArray cases = doc.optJSONArray("cases");
    assertTrue(cases.length() >= 10);
    for (int c = 0; c < cases.length(); c++) {
      JSONObject cs = cases.optJSONObject(c);
      JSONObject m = new JSONObject(baseText);
      applyPatch(m, cs.optJSONArray("patch"));
      String text = m.toString().replace(mark, "NaN");
      String where = cs.optString("where");
      try {
        Manifest.parse(text);
        fail(cs.optString("name") + ": accepted");
      } catch (ManifestException e) {
        assertTrue(
            cs.optString("name") + ": the error must name " + where + "; got: " + e.getMessage(),
            e.getMessage().contains(where));
      }
    }
  }
}
