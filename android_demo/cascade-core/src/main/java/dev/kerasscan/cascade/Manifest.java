package dev.kerasscan.cascade;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.json.JSONArray;
import org.json.JSONException;
import org.json.JSONObject;

/**
 * A parsed, validated manifest.json of a keras_scan export (format version 1).
 *
 * <p>{@link #parse} checks, in this order: valid JSON, a format_version this reader knows, the
 * rules of tflite/manifest.schema.json (a copy of it is bundled as a resource and a test keeps
 * the copy identical), then the cross-field rules a schema cannot say (counts agree, stage
 * chaining, referenced files listed, image tensor matches the input, quantization parameters
 * present for integer tensors). Every failure is a {@link ManifestException} with a message
 * naming the field.
 */
public final class Manifest {
  /** The format versions this reader understands. */
  public static final int FORMAT_VERSION = 1;

  public static final String FILE_NAME = "manifest.json";

  static final String SCHEMA_RESOURCE = "/dev/kerasscan/cascade/manifest.schema.json";

  private static JsonSchemaValidator schemaValidator;

  private final String modelName;
  private final int numClasses;
  private final List<String> exitNames;
  private final InputSpec input;
  private final List<String> labels;
  private final ExitRule rule;
  private final String thresholdsSource;
  private final List<ExitInfo> exits;
  private final List<StageInfo> stages;
  private final String defaultVariant;
  private final Map<String, Variant> variants;
  private final Map<String, FileEntry> files;

  /** Raw pixel input the first stage and exit models take (NHWC, batch 1). */
  public static final class InputSpec {
    public final int height;
    public final int width;
    public final int channels;
    public final double pixelMin;
    public final double pixelMax;

    InputSpec(int height, int width, int channels, double pixelMin, double pixelMax) {
      this.height = height;
      this.width = width;
      this.channels = channels;
      this.pixelMin = pixelMin;
      this.pixelMax = pixelMax;
    }
  }

  /** Cost of one exit (exits[] in the manifest). */
  public static final class ExitInfo {
    public final int index;
    public final String name;
    public final long macs;
    public final long standaloneMacs;
    public final long params;

    ExitInfo(int index, String name, long macs, long standaloneMacs, long params) {
      this.index = index;
      this.name = name;
      this.macs = macs;
      this.standaloneMacs = standaloneMacs;
      this.params = params;
    }
  }

  /** One section of the chained cascade (stages[] in the manifest). */
  public static final class StageInfo {
    public final int index;
    public final String name;
    public final String input;
    public final List<String> outputs;
    public final long macs;
    public final long params;

    StageInfo(int index, String name, String input, List<String> outputs, long macs, long params) {
      this.index = index;
      this.name = name;
      this.input = input;
      this.outputs = Collections.unmodifiableList(outputs);
      this.macs = macs;
      this.params = params;
    }
  }

  /** One signature of a model file: its inputs and outputs by name, in manifest order. */
  public static final class Signature {
    public final String key;
    public final Map<String, TensorSpec> inputs;
    public final Map<String, TensorSpec> outputs;

    Signature(String key, Map<String, TensorSpec> inputs, Map<String, TensorSpec> outputs) {
      this.key = key;
      this.inputs = Collections.unmodifiableMap(inputs);
      this.outputs = Collections.unmodifiableMap(outputs);
    }

    /** The only input (cascade stages and exit models take one tensor). */
    public Map.Entry<String, TensorSpec> singleInput(String where) {
      if (inputs.size() != 1) {
        throw new ManifestException(
            where + ": signature \"" + key + "\" must take exactly one input, has "
                + inputs.keySet());
      }
      return inputs.entrySet().iterator().next();
    }
  }

  /** A .tflite file and its signatures. */
  public static final class ModelFile {
    public final String file;
    public final String name;
    public final Map<String, Signature> signatures;

    ModelFile(String file, String name, Map<String, Signature> signatures) {
      this.file = file;
      this.name = name;
      this.signatures = Collections.unmodifiableMap(signatures);
    }

    /** The signature with this key, or the ManifestException that says it is missing. */
    public Signature signature(String key, String where) {
      Signature s = signatures.get(key);
      if (s == null) {
        throw new ManifestException(
            where + ": " + file + " has no signature \"" + key + "\" (has "
                + signatures.keySet() + ")");
      }
      return s;
    }

