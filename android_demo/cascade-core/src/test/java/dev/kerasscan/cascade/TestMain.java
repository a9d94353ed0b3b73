package dev.kerasscan.cascade;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;
import org.junit.runner.Description;
import org.junit.runner.JUnitCore;
import org.junit.runner.Request;
import org.junit.runner.notification.Failure;
import org.junit.runner.notification.RunListener;

/**
 * Runs the given JUnit 4 test classes and prints "N passed, N failed" as the last line; exits
 * 1 on any failure. Assumption failures and ignored tests count as failures: nothing is
 * skipped silently.
 */
public final class TestMain {
  private TestMain() {}

  public static void main(String[] args) throws Exception {
    PrintStream out = System.out;
    List<Class<?>> classes = new ArrayList<>();
    for (String name : args) {
      classes.add(Class.forName(name));
    }
    final int[] started = {0};
    final List<String> failed = new ArrayList<>();
    JUnitCore core = new JUnitCore();
    core.addListener(
        new RunListener() {
          @Override
          public void testStarted(Description d) {
            started[0]++;
          }

          @Override
          public void testFinished(Description d) {
            if (!failed.contains(d.getDisplayName())) {
              out.println("PASS " + d.getDisplayName());
            }
          }

          @Override
          public void testFailure(Failure f) {
            report("FAIL", f);
          }

          @Override
          public void testAssumptionFailure(Failure f) {
            report("FAIL (assumption, not skipped)", f);
          }

          @Override
          public void testIgnored(Description d) {
            failed.add(d.getDisplayName());
            out.println("FAIL (ignored test) " + d.getDisplayName());
          }

          private void report(String what, Failure f) {
            failed.add(f.getDescription().getDisplayName());
            out.println(what + " " + f.getDescription().getDisplayName());
            out.println("    " + f.getMessage());
            String trace = f.getTrace();
            String[] lines = trace.split("\n");
            for (int i = 1; i < Math.min(lines.length, 8); i++) {
              out.println("    " + lines[i].trim());
            }
          }
        });
    core.run(Request.classes(classes.toArray(new Class<?>[0])));
    int nFailed = failed.size();
    int nPassed = Math.max(0, started[0] - nFailed);
    if (classes.isEmpty()) {
      out.println("no test classes given");
      nFailed = Math.max(nFailed, 1);
    }
    out.println(nPassed + " passed, " + nFailed + " failed");
    System.exit(nFailed == 0 ? 0 : 1);
  }
}
