package dev.kerasscan.cascade;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import org.junit.Test;

public class QuantizationTest {
  private static TensorSpec spec(DType t, double scale, long zp, int n) {
    return new TensorSpec("t", new int[] {1, n}, t, scale, zp);
  }

  @Test
  public void quantizesWithScaleZeroPointRoundingAndClamping() {
    TensorSpec s = spec(DType.INT8, 0.5, -10, 7);
    Tensor t =
        Quantization.fromReal(s, new float[] {0f, 1.25f, 1.75f, -100f, 1000f, 0.75f, -1.25f});
    // Halves go away from zero like LiteRT's std::round: 2.5 -> 3, 3.5 -> 4, 1.5 -> 2, -2.5 -> -3.
    assertArrayEquals(new byte[] {-10, -7, -6, -128, 127, -8, -13}, t.data());
    assertArrayEquals(
        new float[] {0f, 1.5f, 2f, -59f, 68.5f, 1f, -1.5f}, Quantization.dequantize(t), 0f);
  }

  @Test
  public void uint8UsesTheUnsignedRange() {
    TensorSpec s = spec(DType.UINT8, 1.0, 0, 3);
    Tensor t = Quantization.fromReal(s, new float[] {0f, 200f, 300f});
    assertEquals(200, t.data()[1] & 0xff);
    assertEquals(255, t.data()[2] & 0xff);
    assertArrayEquals(new float[] {0f, 200f, 255f}, t.toFloatArray(), 0f);
  }

  @Test
  public void rawPixelsSurviveTheImageQuantizationExactly() {
    // The exporter's image input: scale 1, zero point -128 covers 0..255 losslessly.
    TensorSpec s = spec(DType.INT8, 1.0, -128, 256);
    float[] px = new float[256];
    for (int i = 0; i < 256; i++) {
      px[i] = i;
    }
    assertArrayEquals(px, Quantization.fromReal(s, px).toFloatArray(), 0f);
  }

  @Test
  public void requantizePassesMatchingEncodingsThrough() {
    TensorSpec a = spec(DType.INT8, 0.1, 3, 4);
    TensorSpec b = new TensorSpec("next", new int[] {1, 4}, DType.INT8, 0.1, 3);
    Tensor t = new Tensor(a, new byte[] {-128, 0, 5, 127});
    Tensor r = Quantization.requantize(t, b);
    assertArrayEquals(t.data(), r.data());
    assertEquals("next", r.spec().name());
  }

  @Test
  public void requantizeMapsBetweenScales() {
    TensorSpec from = spec(DType.INT8, 0.1, -5, 4);
    TensorSpec to = spec(DType.INT8, 0.23, 3, 4);
    Tensor t = new Tensor(from, new byte[] {-128, -5, 20, 127});
    // real = {-12.3, 0, 2.5, 13.2}; / 0.23 = {-53.48, 0, 10.87, 57.39}; rounded + 3.
    assertArrayEquals(new byte[] {-50, 3, 14, 60}, Quantization.requantize(t, to).data());
    // Into a float input: plain dequantization.
    float[] f = Quantization.requantize(t, spec(DType.FLOAT32, 0, 0, 4)).toFloatArray();
    assertArrayEquals(t.toFloatArray(), f, 0f);
  }

  @Test
  public void scalesWithinTheRelativeToleranceCountAsEqual() {
    TensorSpec a = spec(DType.INT8, 0.1, 3, 2);
    assertTrue(Quantization.sameQuantization(a, spec(DType.INT8, 0.1 * (1 + 5e-6), 3, 2)));
    assertFalse(Quantization.sameQuantization(a, spec(DType.INT8, 0.1 * (1 + 5e-5), 3, 2)));
    assertFalse(Quantization.sameQuantization(a, spec(DType.INT8, 0.1, 4, 2)));
    assertFalse(Quantization.sameQuantization(a, spec(DType.UINT8, 0.1, 3, 2)));
    assertTrue(
        Quantization.sameQuantization(spec(DType.FLOAT32, 0, 0, 2), spec(DType.FLOAT32, 0, 0, 2)));
    // Within tolerance the bytes pass through untouched.
    Tensor t = new Tensor(a, new byte[] {7, -9});
    assertArrayEquals(
        t.data(), Quantization.requantize(t, spec(DType.INT8, 0.1 * (1 + 5e-6), 3, 2)).data());
  }

  @Test
  public void requantizeRefusesMismatchedSizes() {
    Tensor t = new Tensor(spec(DType.INT8, 0.1, 0, 4), new byte[4]);
    CascadeException e =
        assertThrows(
            CascadeException.class,
            () -> Quantization.requantize(t, spec(DType.INT8, 0.1, 0, 5)));
    assertTrue(e.getMessage(), e.getMessage().contains("element counts differ"));
  }

  @Test
  public void missingQuantizationParamsAreReported() {
    TensorSpec s = spec(DType.INT8, 0, 0, 2);
    ManifestException e =
        assertThrows(ManifestException.class, () -> Quantization.fromReal(s, new float[2]));
    assertTrue(e.getMessage(), e.getMessage().contains("quantization parameters are missing"));
    assertThrows(
        ManifestException.class, () -> new Tensor(s, new byte[2]).toFloatArray());
  }

  @Test
  public void floatTensorsRoundTrip() {
    TensorSpec f32 = spec(DType.FLOAT32, 0, 0, 3);
    float[] v = {-1.5f, 0f, 3.25e-3f};
    assertArrayEquals(v, Quantization.fromReal(f32, v).toFloatArray(), 0f);
    TensorSpec f16 = spec(DType.FLOAT16, 0, 0, 5);
    float[] h = {-2f, 0.5f, 65504f, 6.1035156e-5f, 1f / 3};
    float[] back = Quantization.fromReal(f16, h).toFloatArray();
    assertArrayEquals(new float[] {-2f, 0.5f, 65504f, 6.1035156e-5f, 0.33325195f}, back, 0f);
  }

  @Test
  public void tensorChecksItsByteSize() {
    CascadeException e =
        assertThrows(
            CascadeException.class, () -> new Tensor(spec(DType.FLOAT32, 0, 0, 3), new byte[11]));
    assertTrue(e.getMessage(), e.getMessage().contains("needs 12 bytes"));
  }
}
