package android.widget;
public abstract class CompoundButton extends Button {
  public interface OnCheckedChangeListener { void onCheckedChanged(CompoundButton buttonView, boolean isChecked); }
  public void setChecked(boolean checked) {}
  public boolean isChecked() { return false; }
  public void setOnCheckedChangeListener(OnCheckedChangeListener listener) {}
}
