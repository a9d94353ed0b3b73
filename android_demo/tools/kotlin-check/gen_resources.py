"""Generates R.java and ActivityMainBinding.java from the app's real res/ files.

So the Kotlin type check also fails on a view id or a string name that
activity_main.xml or strings.xml lacks. Usage: gen_resources.py RES_DIR OUT_DIR
"""

import pathlib
import sys
import xml.etree.ElementTree as ET

ANDROID = "{http://schemas.android.com/apk/res/android}"


def java_type(tag):
    return tag if "." in tag else "android.widget." + tag


def camel(snake):
    parts = snake.split("_")
    return parts[0] + "".join(p.title() for p in parts[1:])


def main(res, out):
    package = out / "dev/kerasscan/demo"
    (package / "databinding").mkdir(parents=True, exist_ok=True)
    lines = ["package dev.kerasscan.demo;", "public final class R {"]
    for kind in ("string", "color"):
        names = [e.get("name") for e in ET.parse(res / f"values/{kind}s.xml").getroot()]
        lines.append(f"  public static final class {kind} {{")
        lines += [
            f"    public static final int {n} = {i};" for i, n in enumerate(names)
        ]
        lines.append("  }")
    lines.append("}")
    (package / "R.java").write_text("\n".join(lines) + "\n")

    root = ET.parse(res / "layout/activity_main.xml").getroot()
    views = [
        (java_type(el.tag), camel(el.get(ANDROID + "id").split("/")[1]))
        for el in root.iter()
        if el.get(ANDROID + "id")
    ]
    binding = ["package dev.kerasscan.demo.databinding;"]
    binding.append("public final class ActivityMainBinding {")
    binding += [f"  public final {t} {n} = null;" for t, n in views]
    binding.append(f"  public {java_type(root.tag)} getRoot() {{ return null; }}")
    binding.append(
        "  public static ActivityMainBinding inflate(android.view.LayoutInflater i)"
        " { return null; }"
    )
    binding.append("}")
    (package / "databinding/ActivityMainBinding.java").write_text(
        "\n".join(binding) + "\n"
    )
    print(f"{len(views)} views: " + ", ".join(n for _, n in views))


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]))
