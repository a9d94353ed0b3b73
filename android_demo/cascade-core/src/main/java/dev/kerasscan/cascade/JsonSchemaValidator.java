package dev.kerasscan.cascade;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.regex.Pattern;
import org.json.JSONArray;
import org.json.JSONObject;

/**
 * Validates JSON against a JSON Schema (draft 2020-12), supporting the keywords
 * tflite/manifest.schema.json uses, so the app applies the exact rules of the contract
 * rather than a hand copy of them. A schema using a keyword this class does not implement is
 * rejected (never silently ignored).
 */
public final class JsonSchemaValidator {
  private static final Set<String> ANNOTATIONS =
      new HashSet<>(
          Arrays.asList(
              "$schema", "$id", "$comment", "$defs", "title", "description", "default",
              "examples", "deprecated", "readOnly", "writeOnly"));
  private static final Set<String> SUPPORTED =
      new HashSet<>(
          Arrays.asList(
              "type", "enum", "const", "required", "properties", "additionalProperties",
              "propertyNames", "minProperties", "maxProperties", "items", "prefixItems",
              "minItems", "maxItems", "minimum", "maximum", "exclusiveMinimum",
              "exclusiveMaximum", "minLength", "maxLength", "pattern", "$ref", "oneOf",
              "anyOf", "allOf", "not", "uniqueItems"));
  private static final int MAX_ERRORS = 8;

  private final JSONObject root;

  public JsonSchemaValidator(JSONObject schema) {
    this.root = schema;
    checkKeywords(schema, "#");
  }

  /** Returns the violations (empty when valid), each "path: message". */
  public List<String> validate(Object instance) {
    List<String> errors = new ArrayList<>();
    validate(instance, root, ROOT, errors);
    return errors;
  }

  private void checkKeywords(Object schema, String where) {
    if (schema instanceof Boolean) {
      return;
    }
    if (!(schema instanceof JSONObject)) {
      throw new IllegalArgumentException("schema at " + where + " is not an object");
    }
    JSONObject s = (JSONObject) schema;
    for (Iterator<String> it = s.keys(); it.hasNext(); ) {
      String k = it.next();
      if (!ANNOTATIONS.contains(k) && !SUPPORTED.contains(k)) {
        throw new IllegalArgumentException(
            "schema keyword \"" + k + "\" at " + where + " is not supported by "
                + "JsonSchemaValidator; extend it before relying on that schema");
      }
    }
    for (String k : new String[] {"additionalProperties", "propertyNames", "items", "not"}) {
      if (s.has(k)) {
        checkKeywords(s.opt(k), where + "/" + k);
      }
    }
    for (String k : new String[] {"properties", "$defs"}) {
      JSONObject m = s.optJSONObject(k);
      if (m != null) {
        for (Iterator<String> it = m.keys(); it.hasNext(); ) {
          String name = it.next();
          checkKeywords(m.opt(name), where + "/" + k + "/" + name);
        }
      }
    }
    for (String k : new String[] {"prefixItems", "oneOf", "anyOf", "allOf"}) {
      JSONArray a = s.optJSONArray(k);
      if (a != null) {
        for (int i = 0; i < a.length(); i++) {
          checkKeywords(a.opt(i), where + "/" + k + "/" + i);
        }
      }
    }
  }

  /** Where an error is: slash-separated keys and indices, as the Python runtimes name it. */
  static final String ROOT = "(root)";

  static String child(String path, String key) {
    return ROOT.equals(path) ? key : path + "/" + key;
  }

