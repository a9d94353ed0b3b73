package dev.kerasscan.cascade;

import com.sun.jna.Library;
import com.sun.jna.Memory;
import com.sun.jna.Native;
import com.sun.jna.Pointer;
import com.sun.jna.ptr.IntByReference;
import com.sun.jna.ptr.LongByReference;
import com.sun.jna.ptr.PointerByReference;
import java.io.File;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * A test-only {@link StageRunner} over the LiteRT C API (CompiledModel) in libLiteRt.so, the
 * library the ai-edge-litert wheel ships, called through JNA. It does on the JVM what the app's
 * Kotlin runner does with LiteRT's CompiledModel on Android: load each file once, create one
 * input/output buffer set per signature, copy bytes in, run, copy bytes out by output name.
 *
 * <p>Declarations follow litert/c/*.h of LiteRT 2.x (LiteRtCreateModelFromFile takes the
 * environment first; LiteRtParamIndex is size_t). The ranked tensor type is read as raw memory:
 * element type at offset 0, rank in the low 7 bits at offset 4, dimensions from offset 8.
 */
final class LiteRtJnaRunner implements StageRunner {
  /** The subset of the LiteRT C API used here. */
  public interface LiteRt extends Library {
    int LiteRtCreateEnvironment(int numOptions, Pointer options, PointerByReference env);

    void LiteRtDestroyEnvironment(Pointer env);

    int LiteRtCreateModelFromFile(Pointer env, String path, PointerByReference model);

    void LiteRtDestroyModel(Pointer model);

    int LiteRtCreateOptions(PointerByReference options);

    int LiteRtSetOptionsHardwareAccelerators(Pointer options, int accelerators);

    void LiteRtDestroyOptions(Pointer options);

    int LiteRtCreateCompiledModel(
        Pointer env, Pointer model, Pointer options, PointerByReference compiled);

    void LiteRtDestroyCompiledModel(Pointer compiled);

    int LiteRtGetNumModelSignatures(Pointer model, LongByReference n);

    int LiteRtGetModelSignature(Pointer model, long index, PointerByReference signature);

    int LiteRtGetSignatureKey(Pointer signature, PointerByReference key);

    int LiteRtGetNumSignatureInputs(Pointer signature, LongByReference n);

    int LiteRtGetNumSignatureOutputs(Pointer signature, LongByReference n);

    int LiteRtGetSignatureInputName(Pointer signature, long index, PointerByReference name);

    int LiteRtGetSignatureOutputName(Pointer signature, long index, PointerByReference name);

    int LiteRtGetSignatureInputTensorByIndex(
        Pointer signature, long index, PointerByReference tensor);

    int LiteRtGetSignatureOutputTensorByIndex(
        Pointer signature, long index, PointerByReference tensor);

    int LiteRtGetRankedTensorType(Pointer tensor, Pointer rankedTensorType);

    int LiteRtGetQuantizationTypeId(Pointer tensor, IntByReference typeId);

    int LiteRtGetPerTensorQuantization(Pointer tensor, Pointer perTensor);

    int LiteRtGetCompiledModelInputBufferRequirements(
        Pointer compiled, long signature, long index, PointerByReference requirements);

    int LiteRtGetCompiledModelOutputBufferRequirements(
        Pointer compiled, long signature, long index, PointerByReference requirements);

    int LiteRtCreateManagedTensorBufferFromRequirements(
        Pointer env, Pointer tensorType, Pointer requirements, PointerByReference buffer);

    void LiteRtDestroyTensorBuffer(Pointer buffer);

    int LiteRtGetTensorBufferPackedSize(Pointer buffer, LongByReference size);

    int LiteRtLockTensorBuffer(Pointer buffer, PointerByReference hostMemory, int mode);

    int LiteRtUnlockTensorBuffer(Pointer buffer);

    int LiteRtRunCompiledModel(
        Pointer compiled, long signature, long numInputs, Pointer[] inputs, long numOutputs,
        Pointer[] outputs);
  }

  private static final int CPU = 1;
  private static final int LOCK_READ = 0;
  private static final int LOCK_WRITE = 1;
  private static final int RANKED_TYPE_BYTES = 128; // >= sizeof(LiteRtRankedTensorType) (72)

  /** What the model file itself declares for a tensor. */
  static final class Declared {
    final String name;
    final int elementType;
    final int[] shape;
    final double scale;
    final long zeroPoint;

    Declared(String name, int elementType, int[] shape, double scale, long zeroPoint) {
      this.name = name;
      this.elementType = elementType;
      this.shape = shape;
      this.scale = scale;
      this.zeroPoint = zeroPoint;
    }
  }

  private static final class Sig {
    long index;
    final List<String> inputNames = new ArrayList<>();
    final List<String> outputNames = new ArrayList<>();
    final List<Declared> inputs = new ArrayList<>();
    final List<Declared> outputs = new ArrayList<>();
    Pointer[] inBuffers;
    Pointer[] outBuffers;
  }

