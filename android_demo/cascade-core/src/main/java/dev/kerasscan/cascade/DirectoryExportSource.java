package dev.kerasscan.cascade;

import java.io.File;
import java.io.FileInputStream;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.InputStream;

/** An export folder on the file system. */
public final class DirectoryExportSource implements ExportSource {
  private final File dir;

  public DirectoryExportSource(File dir) {
    this.dir = dir;
  }

  public File dir() {
    return dir;
  }

  /** The file for {@code name}, refusing anything that would leave the folder. */
  public File file(String name) throws IOException {
    FileNames.requireSafe(name);
    File f = new File(dir, name);
    String base = dir.getCanonicalPath() + File.separator;
    if (!f.getCanonicalPath().startsWith(base)) {
      throw new ManifestException("file \"" + name + "\" resolves outside " + dir);
    }
    return f;
  }

  @Override
  public InputStream open(String name) throws IOException {
    File f = file(name);
    if (!f.isFile()) {
      throw new FileNotFoundException(f.getPath());
    }
    return new FileInputStream(f);
  }

  @Override
  public String describe() {
    return dir.getPath();
  }
}
