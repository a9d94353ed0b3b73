package dev.kerasscan.cascade;

import java.util.Map;

/**
 * Runs one signature of a LiteRT model. The Android app implements it with LiteRT's
 * CompiledModel; the JVM tests with the LiteRT C library through JNA. The runner only moves
 * bytes: quantization, chaining and the exit decision stay in cascade-core.
 */
public interface StageRunner extends AutoCloseable {
  /**
   * Runs {@code call} on {@code input} (bytes laid out as {@code call.inputSpec()}).
   *
   * @return every output of the signature by output name, each wrapped with the manifest's
   *     spec of that output ({@code call.outputSpecs()})
   * @throws Exception whatever the runtime throws; the cascade wraps it with the stage's name
   */
  Map<String, Tensor> run(ModelCall call, Tensor input) throws Exception;

  @Override
  void close();
}
