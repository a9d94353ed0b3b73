package androidx.camera.core;
public final class Preview extends UseCase {
  public interface SurfaceProvider {}
  public void setSurfaceProvider(SurfaceProvider surfaceProvider) {}
  public static final class Builder { public Preview build() { return null; } }
}
