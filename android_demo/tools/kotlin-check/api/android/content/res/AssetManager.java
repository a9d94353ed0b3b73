package android.content.res;
public final class AssetManager implements AutoCloseable {
  public java.io.InputStream open(String fileName) throws java.io.IOException { return null; }
  public void close() {}
}
