package dev.kerasscan.cascade;

import java.util.Collections;
import java.util.List;

/** The answer to one image, with what it cost. */
public final class CascadeResult {
  /** Predicted class index. */
  public final int prediction;
  /** Its label from the manifest. */
  public final String label;
  /**
   * The answering exit's confidence (the manifest's measure of its probabilities; at the final
   * exit, of the final exit's probabilities whatever the fallback, like scan_lite).
   */
  public final double confidence;
  /**
   * Probability of the predicted class in the probabilities the answer came from (the mean
   * over all exits for the "ensemble" fallback).
   */
  public final float probability;
  /** Exit that answered: 0..K-1 a shallow exit, K the final exit. */
  public final int exitIndex;
  /** Name of that exit (model.exit_names). */
  public final String exitName;
  /** True when a shallow exit answered (the rest of the network was skipped). */
  public final boolean early;
  /** Probabilities of every exit that ran, in order (dequantized). */
  public final List<float[]> exitProbs;
  /** preprocess + one entry per model invocation, in order. */
  public final List<StageTiming> timings;
  /** MACs spent, from the manifest's cost table. */
  public final long macs;

  CascadeResult(
      int prediction,
      String label,
      double confidence,
      float probability,
      int exitIndex,
      String exitName,
      boolean early,
      List<float[]> exitProbs,
      List<StageTiming> timings,
      long macs) {
    this.prediction = prediction;
    this.label = label;
    this.confidence = confidence;
    this.probability = probability;
    this.exitIndex = exitIndex;
    this.exitName = exitName;
    this.early = early;
    this.exitProbs = Collections.unmodifiableList(exitProbs);
    this.timings = Collections.unmodifiableList(timings);
    this.macs = macs;
  }

  /** Sum of all timings, milliseconds. */
  public double totalMillis() {
    double t = 0;
    for (StageTiming s : timings) {
      t += s.totalMillis();
    }
    return t;
  }
}
