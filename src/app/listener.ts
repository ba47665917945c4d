/**
 * The listening side of a ferry server: one `Deno.serve` (HTTPS when given a certificate), and a
 * way to move onto a new certificate without dropping connections. `Deno.serve` cannot change its
 * certificate, so a swap starts a second server on the same address with `SO_REUSEPORT` and then
 * shuts the first one down: from then on new connections reach the new server, and the old one
 * finishes the requests it holds. Needs `--allow-net` for the listen address.
 *
 * @module
 */

import type { Config } from "../core/config.ts";
import type { TlsPair } from "./tls.ts";

type _Handler = (request: Request) => Response | Promise<Response>;

/** A server that can move onto new TLS files. */
export class Listener {
  /** True when `swap` is possible (HTTPS with `SO_REUSEPORT` available). */
  readonly reloadable: boolean;
  #hostname: string;
  #handler: _Handler;
  #current: Deno.HttpServer<Deno.NetAddr>;
  /** Servers a swap replaced, finishing their requests. */
  #retiring: Promise<void>[] = [];

  private constructor(config: Config, handler: _Handler, tls: TlsPair | undefined) {
    this.#hostname = config.host;
    this.#handler = handler;
    this.reloadable = tls !== undefined && _reusePortAvailable();
    this.#current = this.#serve(config.port, tls);
  }

  /** Binds and serves; throws what `Deno.serve` throws (`Deno.errors.AddrInUse`, bad key material). */
  static start(config: Config, handler: _Handler, tls: TlsPair | undefined): Listener {
    return new Listener(config, handler, tls);
  }

  /** `host:port` actually bound. */
  get address(): string {
    const { hostname, port } = this.#current.addr;
    return `${hostname}:${port}`;
  }

  /**
   * Serves `tls` from now on: a new server binds the same address, then the old one stops
   * accepting and finishes its connections. Throws (and keeps the old server) when `Deno.serve`
   * refuses the new files.
   */
  swap(tls: TlsPair): void {
    const next = this.#serve(this.#current.addr.port, tls);
    const previous = this.#current;
    this.#current = next;
    this.#retiring.push(previous.shutdown());
  }

  /** Stops accepting at once; resolves when every server has finished its requests. */
  shutdown(): Promise<void> {
    const current = this.#current.shutdown();
    return Promise.all([current, ...this.#retiring]).then(() => undefined);
  }

  #serve(port: number, tls: TlsPair | undefined): Deno.HttpServer<Deno.NetAddr> {
    const base = { hostname: this.#hostname, port, onListen: () => {} };
    const handler = (request: Request) => this.#handler(request);
    if (!tls) return Deno.serve(base, handler);
    return Deno.serve(
      { ...base, reusePort: this.reloadable, cert: tls.cert, key: tls.key },
      handler,
    );
  }
}

/**
 * Whether `reusePort` may be used: for a TLS listener Deno 2.9 keeps it behind `--unstable-net`
 * and ends the process when it is used without. `Deno.listenDatagram` exists only under that
 * flag, so its presence tells.
 */
function _reusePortAvailable(): boolean {
  return "listenDatagram" in Deno;
}
