// The materialised state's tests: a change record's payload as the spool stores it, and a
// started `StateApplier` that is stopped however the test ends.

import { StateApplier, type StateApplierOptions } from "../../src/state/applier.ts";

const utf8 = new TextEncoder();

/** The payload of a put of `key` (its value the key itself unless given) in collection "c". */
export function putPayload(key: string, value: unknown = key): Uint8Array {
  return utf8.encode(JSON.stringify({ op: "put", collection: "c", key, value, ts: 1 }));
}

/** Opens and starts an applier, runs `body`, and stops the applier whatever `body` did. */
export async function withApplier(
  options: StateApplierOptions,
  body: (state: StateApplier) => Promise<void>,
): Promise<void> {
  const state = await StateApplier.open(options);
  state.start();
  try {
    await body(state);
  } finally {
    await state.stop();
  }
}
