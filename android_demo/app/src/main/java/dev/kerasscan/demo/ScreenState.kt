package dev.kerasscan.demo

import dev.kerasscan.cascade.CascadeResult
import dev.kerasscan.cascade.ScanCascade

/** Everything the screen shows; rendered by MainActivity. */
data class ScreenState(
    val status: Status = Status.LOADING,
    /** Model, variant, thresholds: one line under the controls. */
    val modelInfo: String = "",
    val mode: ScanCascade.Mode = ScanCascade.Mode.SCALABLE,
    /** The last answer, null until the first image is classified. */
    val result: CascadeResult? = null,
    val resultMode: ScanCascade.Mode? = null,
    /** "camera" or "gallery". */
    val resultSource: String = "",
    /** Number of exits (K + 1) and MACs of the full model, for the result lines. */
    val numExits: Int = 0,
    /** Longest side of the model input (gallery images are decoded at least this large). */
    val inputSide: Int = 1,
    val fullModelMacs: Long = 0,
    /** Rolling means per mode, to see the saving. */
    val averages: Map<ScanCascade.Mode, Average> = emptyMap(),
    /** Shown in the red error card; null hides it. */
    val error: ErrorInfo? = null,
) {
    enum class Status { LOADING, READY, FAILED }

    data class Average(val count: Int, val millis: Double, val macs: Double, val earlyShare: Double)

    /**
     * @param fatal the export could not be loaded: only "Retry" helps. Otherwise one image or
     *     frame failed and the next one may succeed.
     */
    data class ErrorInfo(val title: String, val message: String, val fatal: Boolean)
}
