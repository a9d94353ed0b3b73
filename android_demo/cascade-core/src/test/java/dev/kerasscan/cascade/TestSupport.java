package dev.kerasscan.cascade;

import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import org.json.JSONArray;
import org.json.JSONException;
import org.json.JSONObject;

/** Shared helpers: repository paths, resources, and a small synthetic export. */
final class TestSupport {
  private TestSupport() {}

  /** The repository root (test_core.sh passes -Dkeras_scan.repo; else found from the cwd). */
  static File repoRoot() {
    String p = System.getProperty("keras_scan.repo");
    if (p != null && !p.isEmpty()) {
      return new File(p);
    }
    File d = new File("").getAbsoluteFile();
    while (d != null && !new File(d, "android_demo").isDirectory()) {
      d = d.getParentFile();
    }
    if (d == null) {
      throw new IllegalStateException("cannot find the repository root; pass -Dkeras_scan.repo");
    }
    return d;
  }

  static String resource(String name) throws IOException {
    try (InputStream in = TestSupport.class.getResourceAsStream("/" + name)) {
      if (in == null) {
        throw new IOException("test resource " + name + " is not on the classpath");
      }
      return new String(Manifest.readAll(in), StandardCharsets.UTF_8);
    }
  }

  static JSONObject json(String text) {
    try {
      return new JSONObject(text);
    } catch (JSONException e) {
      throw new IllegalArgumentException(e);
    }
  }

  static JSONArray array(Object... values) {
    JSONArray a = new JSONArray();
    for (Object v : values) {
      a.put(v);
    }
    return a;
  }

  static JSONObject obj(Object... kv) {
    JSONObject o = new JSONObject();
    try {
      for (int i = 0; i < kv.length; i += 2) {
        o.put((String) kv[i], kv[i + 1]);
      }
    } catch (JSONException e) {
      throw new IllegalArgumentException(e);
    }
    return o;
  }

  static void put(JSONObject o, String key, Object value) {
    try {
      o.put(key, value);
    } catch (JSONException e) {
      throw new IllegalArgumentException(e);
    }
  }

  static JSONObject tensor(String name, String dtype, double scale, int zp, int... shape) {
    JSONArray s = new JSONArray();
    for (int d : shape) {
      s.put(d);
    }
    return obj("name", name, "shape", s, "dtype", dtype, "scale", scale, "zero_point", zp);
  }

  static final int H = 8;
  static final int W = 8;
  static final int C = 1;
  static final int CLASSES = 3;
  static final double IMAGE_SCALE = 1.0;
  static final int IMAGE_ZP = -128;
  static final int FEATURES = 4;

  /** Feature encoding stage k writes (k = 0, 1): scale, zero point. */
  static double featuresOutScale(int k) {
    return 0.05 * (k + 1);
  }

  /** Feature encoding stage k + 1 reads: equal for k = 0, different for k = 1 (requantize). */
  static double featuresInScale(int k) {
    return k == 0 ? featuresOutScale(0) : 0.1 * (k + 1) + 0.03;
  }

  static JSONObject signature(JSONObject inputs, JSONObject outputs) {
    return obj("inputs", inputs, "outputs", outputs);
  }

  static JSONObject probsTensor() {
    return tensor("probs", "int8", 1.0 / 256, -128, 1, CLASSES);
  }

  static JSONObject imageTensor() {
    return tensor("image", "int8", IMAGE_SCALE, IMAGE_ZP, 1, H, W, C);
  }