    /** The only signature (exit and per-stage files have one). */
    public Signature singleSignature(String where) {
      if (signatures.size() != 1) {
        throw new ManifestException(
            where + ": " + file + " must have exactly one signature, has " + signatures.keySet());
      }
      return signatures.values().iterator().next();
    }
  }

  /** One quantization mode's files. */
  public static final class Variant {
    public final String mode;
    public final DType inputDtype;
    /** exit_0 .. exit_{K-1}, then the full model (the final exit alone). */
    public final List<ModelFile> exits;
    public final ModelFile cascade;
    public final List<ModelFile> stages;

    Variant(String mode, DType inputDtype, List<ModelFile> exits, ModelFile cascade,
        List<ModelFile> stages) {
      this.mode = mode;
      this.inputDtype = inputDtype;
      this.exits = Collections.unmodifiableList(exits);
      this.cascade = cascade;
      this.stages = Collections.unmodifiableList(stages);
    }

    /** The model that answers with the final exit alone ("full model" mode). */
    public ModelFile fullModel() {
      return exits.get(exits.size() - 1);
    }
  }

  /** Size and SHA-256 of one file of the export. */
  public static final class FileEntry {
    public final String name;
    public final long bytes;
    public final String sha256;

    FileEntry(String name, long bytes, String sha256) {
      this.name = name;
      this.bytes = bytes;
      this.sha256 = sha256;
    }
  }

  private Manifest(JSONObject m) {
    JSONObject model = m.optJSONObject("model");
    modelName = model.optString("name");
    numClasses = model.optInt("num_classes");
    int numExits = model.optInt("num_exits");
    exitNames = strings(model.optJSONArray("exit_names"));

    JSONObject in = m.optJSONObject("input");
    JSONArray range = in.optJSONArray("pixel_range");
    input =
        new InputSpec(
            in.optInt("height"),
            in.optInt("width"),
            in.optInt("channels"),
            range.optDouble(0),
            range.optDouble(1));

    labels = strings(m.optJSONArray("labels"));

    JSONObject th = m.optJSONObject("thresholds");
    JSONArray values = th.optJSONArray("values");
    double[] t = new double[values.length()];
    for (int i = 0; i < t.length; i++) {
      t[i] = values.optDouble(i);
    }
    rule =
        new ExitRule(
            t,
            ConfidenceMeasure.fromJson(th.optString("measure")),
            Fallback.fromJson(th.optString("fallback")));
    thresholdsSource = th.optString("source");

    List<ExitInfo> ex = new ArrayList<>();
    JSONArray ea = m.optJSONArray("exits");
    for (int i = 0; i < ea.length(); i++) {
      JSONObject e = ea.optJSONObject(i);
      ex.add(
          new ExitInfo(
              e.optInt("index"),
              e.optString("name"),
              e.optLong("macs"),
              e.optLong("standalone_macs"),
              e.optLong("params")));
    }
    exits = Collections.unmodifiableList(ex);

    List<StageInfo> st = new ArrayList<>();
    JSONArray sa = m.optJSONArray("stages");
    for (int i = 0; i < sa.length(); i++) {
      JSONObject s = sa.optJSONObject(i);
      JSONArray outs = s.optJSONArray("outputs");
      st.add(
          new StageInfo(
              s.optInt("index"),
              s.optString("name"),
              s.optString("input"),
              outs == null ? new ArrayList<>() : strings(outs),
              s.optLong("macs"),
              s.optLong("params")));
    }
    stages = Collections.unmodifiableList(st);

    Map<String, FileEntry> fs = new LinkedHashMap<>();
    JSONObject fo = m.optJSONObject("files");
    for (Iterator<String> it = fo.keys(); it.hasNext(); ) {
      String name = it.next();
      JSONObject e = fo.optJSONObject(name);
      fs.put(
          FileNames.requireSafe(name),
          new FileEntry(name, e.optLong("bytes"), e.optString("sha256")));
    }
    files = Collections.unmodifiableMap(fs);

    defaultVariant = m.optString("default_variant");
    Map<String, Variant> vs = new LinkedHashMap<>();
    JSONObject vo = m.optJSONObject("variants");
    for (Iterator<String> it = vo.keys(); it.hasNext(); ) {
      String key = it.next();
      vs.put(key, parseVariant(key, vo.optJSONObject(key)));
    }
    variants = Collections.unmodifiableMap(vs);

    checkConsistency(numExits);
  }

