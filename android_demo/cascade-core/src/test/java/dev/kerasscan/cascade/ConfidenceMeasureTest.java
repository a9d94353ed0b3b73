package dev.kerasscan.cascade;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertThrows;

import org.junit.Test;

public class ConfidenceMeasureTest {
  @Test
  public void maxProbIsTheLargestProbability() {
    assertEquals(0.7, ConfidenceMeasure.MAX_PROB.of(new float[] {0.1f, 0.7f, 0.2f}), 1e-7);
  }

  @Test
  public void marginIsTopOneMinusTopTwo() {
    assertEquals(0.5, ConfidenceMeasure.MARGIN.of(new float[] {0.2f, 0.05f, 0.7f, 0.05f}), 1e-7);
    assertEquals(0.0, ConfidenceMeasure.MARGIN.of(new float[] {0.5f, 0.5f}), 0);
  }

  @Test
  public void entropyIsOneMinusNormalisedEntropy() {
    assertEquals(0.0, ConfidenceMeasure.ENTROPY.of(new float[] {0.25f, 0.25f, 0.25f, 0.25f}), 1e-7);
    assertEquals(1.0, ConfidenceMeasure.ENTROPY.of(new float[] {0f, 1f, 0f}), 0);
    double h = -(0.5 * Math.log(0.5) + 0.5 * Math.log(0.5));
    assertEquals(
        1 - h / Math.log(4), ConfidenceMeasure.ENTROPY.of(new float[] {0.5f, 0.5f, 0f, 0f}), 1e-9);
  }

  @Test
  public void confidenceIsClippedToTheUnitInterval() {
    // int8 dequantization can overshoot 1 slightly.
    assertEquals(1.0, ConfidenceMeasure.MAX_PROB.of(new float[] {1.0039f, 0f}), 0);
  }

  @Test
  public void argmaxTakesTheFirstOfTies() {
    assertEquals(1, ConfidenceMeasure.argmax(new float[] {0.1f, 0.45f, 0.45f}));
    assertEquals(0, ConfidenceMeasure.argmax(new double[] {0.5, 0.5}));
  }

  @Test
  public void softmaxIsStableAndNormalised() {
    float[] p = ConfidenceMeasure.softmax(new float[] {1000f, 1000f, 999f});
    double e = Math.exp(-1);
    assertArrayEquals(
        new float[] {(float) (1 / (2 + e)), (float) (1 / (2 + e)), (float) (e / (2 + e))}, p, 1e-6f);
  }

  @Test
  public void parsesTheManifestNamesAndRejectsOthers() {
    assertEquals(ConfidenceMeasure.ENTROPY, ConfidenceMeasure.fromJson("entropy"));
    assertEquals(Fallback.ENSEMBLE, Fallback.fromJson("ensemble"));
    assertThrows(ManifestException.class, () -> ConfidenceMeasure.fromJson("top2"));
    assertThrows(ManifestException.class, () -> Fallback.fromJson("vote"));
  }
}
