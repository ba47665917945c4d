/**
 * The start-up failures a newcomer hits, each turned into one `StartupError` naming the problem and
 * the flag to change (exit 2) instead of a stack trace from deep inside the spool, Deno KV or
 * `Deno.serve`: a port in use, a data directory that cannot be created, is read-only, or is a file.
 *
 * @module
 */

import type { Config } from "../core/config.ts";
import { type DataDirLock, lockDataDir } from "../core/data_lock.ts";
import { StartupError } from "../core/errors.ts";

/**
 * Binds the listen address once and lets it go, so a port in use stops the start before any store
 * is opened (the serve call maps the same errors, for a port taken in between). Needs
 * `--allow-net` for the listen address.
 */
export function probeListenAddress(config: Config): void {
  if (config.port === 0) return;
  try {
    Deno.listen({ hostname: config.host, port: config.port }).close();
  } catch (error) {
    throw listenFailure(config, error);
  }
}

/** The `StartupError` for an error of binding the listen address; other errors unchanged. */
export function listenFailure(config: Config, error: unknown): unknown {
  const address = `${config.host}:${config.port}`;
  if (error instanceof Deno.errors.AddrInUse) {
    return new StartupError(
      "port_in_use",
      `cannot listen on ${address}: the port is already in use (another ferry or another ` +
        `program); stop it or choose another --port`,
      { flag: "--port", host: config.host, port: config.port },
    );
  }
  if (error instanceof Deno.errors.AddrNotAvailable) {
    return new StartupError(
      "address_unavailable",
      `cannot listen on ${address}: ${config.host} is not an address of this machine; ` +
        `choose another --host`,
      { flag: "--host", host: config.host, port: config.port },
    );
  }
  if (error instanceof Deno.errors.PermissionDenied) {
    return new StartupError(
      "port_refused",
      `cannot listen on ${address}: the system refuses this port to this user ` +
        `(ports below 1024 need privileges); choose another --port`,
      { flag: "--port", host: config.host, port: config.port },
    );
  }
  return error;
}

/**
 * Makes sure `dataDir` is a directory this process can write, creating it when missing, then
 * locks it. A file in its place, a directory that cannot be created, or one that is read-only
 * throws `StartupError` naming `--data-dir`. Needs read and write access to `dataDir`.
 */
export async function lockUsableDataDir(dataDir: string): Promise<DataDirLock> {
  const info = await _statOrUndefined(dataDir);
  if (info && !info.isDirectory) {
    throw _dataDirFailure(
      dataDir,
      "it is a file, not a directory",
      "point --data-dir at a directory",
    );
  }
  if (!info) {
    try {
      await Deno.mkdir(dataDir, { recursive: true });
    } catch (error) {
      if (!_isRefusal(error)) throw error;
      throw _dataDirFailure(
        dataDir,
        `it does not exist and cannot be created (${error.message})`,
        "create it, or choose another --data-dir",
      );
    }
  }
  try {
    // A probe file: a read-only directory otherwise fails later, inside the spool or Deno KV.
    await Deno.remove(await Deno.makeTempFile({ dir: dataDir, prefix: ".ferry-write-probe-" }));
    return await lockDataDir(dataDir);
  } catch (error) {
    if (!_isRefusal(error)) throw error;
    throw _dataDirFailure(
      dataDir,
      `it is not writable (${error.message})`,
      "make it writable for this user, or choose another --data-dir",
    );
  }
}

async function _statOrUndefined(path: string): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.stat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    if (error instanceof Deno.errors.NotADirectory) {
      throw _dataDirFailure(
        path,
        `it does not exist and cannot be created: a parent is a file (${error.message})`,
        "choose another --data-dir",
      );
    }
    if (!_isRefusal(error)) throw error;
    throw _dataDirFailure(
      path,
      `it cannot be reached (${error.message})`,
      "choose another --data-dir",
    );
  }
}

function _dataDirFailure(dataDir: string, problem: string, fix: string): StartupError {
  return new StartupError(
    "data_dir_unusable",
    `the data directory ${dataDir} cannot be used: ${problem}; ${fix}`,
    { flag: "--data-dir", data_dir: dataDir },
  );
}

/** The file-system refusals an operator fixes with a setting (mode, read-only mount, a file). */
function _isRefusal(error: unknown): error is Error {
  if (
    error instanceof Deno.errors.PermissionDenied || error instanceof Deno.errors.NotADirectory ||
    error instanceof Deno.errors.AlreadyExists || error instanceof Deno.errors.IsADirectory
  ) return true;
  const code = (error as { code?: unknown } | null)?.code;
  return error instanceof Error && (code === "EROFS" || code === "EACCES" || code === "EPERM");
}
