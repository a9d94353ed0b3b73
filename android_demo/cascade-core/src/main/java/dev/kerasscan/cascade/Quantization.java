package dev.kerasscan.cascade;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Locale;

/**
 * Conversions between real values and a tensor's stored values, with the manifest's
 * per-tensor parameters: real = scale * (q - zero_point), q = clamp(round(real / scale) +
 * zero_point). Rounding takes halves away from zero, like LiteRT's quantize kernel
 * (std::round) and tflite/scan_lite/quant.py.
 */
public final class Quantization {
  /**
   * Two scales closer than this (relative) are the same quantization: the converter writes
   * stage_k's output and stage_k+1's input scales from the same range, computed in float32
   * (the same tolerance as scan_lite).
   */
  public static final double SCALE_RTOL = 1e-5;

  private Quantization() {}

  /** std::round: halves away from zero. */
  public static double roundHalfAway(double x) {
    return Math.signum(x) * Math.floor(Math.abs(x) + 0.5);
  }

  /** True when values of {@code src} can be fed to {@code dst} unchanged. */
  public static boolean sameQuantization(TensorSpec src, TensorSpec dst) {
    if (src.dtype() != dst.dtype()) {
      return false;
    }
    if (!src.isQuantized() && !dst.isQuantized()) {
      return true;
    }
    if (src.isQuantized() != dst.isQuantized()) {
      return false;
    }
    double a = src.scale();
    double b = dst.scale();
    return src.zeroPoint() == dst.zeroPoint() && Math.abs(a - b) <= SCALE_RTOL * Math.max(a, b);
  }

  /** Quantizes one real value to an integer dtype's range. */
  public static long quantize(double real, double scale, long zeroPoint, DType dtype) {
    if (!(scale > 0)) {
      throw new CascadeException("cannot quantize to " + dtype.jsonName() + " with scale " + scale);
    }
    double q = roundHalfAway(real / scale) + zeroPoint;
    if (Double.isNaN(q)) {
      throw new CascadeException("cannot quantize NaN");
    }
    return (long) Math.max(dtype.minValue(), Math.min(dtype.maxValue(), q));
  }

  /** Encodes real values into a tensor of {@code spec} (quantizing integer types). */
  public static Tensor fromReal(TensorSpec spec, float[] real) {
    if (real.length != spec.elementCount()) {
      throw new CascadeException(
          String.format(
              Locale.ROOT,
              "tensor \"%s\" needs %d values but got %d",
              spec.name(),
              spec.elementCount(),
              real.length));
    }
    DType t = spec.dtype();
    if (t.isInteger()) {
      spec.requireQuantizationParams("quantize");
    }
    ByteBuffer b = ByteBuffer.allocate(spec.byteSize()).order(ByteOrder.LITTLE_ENDIAN);
    for (float v : real) {
      switch (t) {
        case FLOAT32:
          b.putFloat(v);
          break;
        case FLOAT16:
          b.putShort(floatToHalf(v));
          break;
        case INT8:
        case UINT8:
          b.put((byte) quantize(v, spec.scale(), spec.zeroPoint(), t));
          break;
        case INT16:
          b.putShort((short) quantize(v, spec.scale(), spec.zeroPoint(), t));
          break;
        case INT32:
          b.putInt((int) quantize(v, spec.scale(), spec.zeroPoint(), t));
          break;
        default:
          throw new IllegalStateException(t.toString());
      }
    }
    return new Tensor(spec, b.array());
  }

  /** Real values of a tensor (dequantized when it is an integer tensor). */
  public static float[] dequantize(Tensor tensor) {
    TensorSpec spec = tensor.spec();
    if (spec.dtype().isInteger()) {
      spec.requireQuantizationParams("dequantize");
    }
    int n = spec.elementCount();
    float[] out = new float[n];
    for (int i = 0; i < n; i++) {
      double raw = tensor.rawValue(i);
      out[i] =
          spec.dtype().isInteger()
              ? (float) (spec.scale() * (raw - spec.zeroPoint()))
              : (float) raw;
    }
    return out;
  }

  /**
   * Re-encodes {@code src} for an input described by {@code dst}: the bytes unchanged when the
   * two quantizations agree ({@link #sameQuantization}; the exporter aligns chained int8
   * stages), else dequantized to float32 and quantized again, exactly as scan_lite does. Shapes
   * must hold the same number of elements.
   */
  public static Tensor requantize(Tensor src, TensorSpec dst) {
    TensorSpec s = src.spec();
    if (s.elementCount() != dst.elementCount()) {
      throw new CascadeException(
          String.format(
              Locale.ROOT,
              "cannot feed %s into %s: element counts differ",
              s,
              dst));
    }
    if (sameQuantization(s, dst)) {
      return new Tensor(dst, src.data().clone());
    }
    return fromReal(dst, dequantize(src));
  }

  /** IEEE 754 half precision to float. */
  public static float halfToFloat(short h) {
    int bits = h & 0xffff;
    int sign = (bits & 0x8000) << 16;
    int exp = (bits >>> 10) & 0x1f;
    int mant = bits & 0x3ff;
    if (exp == 0x1f) {
      return Float.intBitsToFloat(sign | 0x7f800000 | (mant << 13));
    }
    if (exp == 0) {
      float v = mant * 5.9604645e-8f; // 2^-24
      return sign != 0 ? -v : v;
    }
    return Float.intBitsToFloat(sign | ((exp + 112) << 23) | (mant << 13));
  }

  /** Float to IEEE 754 half precision, round to nearest even. */
  public static short floatToHalf(float f) {
    int bits = Float.floatToIntBits(f);
    int sign = (bits >>> 16) & 0x8000;
    int exp = (bits >>> 23) & 0xff;
    int mant = bits & 0x7fffff;
    if (exp == 0xff) {
      return (short) (sign | 0x7c00 | (mant != 0 ? 0x200 : 0));
    }
    int e = exp - 127 + 15;
    if (e >= 0x1f) {
      return (short) (sign | 0x7c00);
    }
    if (e <= 0) {
      if (e < -10) {
        return (short) sign;
      }
      mant |= 0x800000;
      int shift = 14 - e;
      int half = mant >> shift;
      int rem = mant & ((1 << shift) - 1);
      int mid = 1 << (shift - 1);
      if (rem > mid || (rem == mid && (half & 1) == 1)) {
        half++;
      }
      return (short) (sign | half);
    }
    int half = (e << 10) | (mant >> 13);
    int rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1) == 1)) {
      half++;
    }
    return (short) (sign | half);
  }
}
