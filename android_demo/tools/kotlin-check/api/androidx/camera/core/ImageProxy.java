package androidx.camera.core;
public interface ImageProxy extends AutoCloseable {
  void close();
  int getFormat();
  int getWidth();
  int getHeight();
  ImageInfo getImageInfo();
  default android.graphics.Bitmap toBitmap() { return null; }
}
