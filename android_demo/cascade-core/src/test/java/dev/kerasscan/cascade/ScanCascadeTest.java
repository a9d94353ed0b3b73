package dev.kerasscan.cascade;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.Test;

/** The cascade's control flow with a scripted runner: what runs, what is fed, what answers. */
public class ScanCascadeTest {
  /** Answers each signature with scripted probabilities and fixed features; records calls. */
  static final class ScriptedRunner implements StageRunner {
    final Map<String, float[]> probs = new HashMap<>();
    final List<String> calls = new ArrayList<>();
    final List<Tensor> inputs = new ArrayList<>();
    RuntimeException failOn;
    String failSignature;
    boolean dropFeatures;
    boolean closed;

    @Override
    public Map<String, Tensor> run(ModelCall call, Tensor input) {
      calls.add(call.toString());
      inputs.add(input);
      assertTrue(input.spec().sameEncoding(call.inputSpec()));
      if (call.signatureKey.equals(failSignature)) {
        throw failOn;
      }
      Map<String, Tensor> out = new LinkedHashMap<>();
      for (Map.Entry<String, TensorSpec> e : call.outputSpecs().entrySet()) {
        TensorSpec s = e.getValue();
        if (e.getKey().equals("probs")) {
          out.put("probs", Quantization.fromReal(s, probs.get(call.signatureKey)));
        } else if (!dropFeatures) {
          byte[] f = new byte[s.byteSize()];
          for (int i = 0; i < f.length; i++) {
            f[i] = (byte) (10 * i - 20);
          }
          out.put(e.getKey(), new Tensor(s, f));
        }
      }
      return out;
    }

    @Override
    public void close() {
      closed = true;
    }
  }

  private static final float[] SURE = {0.9f, 0.05f, 0.05f};
  private static final float[] UNSURE = {0.4f, 0.35f, 0.25f};
  private static final float[] SECOND = {0.2f, 0.7f, 0.1f};

  private static Manifest manifest() {
    return Manifest.parse(TestSupport.validManifest().toString());
  }

  private static float[] image() {
    float[] px = new float[TestSupport.H * TestSupport.W];
    for (int i = 0; i < px.length; i++) {
      px[i] = (i * 37) % 256;
    }
    return px;
  }

  private static CascadeResult classify(ScriptedRunner r, ScanCascade.Mode mode) {
    ScanCascade c = new ScanCascade(manifest(), null, r);
    return c.classifyPixels(image(), 8, 8, 1, mode);
  }

  @Test
  public void aConfidentFirstExitSkipsTheRestOfTheNetwork() {
    ScriptedRunner r = new ScriptedRunner();
    r.probs.put("stage_0", SURE);
    CascadeResult res = classify(r, ScanCascade.Mode.SCALABLE);
    assertEquals(List.of("cascade.int8.tflite:stage_0"), r.calls);
    assertEquals(0, res.exitIndex);
    assertTrue(res.early);
    assertEquals("cat", res.label);
    assertEquals("exit_0", res.exitName);
    assertEquals(0.8984375, res.confidence, 1e-9); // 0.9 through int8 with scale 1/256
    assertEquals(1000, res.macs);
    assertEquals(2, res.timings.size());
    assertEquals("preprocess", res.timings.get(0).name);
    assertEquals("stage_0", res.timings.get(1).name);
    // The image went in quantized with scale 1, zero point -128.
    assertEquals((byte) (37 - 128), r.inputs.get(0).data()[1]);
  }

  @Test
  public void featuresAreRequantizedBetweenStages() {
    ScriptedRunner r = new ScriptedRunner();
    r.probs.put("stage_0", UNSURE);
    r.probs.put("stage_1", SECOND);
    CascadeResult res = classify(r, ScanCascade.Mode.SCALABLE);
    assertEquals(2, r.calls.size());
    assertEquals(1, res.exitIndex);
    assertEquals("dog", res.label);
    // stage_0 writes features with zero point -5, stage_1 reads zero point 3, same scale.
    byte[] fed = r.inputs.get(1).data();
    assertArrayEquals(new byte[] {-12, -2, 8, 18}, fed);
    assertEquals(2, res.exitProbs.size());
  }

