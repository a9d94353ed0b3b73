package dev.kerasscan.cascade;

import java.util.Map;

/** What a {@link StageRunner} must run: one signature of one model file of the export. */
public final class ModelCall {
  /** Plain file name inside the export (checked by FileNames.requireSafe). */
  public final String file;
  /** Signature key inside that file (stage_k for the cascade). */
  public final String signatureKey;
  /** Name of the single input of the signature. */
  public final String inputName;
  /** The signature as the manifest describes it (input and output specs by name). */
  public final Manifest.Signature signature;

  public ModelCall(String file, Manifest.Signature signature, String inputName) {
    this.file = FileNames.requireSafe(file);
    this.signatureKey = signature.key;
    this.signature = signature;
    this.inputName = inputName;
  }

  public TensorSpec inputSpec() {
    return signature.inputs.get(inputName);
  }

  public Map<String, TensorSpec> outputSpecs() {
    return signature.outputs;
  }

  @Override
  public String toString() {
    return file + ":" + signatureKey;
  }
}
