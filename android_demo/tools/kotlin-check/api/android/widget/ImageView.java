package android.widget;
public class ImageView extends android.view.View {
  public void setImageBitmap(android.graphics.Bitmap bm) {}
  public void setImageDrawable(android.graphics.drawable.Drawable drawable) {}
}
