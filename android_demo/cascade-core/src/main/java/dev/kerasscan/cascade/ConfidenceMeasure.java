package dev.kerasscan.cascade;

/**
 * How sure an exit is of its prediction, in [0, 1]; the same three measures as
 * keras_scan/exit_rule.py {@code confidence()} (computed in double precision, clipped to
 * [0, 1]).
 */
public enum ConfidenceMeasure {
  /** The largest probability (the SCAN paper's rule). */
  MAX_PROB("max_prob"),
  /** Largest minus second largest probability. */
  MARGIN("margin"),
  /** 1 - H(p) / log(C), with 0 log 0 = 0. */
  ENTROPY("entropy");

  private final String jsonName;

  ConfidenceMeasure(String jsonName) {
    this.jsonName = jsonName;
  }

  public String jsonName() {
    return jsonName;
  }

  public static ConfidenceMeasure fromJson(String name) {
    for (ConfidenceMeasure m : values()) {
      if (m.jsonName.equals(name)) {
        return m;
      }
    }
    throw new ManifestException(
        "unknown confidence measure \"" + name + "\" (known: max_prob, margin, entropy)");
  }

  /** Confidence of one probability vector (C >= 2 classes). */
  public double of(float[] probs) {
    if (probs.length < 2) {
      throw new CascadeException("confidence needs at least 2 classes, got " + probs.length);
    }
    double conf;
    switch (this) {
      case MAX_PROB:
        {
          double best = Double.NEGATIVE_INFINITY;
          for (float p : probs) {
            best = Math.max(best, p);
          }
          conf = best;
          break;
        }
      case MARGIN:
        {
          double first = Double.NEGATIVE_INFINITY;
          double second = Double.NEGATIVE_INFINITY;
          for (float pf : probs) {
            double p = pf;
            if (p > first) {
              second = first;
              first = p;
            } else if (p > second) {
              second = p;
            }
          }
          conf = first - second;
          break;
        }
      case ENTROPY:
        {
          double plogp = 0;
          for (float pf : probs) {
            double p = pf;
            plogp += p * Math.log(p > 0 ? p : 1.0);
          }
          conf = 1.0 + plogp / Math.log(probs.length);
          break;
        }
      default:
        throw new IllegalStateException(toString());
    }
    return Math.min(1.0, Math.max(0.0, conf));
  }

  /** Index of the largest value; the first one on ties (numpy's argmax). */
  public static int argmax(float[] values) {
    int best = 0;
    for (int i = 1; i < values.length; i++) {
      if (values[i] > values[best]) {
        best = i;
      }
    }
    return best;
  }

  /** Index of the largest value; the first one on ties (numpy's argmax). */
  public static int argmax(double[] values) {
    int best = 0;
    for (int i = 1; i < values.length; i++) {
      if (values[i] > values[best]) {
        best = i;
      }
    }
    return best;
  }

  /**
   * Numerically stable softmax, for models that end in logits rather than probabilities
   * (keras_scan exports end in a softmax; this is for hand-made exports).
   */
  public static float[] softmax(float[] logits) {
    double max = Double.NEGATIVE_INFINITY;
    for (float v : logits) {
      max = Math.max(max, v);
    }
    double sum = 0;
    double[] e = new double[logits.length];
    for (int i = 0; i < logits.length; i++) {
      e[i] = Math.exp(logits[i] - max);
      sum += e[i];
    }
    float[] out = new float[logits.length];
    for (int i = 0; i < logits.length; i++) {
      out[i] = (float) (e[i] / sum);
    }
    return out;
  }
}
