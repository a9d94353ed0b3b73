package dev.kerasscan.cascade;

import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.InputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Collection;
import java.util.Locale;

/** Checks the export's files against the sizes and SHA-256 the manifest lists. */
public final class FileVerifier {
  private FileVerifier() {}

  /**
   * Verifies each named file: listed in the manifest, present in {@code source}, of the listed
   * size and SHA-256. Throws a ManifestException naming the first file that fails.
   */
  public static void verify(Manifest manifest, ExportSource source, Collection<String> names) {
    for (String name : names) {
      verify(manifest, source, name);
    }
  }

  /** Verifies one file; see {@link #verify(Manifest, ExportSource, Collection)}. */
  public static void verify(Manifest manifest, ExportSource source, String name) {
    FileNames.requireSafe(name);
    Manifest.FileEntry entry = manifest.files().get(name);
    if (entry == null) {
      throw new ManifestException(
          "file \"" + name + "\" is not listed in manifest.json's files, so it cannot be verified");
    }
    MessageDigest sha;
    try {
      sha = MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("SHA-256 is not available", e);
    }
    long size = 0;
    try (InputStream in = source.open(name)) {
      byte[] buf = new byte[1 << 16];
      int n;
      while ((n = in.read(buf)) > 0) {
        sha.update(buf, 0, n);
        size += n;
      }
    } catch (FileNotFoundException e) {
      throw new ManifestException(
          "missing file \"" + name + "\" in " + source.describe()
              + ": the manifest lists it; copy it from the export folder", e);
    } catch (IOException e) {
      throw new ManifestException(
          "cannot read \"" + name + "\" in " + source.describe() + ": " + e.getMessage(), e);
    }
    if (size != entry.bytes) {
      throw new ManifestException(
          String.format(
              Locale.ROOT,
              "size mismatch for \"%s\": manifest.json says %d bytes, the file has %d"
                  + " (truncated or replaced; copy the export again)",
              name,
              entry.bytes,
              size));
    }
    String hex = hex(sha.digest());
    if (!hex.equals(entry.sha256)) {
      throw new ManifestException(
          String.format(
              Locale.ROOT,
              "SHA-256 mismatch for \"%s\": manifest.json says %s, the file has %s"
                  + " (the file was changed; copy the export again)",
              name,
              entry.sha256,
              hex));
    }
  }

  static String hex(byte[] bytes) {
    StringBuilder sb = new StringBuilder(bytes.length * 2);
    for (byte b : bytes) {
      sb.append(Character.forDigit((b >> 4) & 0xf, 16)).append(Character.forDigit(b & 0xf, 16));
    }
    return sb.toString();
  }
}
