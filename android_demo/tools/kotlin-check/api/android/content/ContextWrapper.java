package android.content;
public class ContextWrapper extends Context {
  public android.content.res.AssetManager getAssets() { return null; }
  public ContentResolver getContentResolver() { return null; }
}
