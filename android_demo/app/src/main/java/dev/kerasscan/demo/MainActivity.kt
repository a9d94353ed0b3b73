package dev.kerasscan.demo

import android.Manifest
import android.content.pm.PackageManager
import android.net.Uri
import android.os.Bundle
import android.util.Size
import android.view.View
import androidx.activity.result.PickVisualMediaRequest
import androidx.activity.result.contract.ActivityResultContracts
import androidx.activity.viewModels
import androidx.appcompat.app.AppCompatActivity
import androidx.camera.core.CameraSelector
import androidx.camera.core.ImageAnalysis
import androidx.camera.core.Preview
import androidx.camera.core.resolutionselector.ResolutionSelector
import androidx.camera.core.resolutionselector.ResolutionStrategy
import androidx.camera.lifecycle.ProcessCameraProvider
import androidx.core.content.ContextCompat
import androidx.lifecycle.Lifecycle
import androidx.lifecycle.lifecycleScope
import androidx.lifecycle.repeatOnLifecycle
import dev.kerasscan.cascade.CascadeResult
import dev.kerasscan.cascade.ScanCascade
import dev.kerasscan.demo.databinding.ActivityMainBinding
import java.util.Locale
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext

/**
 * One screen: live camera (CameraX preview + ImageAnalysis, keep-only-latest) or a gallery
 * image, the answer of the export's cascade (label, confidence, which exit answered, latency
 * of each stage), and a switch between "scalable" (thresholds, early exit) and "full model".
 */
class MainActivity : AppCompatActivity() {

    private lateinit var binding: ActivityMainBinding
    private val viewModel: DemoViewModel by viewModels()
    private var cameraProvider: ProcessCameraProvider? = null

    private val requestCamera =
        registerForActivityResult(ActivityResultContracts.RequestPermission()) { granted ->
            if (granted) startCamera()
            else viewModel.reportError(
                getString(R.string.camera_denied_title),
                IllegalStateException(getString(R.string.camera_denied)),
            )
        }

    private val pickImage =
        registerForActivityResult(ActivityResultContracts.PickVisualMedia()) { uri: Uri? ->
            if (uri != null) showPicked(uri)
        }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        binding = ActivityMainBinding.inflate(layoutInflater)
        setContentView(binding.root)

        binding.scalableSwitch.isChecked = viewModel.state.value.mode == ScanCascade.Mode.SCALABLE
        binding.scalableSwitch.setOnCheckedChangeListener { _, checked -> viewModel.setScalable(checked) }
        binding.cameraButton.setOnClickListener { useCamera() }
        binding.galleryButton.setOnClickListener {
            pickImage.launch(PickVisualMediaRequest(ActivityResultContracts.PickVisualMedia.ImageOnly))
        }
        binding.retryButton.setOnClickListener { viewModel.reload() }

