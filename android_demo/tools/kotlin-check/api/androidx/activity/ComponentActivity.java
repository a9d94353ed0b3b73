package androidx.activity;
public class ComponentActivity extends android.content.ContextWrapper implements androidx.lifecycle.LifecycleOwner {
  public androidx.lifecycle.Lifecycle getLifecycle() { return null; }
  protected void onCreate(android.os.Bundle savedInstanceState) {}
  public android.view.LayoutInflater getLayoutInflater() { return null; }
  public void setContentView(android.view.View view) {}
  public final <I, O> androidx.activity.result.ActivityResultLauncher<I> registerForActivityResult(
      androidx.activity.result.contract.ActivityResultContract<I, O> contract,
      androidx.activity.result.ActivityResultCallback<O> callback) { return null; }
}
