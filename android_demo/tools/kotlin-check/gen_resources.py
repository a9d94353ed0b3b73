"""Generates R.java (string and color ids) and ActivityMainBinding.java from the app's real res/ files,
so the type check also catches a view id or string name that the layout or strings.xml lacks."""
import re, sys, pathlib, xml.etree.ElementTree as ET
res = pathlib.Path(sys.argv[1]); out = pathlib.Path(sys.argv[2])
A = "{http://schemas.android.com/apk/res/android}"
strings = [e.get("name") for e in ET.parse(res / "values/strings.xml").getroot()]
colors = [e.get("name") for e in ET.parse(res / "values/colors.xml").getroot()]
r = ["package dev.kerasscan.demo;", "public final class R {", "  public static final class string {"]
r += [f"    public static final int {n} = {i};" for i, n in enumerate(strings)]
r += ["  }", "  public static final class color {"] + [f"    public static final int {n} = {i};" for i, n in enumerate(colors)] + ["  }", "}"]
(out / "dev/kerasscan/demo").mkdir(parents=True, exist_ok=True)
(out / "dev/kerasscan/demo/R.java").write_text("\n".join(r) + "\n")
root = ET.parse(res / "layout/activity_main.xml").getroot()
def jtype(tag):
    return tag if "." in tag else "android.widget." + tag
def camel(s):
    p = s.split("_"); return p[0] + "".join(x.title() for x in p[1:])
fields = []
for el in root.iter():
    i = el.get(A + "id")
    if i:
        fields.append((jtype(el.tag), camel(i.split("/")[1])))
b = ["package dev.kerasscan.demo.databinding;", "public final class ActivityMainBinding {"]
b += [f"  public final {t} {n} = null;" for t, n in fields]
b += [f"  public {jtype(root.tag)} getRoot() {{ return null; }}",
      "  public static ActivityMainBinding inflate(android.view.LayoutInflater inflater) { return null; }", "}"]
(out / "dev/kerasscan/demo/databinding").mkdir(parents=True, exist_ok=True)
(out / "dev/kerasscan/demo/databinding/ActivityMainBinding.java").write_text("\n".join(b) + "\n")
print(len(strings), "strings,", len(fields), "views:", ", ".join(n for _, n in fields))
