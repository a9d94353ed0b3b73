package dev.kerasscan.cascade;

/**
 * Base class of every error cascade-core reports. Unchecked, with a message meant to be
 * shown to a user as is (the app puts it on screen instead of crashing).
 */
public class CascadeException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  public CascadeException(String message) {
    super(message);
  }

  public CascadeException(String message, Throwable cause) {
    super(message, cause);
  }
}
