package kotlinx.coroutines
import kotlin.coroutines.AbstractCoroutineContextElement
import kotlin.coroutines.ContinuationInterceptor
import kotlin.coroutines.CoroutineContext
interface CoroutineScope { val coroutineContext: CoroutineContext }
interface Job : CoroutineContext.Element
fun CoroutineScope.launch(block: suspend CoroutineScope.() -> Unit): Job = throw UnsupportedOperationException()
abstract class CoroutineDispatcher : AbstractCoroutineContextElement(ContinuationInterceptor), ContinuationInterceptor
object Dispatchers { val IO: CoroutineDispatcher get() = throw UnsupportedOperationException() }
suspend fun <T> withContext(context: CoroutineContext, block: suspend CoroutineScope.() -> T): T =
    throw UnsupportedOperationException()
