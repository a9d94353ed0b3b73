package dev.kerasscan.demo

import com.google.ai.edge.litert.Accelerator
import com.google.ai.edge.litert.CompiledModel
import com.google.ai.edge.litert.Environment
import com.google.ai.edge.litert.TensorBuffer
import dev.kerasscan.cascade.CascadeException
import dev.kerasscan.cascade.DType
import dev.kerasscan.cascade.ModelCall
import dev.kerasscan.cascade.StageRunner
import dev.kerasscan.cascade.Tensor
import dev.kerasscan.cascade.TensorSpec
import java.nio.ByteBuffer
import java.nio.ByteOrder

/**
 * cascade-core's StageRunner over LiteRT's CompiledModel Kotlin API: one CompiledModel per
 * .tflite file (the cascade file holds one signature per stage), one set of input/output
 * TensorBuffers per signature, created once and reused for every frame. The runner only moves
 * bytes; quantization, chaining and the exit rule live in cascade-core, where the JVM
 * end-to-end test checks them against the LiteRT C library.
 *
 * Not thread safe: called from the app's single inference thread.
 */
class LiteRtStageRunner(
    private val source: AssetExportSource,
    private val accelerator: Accelerator = Accelerator.CPU,
) : StageRunner {

    private class Buffers(
        val inputs: Map<String, TensorBuffer>,
        val outputs: Map<String, TensorBuffer>,
    )

    private val environment: Environment = Environment.create()
    private val models = HashMap<String, CompiledModel>()
    private val buffers = HashMap<String, Buffers>()

    private fun model(file: String): CompiledModel =
        models.getOrPut(file) {
            CompiledModel.create(
                source.assets,
                source.assetPath(file),
                CompiledModel.Options(accelerator),
                environment,
            )
        }

    override fun run(call: ModelCall, input: Tensor): Map<String, Tensor> {
        val model = model(call.file)
        val signature = call.signatureKey
        val io = buffers.getOrPut("${call.file}:$signature") {
            Buffers(
                inputs = mapOf(call.inputName to model.createInputBuffer(call.inputName, signature)),
                outputs = call.outputSpecs().keys.associateWith { model.createOutputBuffer(it, signature) },
            )
        }
        write(io.inputs.getValue(call.inputName), input)
        model.run(io.inputs, io.outputs, signature)
        return io.outputs.mapValues { (name, buffer) -> read(buffer, call.outputSpecs().getValue(name)) }
    }

    private fun write(buffer: TensorBuffer, tensor: Tensor) {
        val spec = tensor.spec()
        when (spec.dtype()) {
            // TensorBuffer.writeInt8 copies raw bytes: right for int8 and uint8 alike.
            DType.INT8, DType.UINT8 -> buffer.writeInt8(tensor.data())
            DType.FLOAT32 -> {
                val floats = FloatArray(spec.elementCount())
                ByteBuffer.wrap(tensor.data()).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(floats)
                buffer.writeFloat(floats)
            }
            DType.INT32 -> {
                val ints = IntArray(spec.elementCount())
                ByteBuffer.wrap(tensor.data()).order(ByteOrder.LITTLE_ENDIAN).asIntBuffer().get(ints)
                buffer.writeInt(ints)
            }
            else -> throw unsupported(spec)
        }
    }

    private fun read(buffer: TensorBuffer, spec: TensorSpec): Tensor {
        val bytes = when (spec.dtype()) {
            DType.INT8, DType.UINT8 -> buffer.readInt8()
            DType.FLOAT32 -> {
                val floats = buffer.readFloat()
                val out = ByteBuffer.allocate(floats.size * 4).order(ByteOrder.LITTLE_ENDIAN)
                out.asFloatBuffer().put(floats)
                out.array()
            }
            DType.INT32 -> {
                val ints = buffer.readInt()
                val out = ByteBuffer.allocate(ints.size * 4).order(ByteOrder.LITTLE_ENDIAN)
                out.asIntBuffer().put(ints)
                out.array()
            }
            else -> throw unsupported(spec)
        }
        // Tensor checks the byte count against the manifest's shape and dtype.
        return Tensor(spec, bytes)
    }

    private fun unsupported(spec: TensorSpec) = CascadeException(
        "tensor ${spec.name()} is ${spec.dtype().jsonName()}, which LiteRT's Kotlin TensorBuffer" +
            " cannot read or write; export the int8 or float32 variant",
    )

    override fun close() {
        buffers.values.forEach { io ->
            io.inputs.values.forEach { it.close() }
            io.outputs.values.forEach { it.close() }
        }
        buffers.clear()
        models.values.forEach { it.close() }
        models.clear()
        environment.close()
    }
}