  /** A valid manifest: 2 shallow exits + final, an int8 variant, files with given hashes. */
  static JSONObject manifest(JSONObject files) {
    JSONObject sigs = new JSONObject();
    for (int k = 0; k < 3; k++) {
      JSONObject in =
          k == 0
              ? obj("image", imageTensor())
              : obj("features", tensor("features", "int8", featuresInScale(k - 1), 3, 1, FEATURES));
      JSONObject out =
          k < 2
              ? obj(
                  "features",
                  tensor("features", "int8", featuresOutScale(k), -5, 1, FEATURES),
                  "probs",
                  probsTensor())
              : obj("probs", probsTensor());
      put(sigs, "stage_" + k, signature(in, out));
    }
    JSONArray exitFiles = new JSONArray();
    for (String name : new String[] {"exit_0", "exit_1", "full"}) {
      exitFiles.put(
          obj(
              "file", name + ".int8.tflite",
              "name", name,
              "signatures",
                  obj("serving_default",
                      signature(obj("image", imageTensor()), obj("probs", probsTensor())))));
    }
    JSONArray stageFiles = new JSONArray();
    for (int k = 0; k < 3; k++) {
      try {
        stageFiles.put(
            obj("file", "stage_" + k + ".int8.tflite", "index", k,
                "signatures", obj("stage_" + k, sigs.getJSONObject("stage_" + k))));
      } catch (JSONException e) {
        throw new IllegalStateException(e);
      }
    }
    JSONObject variant =
        obj(
            "mode", "int8",
            "input_dtype", "int8",
            "exits", exitFiles,
            "cascade", obj("file", "cascade.int8.tflite", "signatures", sigs),
            "stages", stageFiles,
            "evaluation", JSONObject.NULL);
    JSONArray exits = new JSONArray();
    JSONArray stages = new JSONArray();
    for (int k = 0; k < 3; k++) {
      exits.put(obj("index", k, "name", k < 2 ? "exit_" + k : "final",
          "macs", 1000 * (k + 1), "standalone_macs", 900 * (k + 1), "params", 10 * (k + 1)));
      stages.put(obj("index", k, "name", "stage_" + k, "input", k == 0 ? "image" : "features",
          "outputs", k < 2 ? array("features", "probs") : array("probs"),
          "macs", 500, "params", 5));
    }
    return obj(
        "format_version", 1,
        "exporter", obj("keras_scan", "0.1.0", "keras", "3", "tensorflow", "2.21"),
        "model", obj("name", "tiny", "num_classes", CLASSES, "num_exits", 3,
            "exit_names", array("exit_0", "exit_1", "final")),
        "input", obj("height", H, "width", W, "channels", C, "layout", "NHWC", "batch", 1,
            "pixel_range", array(0, 255)),
        "preprocessing", obj("normalization", "in_model", "description", "raw pixels"),
        "labels", array("cat", "dog", "bird"),
        "thresholds", obj("values", array(0.8, 0.6), "measure", "max_prob",
            "fallback", "final", "source", "given"),
        "exits", exits,
        "stages", stages,
        "default_variant", "int8",
        "variants", obj("int8", variant),
        "files", files);
  }

  static final String[] FILES = {
    "exit_0.int8.tflite", "exit_1.int8.tflite", "full.int8.tflite", "cascade.int8.tflite",
    "stage_0.int8.tflite", "stage_1.int8.tflite", "stage_2.int8.tflite"
  };

  /** Files entry listing every model file with placeholder size and hash. */
  static JSONObject placeholderFiles() {
    JSONObject files = new JSONObject();
    for (String f : FILES) {
      put(files, f, obj("bytes", 1, "sha256", repeat("0", 64)));
    }
    return files;
  }

  static JSONObject validManifest() {
    return manifest(placeholderFiles());
  }

  /** Writes an export folder whose files hold some bytes, listed with real sizes and hashes. */
  static File writeExport(File dir) throws Exception {
    JSONObject files = new JSONObject();
    for (String f : FILES) {
      byte[] bytes = ("model bytes of " + f).getBytes(StandardCharsets.UTF_8);
      Files.write(new File(dir, f).toPath(), bytes);
      java.security.MessageDigest sha = java.security.MessageDigest.getInstance("SHA-256");
      put(files, f, obj("bytes", bytes.length, "sha256", FileVerifier.hex(sha.digest(bytes))));
    }
    Files.write(
        new File(dir, Manifest.FILE_NAME).toPath(),
        manifest(files).toString().getBytes(StandardCharsets.UTF_8));
    return dir;
  }

  static String repeat(String s, int n) {
    StringBuilder sb = new StringBuilder();
    for (int i = 0; i < n; i++) {
      sb.append(s);
    }
    return sb.toString();
  }

  /** Navigates "a.b.0.c" into a JSON tree. */
  static Object at(JSONObject root, String path) {
    Object node = root;
    for (String part : path.split("\\.")) {
      node =
          node instanceof JSONArray
              ? ((JSONArray) node).opt(Integer.parseInt(part))
              : ((JSONObject) node).opt(part);
    }
    return node;
  }
}