  @Test
  public void noConfidentExitFallsBackToTheFinalExit() {
    ScriptedRunner r = new ScriptedRunner();
    r.probs.put("stage_0", UNSURE);
    r.probs.put("stage_1", UNSURE);
    r.probs.put("stage_2", SECOND);
    CascadeResult res = classify(r, ScanCascade.Mode.SCALABLE);
    assertEquals(3, r.calls.size());
    assertEquals(2, res.exitIndex);
    assertFalse(res.early);
    assertEquals(1, res.prediction);
    assertEquals("final", res.exitName);
    assertEquals(4, res.timings.size());
    // stage_1 features (scale 0.1, zp -5) into stage_2 (scale 0.23, zp 3).
    byte[] fed = r.inputs.get(2).data();
    for (int i = 0; i < 4; i++) {
      double real = 0.1 * ((10 * i - 20) - (-5));
      assertEquals(Math.round(real / 0.23) + 3, fed[i]);
    }
  }

  @Test
  public void fullModeRunsOnlyTheFinalExitModel() {
    ScriptedRunner r = new ScriptedRunner();
    r.probs.put("serving_default", SECOND);
    CascadeResult res = classify(r, ScanCascade.Mode.FULL);
    assertEquals(List.of("full.int8.tflite:serving_default"), r.calls);
    assertEquals(2, res.exitIndex);
    assertEquals("dog", res.label);
    assertEquals(2700, res.macs); // standalone_macs of the final exit
  }

  @Test
  public void runAllStagesReportsEveryExitAndTheRulesAnswer() {
    ScriptedRunner r = new ScriptedRunner();
    r.probs.put("stage_0", UNSURE);
    r.probs.put("stage_1", SECOND);
    r.probs.put("stage_2", SURE);
    ScanCascade c = new ScanCascade(manifest(), "int8", r);
    CascadeResult res = c.runAllStages(image(), 8, 8, 1);
    assertEquals(3, r.calls.size());
    assertEquals(3, res.exitProbs.size());
    assertEquals(1, res.exitIndex);
    assertEquals(1, res.prediction);
  }

  @Test
  public void runnerFailuresNameTheStage() {
    ScriptedRunner r = new ScriptedRunner();
    r.probs.put("stage_0", UNSURE);
    r.failSignature = "stage_1";
    r.failOn = new IllegalStateException("interpreter exploded");
    CascadeException e =
        assertThrows(CascadeException.class, () -> classify(r, ScanCascade.Mode.SCALABLE));
    assertTrue(e.getMessage(), e.getMessage().contains("cascade.int8.tflite:stage_1 failed"));
    assertTrue(e.getMessage(), e.getMessage().contains("interpreter exploded"));
  }

  @Test
  public void aMissingFeaturesOutputIsReported() {
    ScriptedRunner r = new ScriptedRunner();
    r.probs.put("stage_0", UNSURE);
    r.dropFeatures = true;
    CascadeException e =
        assertThrows(CascadeException.class, () -> classify(r, ScanCascade.Mode.SCALABLE));
    assertTrue(e.getMessage(), e.getMessage().contains("no \"features\" output"));
  }

  @Test
  public void argbFramesGoThroughTheSamePath() {
    ScriptedRunner r = new ScriptedRunner();
    r.probs.put("stage_0", SURE);
    ScanCascade c = new ScanCascade(manifest(), null, r);
    int[] frame = new int[32 * 24];
    java.util.Arrays.fill(frame, 0xff808080);
    CascadeResult res = c.classifyArgb(frame, 32, 24, ScanCascade.Mode.SCALABLE);
    assertEquals(0, res.exitIndex);
    assertEquals(0, r.inputs.get(0).data()[0]); // grey 128 -> q = 0
    assertThrows(
        InputImageException.class,
        () -> c.classifyArgb(new int[24], 5, 5, ScanCascade.Mode.SCALABLE));
    CascadeResult framed = c.classifyFrame(frame, 32, 24, ScanCascade.Mode.SCALABLE);
    assertEquals(0, framed.exitIndex);
    c.close();
    assertTrue(r.closed);
  }
}
