package dev.kerasscan.cascade;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertTrue;

import java.util.ArrayList;
import java.util.List;
import org.json.JSONArray;
import org.json.JSONObject;
import org.junit.Test;

/**
 * Replays vectors written by keras_scan.thresholds (android_demo/scripts/make_rule_vectors.py):
 * the Java rule must give the same confidences, exit indices and predictions.
 */
public class ExitRuleVectorsTest {
  private static float[][][] probs(JSONObject doc) {
    JSONArray exits = doc.optJSONArray("probs");
    float[][][] out = new float[exits.length()][][];
    for (int e = 0; e < exits.length(); e++) {
      JSONArray rows = exits.optJSONArray(e);
      out[e] = new float[rows.length()][];
      for (int i = 0; i < rows.length(); i++) {
        JSONArray r = rows.optJSONArray(i);
        out[e][i] = new float[r.length()];
        for (int j = 0; j < r.length(); j++) {
          out[e][i][j] = (float) r.optDouble(j);
        }
      }
    }
    return out;
  }

  @Test
  public void confidencesMatchThePythonReference() throws Exception {
    JSONObject doc = TestSupport.json(TestSupport.resource("rule_vectors.json"));
    float[][][] p = probs(doc);
    JSONObject conf = doc.optJSONObject("confidence");
    for (ConfidenceMeasure m : ConfidenceMeasure.values()) {
      JSONArray perExit = conf.optJSONArray(m.jsonName());
      for (int e = 0; e < p.length; e++) {
        for (int i = 0; i < p[e].length; i++) {
          double want = perExit.optJSONArray(e).optDouble(i);
          assertEquals(m + " exit " + e + " sample " + i, want, m.of(p[e][i]), 1e-12);
        }
      }
    }
  }

  @Test
  public void exitIndicesAndPredictionsMatchSimulateCascade() throws Exception {
    JSONObject doc = TestSupport.json(TestSupport.resource("rule_vectors.json"));
    float[][][] p = probs(doc);
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
        String what = cs.toString().substring(0, 80) + " sample " + i;
        assertEquals(what, cs.optJSONArray("exit_index").optInt(i), exit);
        assertEquals(what, cs.optJSONArray("predictions").optInt(i), pred);
        early += exit < k ? 1 : 0;
      }
    }
    assertTrue("the vectors must exercise early exits", early > 100);
  }

  @Test
  public void aThresholdOfOneDisablesTheExitEvenWhenSaturated() {
    ExitRule rule = new ExitRule(new double[] {1.0, 0.5}, ConfidenceMeasure.MAX_PROB, Fallback.FINAL);
    assertFalse(rule.shouldExit(0, new float[] {1f, 0f}));
    assertTrue(rule.shouldExit(1, new float[] {0.5f, 0.5f})); // >= threshold
    assertFalse(rule.neverExitEarly().shouldExit(1, new float[] {1f, 0f}));
  }

  @Test
  public void ensembleFallbackAveragesAllExits() {
    ExitRule fin = new ExitRule(new double[] {1.0}, ConfidenceMeasure.MAX_PROB, Fallback.FINAL);
    ExitRule ens = new ExitRule(new double[] {1.0}, ConfidenceMeasure.MAX_PROB, Fallback.ENSEMBLE);
    List<float[]> all = new ArrayList<>();
    all.add(new float[] {0.9f, 0.1f});
    all.add(new float[] {0.4f, 0.6f});
    assertEquals(1, fin.finalPrediction(all));
    assertEquals(0, ens.finalPrediction(all));
  }

  @Test
  public void rejectsThresholdsOutsideTheUnitInterval() {
    ManifestException e =
        org.junit.Assert.assertThrows(
            ManifestException.class,
            () -> new ExitRule(new double[] {0.5, 1.2}, ConfidenceMeasure.MARGIN, Fallback.FINAL));
    assertTrue(e.getMessage(), e.getMessage().contains("thresholds[1] = 1.2"));
  }
}
