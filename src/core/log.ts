/**
 * Structured log lines: one JSON object per line on stderr, `{"ts", "level", "event", ...fields}`.
 * Components receive a `Logger`; nothing logs through a global.
 *
 * @module
 */

/** Extra fields of a log line. */
export type LogFields = Record<string, unknown>;

/** Severity of a log line. */
export type LogLevel = "info" | "warn" | "error";

/** Writes structured log lines. */
export interface Logger {
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
}

/** One captured line, as tests see it. */
export interface LogLine extends LogFields {
  ts: string;
  level: LogLevel;
  event: string;
}

const encoder = new TextEncoder();

function _stderrWrite(line: string): void {
  Deno.stderr.writeSync(encoder.encode(line + "\n"));
}

function _stringify(value: unknown): string {
  return JSON.stringify(value, (_key, v) => {
    if (typeof v === "bigint") return v.toString();
    if (v instanceof Error) return { name: v.name, message: v.message };
    return v;
  });
}

/**
 * A logger writing JSON lines through `write` (stderr by default).
 *
 * @example
 * ```ts
 * const log = createLogger({ base: { role: "primary" } });
 * log.info("spool.recovered", { current_lsn: 42 });
 * ```
 */
export function createLogger(
  options: { write?: (line: string) => void; base?: LogFields } = {},
): Logger {
  const write = options.write ?? _stderrWrite;
  const base = options.base ?? {};
  const emit = (level: LogLevel, event: string, fields: LogFields = {}) => {
    write(_stringify({ ts: new Date().toISOString(), level, event, ...base, ...fields }));
  };
  return {
    info: (event, fields) => emit("info", event, fields),
    warn: (event, fields) => emit("warn", event, fields),
    error: (event, fields) => emit("error", event, fields),
  };
}

/** A logger that drops everything (the default for components built in tests). */
export const silentLogger: Logger = { info() {}, warn() {}, error() {} };
