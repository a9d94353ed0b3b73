package androidx.camera.core;
public final class ImageAnalysis extends UseCase {
  public static final int STRATEGY_KEEP_ONLY_LATEST = 0;
  public static final int OUTPUT_IMAGE_FORMAT_RGBA_8888 = 2;
  public interface Analyzer { void analyze(ImageProxy image); }
  public void setAnalyzer(java.util.concurrent.Executor executor, Analyzer analyzer) {}
  public static final class Builder {
    public Builder setResolutionSelector(androidx.camera.core.resolutionselector.ResolutionSelector s) { return this; }
    public Builder setBackpressureStrategy(int strategy) { return this; }
    public Builder setOutputImageFormat(int format) { return this; }
    public ImageAnalysis build() { return null; }
  }
}