  private static Variant parseVariant(String key, JSONObject v) {
    String where = "variants/" + key;
    List<ModelFile> ex = new ArrayList<>();
    JSONArray ea = v.optJSONArray("exits");
    for (int i = 0; i < ea.length(); i++) {
      ex.add(parseModelFile(ea.optJSONObject(i), where + "/exits/" + i));
    }
    List<ModelFile> st = new ArrayList<>();
    JSONArray sa = v.optJSONArray("stages");
    for (int i = 0; i < sa.length(); i++) {
      st.add(parseModelFile(sa.optJSONObject(i), where + "/stages/" + i));
    }
    return new Variant(
        v.optString("mode"),
        DType.fromJson(v.optString("input_dtype")),
        ex,
        parseModelFile(v.optJSONObject("cascade"), where + "/cascade"),
        st);
  }

  private static ModelFile parseModelFile(JSONObject o, String where) {
    String file = FileNames.requireSafe(o.optString("file"));
    Map<String, Signature> sigs = new LinkedHashMap<>();
    JSONObject so = o.optJSONObject("signatures");
    for (Iterator<String> it = so.keys(); it.hasNext(); ) {
      String key = it.next();
      JSONObject s = so.optJSONObject(key);
      sigs.put(
          key,
          new Signature(
              key,
              parseTensors(s.optJSONObject("inputs"), where + "/signatures/" + key + "/inputs"),
              parseTensors(
                  s.optJSONObject("outputs"), where + "/signatures/" + key + "/outputs")));
    }
    return new ModelFile(file, o.optString("name", file), sigs);
  }

  private static Map<String, TensorSpec> parseTensors(JSONObject o, String where) {
    Map<String, TensorSpec> out = new LinkedHashMap<>();
    for (Iterator<String> it = o.keys(); it.hasNext(); ) {
      String key = it.next();
      JSONObject t = o.optJSONObject(key);
      JSONArray shape = t.optJSONArray("shape");
      int[] dims = new int[shape.length()];
      for (int i = 0; i < dims.length; i++) {
        dims[i] = shape.optInt(i);
      }
      try {
        out.put(
            key,
            new TensorSpec(
                t.optString("name", key),
                dims,
                DType.fromJson(t.optString("dtype")),
                t.optDouble("scale"),
                t.optLong("zero_point")));
      } catch (ManifestException e) {
        throw new ManifestException(where + "/" + key + ": " + e.getMessage(), e);
      }
    }
    return out;
  }

  private void checkConsistency(int numExits) {
    int k1 = numExits;
    if (exitNames.size() != k1) {
      fail("model/exit_names has %d names but model.num_exits is %d", exitNames.size(), k1);
    }
    if (labels.size() != numClasses) {
      fail("labels has %d entries but model.num_classes is %d", labels.size(), numClasses);
    }
    if (rule.numShallowExits() != k1 - 1) {
      fail(
          "thresholds/values has %d values but there are %d shallow exits (num_exits - 1)",
          rule.numShallowExits(),
          k1 - 1);
    }
    if (exits.size() != k1) {
      fail("exits has %d entries but model.num_exits is %d", exits.size(), k1);
    }
    if (stages.size() != k1) {
      fail("stages has %d entries but model.num_exits is %d", stages.size(), k1);
    }
    for (int i = 0; i < k1; i++) {
      if (exits.get(i).index != i) {
        fail("exits/%d/index is %d, expected %d", i, exits.get(i).index, i);
      }
      StageInfo s = stages.get(i);
      if (s.index != i || !s.name.equals("stage_" + i)) {
        fail("stages/%d is %s (index %d), expected stage_%d", i, s.name, s.index, i);
      }
      String wantInput = i == 0 ? "image" : "features";
      if (!s.input.equals(wantInput)) {
        fail("stages/%d/input is \"%s\", expected \"%s\"", i, s.input, wantInput);
      }
      if (!s.outputs.isEmpty()) {
        if (!s.outputs.contains("probs")) {
          fail("stages/%d/outputs %s lacks \"probs\"", i, s.outputs);
        }
        if (i < k1 - 1 && !s.outputs.contains("features")) {
          fail("stages/%d/outputs %s lacks \"features\" (the next stage needs them)", i, s.outputs);
        }
      }
    }
    if (input.pixelMin >= input.pixelMax) {
      fail("input/pixel_range [%s, %s] is empty", input.pixelMin, input.pixelMax);
    }
    if (!variants.containsKey(defaultVariant)) {
      fail("default_variant \"%s\" is not one of variants %s", defaultVariant, variants.keySet());
    }
    for (Map.Entry<String, Variant> e : variants.entrySet()) {
      checkVariant(e.getKey(), e.getValue(), k1);
    }
  }

