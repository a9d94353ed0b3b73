package dev.kerasscan.cascade;

import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import java.io.File;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.util.Arrays;
import org.junit.After;
import org.junit.Before;
import org.junit.Test;

public class FileVerifierTest {
  private File dir;
  private DirectoryExportSource source;
  private Manifest manifest;

  @Before
  public void writeExport() throws Exception {
    dir = Files.createTempDirectory("export").toFile();
    TestSupport.writeExport(dir);
    source = new DirectoryExportSource(dir);
    manifest = Manifest.load(source);
  }

  @After
  public void deleteExport() {
    for (File f : dir.listFiles()) {
      f.delete();
    }
    dir.delete();
  }

  private static void assertMessage(Exception e, String... parts) {
    for (String p : parts) {
      assertTrue("\"" + p + "\" not in: " + e.getMessage(), e.getMessage().contains(p));
    }
  }

  @Test
  public void acceptsIntactFiles() {
    FileVerifier.verify(manifest, source, Arrays.asList(TestSupport.FILES));
    FileVerifier.verify(
        manifest, source, ScanCascade.requiredFiles(manifest.variant("int8")));
  }

  @Test
  public void reportsAMissingFile() {
    new File(dir, "cascade.int8.tflite").delete();
    ManifestException e =
        assertThrows(
            ManifestException.class,
            () -> FileVerifier.verify(manifest, source, "cascade.int8.tflite"));
    assertMessage(e, "missing file \"cascade.int8.tflite\"", dir.getPath());
  }

  @Test
  public void reportsAShaMismatch() throws Exception {
    File f = new File(dir, "full.int8.tflite");
    try (RandomAccessFile raf = new RandomAccessFile(f, "rw")) {
      raf.seek(0);
      raf.write('M'); // same size, other content
    }
    ManifestException e =
        assertThrows(
            ManifestException.class,
            () -> FileVerifier.verify(manifest, source, "full.int8.tflite"));
    assertMessage(e, "SHA-256 mismatch for \"full.int8.tflite\"",
        manifest.files().get("full.int8.tflite").sha256);
  }

  @Test
  public void reportsASizeMismatch() throws Exception {
    Files.write(new File(dir, "stage_0.int8.tflite").toPath(), new byte[] {1, 2, 3});
    ManifestException e =
        assertThrows(
            ManifestException.class,
            () -> FileVerifier.verify(manifest, source, "stage_0.int8.tflite"));
    assertMessage(e, "size mismatch for \"stage_0.int8.tflite\"", "the file has 3");
  }

  @Test
  public void refusesFilesOutsideTheExportAndUnlistedFiles() throws Exception {
    ManifestException e =
        assertThrows(ManifestException.class, () -> source.open("../secret.tflite"));
    assertMessage(e, "unsafe file name");
    e = assertThrows(
        ManifestException.class, () -> FileVerifier.verify(manifest, source, "extra.tflite"));
    assertMessage(e, "not listed");
  }
}
