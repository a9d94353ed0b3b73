package dev.kerasscan.cascade;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import org.junit.Test;

public class ImagePreprocessorTest {
  private static Manifest manifest(int channels) {
    org.json.JSONObject m = TestSupport.validManifest();
    if (channels == 3) {
      TestSupport.put((org.json.JSONObject) m.opt("input"), "channels", 3);
      String s = m.toString().replace("[1,8,8,1]", "[1,8,8,3]");
      return Manifest.parse(s);
    }
    return Manifest.parse(m.toString());
  }

  private static int argb(int r, int g, int b) {
    return 0xff000000 | (r << 16) | (g << 8) | b;
  }

  @Test
  public void keepsAnImageOfTheInputSizeExactly() {
    Manifest m = manifest(3);
    int[] px = new int[64];
    float[] want = new float[64 * 3];
    for (int i = 0; i < 64; i++) {
      px[i] = argb(i, 255 - i, (i * 7) % 256);
      want[3 * i] = i;
      want[3 * i + 1] = 255 - i;
      want[3 * i + 2] = (i * 7) % 256;
    }
    assertArrayEquals(want, new ImagePreprocessor(m.input()).fitArgb(px, 8, 8), 0f);
  }

  @Test
  public void greyInputUsesTheTrainingPipelinesWeights() {
    ImagePreprocessor p = new ImagePreprocessor(manifest(1).input());
    int[] px = new int[64];
    java.util.Arrays.fill(px, argb(200, 100, 50));
    float[] out = p.fitArgb(px, 8, 8);
    assertEquals(0.2989 * 200 + 0.5870 * 100 + 0.1140 * 50, out[0], 1e-4);
    assertEquals(64, out.length);
  }

  @Test
  public void cropsTheCentreOfAWideFrameOnlyWhenAsked() {
    ImagePreprocessor p = new ImagePreprocessor(manifest(1).input());
    // 24x16 frame: the centre 16x16 is kept; the white side bands must not leak in.
    int w = 24;
    int h = 16;
    int[] px = new int[w * h];
    for (int y = 0; y < h; y++) {
      for (int x = 0; x < w; x++) {
        int v = (x < 4 || x >= 20) ? 255 : 80;
        px[y * w + x] = argb(v, v, v);
      }
    }
    ImagePreprocessor.Frame f = p.centreCrop(px, w, h);
    assertEquals(16, f.width);
    assertEquals(16, f.height);
    for (float v : p.fitArgb(f.argb, f.width, f.height)) {
      assertEquals(80f * 0.9999f, v, 1e-3f);
    }
    // The fitting rule itself stretches, like the training pipeline: the bands stay.
    float[] stretched = p.fitArgb(px, w, h);
    assertEquals(255f * 0.9999f, stretched[0], 1e-3f);
  }

  @Test
  public void padsSmallImagesLikeTheTrainingData() {
    ImagePreprocessor p = new ImagePreprocessor(manifest(1).input());
    float[] img = new float[6 * 4];
    java.util.Arrays.fill(img, 9f);
    float[] out = p.fit(img, 6, 4, 1);
    for (int y = 0; y < 8; y++) {
      for (int x = 0; x < 8; x++) {
        boolean inside = y >= 1 && y < 7 && x >= 2 && x < 6;
        assertEquals("pixel " + y + "," + x, inside ? 9f : 0f, out[y * 8 + x], 0f);
      }
    }
  }

  @Test
  public void resizesASmallerImageUpLikeTheTrainingData() {
    ImagePreprocessor p = new ImagePreprocessor(manifest(1).input());
    // 7x7 into 8x8: the difference is odd, so it is resized (bilinear), not padded.
    float[] img = new float[7 * 7];
    java.util.Arrays.fill(img, 40f);
    for (float v : p.fit(img, 7, 7, 1)) {
      assertEquals(40f, v, 1e-3f);
    }
    InputImageException e =
        assertThrows(
            InputImageException.class, () -> p.checkPixels(new float[4 * 4], 4, 4, 1));
    assertTrue(e.getMessage(), e.getMessage().contains("must already be 8x8"));
  }

  @Test
  public void rejectsWrongChannelsAndBadBuffers() {
    ImagePreprocessor grey = new ImagePreprocessor(manifest(1).input());
    InputImageException e =
        assertThrows(
            InputImageException.class, () -> grey.checkPixels(new float[8 * 8 * 3], 8, 8, 3));
    assertTrue(e.getMessage(), e.getMessage().contains("3 channels but the model takes 1 (grey)"));
    e = assertThrows(InputImageException.class, () -> grey.fitArgb(new int[63], 8, 8));
    assertTrue(e.getMessage(), e.getMessage().contains("holds 63 values"));
    float[] bad = new float[64];
    bad[5] = 300f;
    e = assertThrows(InputImageException.class, () -> grey.checkPixels(bad, 8, 8, 1));
    assertTrue(e.getMessage(), e.getMessage().contains("outside input.pixel_range"));
  }

  @Test
  public void quantizesForTheModelInput() {
    Manifest m = manifest(1);
    TensorSpec img = m.variant("int8").cascade.signatures.get("stage_0").inputs.get("image");
    float[] px = new float[64];
    px[0] = 255f;
    px[1] = 17f;
    Tensor t = new ImagePreprocessor(m.input()).toTensor(px, img);
    assertEquals(127, t.data()[0]);
    assertEquals(17 - 128, t.data()[1]);
    assertEquals(-128, t.data()[2]);
  }
}
