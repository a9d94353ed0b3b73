package dev.kerasscan.cascade;

import java.io.IOException;
import java.io.InputStream;

/**
 * Where the files of an export folder come from: a directory on the JVM
 * ({@link DirectoryExportSource}), the APK's assets in the app. Names passed in are plain file
 * names already checked by {@link FileNames#requireSafe}.
 */
public interface ExportSource {
  /**
   * Opens a file of the export.
   *
   * @throws java.io.FileNotFoundException if the file does not exist
   */
  InputStream open(String name) throws IOException;

  /** Where the files are, for error messages ("assets/", "/data/export"). */
  String describe();
}
