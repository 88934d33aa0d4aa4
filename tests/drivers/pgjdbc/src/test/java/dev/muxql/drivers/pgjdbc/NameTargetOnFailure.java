package dev.muxql.drivers.pgjdbc;

import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.TestExecutionExceptionHandler;

/**
 * Makes every failure message start with its target, "[direct] " or "[muxql] " (the display name
 * of each parameterized invocation), so that Maven's summary names both the case and the target
 * even for an exception the test did not expect.
 */
public final class NameTargetOnFailure implements TestExecutionExceptionHandler {
    @Override
    public void handleTestExecutionException(ExtensionContext context, Throwable thrown) throws Throwable {
        String tag = "[" + context.getDisplayName() + "] ";
        if (String.valueOf(thrown.getMessage()).startsWith(tag)) {
            throw thrown;
        }
        throw new AssertionError(tag + thrown, thrown);
    }
}
