package dev.kerasscan.cascade;

import java.util.Locale;

/**
 * Turns pixels into model input. The models normalise raw pixels themselves
 * (preprocessing.normalization = in_model), so this only fits the image to the input, with
 * the rule of the training pipeline and tflite/scan_lite/images.py {@code fit_images}:
 *
 * <ul>
 *   <li>an image not larger than the input whose size differences are even on both axes is
 *       zero-padded in the centre (28x28 Fashion-MNIST into 32x32);
 *   <li>any other image is resized, rows then columns, with bilinear weights at half-pixel
 *       centres, antialiased when shrinking (the aspect ratio is not kept, as in training);
 *   <li>grey is repeated to 3 channels, RGB turned grey with 0.2989 R + 0.5870 G + 0.1140 B.
 * </ul>
 *
 * <p>Values stay raw 0..255 (HWC, row major); {@link #toTensor} then quantizes them with a
 * model input's scale / zero point when the variant takes int8 / uint8.
 */
public final class ImagePreprocessor {
  private static final float GREY_R = 0.2989f;
  private static final float GREY_G = 0.5870f;
  private static final float GREY_B = 0.1140f;

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
   *     is smaller than the input (and not paddable like the training data)
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
    float[] rgb = new float[width * height * 3];
    for (int i = 0; i < argb.length; i++) {
      int p = argb[i];
      rgb[3 * i] = (p >> 16) & 0xff;
      rgb[3 * i + 1] = (p >> 8) & 0xff;
      rgb[3 * i + 2] = p & 0xff;
    }
    return fit(rgb, height, width, 3);
  }

  /**
   * Fits raw pixels (HWC, row major, 1 or 3 channels) of any size to the input with the rule
   * above.
   *
   * @throws InputImageException for other channel counts, a bad array length, or an image
   *     smaller than the input that the training rule would not pad
   */
  public float[] fit(float[] hwc, int height, int width, int channels) {
    if (channels != 1 && channels != 3) {
      throw new InputImageException(
          "the image has " + channels + " channels; only grey (1) or RGB (3) images are read");
    }
    if (height <= 0 || width <= 0) {
      throw new InputImageException("the image is empty (" + width + "x" + height + ")");
    }
    if (hwc.length != (long) height * width * channels) {
      throw new InputImageException(
          String.format(
              Locale.ROOT,
              "the pixel array holds %d values, expected %d",
              hwc.length,
              height * width * channels));
    }
    int th = input.height;
    int tw = input.width;
    if (height <= th && width <= tw && (th - height) % 2 == 0 && (tw - width) % 2 == 0) {
      float[] out = new float[th * tw * input.channels];
      int top = (th - height) / 2;
      int left = (tw - width) / 2;
      float[] conv = convertChannels(hwc, height * width, channels);
      for (int y = 0; y < height; y++) {
        System.arraycopy(
            conv,
            y * width * input.channels,
            out,
            ((top + y) * tw + left) * input.channels,
            width * input.channels);
      }
      return out;
    }
    float[][] wy = linearWeights(height, th);
    float[][] wx = linearWeights(width, tw);
    // Rows first, then columns (scan_lite's order), in float32.
    float[] rows = new float[th * width * channels];
    for (int s = 0; s < th; s++) {
      float[] w = wy[s];
      int dst = s * width * channels;
      for (int h = 0; h < height; h++) {
        if (w[h] == 0f) {
          continue;
        }
        int src = (h * width) * channels;
        for (int i = 0; i < width * channels; i++) {
          rows[dst + i] += w[h] * hwc[src + i];
        }
      }
    }
    float[] block = new float[th * tw * channels];
    for (int s = 0; s < th; s++) {
      for (int t = 0; t < tw; t++) {
        float[] w = wx[t];
        int dst = (s * tw + t) * channels;
        for (int x = 0; x < width; x++) {
          if (w[x] == 0f) {
            continue;
          }
          int src = (s * width + x) * channels;
          for (int c = 0; c < channels; c++) {
            block[dst + c] += w[x] * rows[src + c];
          }
        }
      }
    }
    return convertChannels(block, th * tw, channels);
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
      throw new InputImageException(
          String.format(
              Locale.ROOT,
              "raw pixels must already be %dx%d (got %dx%d); use fit or fitArgb to resize",
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

  /** scan_lite's (out, in) bilinear weights: half-pixel centres, antialiased when shrinking. */
  static float[][] linearWeights(int inSize, int outSize) {
    double scale = (double) outSize / inSize;
    double support = Math.max(1.0, (double) inSize / outSize);
    float[][] w = new float[outSize][inSize];
    for (int o = 0; o < outSize; o++) {
      double centre = (o + 0.5) / scale - 0.5;
      double[] row = new double[inSize];
      double sum = 0;
      for (int i = 0; i < inSize; i++) {
        row[i] = Math.max(0.0, 1.0 - Math.abs(i - centre) / support);
        sum += row[i];
      }
      for (int i = 0; i < inSize; i++) {
        w[o][i] = (float) (row[i] / sum);
      }
    }
    return w;
  }

  private float[] convertChannels(float[] x, int pixels, int channels) {
    int want = input.channels;
    if (channels == want) {
      return x;
    }
    float[] out = new float[pixels * want];
    if (channels == 1) {
      for (int i = 0; i < pixels; i++) {
        for (int c = 0; c < want; c++) {
          out[i * want + c] = x[i];
        }
      }
    } else {
      for (int i = 0; i < pixels; i++) {
        out[i] = x[3 * i] * GREY_R + x[3 * i + 1] * GREY_G + x[3 * i + 2] * GREY_B;
      }
    }
    return out;
  }

  /** Packed ARGB pixels of a frame cut to a smaller size (see {@link #centreCrop}). */
  public static final class Frame {
    public final int[] argb;
    public final int width;
    public final int height;

    Frame(int[] argb, int width, int height) {
      this.argb = argb;
      this.width = width;
      this.height = height;
    }
  }

  /**
   * The centre of a frame at the input's aspect ratio: the app's framing of camera and gallery
   * pictures, applied before {@link #fitArgb}. Not part of the fitting rule (which stretches,
   * like the training pipeline), so it is a separate, explicit step.
   */
  public Frame centreCrop(int[] argb, int width, int height) {
    if (width <= 0 || height <= 0 || argb == null || argb.length != (long) width * height) {
      return new Frame(argb, width, height); // fitArgb reports what is wrong
    }
    int th = input.height;
    int tw = input.width;
    int cropW = width;
    int cropH = height;
    if ((long) width * th > (long) height * tw) {
      cropW = (int) Math.round((double) height * tw / th);
    } else if ((long) width * th < (long) height * tw) {
      cropH = (int) Math.round((double) width * th / tw);
    }
    cropW = Math.max(1, Math.min(width, cropW));
    cropH = Math.max(1, Math.min(height, cropH));
    if (cropW == width && cropH == height) {
      return new Frame(argb, width, height);
    }
    int x0 = (width - cropW) / 2;
    int y0 = (height - cropH) / 2;
    int[] out = new int[cropW * cropH];
    for (int y = 0; y < cropH; y++) {
      System.arraycopy(argb, (y0 + y) * width + x0, out, y * cropW, cropW);
    }
    return new Frame(out, cropW, cropH);
  }
}
