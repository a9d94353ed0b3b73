package dev.kerasscan.cascade;

import java.util.Locale;

/** Wall time of one step of a classification. */
public final class StageTiming {
  /** "preprocess", "stage_0", ..., or the full model's name. */
  public final String name;
  /** Time in the runner (model invocation, incl. copies in and out), nanoseconds. */
  public final long inferenceNanos;
  /** Time in cascade-core around it (requantization, confidence), nanoseconds. */
  public final long overheadNanos;

  public StageTiming(String name, long inferenceNanos, long overheadNanos) {
    this.name = name;
    this.inferenceNanos = inferenceNanos;
    this.overheadNanos = overheadNanos;
  }

  public double totalMillis() {
    return (inferenceNanos + overheadNanos) / 1e6;
  }

  @Override
  public String toString() {
    return String.format(Locale.ROOT, "%s %.2f ms", name, totalMillis());
  }
}
