package androidx.camera.lifecycle;
public final class ProcessCameraProvider {
  public static com.google.common.util.concurrent.ListenableFuture<ProcessCameraProvider> getInstance(android.content.Context context) { return null; }
  public void unbindAll() {}
  public androidx.camera.core.Camera bindToLifecycle(androidx.lifecycle.LifecycleOwner owner, androidx.camera.core.CameraSelector selector, androidx.camera.core.UseCase... useCases) { return null; }
}