  private void validate(Object x, Object schemaObj, String path, List<String> errors) {
    if (errors.size() >= MAX_ERRORS) {
      return;
    }
    if (schemaObj instanceof Boolean) {
      if (!(Boolean) schemaObj) {
        errors.add(path + ": is not allowed here");
      }
      return;
    }
    JSONObject s = (JSONObject) schemaObj;
    if (s.has("$ref")) {
      validate(x, resolve(s.optString("$ref")), path, errors);
    }
    if (s.has("type") && !typeMatches(x, s.opt("type"))) {
      errors.add(path + ": must be of type " + s.opt("type") + ", found " + describe(x));
      return;
    }
    if (s.has("const") && !jsonEquals(x, s.opt("const"))) {
      errors.add(path + ": must be " + s.opt("const") + ", found " + describe(x));
    }
    if (s.has("enum")) {
      JSONArray e = s.optJSONArray("enum");
      boolean any = false;
      for (int i = 0; i < e.length() && !any; i++) {
        any = jsonEquals(x, e.opt(i));
      }
      if (!any) {
        errors.add(path + ": must be one of " + e + ", found " + describe(x));
      }
    }
    if (x instanceof Number && !(x instanceof Boolean)) {
      double v = ((Number) x).doubleValue();
      if (s.has("minimum") && v < s.optDouble("minimum")) {
        errors.add(path + ": must be >= " + s.opt("minimum") + ", found " + x);
      }
      if (s.has("maximum") && v > s.optDouble("maximum")) {
        errors.add(path + ": must be <= " + s.opt("maximum") + ", found " + x);
      }
      if (s.has("exclusiveMinimum") && v <= s.optDouble("exclusiveMinimum")) {
        errors.add(path + ": must be > " + s.opt("exclusiveMinimum") + ", found " + x);
      }
      if (s.has("exclusiveMaximum") && v >= s.optDouble("exclusiveMaximum")) {
        errors.add(path + ": must be < " + s.opt("exclusiveMaximum") + ", found " + x);
      }
    }
    if (x instanceof String) {
      String str = (String) x;
      int len = str.codePointCount(0, str.length());
      if (s.has("minLength") && len < s.optInt("minLength")) {
        errors.add(path + ": must have at least " + s.opt("minLength") + " characters");
      }
      if (s.has("maxLength") && len > s.optInt("maxLength")) {
        errors.add(path + ": must have at most " + s.opt("maxLength") + " characters");
      }
      if (s.has("pattern") && !Pattern.compile(s.optString("pattern")).matcher(str).find()) {
        errors.add(
            path + ": \"" + str + "\" does not match the pattern " + s.optString("pattern"));
      }
    }
    if (x instanceof JSONArray) {
      validateArray((JSONArray) x, s, path, errors);
    }
    if (x instanceof JSONObject) {
      validateObject((JSONObject) x, s, path, errors);
    }
    if (s.has("allOf")) {
      JSONArray a = s.optJSONArray("allOf");
      for (int i = 0; i < a.length(); i++) {
        validate(x, a.opt(i), path, errors);
      }
    }
    if (s.has("anyOf") || s.has("oneOf")) {
      boolean one = s.has("oneOf");
      JSONArray a = s.optJSONArray(one ? "oneOf" : "anyOf");
      int matches = 0;
      List<String> firstErrors = null;
      for (int i = 0; i < a.length(); i++) {
        List<String> sub = new ArrayList<>();
        validate(x, a.opt(i), path, sub);
        if (sub.isEmpty()) {
          matches++;
        } else if (firstErrors == null || sub.size() < firstErrors.size()) {
          firstErrors = sub;
        }
      }
      if (matches == 0) {
        errors.add(
            path + ": matches none of the allowed forms"
                + (firstErrors != null ? " (closest: " + firstErrors.get(0) + ")" : ""));
      } else if (one && matches > 1) {
        errors.add(path + ": matches " + matches + " forms of a oneOf, must match exactly one");
      }
    }
    if (s.has("not")) {
      List<String> sub = new ArrayList<>();
      validate(x, s.opt("not"), path, sub);
      if (sub.isEmpty()) {
        errors.add(path + ": matches a form that is not allowed");
      }
    }
  }

  private void validateArray(JSONArray a, JSONObject s, String path, List<String> errors) {
    if (s.has("minItems") && a.length() < s.optInt("minItems")) {
      errors.add(path + ": must hold at least " + s.opt("minItems") + " items, has " + a.length());
    }
    if (s.has("maxItems") && a.length() > s.optInt("maxItems")) {
      errors.add(path + ": must hold at most " + s.opt("maxItems") + " items, has " + a.length());
    }
    int prefix = 0;
    JSONArray pre = s.optJSONArray("prefixItems");
    if (pre != null) {
      prefix = pre.length();
      for (int i = 0; i < Math.min(prefix, a.length()); i++) {
        validate(a.opt(i), pre.opt(i), child(path, Integer.toString(i)), errors);
      }
    }
    if (s.has("items")) {
      for (int i = prefix; i < a.length(); i++) {
        validate(a.opt(i), s.opt("items"), child(path, Integer.toString(i)), errors);
      }
    }
    if (s.optBoolean("uniqueItems", false)) {
      for (int i = 0; i < a.length(); i++) {
        for (int j = i + 1; j < a.length(); j++) {
          if (jsonEquals(a.opt(i), a.opt(j))) {
            errors.add(path + ": items " + i + " and " + j + " are equal, must be unique");
          }
        }
      }
    }
  }

