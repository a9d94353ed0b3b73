package kotlinx.coroutines.flow
fun interface FlowCollector<in T> { suspend fun emit(value: T) }
interface Flow<out T> { suspend fun collect(collector: FlowCollector<T>) }
interface StateFlow<out T> : Flow<T> { val value: T }
interface MutableStateFlow<T> : StateFlow<T> {
    override var value: T
    fun compareAndSet(expect: T, update: T): Boolean
}
fun <T> MutableStateFlow(value: T): MutableStateFlow<T> = throw UnsupportedOperationException()
fun <T> MutableStateFlow<T>.asStateFlow(): StateFlow<T> = this
inline fun <T> MutableStateFlow<T>.update(function: (T) -> T) {
    while (true) {
        val prev = value
        if (compareAndSet(prev, function(prev))) return
    }
}
