package dev.kerasscan.cascade;

import java.util.List;
import java.util.Locale;

/**
 * The early-exit decision, identical to keras_scan/exit_rule.py ({@code should_exit},
 * {@code simulate_cascade}) and tflite/scan_lite: a sample answers at the first shallow exit i
 * with {@code thresholds[i] < 1} and {@code confidence_i >= thresholds[i]} (a threshold of
 * exactly 1.0 disables that exit); otherwise the final exit K answers with the fallback rule.
 */
public final class ExitRule {
  private final double[] thresholds;
  private final ConfidenceMeasure measure;
  private final Fallback fallback;

  /** {@code thresholds}: one per shallow exit (K values) in [0, 1]. */
  public ExitRule(double[] thresholds, ConfidenceMeasure measure, Fallback fallback) {
    if (thresholds.length < 1) {
      throw new ManifestException("thresholds must hold one value per shallow exit (K >= 1)");
    }
    for (int i = 0; i < thresholds.length; i++) {
      double t = thresholds[i];
      if (!(t >= 0.0 && t <= 1.0)) {
        throw new ManifestException(
            String.format(Locale.ROOT, "thresholds[%d] = %s is outside [0, 1]", i, t));
      }
    }
    this.thresholds = thresholds.clone();
    this.measure = measure;
    this.fallback = fallback;
  }

  /** A rule that never exits early (every threshold 1.0): the "full model" answer. */
  public ExitRule neverExitEarly() {
    double[] ones = new double[thresholds.length];
    java.util.Arrays.fill(ones, 1.0);
    return new ExitRule(ones, measure, fallback);
  }

  public int numShallowExits() {
    return thresholds.length;
  }

  public double threshold(int exit) {
    return thresholds[exit];
  }

  public double[] thresholds() {
    return thresholds.clone();
  }

  public ConfidenceMeasure measure() {
    return measure;
  }

  public Fallback fallback() {
    return fallback;
  }

  /** Whether shallow exit {@code exit} answers a sample with these probabilities. */
  public boolean shouldExit(int exit, float[] probs) {
    if (exit < 0 || exit >= thresholds.length) {
      throw new IllegalArgumentException(
          "exit " + exit + " is not a shallow exit (0.." + (thresholds.length - 1) + ")");
    }
    double t = thresholds[exit];
    return t < 1.0 && measure.of(probs) >= t;
  }

  /**
   * The final exit's prediction from every exit's probabilities (the final exit last): its
   * argmax, or for ENSEMBLE the argmax of the mean over all exits (summed in exit order in
   * double precision, then divided, like exit_rule.py).
   */
  public int finalPrediction(List<float[]> allProbs) {
    if (allProbs.size() != thresholds.length + 1) {
      throw new IllegalArgumentException(
          "need the probabilities of all " + (thresholds.length + 1) + " exits, got "
              + allProbs.size());
    }
    if (fallback == Fallback.FINAL) {
      return ConfidenceMeasure.argmax(allProbs.get(allProbs.size() - 1));
    }
    return ConfidenceMeasure.argmax(ensembleMean(allProbs));
  }

  /** Mean of the exits' probabilities, accumulated in double in exit order. */
  public static double[] ensembleMean(List<float[]> allProbs) {
    int c = allProbs.get(0).length;
    double[] total = new double[c];
    for (float[] p : allProbs) {
      if (p.length != c) {
        throw new CascadeException(
            "exits disagree on the number of classes: " + c + " vs " + p.length);
      }
      for (int j = 0; j < c; j++) {
        total[j] += p[j];
      }
    }
    for (int j = 0; j < c; j++) {
      total[j] /= allProbs.size();
    }
    return total;
  }
}
