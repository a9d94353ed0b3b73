package androidx.camera.view;
public final class PreviewView extends android.widget.FrameLayout {
  public androidx.camera.core.Preview.SurfaceProvider getSurfaceProvider() { return null; }
}
