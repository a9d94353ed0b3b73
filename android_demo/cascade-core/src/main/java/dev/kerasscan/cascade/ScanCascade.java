package dev.kerasscan.cascade;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Runs an export's chained cascade with real early exit: stage_0 on the image, then each
 * further stage on the previous stage's features (requantized when the two encodings differ),
 * stopping at the first shallow exit the {@link ExitRule} accepts. Stages after it are never
 * run. "Full model" mode runs the final exit's own file instead, the baseline the saving is
 * measured against.
 *
 * <p>Not thread safe: the app calls it from one inference thread.
 */
public final class ScanCascade implements AutoCloseable {
  /** Which answer to compute. */
  public enum Mode {
    /** Thresholds on: stop at the first confident shallow exit. */
    SCALABLE,
    /** The plain network: the final exit's model file alone. */
    FULL
  }

  private final Manifest manifest;
  private final Manifest.Variant variant;
  private final StageRunner runner;
  private final ExitRule rule;
  private final ImagePreprocessor preprocessor;
  private final List<ModelCall> stageCalls = new ArrayList<>();
  private final List<String> probsKeys = new ArrayList<>();
  private final List<String> featuresKeys = new ArrayList<>();
  private final ModelCall fullCall;
  private final String fullProbsKey;

  /**
   * @param variantKey a key of manifest.variants, or null for default_variant
   * @param runner runs the model files; closed by {@link #close}
   */
  public ScanCascade(Manifest manifest, String variantKey, StageRunner runner) {
    this(manifest, variantKey, runner, manifest.rule());
  }

  /** As above with another exit rule (e.g. thresholds the user changed on screen). */
  public ScanCascade(Manifest manifest, String variantKey, StageRunner runner, ExitRule rule) {
    this.manifest = manifest;
    this.variant = manifest.variant(variantKey == null ? manifest.defaultVariant() : variantKey);
    this.runner = runner;
    if (rule.numShallowExits() != manifest.numExits() - 1) {
      throw new IllegalArgumentException(
          "the rule has " + rule.numShallowExits() + " thresholds, the export "
              + (manifest.numExits() - 1) + " shallow exits");
    }
    this.rule = rule;
    this.preprocessor = new ImagePreprocessor(manifest.input());
    String where = "variants." + variant.mode + ".cascade";
    for (Manifest.StageInfo stage : manifest.stages()) {
      Manifest.Signature sig = variant.cascade.signature(stage.name, where);
      String w = where + " " + stage.name;
      stageCalls.add(new ModelCall(variant.cascade.file, sig, sig.singleInput(w).getKey()));
      probsKeys.add(Manifest.outputKey(sig, "probs", w));
      featuresKeys.add(
          stage.index < manifest.numExits() - 1 ? Manifest.outputKey(sig, "features", w) : null);
    }
    Manifest.ModelFile full = variant.fullModel();
    Manifest.Signature fullSig = full.singleSignature("variants." + variant.mode + ".exits[full]");
    fullCall = new ModelCall(full.file, fullSig, fullSig.singleInput(full.file).getKey());
    fullProbsKey = Manifest.outputKey(fullSig, "probs", full.file);
  }

  /** The files this class loads for a variant: verify them before running. */
  public static List<String> requiredFiles(Manifest.Variant variant) {
    return Arrays.asList(variant.cascade.file, variant.fullModel().file);
  }

  public Manifest manifest() {
    return manifest;
  }

  public Manifest.Variant variant() {
    return variant;
  }

  public ExitRule rule() {
    return rule;
  }

  public ImagePreprocessor preprocessor() {
    return preprocessor;
  }

  /** Classifies packed ARGB pixels of any size, fitted with the training rule. */
  public CascadeResult classifyArgb(int[] argb, int width, int height, Mode mode) {
    long t0 = System.nanoTime();
    float[] pixels = preprocessor.fitArgb(argb, width, height);
    return classify(pixels, mode, System.nanoTime() - t0);
  }

  /**
   * Classifies a camera or gallery picture: its centre at the input's aspect ratio ({@link
   * ImagePreprocessor#centreCrop}), then fitted with the training rule.
   */
  public CascadeResult classifyFrame(int[] argb, int width, int height, Mode mode) {
    long t0 = System.nanoTime();
    ImagePreprocessor.Frame f = preprocessor.centreCrop(argb, width, height);
    float[] pixels = preprocessor.fitArgb(f.argb, f.width, f.height);
    return classify(pixels, mode, System.nanoTime() - t0);
  }

  /** Classifies raw pixels already at the input size (HWC). */
  public CascadeResult classifyPixels(float[] hwc, int height, int width, int channels,
      Mode mode) {
    long t0 = System.nanoTime();
    float[] pixels = preprocessor.checkPixels(hwc, height, width, channels);
    return classify(pixels, mode, System.nanoTime() - t0);
  }

  private CascadeResult classify(float[] pixels, Mode mode, long fitNanos) {
    return mode == Mode.FULL ? runFull(pixels, fitNanos) : runCascade(pixels, fitNanos, false);
  }

