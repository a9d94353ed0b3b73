package android.widget;
public class FrameLayout extends android.view.ViewGroup {}