  private void checkVariant(String key, Variant v, int k1) {
    String where = "variants/" + key;
    if (!v.mode.equals(key)) {
      fail("%s/mode is \"%s\", expected \"%s\"", where, v.mode, key);
    }
    if (v.exits.size() != k1) {
      fail("%s/exits has %d files, expected %d (exit_0..exit_%d, then full)",
          where, v.exits.size(), k1, k1 - 2);
    }
    if (v.stages.size() != k1) {
      fail("%s/stages has %d files, expected %d", where, v.stages.size(), k1);
    }
    Map<String, ModelFile> named = new LinkedHashMap<>();
    named.put(where + "/cascade", v.cascade);
    for (int i = 0; i < v.exits.size(); i++) {
      named.put(where + "/exits/" + i, v.exits.get(i));
    }
    for (int i = 0; i < v.stages.size(); i++) {
      named.put(where + "/stages/" + i, v.stages.get(i));
    }
    for (Map.Entry<String, ModelFile> e : named.entrySet()) {
      if (!files.containsKey(e.getValue().file)) {
        fail("%s/file %s is not listed in files", e.getKey(), e.getValue().file);
      }
    }
    // Exit models: image -> probs.
    for (int i = 0; i < v.exits.size(); i++) {
      Signature s = v.exits.get(i).singleSignature(where + "/exits/" + i);
      checkImageInput(s.singleInput(where + "/exits/" + i).getValue(), v,
          where + "/exits/" + i);
      probsOutput(s, where + "/exits/" + i);
    }
    // The cascade file: one signature per stage, chained.
    TensorSpec previousFeatures = null;
    for (int i = 0; i < k1; i++) {
      String w = where + "/cascade/signatures/stage_" + i;
      Signature s = v.cascade.signature(stages.get(i).name, where + "/cascade");
      TensorSpec in = s.singleInput(w).getValue();
      if (i == 0) {
        checkImageInput(in, v, w);
      } else {
        in.requireQuantizationParams(w);
        if (previousFeatures.elementCount() != in.elementCount()) {
          fail("%s: takes %s but stage_%d gives features %s", w, in, i - 1, previousFeatures);
        }
      }
      probsOutput(s, w);
      if (i < k1 - 1) {
        previousFeatures = featuresOutput(s, w);
      }
    }
    for (int i = 0; i < k1; i++) {
      Signature s = v.stages.get(i).singleSignature(where + "/stages/" + i);
      probsOutput(s, where + "/stages/" + i);
    }
  }

  private void checkImageInput(TensorSpec t, Variant v, String where) {
    int[] want = {1, input.height, input.width, input.channels};
    if (!java.util.Arrays.equals(t.shape(), want)) {
      fail("%s: image input %s does not match input (1, %d, %d, %d)",
          where, t, input.height, input.width, input.channels);
    }
    if (t.dtype() != v.inputDtype) {
      fail("%s: image input is %s but the variant's input_dtype is %s",
          where, t.dtype().jsonName(), v.inputDtype.jsonName());
    }
    t.requireQuantizationParams(where);
  }

  /** The probabilities output of a stage or exit signature. */
  public TensorSpec probsOutput(Signature s, String where) {
    TensorSpec t = outputNamed(s, "probs", where);
    if (t.elementCount() != numClasses) {
      fail("%s: probs output %s does not hold num_classes=%d values", where, t, numClasses);
    }
    t.requireQuantizationParams(where);
    return t;
  }

  /** The features output a cascade stage hands to the next one. */
  public TensorSpec featuresOutput(Signature s, String where) {
    TensorSpec t = outputNamed(s, "features", where);
    t.requireQuantizationParams(where);
    return t;
  }

  /**
   * Output key of a signature for "probs" / "features": the exporter names the outputs
   * exactly so (scan_lite reads them by these names too).
   */
  public static String outputKey(Signature s, String role, String where) {
    if (s.outputs.containsKey(role)) {
      return role;
    }
    throw new ManifestException(
        where + ": signature \"" + s.key + "\" has no \"" + role + "\" output (has "
            + s.outputs.keySet() + ")");
  }

  private static TensorSpec outputNamed(Signature s, String role, String where) {
    return s.outputs.get(outputKey(s, role, where));
  }