  private void validateObject(JSONObject o, JSONObject s, String path, List<String> errors) {
    JSONArray req = s.optJSONArray("required");
    if (req != null) {
      for (int i = 0; i < req.length(); i++) {
        if (!o.has(req.optString(i))) {
          errors.add(path + ": the required key \"" + req.optString(i) + "\" is missing");
        }
      }
    }
    if (s.has("minProperties") && o.length() < s.optInt("minProperties")) {
      errors.add(path + ": must hold at least " + s.opt("minProperties") + " entries");
    }
    if (s.has("maxProperties") && o.length() > s.optInt("maxProperties")) {
      errors.add(path + ": must hold at most " + s.opt("maxProperties") + " entries");
    }
    JSONObject props = s.optJSONObject("properties");
    for (Iterator<String> it = o.keys(); it.hasNext(); ) {
      String k = it.next();
      String sub = child(path, k);
      if (s.has("propertyNames")) {
        List<String> nameErrors = new ArrayList<>();
        validate(k, s.opt("propertyNames"), sub, nameErrors);
        for (String e : nameErrors) {
          errors.add("key " + e);
        }
      }
      if (props != null && props.has(k)) {
        validate(o.opt(k), props.opt(k), sub, errors);
      } else if (s.has("additionalProperties")) {
        Object ap = s.opt("additionalProperties");
        if (Boolean.FALSE.equals(ap)) {
          errors.add(sub + ": unknown key (not allowed by the schema)");
        } else {
          validate(o.opt(k), ap, sub, errors);
        }
      }
    }
  }

  private Object resolve(String ref) {
    if (!ref.startsWith("#")) {
      throw new IllegalArgumentException("only local $ref are supported, got " + ref);
    }
    Object node = root;
    for (String part : ref.substring(1).split("/")) {
      if (part.isEmpty()) {
        continue;
      }
      part = part.replace("~1", "/").replace("~0", "~");
      if (!(node instanceof JSONObject) || !((JSONObject) node).has(part)) {
        throw new IllegalArgumentException("unresolvable $ref " + ref);
      }
      node = ((JSONObject) node).opt(part);
    }
    return node;
  }

  private static boolean typeMatches(Object x, Object type) {
    if (type instanceof JSONArray) {
      JSONArray a = (JSONArray) type;
      for (int i = 0; i < a.length(); i++) {
        if (typeMatches(x, a.opt(i))) {
          return true;
        }
      }
      return false;
    }
    switch ((String) type) {
      case "object":
        return x instanceof JSONObject;
      case "array":
        return x instanceof JSONArray;
      case "string":
        return x instanceof String;
      case "boolean":
        return x instanceof Boolean;
      case "null":
        return x == null || JSONObject.NULL.equals(x);
      case "number":
        return x instanceof Number && isFinite((Number) x);
      case "integer":
        return isInteger(x);
      default:
        throw new IllegalArgumentException("unknown JSON Schema type " + type);
    }
  }

  private static boolean isFinite(Number n) {
    double d = n.doubleValue();
    return !Double.isNaN(d) && !Double.isInfinite(d);
  }

  /** JSON Schema integers: any number with a zero fractional part (1.0 included). */
  static boolean isInteger(Object x) {
    if (x instanceof Integer || x instanceof Long || x instanceof Short || x instanceof Byte) {
      return true;
    }
    if (x instanceof java.math.BigInteger) {
      return true;
    }
    if (x instanceof Number) {
      double d = ((Number) x).doubleValue();
      return isFinite((Number) x) && d == Math.rint(d);
    }
    return false;
  }

  static boolean jsonEquals(Object a, Object b) {
    if (a instanceof Number && b instanceof Number) {
      return ((Number) a).doubleValue() == ((Number) b).doubleValue();
    }
    if (a instanceof JSONArray && b instanceof JSONArray) {
      JSONArray x = (JSONArray) a;
      JSONArray y = (JSONArray) b;
      if (x.length() != y.length()) {
        return false;
      }
      for (int i = 0; i < x.length(); i++) {
        if (!jsonEquals(x.opt(i), y.opt(i))) {
          return false;
        }
      }
      return true;
    }
    if (a instanceof JSONObject && b instanceof JSONObject) {
      JSONObject x = (JSONObject) a;
      JSONObject y = (JSONObject) b;
      if (x.length() != y.length()) {
        return false;
      }
      for (Iterator<String> it = x.keys(); it.hasNext(); ) {
        String k = it.next();
        if (!y.has(k) || !jsonEquals(x.opt(k), y.opt(k))) {
          return false;
        }
      }
      return true;
    }
    if (a == null || b == null) {
      return (a == null || JSONObject.NULL.equals(a)) && (b == null || JSONObject.NULL.equals(b));
    }
    return a.equals(b);
  }

  private static String describe(Object x) {
    if (x == null || JSONObject.NULL.equals(x)) {
      return "null";
    }
    String type =
        x instanceof JSONObject
            ? "an object"
            : x instanceof JSONArray
                ? "an array"
                : x instanceof String ? "a string" : x instanceof Boolean ? "a boolean" : "";
    String text = String.valueOf(x);
    if (text.length() > 60) {
      text = text.substring(0, 57) + "...";
    }
    return type.isEmpty() ? text : String.format(Locale.ROOT, "%s %s", type, text);
  }
}
