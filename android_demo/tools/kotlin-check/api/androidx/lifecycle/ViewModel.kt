package androidx.lifecycle
abstract class ViewModel { protected open fun onCleared() {} }
open class AndroidViewModel(private val application: android.app.Application) : ViewModel() {
    @Suppress("UNCHECKED_CAST")
    open fun <T : android.app.Application> getApplication(): T = application as T
}
abstract class LifecycleCoroutineScope : kotlinx.coroutines.CoroutineScope
val LifecycleOwner.lifecycleScope: LifecycleCoroutineScope get() = throw UnsupportedOperationException()
suspend fun LifecycleOwner.repeatOnLifecycle(
    state: Lifecycle.State,
    block: suspend kotlinx.coroutines.CoroutineScope.() -> Unit,
): Unit = throw UnsupportedOperationException()
