package androidx.activity.result.contract
abstract class ActivityResultContract<I, O>
class ActivityResultContracts private constructor() {
    class RequestPermission : ActivityResultContract<String, Boolean>()
    open class PickVisualMedia : ActivityResultContract<androidx.activity.result.PickVisualMediaRequest, android.net.Uri?>() {
        sealed interface VisualMediaType
        object ImageOnly : VisualMediaType
        object ImageAndVideo : VisualMediaType
    }
}
