package dev.kerasscan.cascade;

import java.util.Locale;

/**
 * Turns pixels into model input. The models normalise raw pixels themselves
 * (preprocessing.normalization = in_model), so this only fits the image: a centre crop to the
 * input's aspect ratio, an area-average resize down to the input size, grey (ITU-R BT.601
 * luma) or RGB, raw 0..255 values (HWC, row major); {@link #toTensor} then quantizes them with
 * a model input's scale / zero point when the variant takes int8 / uint8.
 */
public final class ImagePreprocessor {
  private final Manifest.InputSpec input;

  public ImagePreprocessor(Manifest.InputSpec input) {
    this.input = input;
  }

  /**
   * Encodes fitted pixels for a model's image input (quantized for int8 / uint8 inputs).
   *
   * @throws ManifestException if that input does not have the manifest's image shape or lacks
   *     quantization parameters
   */
  public Tensor toTensor(float[] pixels, TensorSpec imageTensor) {
    int[] shape = imageTensor.shape();
    if (shape.length != 4
        || shape[0] != 1
        || shape[1] != input.height
        || shape[2] != input.width
        || shape[3] != input.channels) {
      throw new ManifestException(
          String.format(
              Locale.ROOT,
              "image tensor %s does not match the manifest input %dx%dx%d",
              imageTensor,
              input.height,
              input.width,
              input.channels));
    }
    imageTensor.requireQuantizationParams("image input");
    return Quantization.fromReal(imageTensor, pixels);
  }

  /**
   * Fits packed ARGB_8888 pixels (Android's {@code Bitmap.getPixels} layout, row major) to the
   * input: returns raw pixel values HWC at the input size. Alpha is ignored.
   *
   * @throws InputImageException if the buffer does not hold width x height pixels or the image
   *     is smaller than the model input
   */
  public float[] fitArgb(int[] argb, int width, int height) {
    if (width <= 0 || height <= 0) {
      throw new InputImageException("the image is empty (" + width + "x" + height + ")");
    }
    if (argb == null || argb.length != (long) width * height) {
      throw new InputImageException(
          String.format(
              Locale.ROOT,
              "the pixel buffer holds %s values but a %dx%d image needs %d",
              argb == null ? "no" : Integer.toString(argb.length),
              width,
              height,
              width * height));
    }
    requireLargeEnough(width, height);
    // Centre crop to the model's aspect ratio.
    int cropW = width;
    int cropH = height;
    if ((long) width * input.height > (long) height * input.width) {
      cropW = (int) Math.round((double) height * input.width / input.height);
    } else {
      cropH = (int) Math.round((double) width * input.height / input.width);
    }
    cropW = Math.max(input.width, Math.min(width, cropW));
    cropH = Math.max(input.height, Math.min(height, cropH));
    int x0 = (width - cropW) / 2;
    int y0 = (height - cropH) / 2;

    int c = input.channels;
    float[] out = new float[input.height * input.width * c];
    double sx = (double) cropW / input.width;
    double sy = (double) cropH / input.height;
    for (int oy = 0; oy < input.height; oy++) {
      double ya = oy * sy;
      double yb = ya + sy;
      for (int ox = 0; ox < input.width; ox++) {
        double xa = ox * sx;
        double xb = xa + sx;
        double r = 0;
        double g = 0;
        double b = 0;
        double wsum = 0;
        for (int y = (int) Math.floor(ya); y < Math.ceil(yb); y++) {
          double wy = Math.min(yb, y + 1) - Math.max(ya, y);
          int row = (y0 + y) * width + x0;
          for (int x = (int) Math.floor(xa); x < Math.ceil(xb); x++) {
            double w = wy * (Math.min(xb, x + 1) - Math.max(xa, x));
            int p = argb[row + x];
            r += w * ((p >> 16) & 0xff);
            g += w * ((p >> 8) & 0xff);
            b += w * (p & 0xff);
            wsum += w;
          }
        }
        int o = (oy * input.width + ox) * c;
        if (c == 3) {
          out[o] = (float) (r / wsum);
          out[o + 1] = (float) (g / wsum);
          out[o + 2] = (float) (b / wsum);
        } else {
          out[o] = (float) luma(r / wsum, g / wsum, b / wsum);
        }
      }
    }
    return out;
  }

  /**
   * Checks raw pixels already at the input size (HWC, row major), e.g. the conformance images
   * of tflite/testdata, and returns them.
   *
   * @throws InputImageException on a size or channel mismatch or values outside pixel_range
   */
  public float[] checkPixels(float[] hwc, int height, int width, int channels) {
    if (channels != input.channels) {
      throw new InputImageException(
          String.format(
              Locale.ROOT,
              "the image has %d channel%s but the model takes %d (%s)",
              channels,
              channels == 1 ? "" : "s",
              input.channels,
              input.channels == 1 ? "grey" : "RGB"));
    }
    if (height != input.height || width != input.width) {
      requireLargeEnough(width, height);
      throw new InputImageException(
          String.format(
              Locale.ROOT,
              "raw pixels must already be %dx%d (got %dx%d); use fitArgb to resize",
              input.width,
              input.height,
              width,
              height));
    }
    if (hwc.length != height * width * channels) {
      throw new InputImageException(
          String.format(
              Locale.ROOT,
              "the pixel array holds %d values, expected %d",
              hwc.length,
              height * width * channels));
    }
    for (float v : hwc) {
      if (!(v >= input.pixelMin && v <= input.pixelMax)) {
        throw new InputImageException(
            String.format(
                Locale.ROOT,
                "pixel value %s is outside input.pixel_range [%s, %s]: pass raw pixels, the"
                    + " model normalises them itself",
                v,
                input.pixelMin,
                input.pixelMax));
      }
    }
    return hwc;
  }

  private void requireLargeEnough(int width, int height) {
    if (width < input.width || height < input.height) {
      throw new InputImageException(
          String.format(
              Locale.ROOT,
              "the image is %dx%d but the model needs at least %dx%d pixels",
              width,
              height,
              input.width,
              input.height));
    }
  }

  /** ITU-R BT.601 luma, the weights PIL's convert("L") uses. */
  public static double luma(double r, double g, double b) {
    return 0.299 * r + 0.587 * g + 0.114 * b;
  }
}
