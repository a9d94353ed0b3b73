package androidx.camera.core.resolutionselector;
public final class ResolutionStrategy {
  public static final int FALLBACK_RULE_CLOSEST_HIGHER_THEN_LOWER = 1;
  public ResolutionStrategy(android.util.Size boundSize, int fallbackRule) {}
}
