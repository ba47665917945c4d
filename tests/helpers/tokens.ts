/** Tokens-file entries for tests. */

import { createHash } from "node:crypto";

/** The hex SHA-256 of a token, as a tokens file stores it (what `sha256sum` prints). */
export function tokenHash(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}
