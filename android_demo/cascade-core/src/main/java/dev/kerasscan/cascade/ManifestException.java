package dev.kerasscan.cascade;

/**
 * The export folder cannot be used: manifest.json is malformed, of another format version,
 * breaks the schema, names an unsafe file, or a file is missing / has the wrong size or
 * SHA-256.
 */
public class ManifestException extends CascadeException {
  private static final long serialVersionUID = 1L;

  public ManifestException(String message) {
    super(message);
  }

  public ManifestException(String message, Throwable cause) {
    super(message, cause);
  }
}