        lifecycleScope.launch {
            repeatOnLifecycle(Lifecycle.State.STARTED) {
                viewModel.state.collect { render(it) }
            }
        }
        val picked = viewModel.picked
        if (!viewModel.liveCamera && picked != null) {
            // Recreated (e.g. rotated) while a gallery image was on screen.
            binding.preview.visibility = View.GONE
            binding.pickedImage.visibility = View.VISIBLE
            binding.pickedImage.setImageBitmap(picked)
        } else {
            useCamera()
        }
    }

    private fun useCamera() {
        viewModel.useCamera()
        binding.pickedImage.visibility = View.GONE
        binding.preview.visibility = View.VISIBLE
        if (ContextCompat.checkSelfPermission(this, Manifest.permission.CAMERA) ==
            PackageManager.PERMISSION_GRANTED
        ) {
            startCamera()
        } else {
            requestCamera.launch(Manifest.permission.CAMERA)
        }
    }

    private fun startCamera() {
        val future = ProcessCameraProvider.getInstance(this)
        future.addListener({
            try {
                val provider = future.get()
                cameraProvider = provider
                // ~640x480 frames are plenty for a small input and cheap to fit.
                val resolution = ResolutionSelector.Builder()
                    .setResolutionStrategy(
                        ResolutionStrategy(
                            Size(640, 480),
                            ResolutionStrategy.FALLBACK_RULE_CLOSEST_HIGHER_THEN_LOWER,
                        ),
                    )
                    .build()
                val preview = Preview.Builder().build()
                preview.setSurfaceProvider(binding.preview.surfaceProvider)
                val analysis = ImageAnalysis.Builder()
                    .setResolutionSelector(resolution)
                    .setBackpressureStrategy(ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST)
                    .setOutputImageFormat(ImageAnalysis.OUTPUT_IMAGE_FORMAT_RGBA_8888)
                    .build()
                analysis.setAnalyzer(viewModel.inferenceExecutor) { image -> viewModel.analyzeFrame(image) }
                provider.unbindAll()
                provider.bindToLifecycle(this, CameraSelector.DEFAULT_BACK_CAMERA, preview, analysis)
            } catch (e: Exception) {
                viewModel.reportError(getString(R.string.camera_failed), e)
            }
        }, ContextCompat.getMainExecutor(this))
    }

    private fun showPicked(uri: Uri) {
        viewModel.liveCamera = false
        cameraProvider?.unbindAll()
        binding.preview.visibility = View.GONE
        binding.pickedImage.visibility = View.VISIBLE
        val minSide = viewModel.state.value.inputSide
        lifecycleScope.launch {
            try {
                val bitmap = withContext(Dispatchers.IO) { Bitmaps.decode(contentResolver, uri, minSide) }
                binding.pickedImage.setImageBitmap(bitmap)
                viewModel.classifyPicked(bitmap)
            } catch (e: Exception) {
                binding.pickedImage.setImageDrawable(null)
                viewModel.reportError(getString(R.string.image_failed), e)
            } catch (e: OutOfMemoryError) {
                binding.pickedImage.setImageDrawable(null)
                viewModel.reportError(getString(R.string.image_failed), e)
            }
        }
    }

    private fun render(state: ScreenState) {
        binding.modelInfo.text = when (state.status) {
            ScreenState.Status.LOADING -> getString(R.string.loading)
            else -> state.modelInfo
        }
        binding.scalableSwitch.isEnabled = state.status == ScreenState.Status.READY
        binding.cameraButton.isEnabled = state.status == ScreenState.Status.READY
        binding.galleryButton.isEnabled = state.status == ScreenState.Status.READY

        val error = state.error
        binding.errorCard.visibility = if (error == null) View.GONE else View.VISIBLE
        if (error != null) {
            binding.errorTitle.text = error.title
            binding.errorText.text = error.message
            binding.retryButton.visibility = if (error.fatal) View.VISIBLE else View.GONE
        }

        val r = state.result
        if (r == null) {
            binding.labelText.text = getString(R.string.no_result)
            binding.confidenceText.text = ""
            binding.exitText.text = ""
            binding.latencyText.text = ""
        } else {
            binding.labelText.text = r.label
            binding.confidenceText.text = String.format(
                Locale.ROOT,
                "p = %.3f · confidence %.3f · from %s",
                r.probability,
                r.confidence,
                state.resultSource,
            )
            binding.exitText.text = exitLine(state, r)
            binding.latencyText.text = latencyLines(state, r)
        }
        binding.savingText.text = savingLine(state)
    }

    private fun exitLine(state: ScreenState, r: CascadeResult): String =
        if (state.resultMode == ScanCascade.Mode.FULL) {
            getString(R.string.exit_full)
        } else if (r.early) {
            getString(R.string.exit_early, r.exitName, r.exitIndex + 1, state.numExits)
        } else {
            getString(R.string.exit_final, r.exitName, state.numExits)
        }

    private fun latencyLines(state: ScreenState, r: CascadeResult): String {
        val lines = StringBuilder()
        for (t in r.timings) {
            lines.append(String.format(Locale.ROOT, "%-12s %7.2f ms\n", t.name, t.totalMillis()))
        }
        lines.append(String.format(Locale.ROOT, "%-12s %7.2f ms\n", "total", r.totalMillis()))
        lines.append(
            String.format(
                Locale.ROOT,
                "MACs %.2f M (full model %.2f M)",
                r.macs / 1e6,
                state.fullModelMacs / 1e6,
            ),
        )
        return lines.toString()
    }

    private fun savingLine(state: ScreenState): String {
        if (state.averages.isEmpty()) return ""
        return state.averages.entries.sortedBy { it.key.ordinal }.joinToString("\n") { (mode, a) ->
            String.format(
                Locale.ROOT,
                "%s: %.2f ms, %.2f M MACs, %.0f%% early (last %d)",
                if (mode == ScanCascade.Mode.SCALABLE) getString(R.string.mode_scalable) else getString(R.string.mode_full),
                a.millis,
                a.macs / 1e6,
                100 * a.earlyShare,
                a.count,
            )
        }
    }
}