  /**
   * Runs every stage whatever the thresholds (for checks against the Python runtime); the
   * returned result still reports the answer the rule gives, and exitProbs holds all exits.
   */
  public CascadeResult runAllStages(float[] hwc, int height, int width, int channels) {
    long t0 = System.nanoTime();
    float[] pixels = preprocessor.checkPixels(hwc, height, width, channels);
    return runCascade(pixels, System.nanoTime() - t0, true);
  }

  private CascadeResult runCascade(float[] pixels, long fitNanos, boolean allStages) {
    int k = manifest.numExits() - 1;
    List<StageTiming> timings = new ArrayList<>();
    List<float[]> probs = new ArrayList<>();
    long t0 = System.nanoTime();
    Tensor x = preprocessor.toTensor(pixels, stageCalls.get(0).inputSpec());
    timings.add(new StageTiming("preprocess", 0, fitNanos + System.nanoTime() - t0));
    int answeredAt = -1;
    for (int i = 0; i <= k; i++) {
      ModelCall call = stageCalls.get(i);
      long start = System.nanoTime();
      Map<String, Tensor> out = invoke(call, x);
      long ran = System.nanoTime();
      float[] p = probsOf(out, probsKeys.get(i), call);
      probs.add(p);
      if (answeredAt < 0 && i < k && rule.shouldExit(i, p)) {
        answeredAt = i;
      }
      boolean stop = (answeredAt >= 0 && !allStages) || i == k;
      if (!stop) {
        Tensor features = out.get(featuresKeys.get(i));
        if (features == null) {
          throw new CascadeException(
              call + " returned no \"" + featuresKeys.get(i) + "\" output (got "
                  + out.keySet() + ")");
        }
        x = Quantization.requantize(features, stageCalls.get(i + 1).inputSpec());
      }
      timings.add(new StageTiming(call.signatureKey, ran - start, System.nanoTime() - ran));
      if (stop) {
        break;
      }
    }
    int exit;
    int prediction;
    double confidence;
    float probability;
    if (answeredAt >= 0) {
      exit = answeredAt;
      float[] p = probs.get(exit);
      prediction = ConfidenceMeasure.argmax(p);
      confidence = rule.measure().of(p);
      probability = p[prediction];
    } else {
      exit = k;
      prediction = rule.finalPrediction(probs);
      confidence = rule.measure().of(probs.get(k));
      probability =
          rule.fallback() == Fallback.FINAL
              ? probs.get(k)[prediction]
              : (float) ExitRule.ensembleMean(probs)[prediction];
    }
    return new CascadeResult(
        prediction,
        manifest.labels().get(prediction),
        confidence,
        probability,
        exit,
        manifest.exitNames().get(exit),
        exit < k,
        probs,
        timings,
        manifest.exits().get(exit).macs);
  }

  private CascadeResult runFull(float[] pixels, long fitNanos) {
    int k = manifest.numExits() - 1;
    List<StageTiming> timings = new ArrayList<>();
    long t0 = System.nanoTime();
    Tensor x = preprocessor.toTensor(pixels, fullCall.inputSpec());
    timings.add(new StageTiming("preprocess", 0, fitNanos + System.nanoTime() - t0));
    long start = System.nanoTime();
    Map<String, Tensor> out = invoke(fullCall, x);
    long ran = System.nanoTime();
    float[] p = probsOf(out, fullProbsKey, fullCall);
    int prediction = ConfidenceMeasure.argmax(p);
    double confidence = rule.measure().of(p);
    timings.add(new StageTiming("full", ran - start, System.nanoTime() - ran));
    List<float[]> probs = new ArrayList<>();
    probs.add(p);
    return new CascadeResult(
        prediction,
        manifest.labels().get(prediction),
        confidence,
        p[prediction],
        k,
        manifest.exitNames().get(k),
        false,
        probs,
        timings,
        manifest.exits().get(k).standaloneMacs);
  }

  private Map<String, Tensor> invoke(ModelCall call, Tensor x) {
    try {
      Map<String, Tensor> out = runner.run(call, x);
      if (out == null) {
        throw new CascadeException(call + " returned no outputs");
      }
      return out;
    } catch (CascadeException e) {
      throw e;
    } catch (Exception e) {
      throw new CascadeException(
          String.format(Locale.ROOT, "running %s failed: %s", call, e.getMessage()), e);
    }
  }

  private float[] probsOf(Map<String, Tensor> out, String key, ModelCall call) {
    Tensor t = out.get(key);
    if (t == null) {
      throw new CascadeException(
          call + " returned no \"" + key + "\" output (got " + out.keySet() + ")");
    }
    float[] p = t.toFloatArray();
    if (p.length != manifest.numClasses()) {
      throw new CascadeException(
          call + " returned " + p.length + " probabilities for " + manifest.numClasses()
              + " classes");
    }
    return p;
  }

  @Override
  public void close() {
    runner.close();
  }
}
