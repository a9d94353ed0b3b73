package dev.kerasscan.demo

import android.content.ContentResolver
import android.graphics.Bitmap
import android.graphics.BitmapFactory
import android.graphics.ImageDecoder
import android.graphics.Matrix
import android.net.Uri
import android.os.Build
import dev.kerasscan.cascade.InputImageException
import java.io.IOException

/** Decoding gallery images and turning bitmaps into the ARGB pixels cascade-core reads. */
object Bitmaps {

    /** Gallery images are decoded with their short side at least this long (and the input size). */
    private const val MIN_SHORT_SIDE = 512

    /**
     * Decodes an image the user picked, subsampled to keep memory low, as a software
     * ARGB_8888 bitmap. Throws InputImageException when Android cannot decode it.
     */
    fun decode(resolver: ContentResolver, uri: Uri, minSide: Int): Bitmap {
        val target = maxOf(MIN_SHORT_SIDE, minSide)
        try {
            val bitmap = if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.P) {
                // ImageDecoder also applies the EXIF orientation.
                val source = ImageDecoder.createSource(resolver, uri)
                ImageDecoder.decodeBitmap(source) { decoder, info, _ ->
                    decoder.allocator = ImageDecoder.ALLOCATOR_SOFTWARE
                    val sample = sampleSize(info.size.width, info.size.height, target)
                    if (sample > 1) decoder.setTargetSampleSize(sample)
                }
            } else {
                val bounds = BitmapFactory.Options().apply { inJustDecodeBounds = true }
                resolver.openInputStream(uri).use { BitmapFactory.decodeStream(it, null, bounds) }
                if (bounds.outWidth <= 0 || bounds.outHeight <= 0) {
                    throw InputImageException("the picked file is not an image Android can decode")
                }
                val options = BitmapFactory.Options().apply {
                    inSampleSize = sampleSize(bounds.outWidth, bounds.outHeight, target)
                    inPreferredConfig = Bitmap.Config.ARGB_8888
                }
                resolver.openInputStream(uri).use { BitmapFactory.decodeStream(it, null, options) }
                    ?: throw InputImageException("the picked file is not an image Android can decode")
            }
            return toArgb8888(bitmap)
        } catch (e: IOException) {
            throw InputImageException("cannot read the picked image: ${e.message}")
        }
    }

    /** Largest power of two that keeps the short side >= target. */
    fun sampleSize(width: Int, height: Int, target: Int): Int {
        var sample = 1
        while (minOf(width, height) / (sample * 2) >= target) sample *= 2
        return sample
    }

    fun toArgb8888(bitmap: Bitmap): Bitmap =
        if (bitmap.config == Bitmap.Config.ARGB_8888) bitmap
        else bitmap.copy(Bitmap.Config.ARGB_8888, false)
            ?: throw InputImageException("cannot convert a ${bitmap.config} image to ARGB_8888")

    /** Rotates a camera frame upright (CameraX reports the rotation the sensor needs). */
    fun rotate(bitmap: Bitmap, degrees: Int): Bitmap {
        if (degrees % 360 == 0) return bitmap
        val matrix = Matrix().apply { postRotate(degrees.toFloat()) }
        return Bitmap.createBitmap(bitmap, 0, 0, bitmap.width, bitmap.height, matrix, true)
    }

    /** Packed ARGB pixels, row major: the layout cascade-core's ImagePreprocessor reads. */
    fun argbPixels(bitmap: Bitmap): IntArray {
        val pixels = IntArray(bitmap.width * bitmap.height)
        bitmap.getPixels(pixels, 0, bitmap.width, 0, 0, bitmap.width, bitmap.height)
        return pixels
    }
}
