package dev.kerasscan.cascade;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import java.util.List;
import org.junit.Test;

public class JsonSchemaValidatorTest {
  private static List<String> check(String schema, String instance) {
    return new JsonSchemaValidator(TestSupport.json(schema))
        .validate(TestSupport.json("{\"x\": " + instance + "}").opt("x"));
  }

  @Test
  public void integersAcceptIntegralNumbersOnly() {
    String s = "{\"type\": \"integer\", \"minimum\": 1}";
    assertEquals(List.of(), check(s, "3"));
    assertEquals(List.of(), check(s, "3.0"));
    assertEquals(1, check(s, "3.5").size());
    assertEquals(1, check(s, "0").size());
    assertEquals(1, check(s, "\"3\"").size());
  }

  @Test
  public void prefixItemsRefAndOneOf() {
    String s =
        "{\"$defs\": {\"n\": {\"type\": \"number\"}},"
            + " \"type\": \"array\", \"prefixItems\": [{\"$ref\": \"#/$defs/n\"}, {\"type\": \"string\"}],"
            + " \"minItems\": 2, \"maxItems\": 2}";
    assertEquals(List.of(), check(s, "[1.5, \"a\"]"));
    assertTrue(check(s, "[\"a\", \"a\"]").get(0).startsWith("0: "));
    assertEquals(1, check(s, "[1, \"a\", 3]").size());
    String o = "{\"oneOf\": [{\"type\": \"null\"}, {\"type\": \"object\"}]}";
    assertEquals(List.of(), check(o, "null"));
    assertEquals(List.of(), check(o, "{}"));
    assertTrue(check(o, "3").get(0).contains("matches none"));
  }

  @Test
  public void patternIsASearchAndPropertyNamesApply() {
    String s =
        "{\"type\": \"object\", \"propertyNames\": {\"pattern\": \"^[a-z]+$\"},"
            + " \"additionalProperties\": {\"type\": \"integer\"}}";
    assertEquals(List.of(), check(s, "{\"ab\": 1}"));
    assertTrue(check(s, "{\"a/b\": 1}").get(0).startsWith("key a/b"));
    assertTrue(check(s, "{\"ab\": \"1\"}").get(0).contains("must be of type"));
  }

  @Test
  public void unsupportedKeywordsAreRefusedNotIgnored() {
    IllegalArgumentException e =
        assertThrows(
            IllegalArgumentException.class,
            () -> new JsonSchemaValidator(TestSupport.json("{\"if\": {\"type\": \"string\"}}")));
    assertTrue(e.getMessage(), e.getMessage().contains("\"if\""));
  }
}
