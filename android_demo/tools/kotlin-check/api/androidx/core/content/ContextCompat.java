package androidx.core.content;
public class ContextCompat {
  public static int checkSelfPermission(android.content.Context context, String permission) { return 0; }
  public static java.util.concurrent.Executor getMainExecutor(android.content.Context context) { return null; }
}
