package dev.kerasscan.cascade;

import java.util.Arrays;
import java.util.Locale;

/**
 * One model input or output as the manifest describes it: name, shape (batch 1, NHWC for
 * images), dtype and per-tensor quantization (real = scale * (q - zero_point); scale 0 for a
 * float tensor).
 */
public final class TensorSpec {
  private final String name;
  private final int[] shape;
  private final DType dtype;
  private final double scale;
  private final long zeroPoint;

  public TensorSpec(String name, int[] shape, DType dtype, double scale, long zeroPoint) {
    if (shape.length == 0) {
      throw new ManifestException("tensor \"" + name + "\" has an empty shape");
    }
    for (int d : shape) {
      if (d < 1) {
        throw new ManifestException(
            "tensor \"" + name + "\" has a non-positive dimension: " + Arrays.toString(shape));
      }
    }
    if (!(scale >= 0) || Double.isInfinite(scale)) {
      throw new ManifestException("tensor \"" + name + "\" has an invalid scale " + scale);
    }
    this.name = name;
    this.shape = shape.clone();
    this.dtype = dtype;
    this.scale = scale;
    this.zeroPoint = zeroPoint;
  }

  public String name() {
    return name;
  }

  public int[] shape() {
    return shape.clone();
  }

  public DType dtype() {
    return dtype;
  }

  public double scale() {
    return scale;
  }

  public long zeroPoint() {
    return zeroPoint;
  }

  /** True when values are integers that stand for scale * (q - zero_point). */
  public boolean isQuantized() {
    return dtype.isInteger() && scale > 0;
  }

  public int elementCount() {
    long n = 1;
    for (int d : shape) {
      n *= d;
    }
    if (n > Integer.MAX_VALUE / 4) {
      throw new ManifestException(
          "tensor \"" + name + "\" is too large: shape " + Arrays.toString(shape));
    }
    return (int) n;
  }

  public int byteSize() {
    return elementCount() * dtype.byteSize();
  }

  /**
   * Throws a ManifestException unless this tensor's values can be turned into real numbers:
   * float tensors always can, integer tensors need a positive scale.
   */
  public void requireQuantizationParams(String where) {
    if (dtype.isInteger() && !(scale > 0)) {
      throw new ManifestException(
          String.format(
              Locale.ROOT,
              "%s: tensor \"%s\" is %s but its quantization parameters are missing"
                  + " (scale=%s, zero_point=%d); re-export the model with per-tensor"
                  + " quantization",
              where,
              name,
              dtype.jsonName(),
              scale,
              zeroPoint));
    }
  }

  /** True when the two specs describe the same bytes (same dtype, shape and quantization). */
  public boolean sameEncoding(TensorSpec other) {
    return dtype == other.dtype
        && Arrays.equals(shape, other.shape)
        && Double.compare(scale, other.scale) == 0
        && zeroPoint == other.zeroPoint;
  }

  @Override
  public String toString() {
    return String.format(
        Locale.ROOT,
        "%s %s %s scale=%s zero_point=%d",
        name,
        dtype.jsonName(),
        Arrays.toString(shape),
        scale,
        zeroPoint);
  }
}
