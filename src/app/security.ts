/**
 * Who may reach a ferry server and over what (SPEC.md 10 and 13.6), the same for a primary and a
 * replica: the tokens file, the TLS files, the refusals (beyond loopback: tokens always, and TLS
 * unless `--insecure-plain-http`), and their reload on SIGHUP.
 *
 * @module
 */

import type { Config } from "../core/config.ts";
import { ConfigError, StartupError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import { Auth, isLoopback } from "../http/auth.ts";
import { loadTlsPair, type TlsPair } from "./tls.ts";

/** The tokens and TLS files a server starts with; SIGHUP re-reads both. */
export interface Security {
  auth: Auth;
  /** The certificate and key served, when HTTPS. */
  tls: TlsPair | undefined;
}

/**
 * Loads the tokens file and the TLS files and applies the refusals; returns undefined after one
 * `ferry.refused` line when the server must not start. A file that cannot be read or does not parse
 * throws `StartupError` naming its flag. Logs `auth.disabled` without tokens and
 * `transport.insecure_plain_http` at every start with that flag. Needs read access to the files.
 */
export async function loadSecurity(config: Config, logger: Logger): Promise<Security | undefined> {
  const refusal = _refusal(config);
  if (refusal) {
    logger.error("ferry.refused", { message: refusal, host: config.host });
    return undefined;
  }
  const auth = config.tokensFile === undefined
    ? Auth.disabled()
    : await _atStart("tokens_file_unusable", "--tokens-file", () => Auth.load(config.tokensFile!));
  const tls = config.tlsCert === undefined || config.tlsKey === undefined
    ? undefined
    : await _atStart("tls_unusable", "--tls-cert", () =>
      loadTlsPair(config.tlsCert!, config.tlsKey!));
  if (!auth.enabled) {
    logger.warn("auth.disabled", {
      message: "no tokens file: every caller is admin; serving on loopback only",
    });
  }
  if (config.insecurePlainHttp) {
    logger.warn("transport.insecure_plain_http", {
      host: config.host,
      message: tls
        ? "--insecure-plain-http is set but TLS is on: the flag changes nothing"
        : `serving plain HTTP on ${config.host}: tokens and data travel in clear text`,
    });
  }
  return { auth, tls };
}

/**
 * SIGHUP, tokens: re-reads the tokens file (when there is one) and logs `tokens.reloaded`; one
 * that does not load keeps the tokens in use and logs `tokens.reload_failed` with the reason.
 * Needs read access to the tokens file.
 */
export async function reloadTokens(
  config: Config,
  security: Security,
  logger: Logger,
): Promise<void> {
  if (config.tokensFile === undefined) return;
  try {
    const tokens = await security.auth.reload(config.tokensFile);
    const keys = security.auth.urlSigner.size;
    logger.info("tokens.reloaded", { path: config.tokensFile, tokens, url_signing_keys: keys });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    logger.error("tokens.reload_failed", {
      path: config.tokensFile,
      message: `${error.message}; the previous tokens stay in use`,
    });
  }
}

/**
 * SIGHUP, TLS: re-reads the certificate and key; returns them when they parse and differ from
 * the ones served, else undefined (a file that does not parse logs `tls.reload_failed` with the
 * reason, and the ones in use stay). Needs read access to both files.
 */
export async function rereadTls(
  config: Config,
  security: Security,
  logger: Logger,
): Promise<TlsPair | undefined> {
  if (config.tlsCert === undefined || config.tlsKey === undefined) return undefined;
  try {
    const next = await loadTlsPair(config.tlsCert, config.tlsKey);
    const current = security.tls;
    if (current && next.cert === current.cert && next.key === current.key) {
      logger.info("tls.unchanged", { cert: config.tlsCert });
      return undefined;
    }
    return next;
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    logger.error("tls.reload_failed", {
      cert: config.tlsCert,
      message: `${error.message}; the certificate in use stays`,
    });
    return undefined;
  }
}

/** Why `config` must not serve, or undefined. */
function _refusal(config: Config): string | undefined {
  if (isLoopback(config.host)) return undefined;
  if (config.tokensFile === undefined) {
    return `refusing to listen on ${config.host} without a tokens file; set --tokens-file or listen on 127.0.0.1`;
  }
  if (config.tlsCert === undefined && !config.insecurePlainHttp) {
    return `refusing to serve plain HTTP on ${config.host}: tokens would travel in clear text; ` +
      `set --tls-cert and --tls-key, or --insecure-plain-http, or listen on 127.0.0.1`;
  }
  return undefined;
}

async function _atStart<T>(code: string, flag: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    const named = typeof error.details.flag === "string" ? error.details.flag : flag;
    const message = error.message.includes(named) ? error.message : `${named}: ${error.message}`;
    throw new StartupError(code, message, { flag: named });
  }
}