  private static final class Loaded {
    Pointer model;
    Pointer compiled;
    final Map<String, Sig> signatures = new LinkedHashMap<>();
  }

  private final LiteRt api;
  private final File exportDir;
  private final Pointer env;
  private final Pointer options;
  private final Map<String, Loaded> files = new HashMap<>();

  /** @param library path of libLiteRt.so */
  LiteRtJnaRunner(File library, File exportDir) {
    this.api = Native.load(library.getAbsolutePath(), LiteRt.class);
    this.exportDir = exportDir;
    PointerByReference ref = new PointerByReference();
    check(api.LiteRtCreateEnvironment(0, null, ref), "LiteRtCreateEnvironment");
    env = ref.getValue();
    check(api.LiteRtCreateOptions(ref), "LiteRtCreateOptions");
    options = ref.getValue();
    check(api.LiteRtSetOptionsHardwareAccelerators(options, CPU), "set CPU accelerator");
  }

  private static void check(int status, String what) {
    if (status != 0) {
      throw new IllegalStateException(what + " failed with LiteRtStatus " + status);
    }
  }

  private Loaded load(String file) throws Exception {
    Loaded l = files.get(file);
    if (l != null) {
      return l;
    }
    File path = new DirectoryExportSource(exportDir).file(file);
    l = new Loaded();
    PointerByReference ref = new PointerByReference();
    check(api.LiteRtCreateModelFromFile(env, path.getPath(), ref), "loading " + path);
    l.model = ref.getValue();
    check(api.LiteRtCreateCompiledModel(env, l.model, options, ref), "compiling " + file);
    l.compiled = ref.getValue();
    LongByReference n = new LongByReference();
    check(api.LiteRtGetNumModelSignatures(l.model, n), "signatures of " + file);
    for (long s = 0; s < n.getValue(); s++) {
      check(api.LiteRtGetModelSignature(l.model, s, ref), "signature " + s);
      Pointer sig = ref.getValue();
      check(api.LiteRtGetSignatureKey(sig, ref), "signature key");
      Sig info = new Sig();
      info.index = s;
      LongByReference ni = new LongByReference();
      LongByReference no = new LongByReference();
      check(api.LiteRtGetNumSignatureInputs(sig, ni), "inputs");
      check(api.LiteRtGetNumSignatureOutputs(sig, no), "outputs");
      info.inBuffers = new Pointer[(int) ni.getValue()];
      info.outBuffers = new Pointer[(int) no.getValue()];
      for (int i = 0; i < info.inBuffers.length; i++) {
        PointerByReference name = new PointerByReference();
        PointerByReference tensor = new PointerByReference();
        PointerByReference req = new PointerByReference();
        check(api.LiteRtGetSignatureInputName(sig, i, name), "input name");
        check(api.LiteRtGetSignatureInputTensorByIndex(sig, i, tensor), "input tensor");
        check(
            api.LiteRtGetCompiledModelInputBufferRequirements(l.compiled, s, i, req),
            "input requirements");
        info.inputNames.add(name.getValue().getString(0));
        info.inBuffers[i] = buffer(tensor.getValue(), req.getValue(), info.inputs,
            name.getValue().getString(0));
      }
      for (int i = 0; i < info.outBuffers.length; i++) {
        PointerByReference name = new PointerByReference();
        PointerByReference tensor = new PointerByReference();
        PointerByReference req = new PointerByReference();
        check(api.LiteRtGetSignatureOutputName(sig, i, name), "output name");
        check(api.LiteRtGetSignatureOutputTensorByIndex(sig, i, tensor), "output tensor");
        check(
            api.LiteRtGetCompiledModelOutputBufferRequirements(l.compiled, s, i, req),
            "output requirements");
        info.outputNames.add(name.getValue().getString(0));
        info.outBuffers[i] = buffer(tensor.getValue(), req.getValue(), info.outputs,
            name.getValue().getString(0));
      }
      // The key string is owned by the model, which stays alive as long as this runner.
      l.signatures.put(getKey(sig), info);
    }
    files.put(file, l);
    return l;
  }

  private String getKey(Pointer sig) {
    PointerByReference key = new PointerByReference();
    check(api.LiteRtGetSignatureKey(sig, key), "signature key");
    return key.getValue().getString(0);
  }

