package dev.kerasscan.cascade;

import java.util.Locale;

/** Element types a manifest tensor may have (tensor.dtype in manifest.schema.json). */
public enum DType {
  FLOAT32("float32", 4),
  FLOAT16("float16", 2),
  INT8("int8", 1),
  UINT8("uint8", 1),
  INT16("int16", 2),
  INT32("int32", 4);

  private final String jsonName;
  private final int byteSize;

  DType(String jsonName, int byteSize) {
    this.jsonName = jsonName;
    this.byteSize = byteSize;
  }

  /** The name used in manifest.json ("int8", ...). */
  public String jsonName() {
    return jsonName;
  }

  public int byteSize() {
    return byteSize;
  }

  /** True for the integer types that carry a (scale, zero_point) quantization. */
  public boolean isInteger() {
    return this == INT8 || this == UINT8 || this == INT16 || this == INT32;
  }

  /** Smallest representable integer value (integer types only). */
  public long minValue() {
    switch (this) {
      case INT8:
        return Byte.MIN_VALUE;
      case UINT8:
        return 0;
      case INT16:
        return Short.MIN_VALUE;
      case INT32:
        return Integer.MIN_VALUE;
      default:
        throw new IllegalStateException(jsonName + " is not an integer type");
    }
  }

  /** Largest representable integer value (integer types only). */
  public long maxValue() {
    switch (this) {
      case INT8:
        return Byte.MAX_VALUE;
      case UINT8:
        return 255;
      case INT16:
        return Short.MAX_VALUE;
      case INT32:
        return Integer.MAX_VALUE;
      default:
        throw new IllegalStateException(jsonName + " is not an integer type");
    }
  }

  /** Parses a manifest dtype name; throws ManifestException naming the accepted ones. */
  public static DType fromJson(String name) {
    for (DType t : values()) {
      if (t.jsonName.equals(name)) {
        return t;
      }
    }
    StringBuilder known = new StringBuilder();
    for (DType t : values()) {
      known.append(known.length() == 0 ? "" : ", ").append(t.jsonName);
    }
    throw new ManifestException(
        String.format(Locale.ROOT, "unknown dtype \"%s\" (known: %s)", name, known));
  }
}
