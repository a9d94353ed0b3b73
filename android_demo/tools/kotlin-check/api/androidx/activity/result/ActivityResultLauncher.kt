package androidx.activity.result
abstract class ActivityResultLauncher<I> { fun launch(input: I) {} }
fun interface ActivityResultCallback<O> { fun onActivityResult(result: O) }
class PickVisualMediaRequest
fun PickVisualMediaRequest(
    mediaType: androidx.activity.result.contract.ActivityResultContracts.PickVisualMedia.VisualMediaType =
        androidx.activity.result.contract.ActivityResultContracts.PickVisualMedia.ImageAndVideo,
): PickVisualMediaRequest = PickVisualMediaRequest()
