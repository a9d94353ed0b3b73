package dev.kerasscan.demo

import android.app.Application
import android.graphics.Bitmap
import android.graphics.PixelFormat
import android.util.Log
import androidx.camera.core.ImageProxy
import androidx.lifecycle.AndroidViewModel
import dev.kerasscan.cascade.CascadeException
import dev.kerasscan.cascade.CascadeResult
import dev.kerasscan.cascade.FileVerifier
import dev.kerasscan.cascade.InputImageException
import dev.kerasscan.cascade.Manifest
import dev.kerasscan.cascade.ManifestException
import dev.kerasscan.cascade.ScanCascade
import java.util.ArrayDeque
import java.util.Locale
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.flow.update

/**
 * Owns the cascade across configuration changes. Every model call runs on one background
 * thread ([inferenceExecutor], also CameraX's analyzer executor); every failure becomes an
 * error card in [state], never an exception that reaches Android (no crash loop).
 */
class DemoViewModel(application: Application) : AndroidViewModel(application) {

    companion object {
        private const val TAG = "ScanDemo"

        /** The export folder inside app/src/main/assets. */
        const val EXPORT_DIR = "scan_export"

        /** Frames / images averaged per mode for the saving line. */
        private const val WINDOW = 30
    }

    val inferenceExecutor: ExecutorService = Executors.newSingleThreadExecutor()

    private val _state = MutableStateFlow(ScreenState())
    val state: StateFlow<ScreenState> = _state.asStateFlow()

    // Only touched on inferenceExecutor.
    private var cascade: ScanCascade? = null
    private val history = HashMap<ScanCascade.Mode, ArrayDeque<CascadeResult>>()

    @Volatile private var mode = ScanCascade.Mode.SCALABLE

    /** False while a gallery image is on screen: camera frames are dropped. */
    @Volatile var liveCamera = true

    /** The gallery image on screen, re-run when the mode changes (and restored on rotation). */
    @Volatile var picked: Bitmap? = null
        private set

    init {
        reload()
    }

    /** (Re)loads the export from assets: manifest, files' SHA-256, LiteRT models. */
    fun reload() {
        _state.update { it.copy(status = ScreenState.Status.LOADING, error = null) }
        inferenceExecutor.execute { load() }
    }

    private fun load() {
        cascade?.close()
        cascade = null
        history.clear()
        try {
            val source = AssetExportSource(getApplication<Application>().assets, EXPORT_DIR)
            val manifest = Manifest.load(source)
            val variant = manifest.variant(manifest.defaultVariant())
            FileVerifier.verify(manifest, source, ScanCascade.requiredFiles(variant))
            val loaded = ScanCascade(manifest, variant.mode, LiteRtStageRunner(source))
            cascade = loaded
            val rule = manifest.rule()
            val info = String.format(
                Locale.ROOT,
                "%s · %s · %d exits · thresholds %s (%s, fallback %s)",
                manifest.modelName(),
                variant.mode,
                manifest.numExits(),
                rule.thresholds().joinToString(", ") { String.format(Locale.ROOT, "%.3f", it) },
                rule.measure().jsonName(),
                rule.fallback().jsonName(),
            )
            _state.update {
                it.copy(
                    status = ScreenState.Status.READY,
                    modelInfo = info,
                    numExits = manifest.numExits(),
                    inputSide = maxOf(manifest.input().height, manifest.input().width),
                    fullModelMacs = manifest.exits()[manifest.numExits() - 1].standaloneMacs,
                    averages = emptyMap(),
                    result = null,
                    error = null,
                )
            }
        } catch (e: ManifestException) {
            fail("The export in assets/$EXPORT_DIR cannot be used", e)
        } catch (e: CascadeException) {
            fail("The export in assets/$EXPORT_DIR cannot be used", e)
        } catch (e: Throwable) {
            // LiteRtException, UnsatisfiedLinkError (no native library for this ABI), OOM...
            fail("LiteRT could not load the models", e)
        }
    }

    private fun fail(title: String, e: Throwable) {
        Log.e(TAG, title, e)
        cascade?.close()
        cascade = null
        _state.update {
            it.copy(
                status = ScreenState.Status.FAILED,
                error = ScreenState.ErrorInfo(title, e.message ?: e.toString(), fatal = true),
            )
        }
    }

    fun setScalable(scalable: Boolean) {
        mode = if (scalable) ScanCascade.Mode.SCALABLE else ScanCascade.Mode.FULL
        _state.update { it.copy(mode = mode) }
        val image = picked
        if (!liveCamera && image != null) classifyPicked(image)
    }

    /** CameraX analyzer: runs on [inferenceExecutor]; always closes the frame. */
    fun analyzeFrame(image: ImageProxy) {
        try {
            if (!liveCamera || cascade == null) return
            if (image.format != PixelFormat.RGBA_8888) {
                throw InputImageException(
                    "unexpected camera frame format 0x${Integer.toHexString(image.format)}" +
                        " (the analyzer asks CameraX for RGBA_8888)",
                )
            }
            val upright = Bitmaps.rotate(image.toBitmap(), image.imageInfo.rotationDegrees)
            classify(upright, "camera")
        } catch (e: Throwable) {
            imageFailed("Camera frame not usable", e)
        } finally {
            image.close()
        }
    }

    /** Back to live frames: the gallery image is dropped. */
    fun useCamera() {
        liveCamera = true
        picked = null
    }

    /** A decoded gallery image; classified on [inferenceExecutor]. */
    fun classifyPicked(bitmap: Bitmap) {
        picked = bitmap
        inferenceExecutor.execute {
            try {
                if (cascade == null) return@execute
                classify(bitmap, "gallery")
            } catch (e: Throwable) {
                imageFailed("Image not usable", e)
            }
        }
    }

    /** An error outside the inference thread (decoding, camera start). */
    fun reportError(title: String, e: Throwable) = imageFailed(title, e)

    private fun classify(bitmap: Bitmap, source: String) {
        val c = cascade ?: return
        val m = mode
        val pixels = Bitmaps.argbPixels(bitmap)
        val result = c.classifyFrame(pixels, bitmap.width, bitmap.height, m)
        val window = history.getOrPut(m) { ArrayDeque() }
        window.addLast(result)
        while (window.size > WINDOW) window.removeFirst()
        val averages = history.mapValues { (_, results) ->
            ScreenState.Average(
                count = results.size,
                millis = results.sumOf { it.totalMillis() } / results.size,
                macs = results.sumOf { it.macs.toDouble() } / results.size,
                earlyShare = results.count { it.early }.toDouble() / results.size,
            )
        }
        _state.update {
            it.copy(
                result = result,
                resultMode = m,
                resultSource = source,
                averages = averages,
                error = if (it.error?.fatal == true) it.error else null,
            )
        }
    }

    private fun imageFailed(title: String, e: Throwable) {
        Log.w(TAG, title, e)
        val message = when (e) {
            is CascadeException -> e.message ?: e.toString()
            is OutOfMemoryError -> "not enough memory for this image"
            else -> e.toString()
        }
        _state.update {
            if (it.error?.fatal == true) it
            else it.copy(error = ScreenState.ErrorInfo(title, message, fatal = false))
        }
    }

    override fun onCleared() {
        inferenceExecutor.execute {
            cascade?.close()
            cascade = null
        }
        inferenceExecutor.shutdown()
    }
}
