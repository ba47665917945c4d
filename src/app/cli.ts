/**
 * The operator's command line (SPEC.md 13.5): `main.ts status|slots|drop-slot <id>|token <role>
 * [--replica-id id]`, talking to `--url` (default `http://127.0.0.1:8787`) with `--token` (or
 * `FERRY_TOKEN`). Readable tables by default, `--json` for scripts. `token` prints a new random
 * token and the tokens-file entry that holds its hash; it talks to nobody. Needs `--allow-net` for
 * the URL's host (`status`, `slots`, `drop-slot`) and, for the fallbacks, `--allow-env` for
 * `FERRY_URL` and `FERRY_TOKEN`.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { FerryClient } from "../client/client.ts";
import { FerryHttpError } from "../core/errors.ts";
import { CLI_TOKEN_BYTES } from "../core/limits.ts";
import { REPLICA_ID_PATTERN } from "../model/ids.ts";
import { slotsTable, statusTable } from "./cli_tables.ts";

/** The commands this module runs. */
export const CLI_COMMANDS: ReadonlySet<string> = new Set(["status", "slots", "drop-slot", "token"]);

const _DEFAULT_URL = "http://127.0.0.1:8787";
const _ROLES = new Set(["admin", "writer", "replica"]);
const _USAGE = "usage: main.ts status|slots|drop-slot <replica id>|token <admin|writer|replica> " +
  "[--replica-id id] [--url http://host:port] [--token t] [--json]";

interface _Options {
  command: string;
  positional: string[];
  url: string;
  token: string | undefined;
  json: boolean;
  replicaId: string | undefined;
}

/** What a command prints, and its exit code. */
export interface CliOutcome {
  code: number;
  stdout: string[];
  stderr: string[];
}

/**
 * Runs one command; never throws for bad input, an unreachable server or an error answer (exit 2,
 * or 1 when the server refused). `env` reads `FERRY_URL` / `FERRY_TOKEN`.
 */
export async function runCli(
  args: readonly string[],
  env: (name: string) => string | undefined,
  fetcher?: typeof fetch,
): Promise<CliOutcome> {
  const options = _parse(args, env);
  if (typeof options === "string") return { code: 2, stdout: [], stderr: [options, _USAGE] };
  if (options.command === "token") return _token(options);
  const client = new FerryClient(options.url, { token: options.token, fetch: fetcher });
  try {
    return await _remote(options, client);
  } catch (error) {
    if (error instanceof FerryHttpError) {
      return { code: 1, stdout: [], stderr: [`${options.url}: ${error.message}`] };
    }
    if (error instanceof TypeError) {
      return { code: 2, stdout: [], stderr: [`cannot reach ${options.url}: ${error.message}`] };
    }
    throw error;
  }
}

async function _remote(options: _Options, client: FerryClient): Promise<CliOutcome> {
  const out = (value: unknown, table: () => string[]): CliOutcome => ({
    code: 0,
    stdout: options.json ? [JSON.stringify(value, null, 2)] : table(),
    stderr: [],
  });
  if (options.command === "status") {
    const status = await client.status();
    return out(status, () => statusTable(status));
  }
  if (options.command === "slots") {
    const slots = await client.slots();
    return out({ slots }, () => slotsTable(slots));
  }
  const id = options.positional[0];
  if (id === undefined || !REPLICA_ID_PATTERN.test(id)) {
    return { code: 2, stdout: [], stderr: ["drop-slot needs a replica id", _USAGE] };
  }
  await client.dropSlot(id);
  return out({ ok: true, replica_id: id }, () => [`dropped the slot of ${id}`]);
}

/** A new random token and the tokens-file entry holding its SHA-256 (the token is not stored). */
function _token(options: _Options): CliOutcome {
  const role = options.positional[0];
  if (role === undefined || !_ROLES.has(role)) {
    return {
      code: 2,
      stdout: [],
      stderr: ["token needs a role: admin, writer or replica", _USAGE],
    };
  }
  if ((role === "replica") !== (options.replicaId !== undefined)) {
    return {
      code: 2,
      stdout: [],
      stderr: ["a replica token needs --replica-id, and only a replica token takes one"],
    };
  }
  const bytes = crypto.getRandomValues(new Uint8Array(CLI_TOKEN_BYTES));
  const token = Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
  const entry: Record<string, string> = {
    sha256: createHash("sha256").update(token).digest("hex"),
    role,
  };
  if (options.replicaId !== undefined) entry.replica_id = options.replicaId;
  if (options.json) return { code: 0, stdout: [JSON.stringify({ token, entry })], stderr: [] };
  return {
    code: 0,
    stdout: [
      `token: ${token}`,
      `tokens-file entry (add it to "tokens"): ${JSON.stringify(entry)}`,
      "The token is shown once and stored nowhere; the file keeps only its hash.",
    ],
    stderr: [],
  };
}

function _parse(
  args: readonly string[],
  env: (name: string) => string | undefined,
): _Options | string {
  const [command, ...rest] = args;
  if (command === undefined || !CLI_COMMANDS.has(command)) {
    return `unknown command ${command ?? ""}`;
  }
  const options: _Options = {
    command,
    positional: [],
    url: env("FERRY_URL") ?? _DEFAULT_URL,
    token: env("FERRY_TOKEN"),
    json: false,
    replicaId: undefined,
  };
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!;
    if (arg === "--json") options.json = true;
    else if (arg === "--url" || arg === "--token" || arg === "--replica-id") {
      const value = rest[++i];
      if (value === undefined) return `${arg} needs a value`;
      if (arg === "--url") options.url = value;
      else if (arg === "--token") options.token = value;
      else options.replicaId = value;
    } else if (arg.startsWith("--")) return `unknown option ${arg}`;
    else options.positional.push(arg);
  }
  try {
    new URL(options.url);
  } catch {
    return `--url ${options.url} is not a URL`;
  }
  if (options.replicaId !== undefined && !REPLICA_ID_PATTERN.test(options.replicaId)) {
    return `--replica-id ${options.replicaId} is not a replica id ([A-Za-z0-9_.-], 1..128)`;
  }
  return options;
}
