package android.content;
public abstract class Context {
  public abstract android.content.res.AssetManager getAssets();
  public abstract ContentResolver getContentResolver();
  public final String getString(int resId) { return null; }
  public final String getString(int resId, Object... formatArgs) { return null; }
  public java.io.File getCacheDir() { return null; }
}
