package dev.kerasscan.cascade;

import java.io.File;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** Reads a C-ordered .npy array of uint8, float32 or float64 as floats (test helper). */
final class Npy {
  final int[] shape;
  final float[] data;

  private Npy(int[] shape, float[] data) {
    this.shape = shape;
    this.data = data;
  }

  static Npy read(File f) throws IOException {
    ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(f.toPath())).order(ByteOrder.LITTLE_ENDIAN);
    byte[] magic = new byte[6];
    b.get(magic);
    if (magic[0] != (byte) 0x93 || !new String(magic, 1, 5, StandardCharsets.US_ASCII).equals("NUMPY")) {
      throw new IOException(f + " is not a .npy file");
    }
    int major = b.get();
    b.get();
    int headerLen = major == 1 ? (b.getShort() & 0xffff) : b.getInt();
    byte[] h = new byte[headerLen];
    b.get(h);
    String header = new String(h, StandardCharsets.ISO_8859_1);
    Matcher descr = Pattern.compile("'descr':\\s*'([^']+)'").matcher(header);
    Matcher shapeM = Pattern.compile("'shape':\\s*\\(([^)]*)\\)").matcher(header);
    if (!descr.find() || !shapeM.find() || header.contains("'fortran_order': True")) {
      throw new IOException(f + ": unsupported header " + header);
    }
    String[] parts = shapeM.group(1).split(",");
    int n = 0;
    int[] shape = new int[parts.length];
    for (String p : parts) {
      if (!p.trim().isEmpty()) {
        shape[n++] = Integer.parseInt(p.trim());
      }
    }
    shape = java.util.Arrays.copyOf(shape, n);
    int count = 1;
    for (int d : shape) {
      count *= d;
    }
    float[] data = new float[count];
    switch (descr.group(1)) {
      case "|u1":
        for (int i = 0; i < count; i++) {
          data[i] = b.get() & 0xff;
        }
        break;
      case "<f4":
        for (int i = 0; i < count; i++) {
          data[i] = b.getFloat();
        }
        break;
      case "<f8":
        for (int i = 0; i < count; i++) {
          data[i] = (float) b.getDouble();
        }
        break;
      default:
        throw new IOException(f + ": unsupported dtype " + descr.group(1));
    }
    return new Npy(shape, data);
  }

  /** Item i of the first axis, flattened. */
  float[] item(int i) {
    int size = data.length / shape[0];
    return java.util.Arrays.copyOfRange(data, i * size, (i + 1) * size);
  }
}
