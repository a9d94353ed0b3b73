package dev.kerasscan.cascade;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertTrue;

import java.util.ArrayList;
import java.util.List;
import org.junit.Test;

/**
 * The exit rule's edge cases; the rule against keras_scan's reference, on shared vectors, is
 * ConformanceTest#exitRule.
 */
public class ExitRuleVectorsTest {
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
