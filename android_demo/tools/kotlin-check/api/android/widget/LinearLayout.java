package android.widget;
public class LinearLayout extends android.view.ViewGroup {}
