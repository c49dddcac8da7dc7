/**
 * The one bounded wait of the test suites: polls `cond` every `everyMs`
 * until it holds, and fails with what it waited for after `timeoutMs`.
 * Tests wait for a condition, never for a fixed time.
 */
export async function waitFor (cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string, everyMs = 25): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, everyMs))
  }
}
