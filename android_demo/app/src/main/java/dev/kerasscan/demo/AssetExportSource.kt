package dev.kerasscan.demo

import android.content.res.AssetManager
import dev.kerasscan.cascade.ExportSource
import dev.kerasscan.cascade.FileNames
import java.io.InputStream

/**
 * An export folder shipped in the APK's assets (app/src/main/assets/<folder>/).
 * AssetManager.open throws FileNotFoundException for a missing file, which cascade-core turns
 * into a "missing file" ManifestException.
 */
class AssetExportSource(val assets: AssetManager, private val folder: String) : ExportSource {

    /** Asset path of a file of the export; refuses anything but a plain file name. */
    fun assetPath(name: String): String = "$folder/${FileNames.requireSafe(name)}"

    override fun open(name: String): InputStream = assets.open(assetPath(name))

    override fun describe(): String = "assets/$folder"
}
