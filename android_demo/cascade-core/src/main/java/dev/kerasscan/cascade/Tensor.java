package dev.kerasscan.cascade;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Locale;

/**
 * The bytes of one model input or output (little endian, as LiteRT lays them out on every
 * Android ABI) together with the spec that says how to read them.
 */
public final class Tensor {
  private final TensorSpec spec;
  private final byte[] data;

  /** Wraps {@code data} (not copied); its length must be the spec's byte size. */
  public Tensor(TensorSpec spec, byte[] data) {
    if (data.length != spec.byteSize()) {
      throw new CascadeException(
          String.format(
              Locale.ROOT,
              "tensor \"%s\" needs %d bytes (%s) but got %d",
              spec.name(),
              spec.byteSize(),
              spec,
              data.length));
    }
    this.spec = spec;
    this.data = data;
  }

  public TensorSpec spec() {
    return spec;
  }

  /** The raw bytes (not a copy: the runner writes them into its input buffer). */
  public byte[] data() {
    return data;
  }

  /** Real values: dequantized for integer tensors, converted for float ones. */
  public float[] toFloatArray() {
    return Quantization.dequantize(this);
  }

  /** The raw stored values as numbers (q for integer tensors, the float for float ones). */
  public double rawValue(int index) {
    ByteBuffer b = ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN);
    switch (spec.dtype()) {
      case FLOAT32:
        return b.getFloat(index * 4);
      case FLOAT16:
        return Quantization.halfToFloat(b.getShort(index * 2));
      case INT8:
        return data[index];
      case UINT8:
        return data[index] & 0xff;
      case INT16:
        return b.getShort(index * 2);
      case INT32:
        return b.getInt(index * 4);
      default:
        throw new IllegalStateException(spec.dtype().toString());
    }
  }
}
