// Declarations transcribed from google-ai-edge/LiteRT litert/kotlin/.../{Common,Environment,Model,TensorBuffer}.kt
package com.google.ai.edge.litert
import android.content.res.AssetManager
class LiteRtException(message: String) : Exception(message)
enum class Accelerator(val value: Int) { NONE(0), CPU(1), GPU(2), NPU(3) }
abstract class JniHandle internal constructor(internal val handle: Long) : AutoCloseable {
    protected abstract fun destroy()
    final override fun close() { destroy() }
}
class Environment private constructor(handle: Long) : JniHandle(handle) {
    override fun destroy() {}
    companion object {
        @Throws(LiteRtException::class) @JvmStatic
        fun create(options: Map<Int, String> = mapOf()): Environment = Environment(0)
    }
}
class TensorBuffer internal constructor(handle: Long) : JniHandle(handle) {
    fun writeInt(data: IntArray) {}
    fun writeFloat(data: FloatArray) {}
    fun writeInt8(data: ByteArray) {}
    fun readInt(): IntArray = IntArray(0)
    fun readFloat(): FloatArray = FloatArray(0)
    fun readInt8(): ByteArray = ByteArray(0)
    override fun destroy() {}
}
class CompiledModel private constructor(handle: Long) : JniHandle(handle) {
    class Options constructor(internal val accelerators: Set<Accelerator>) {
        constructor(vararg accelerators: Accelerator) : this(setOf(*accelerators))
    }
    fun createInputBuffer(inputName: String, signature: String? = null): TensorBuffer = TensorBuffer(0)
    fun createOutputBuffer(outputName: String, signature: String? = null): TensorBuffer = TensorBuffer(0)
    fun run(inputs: Map<String, TensorBuffer>, outputs: Map<String, TensorBuffer>, signature: String? = null) {}
    override fun destroy() {}
    companion object {
        @Throws(LiteRtException::class) @JvmOverloads @JvmStatic
        fun create(
            assetManager: AssetManager,
            assetName: String,
            options: Options = Options(Accelerator.CPU),
            optionalEnv: Environment? = null,
        ): CompiledModel = CompiledModel(0)
    }
}
