/** A logger for tests that assert on what was logged. */

import { createLogger, type Logger, type LogLine } from "../../src/core/log.ts";

/** A logger that keeps its lines in memory. */
export function createMemoryLogger(): Logger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  const logger = createLogger({ write: (line) => lines.push(JSON.parse(line) as LogLine) });
  return Object.assign(logger, { lines });
}
