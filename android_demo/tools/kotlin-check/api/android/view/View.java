package android.view;
public class View {
  public static final int VISIBLE = 0;
  public static final int GONE = 8;
  public interface OnClickListener { void onClick(View v); }
  public void setVisibility(int visibility) {}
  public int getVisibility() { return 0; }
  public void setOnClickListener(OnClickListener l) {}
  public void setEnabled(boolean enabled) {}
  public boolean isEnabled() { return true; }
}
