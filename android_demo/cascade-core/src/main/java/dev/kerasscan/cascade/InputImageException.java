package dev.kerasscan.cascade;

/**
 * An image or camera frame cannot be fed to the model: smaller than the model input, wrong
 * number of channels, inconsistent pixel buffer, or a frame format the app cannot read.
 */
public class InputImageException extends CascadeException {
  private static final long serialVersionUID = 1L;

  public InputImageException(String message) {
    super(message);
  }
}
