/**
 * Domain errors: small classes with a machine `code`. The HTTP layer maps codes to statuses in one
 * place (`app.onError`); everything else lets them travel. Programmer errors are assertions, not
 * these classes.
 *
 * @module
 */

/** Details that travel with an error into its JSON body. */
export type ErrorDetails = Record<string, unknown>;

/** Base of every domain error: a stable machine code, a human message, optional details. */
export class FerryError extends Error {
  readonly code: string;
  readonly details: ErrorDetails;

  constructor(code: string, message: string, details: ErrorDetails = {}) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.details = details;
  }
}

/** Bytes that do not form a valid log frame. */
export class CorruptFrameError extends FerryError {
  constructor(message: string, details: ErrorDetails = {}) {
    super("corrupt_frame", message, details);
  }
}

/** Stored WAL that fails verification (a sealed segment with a bad CRC, an LSN out of order). */
export class WalCorruptionError extends FerryError {
  constructor(message: string, details: ErrorDetails = {}) {
    super("wal_corrupt", message, details);
  }
}

/** The records a reader asked for were pruned. */
export class WalRemovedError extends FerryError {
  constructor(sinceLsn: number, oldestLsn: number) {
    super(
      "wal_removed",
      `records after LSN ${sinceLsn} are no longer retained; the oldest retained LSN is ${oldestLsn}`,
      { since_lsn: sinceLsn, oldest_lsn: oldestLsn },
    );
  }
}

/** The disk is full: nothing was written, earlier records are intact. */
export class DiskFullError extends FerryError {
  constructor(message = "the disk is full; nothing was written") {
    super("insufficient_storage", message);
  }
}

/** Too much is queued; the caller should retry later. */
export class OverloadedError extends FerryError {
  constructor(message: string, details: ErrorDetails = {}) {
    super("overloaded", message, details);
  }
}

/** The component is closed, closing, or stopped after a fatal I/O error. */
export class UnavailableError extends FerryError {
  constructor(message: string, details: ErrorDetails = {}) {
    super("unavailable", message, details);
  }
}

/** A setting has a bad value; start-up stops with this message. */
export class ConfigError extends FerryError {
  constructor(message: string, details: ErrorDetails = {}) {
    super("bad_config", message, details);
  }
}

/** True when an I/O error means the disk (or quota) is full. */
export function isDiskFullError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === "ENOSPC" || code === "EDQUOT";
}