  private Pointer buffer(Pointer tensor, Pointer req, List<Declared> declared, String name) {
    Memory type = new Memory(RANKED_TYPE_BYTES);
    type.clear();
    check(api.LiteRtGetRankedTensorType(tensor, type), "tensor type of " + name);
    int rank = type.getInt(4) & 0x7f;
    int[] shape = new int[rank];
    for (int d = 0; d < rank; d++) {
      shape[d] = type.getInt(8 + 4L * d);
    }
    IntByReference qt = new IntByReference();
    check(api.LiteRtGetQuantizationTypeId(tensor, qt), "quantization type of " + name);
    double scale = 0;
    long zp = 0;
    if (qt.getValue() == 1) { // kLiteRtQuantizationPerTensor
      Memory q = new Memory(16);
      q.clear();
      check(api.LiteRtGetPerTensorQuantization(tensor, q), "quantization of " + name);
      scale = q.getFloat(0);
      zp = q.getLong(8);
    }
    declared.add(new Declared(name, type.getInt(0), shape, scale, zp));
    PointerByReference buf = new PointerByReference();
    check(
        api.LiteRtCreateManagedTensorBufferFromRequirements(env, type, req, buf),
        "buffer for " + name);
    return buf.getValue();
  }

  /** LiteRtElementType of a manifest dtype. */
  static int elementType(DType t) {
    switch (t) {
      case FLOAT32:
        return 1;
      case INT32:
        return 2;
      case UINT8:
        return 3;
      case INT16:
        return 7;
      case INT8:
        return 9;
      case FLOAT16:
        return 10;
      default:
        throw new IllegalArgumentException(t.toString());
    }
  }

  /** What the file declares for every tensor of a signature, by name ("in:x" / "out:y"). */
  Map<String, Declared> declared(String file, String signature) throws Exception {
    Sig s = load(file).signatures.get(signature);
    if (s == null) {
      throw new IllegalStateException(file + " has no signature " + signature);
    }
    Map<String, Declared> out = new LinkedHashMap<>();
    for (Declared d : s.inputs) {
      out.put("in:" + d.name, d);
    }
    for (Declared d : s.outputs) {
      out.put("out:" + d.name, d);
    }
    return out;
  }

  @Override
  public Map<String, Tensor> run(ModelCall call, Tensor input) throws Exception {
    Loaded l = load(call.file);
    Sig s = l.signatures.get(call.signatureKey);
    if (s == null) {
      throw new IllegalStateException(
          call.file + " has no signature " + call.signatureKey + " (has "
              + l.signatures.keySet() + ")");
    }
    int in = s.inputNames.indexOf(call.inputName);
    if (in < 0 || s.inputNames.size() != 1) {
      throw new IllegalStateException(
          call + " inputs are " + s.inputNames + ", expected only " + call.inputName);
    }
    write(s.inBuffers[in], input.data());
    check(
        api.LiteRtRunCompiledModel(
            l.compiled, s.index, s.inBuffers.length, s.inBuffers, s.outBuffers.length,
            s.outBuffers),
        "running " + call);
    Map<String, Tensor> out = new LinkedHashMap<>();
    for (int i = 0; i < s.outBuffers.length; i++) {
      String name = s.outputNames.get(i);
      TensorSpec spec = call.outputSpecs().get(name);
      if (spec == null) {
        throw new IllegalStateException(
            String.format(Locale.ROOT, "%s: output %s is not in the manifest (%s)", call, name,
                call.outputSpecs().keySet()));
      }
      out.put(name, new Tensor(spec, read(s.outBuffers[i])));
    }
    return out;
  }

  private void write(Pointer buffer, byte[] data) {
    LongByReference size = new LongByReference();
    check(api.LiteRtGetTensorBufferPackedSize(buffer, size), "buffer size");
    if (size.getValue() != data.length) {
      throw new IllegalStateException(
          "input buffer holds " + size.getValue() + " bytes, got " + data.length);
    }
    PointerByReference host = new PointerByReference();
    check(api.LiteRtLockTensorBuffer(buffer, host, LOCK_WRITE), "lock for write");
    try {
      host.getValue().write(0, data, 0, data.length);
    } finally {
      api.LiteRtUnlockTensorBuffer(buffer);
    }
  }

  private byte[] read(Pointer buffer) {
    LongByReference size = new LongByReference();
    check(api.LiteRtGetTensorBufferPackedSize(buffer, size), "buffer size");
    PointerByReference host = new PointerByReference();
    check(api.LiteRtLockTensorBuffer(buffer, host, LOCK_READ), "lock for read");
    try {
      return host.getValue().getByteArray(0, (int) size.getValue());
    } finally {
      api.LiteRtUnlockTensorBuffer(buffer);
    }
  }

  @Override
  public void close() {
    for (Loaded l : files.values()) {
      for (Sig s : l.signatures.values()) {
        for (Pointer b : s.inBuffers) {
          api.LiteRtDestroyTensorBuffer(b);
        }
        for (Pointer b : s.outBuffers) {
          api.LiteRtDestroyTensorBuffer(b);
        }
      }
      api.LiteRtDestroyCompiledModel(l.compiled);
      api.LiteRtDestroyModel(l.model);
    }
    files.clear();
    api.LiteRtDestroyOptions(options);
    api.LiteRtDestroyEnvironment(env);
  }
}
