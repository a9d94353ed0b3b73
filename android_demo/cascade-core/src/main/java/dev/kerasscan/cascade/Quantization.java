package dev.kerasscan.cascade;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Locale;

/**
 * Conversions between real values and a tensor's stored values, with the manifest's
 * per-tensor parameters: real = scale * (q - zero_point), q = clamp(round(real / scale) +
 * zero_point). Rounding is half to even, like numpy's {@code np.round} in the Python runtime.
 */
public final class Quantization {
  private Quantization() {}

  /** Quantizes one real value to an integer dtype's range. */
  public static long quantize(double real, double scale, long zeroPoint, DType dtype) {
    if (!(scale > 0)) {
      throw new CascadeException("cannot quantize to " + dtype.jsonName() + " with scale " + scale);
    }
    double q = Math.rint(real / scale) + zeroPoint;
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
   * Re-encodes {@code src} for an input described by {@code dst}: the bytes unchanged when both
   * encodings agree (the exporter aligns chained int8 stages), else through real values. Shapes
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
    if (s.dtype() == dst.dtype()
        && Double.compare(s.scale(), dst.scale()) == 0
        && s.zeroPoint() == dst.zeroPoint()) {
      return new Tensor(dst, src.data().clone());
    }
    if (s.isQuantized() && dst.isQuantized()) {
      // Integer to integer without a float round trip: q2 = round(s1/s2 * (q1 - z1)) + z2.
      double ratio = s.scale() / dst.scale();
      int n = s.elementCount();
      ByteBuffer b = ByteBuffer.allocate(dst.byteSize()).order(ByteOrder.LITTLE_ENDIAN);
      for (int i = 0; i < n; i++) {
        double q = Math.rint(ratio * (src.rawValue(i) - s.zeroPoint())) + dst.zeroPoint();
        long c = (long) Math.max(dst.dtype().minValue(), Math.min(dst.dtype().maxValue(), q));
        putInteger(b, dst.dtype(), c);
      }
      return new Tensor(dst, b.array());
    }
    return fromReal(dst, dequantize(src));
  }

  private static void putInteger(ByteBuffer b, DType t, long v) {
    switch (t) {
      case INT8:
      case UINT8:
        b.put((byte) v);
        break;
      case INT16:
        b.putShort((short) v);
        break;
      case INT32:
        b.putInt((int) v);
        break;
      default:
        throw new IllegalStateException(t.toString());
    }
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