  private static void fail(String fmt, Object... args) {
    throw new ManifestException(
        "manifest.json: " + String.format(Locale.ROOT, fmt, args));
  }

  private static List<String> strings(JSONArray a) {
    List<String> out = new ArrayList<>();
    for (int i = 0; i < a.length(); i++) {
      out.add(a.optString(i));
    }
    return Collections.unmodifiableList(out);
  }

  // --------------------------------------------------------------------------------------------
  // Loading
  // --------------------------------------------------------------------------------------------

  /** Parses and validates manifest.json text. */
  public static Manifest parse(String json) {
    JSONObject m;
    try {
      m = new JSONObject(json);
    } catch (JSONException e) {
      throw new ManifestException("manifest.json is not valid JSON: " + e.getMessage(), e);
    }
    Object version = m.opt("format_version");
    if (version == null) {
      throw new ManifestException(
          "manifest.json has no format_version; this app reads format_version "
              + FORMAT_VERSION + " (written by keras-scan export)");
    }
    if (!(JsonSchemaValidator.isInteger(version)
        && ((Number) version).doubleValue() == FORMAT_VERSION)) {
      throw new ManifestException(
          "manifest.json has format_version " + version + " but this app reads only format_version "
              + FORMAT_VERSION + "; export again with a keras_scan that writes version "
              + FORMAT_VERSION + ", or update the app");
    }
    List<String> errors = schema().validate(m);
    if (!errors.isEmpty()) {
      StringBuilder sb = new StringBuilder("manifest.json breaks manifest.schema.json:");
      for (String e : errors) {
        sb.append("\n  ").append(e);
      }
      throw new ManifestException(sb.toString());
    }
    return new Manifest(m);
  }

  /** Reads manifest.json from an export and parses it. */
  public static Manifest load(ExportSource source) {
    byte[] bytes;
    try (InputStream in = source.open(FILE_NAME)) {
      bytes = readAll(in);
    } catch (java.io.FileNotFoundException e) {
      throw new ManifestException(
          FILE_NAME + " is missing in " + source.describe()
              + "; copy every file of an export folder there", e);
    } catch (IOException e) {
      throw new ManifestException(
          "cannot read " + FILE_NAME + " in " + source.describe() + ": " + e.getMessage(), e);
    }
    return parse(new String(bytes, StandardCharsets.UTF_8));
  }

  static synchronized JsonSchemaValidator schema() {
    if (schemaValidator == null) {
      try (InputStream in = Manifest.class.getResourceAsStream(SCHEMA_RESOURCE)) {
        if (in == null) {
          throw new IllegalStateException(
              "cascade-core is packaged without " + SCHEMA_RESOURCE);
        }
        schemaValidator =
            new JsonSchemaValidator(
                new JSONObject(new String(readAll(in), StandardCharsets.UTF_8)));
      } catch (IOException | JSONException e) {
        throw new IllegalStateException("cannot read the bundled manifest schema", e);
      }
    }
    return schemaValidator;
  }

  static byte[] readAll(InputStream in) throws IOException {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    byte[] buf = new byte[1 << 16];
    int n;
    while ((n = in.read(buf)) > 0) {
      out.write(buf, 0, n);
    }
    return out.toByteArray();
  }

  // --------------------------------------------------------------------------------------------
  // Accessors
  // --------------------------------------------------------------------------------------------

  public String modelName() {
    return modelName;
  }

  public int numClasses() {
    return numClasses;
  }

  /** K + 1: shallow exits plus the final one. */
  public int numExits() {
    return exitNames.size();
  }

  public List<String> exitNames() {
    return exitNames;
  }

  public InputSpec input() {
    return input;
  }

  public List<String> labels() {
    return labels;
  }

  public ExitRule rule() {
    return rule;
  }

  public String thresholdsSource() {
    return thresholdsSource;
  }

  public List<ExitInfo> exits() {
    return exits;
  }

  public List<StageInfo> stages() {
    return stages;
  }

  public String defaultVariant() {
    return defaultVariant;
  }

  public Map<String, Variant> variants() {
    return variants;
  }

  /** The variant with this key, or a ManifestException listing the ones exported. */
  public Variant variant(String key) {
    Variant v = variants.get(key);
    if (v == null) {
      throw new ManifestException(
          "the export has no variant \"" + key + "\" (has " + variants.keySet() + ")");
    }
    return v;
  }

  public Map<String, FileEntry> files() {
    return files;
  }
}
