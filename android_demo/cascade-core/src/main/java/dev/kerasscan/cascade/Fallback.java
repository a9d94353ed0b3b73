package dev.kerasscan.cascade;

/** Who answers when no shallow exit is confident enough (thresholds.fallback). */
public enum Fallback {
  /** The final exit's argmax. */
  FINAL("final"),
  /** Argmax of the mean of all exits' probabilities. */
  ENSEMBLE("ensemble");

  private final String jsonName;

  Fallback(String jsonName) {
    this.jsonName = jsonName;
  }

  public String jsonName() {
    return jsonName;
  }

  public static Fallback fromJson(String name) {
    for (Fallback f : values()) {
      if (f.jsonName.equals(name)) {
        return f;
      }
    }
    throw new ManifestException("unknown fallback \"" + name + "\" (known: final, ensemble)");
  }
}
