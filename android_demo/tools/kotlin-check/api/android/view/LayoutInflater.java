package android.view;
public abstract class LayoutInflater {}
