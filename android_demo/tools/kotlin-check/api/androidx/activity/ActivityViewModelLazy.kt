package androidx.activity
inline fun <reified VM : androidx.lifecycle.ViewModel> ComponentActivity.viewModels(): Lazy<VM> =
    throw UnsupportedOperationException()
