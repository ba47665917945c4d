/**
 * The PEM files of SPEC.md 13.6: the server's certificate chain and key (`--tls-cert`,
 * `--tls-key`) and the replica's CA bundle for its primary (`--primary-ca`). Each is read whole,
 * bounded, and parsed before use, so a file that does not parse is refused with the reason (at
 * start: the start stops; on SIGHUP: the one in use stays).
 *
 * @module
 */

import { createPrivateKey, X509Certificate } from "node:crypto";
import { ConfigError } from "../core/errors.ts";
import { PEM_FILE_BYTES_MAX } from "../core/limits.ts";

/** A certificate chain and its private key, PEM, as `Deno.serve` takes them. */
export interface TlsPair {
  cert: string;
  key: string;
}

/**
 * Reads `--tls-cert` and `--tls-key` and checks that the first certificate parses, the key parses,
 * and the key belongs to the certificate. Throws `ConfigError` saying which file and why. Needs
 * read access to both files.
 */
export async function loadTlsPair(certPath: string, keyPath: string): Promise<TlsPair> {
  const cert = await _readPem(certPath, "--tls-cert");
  const key = await _readPem(keyPath, "--tls-key");
  const certificate = _parseCertificate(cert, "--tls-cert", certPath);
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch (error) {
    throw new ConfigError(`--tls-key ${keyPath} holds no usable private key: ${_why(error)}`, {
      flag: "--tls-key",
    });
  }
  if (!certificate.checkPrivateKey(privateKey)) {
    throw new ConfigError(
      `--tls-key ${keyPath} is not the key of the certificate in --tls-cert ${certPath}`,
      { flag: "--tls-key" },
    );
  }
  return { cert, key };
}

/**
 * Reads a PEM CA bundle (`--primary-ca`) and checks that its first certificate parses. Throws
 * `ConfigError` saying why. Needs read access to `path`.
 */
export async function loadCaBundle(path: string): Promise<string> {
  const pem = await _readPem(path, "--primary-ca");
  _parseCertificate(pem, "--primary-ca", path);
  return pem;
}

/**
 * The replica's way to its primary over HTTPS with a private CA: `fetch` goes through a
 * `Deno.HttpClient` that trusts the bundle, and `reload()` (SIGHUP) swaps in a re-read bundle for
 * new connections.
 */
export class PrimaryCa {
  readonly path: string;
  #client: Deno.HttpClient;
  /** Clients replaced by a reload: requests may still run on them, so they close at `close()`. */
  #replaced: Deno.HttpClient[] = [];

  private constructor(path: string, pem: string) {
    this.path = path;
    this.#client = Deno.createHttpClient({ caCerts: [pem] });
  }

  /** Reads and checks the bundle (see `loadCaBundle`). Needs read access to `path`. */
  static async load(path: string): Promise<PrimaryCa> {
    return new PrimaryCa(path, await loadCaBundle(path));
  }

  /** `fetch` trusting the bundle; network I/O needs `--allow-net` for the primary's host. */
  readonly fetch: typeof fetch = (input, init) => fetch(input, { ...init, client: this.#client });

  /** Re-reads the bundle; one that does not parse throws `ConfigError` and the old one stays. */
  async reload(): Promise<void> {
    const pem = await loadCaBundle(this.path);
    this.#replaced.push(this.#client);
    this.#client = Deno.createHttpClient({ caCerts: [pem] });
  }

  /** Closes every client (shutdown, after the replica stopped pulling). */
  close(): void {
    for (const client of [...this.#replaced.splice(0), this.#client]) client.close();
  }
}

async function _readPem(path: string, flag: string): Promise<string> {
  let text: string;
  try {
    const info = await Deno.stat(path);
    if (!info.isFile) throw new ConfigError(`${flag} ${path} is not a file`, { flag });
    if (info.size > PEM_FILE_BYTES_MAX) {
      throw new ConfigError(`${flag} ${path} is larger than ${PEM_FILE_BYTES_MAX} bytes`, { flag });
    }
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (
      !(error instanceof Deno.errors.NotFound) &&
      !(error instanceof Deno.errors.PermissionDenied) &&
      !(error instanceof Deno.errors.IsADirectory) && !(error instanceof Deno.errors.NotADirectory)
    ) throw error;
    throw new ConfigError(`${flag} ${path} cannot be read: ${error.message}`, { flag });
  }
  if (!text.includes("-----BEGIN ")) {
    throw new ConfigError(`${flag} ${path} is not a PEM file (no "-----BEGIN" line)`, { flag });
  }
  return text;
}

function _parseCertificate(pem: string, flag: string, path: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (error) {
    throw new ConfigError(`${flag} ${path} holds no certificate that parses: ${_why(error)}`, {
      flag,
    });
  }
}

function _why(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
