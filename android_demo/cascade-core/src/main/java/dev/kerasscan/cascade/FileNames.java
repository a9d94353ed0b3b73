package dev.kerasscan.cascade;

import java.util.regex.Pattern;

/** The manifest's rule for file names: plain names inside EXPORT, never paths. */
public final class FileNames {
  /** Same as $defs.fileName in tflite/manifest.schema.json. */
  private static final Pattern PLAIN = Pattern.compile("^(?!.*\\.\\.)[A-Za-z0-9_][A-Za-z0-9_.-]*$");

  private static final int MAX_LENGTH = 200;

  private FileNames() {}

  /**
   * Returns {@code name} if it is a plain file name, else throws a ManifestException that
   * explains why (folder separators, "..", a leading dot, odd characters).
   */
  public static String requireSafe(String name) {
    String why = null;
    if (name == null || name.isEmpty()) {
      why = "it is empty";
    } else if (name.contains("..")) {
      why = "it contains \"..\" (path traversal is not allowed)";
    } else if (name.indexOf('/') >= 0 || name.indexOf('\\') >= 0) {
      why = "it contains a folder separator (file names must be plain names inside the export"
          + " folder, never paths)";
    } else if (name.startsWith(".")) {
      why = "it starts with a dot";
    } else if (name.length() > MAX_LENGTH) {
      why = "it is longer than " + MAX_LENGTH + " characters";
    } else if (!PLAIN.matcher(name).matches()) {
      why = "it may only contain letters, digits, '_', '.' and '-'";
    }
    if (why != null) {
      throw new ManifestException("unsafe file name \"" + name + "\" in manifest.json: " + why);
    }
    return name;
  }
}
