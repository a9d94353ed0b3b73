package dev.kerasscan.cascade;

import static org.junit.Assert.assertTrue;

import java.io.File;
import org.junit.Test;

/** The export the app ships in its assets must load exactly as the app loads it. */
public class SampleAssetsTest {
  @Test
  public void bundledSampleExportIsCompleteAndIntact() {
    File dir =
        new File(TestSupport.repoRoot(), "android_demo/app/src/main/assets/scan_export");
    assertTrue(
        dir + " is missing: run android_demo/scripts/sync_sample_export.sh",
        new File(dir, Manifest.FILE_NAME).isFile());
    DirectoryExportSource source = new DirectoryExportSource(dir);
    Manifest manifest = Manifest.load(source);
    // Every listed file, so the variant can be switched without a surprise.
    FileVerifier.verify(manifest, source, manifest.files().keySet());
    for (Manifest.Variant v : manifest.variants().values()) {
      assertTrue(
          v.mode + " uses a dtype the app's LiteRT runner reads",
          v.inputDtype == DType.INT8 || v.inputDtype == DType.FLOAT32
              || v.inputDtype == DType.UINT8);
    }
  }
}
