/**
 * The leader's lease and its fencing deadline (SPEC 13.4).
 *
 * Keepalives go every quarter of the granted TTL from a Worker, so a long parse or a GC pause on the
 * main event loop cannot starve them. The Worker publishes the fencing deadline into a shared
 * buffer: the monotonic time at which it *sent* its last answered keepalive plus half the TTL that
 * etcd granted. The main thread reads it synchronously before every write answer and every frame
 * served (`holds()`), without waiting for a message that a blocked loop would not see.
 *
 * The Worker is loaded from a Blob URL holding one self-contained function, so it needs no read
 * permission and works in a compiled binary; it needs `--allow-net` for the etcd endpoints.
 *
 * @module
 */

import {
  ETCD_REQUEST_TIMEOUT_MS,
  FENCE_FRACTION_OF_TTL,
  KEEPALIVE_FRACTION_OF_TTL,
  KEEPALIVE_RETRY_MS,
} from "../core/cluster_limits.ts";
import type { EtcdClient } from "./etcd.ts";

/** Deadline slot in the shared buffer, in microseconds of the Worker's clock. */
const _DEADLINE_INDEX = 0;

/** A granted lease kept alive from a Worker. */
export class LeaseKeeper {
  readonly id: string;
  readonly grantedTtlS: number;
  readonly #shared: BigInt64Array;
  readonly #worker: Worker;
  /** Worker clock minus main clock, rounded so the deadline can only come early. */
  #clockSkewMs = 0;
  #lost = false;
  readonly #onLost: Array<(reason: string) => void> = [];

  private constructor(id: string, grantedTtlS: number, worker: Worker, shared: BigInt64Array) {
    this.id = id;
    this.grantedTtlS = grantedTtlS;
    this.#worker = worker;
    this.#shared = shared;
  }

  /**
   * Grants a lease of `ttlS` (etcd may grant more) and starts its keepalives. The first deadline
   * counts from the grant's send time.
   */
  static async start(client: EtcdClient, ttlS: number): Promise<LeaseKeeper> {
    const sentAtMs = _now();
    const lease = await client.grantLease(ttlS);
    const shared = new BigInt64Array(new SharedArrayBuffer(8));
    const source = `(${_keepaliveWorker.toString()})(self);`;
    const url = URL.createObjectURL(new Blob([source], { type: "application/javascript" }));
    const worker = new Worker(url, { type: "module" });
    URL.revokeObjectURL(url);
    const keeper = new LeaseKeeper(lease.id, lease.ttlS, worker, shared);
    await keeper.#calibrate();
    Atomics.store(
      shared,
      _DEADLINE_INDEX,
      BigInt(Math.floor((sentAtMs + keeper.#clockSkewMs + _fenceMs(lease.ttlS)) * 1000)),
    );
    worker.onmessage = (event) => {
      if (event.data?.kind === "lost") keeper.#markLost(String(event.data.reason));
    };
    const credentials = await client.credentials();
    worker.postMessage({
      kind: "start",
      shared,
      leaseId: lease.id,
      intervalMs: lease.ttlS * 1000 * KEEPALIVE_FRACTION_OF_TTL,
      retryMs: KEEPALIVE_RETRY_MS,
      fenceFraction: FENCE_FRACTION_OF_TTL,
      timeoutMs: ETCD_REQUEST_TIMEOUT_MS,
      ...credentials,
    });
    return keeper;
  }

  /** True while the fencing deadline has not passed: the holder may still act as leader. */
  holds(): boolean {
    return !this.#lost && this.remainingMs() > 0;
  }

  /** Milliseconds left before the fencing deadline (negative once past it). */
  remainingMs(): number {
    const deadlineWorkerMs = Number(Atomics.load(this.#shared, _DEADLINE_INDEX)) / 1000;
    return deadlineWorkerMs - this.#clockSkewMs - _now();
  }

  /** Calls `listener` once when etcd says the lease is gone (expired or revoked). */
  onLost(listener: (reason: string) => void): void {
    if (this.#lost) listener("lost");
    else this.#onLost.push(listener);
  }

  /** Stops the keepalives; the lease then expires in etcd within its TTL unless revoked. */
  stop(): void {
    this.#markLost("stopped");
    this.#worker.terminate();
  }

  #markLost(reason: string): void {
    if (this.#lost) return;
    this.#lost = true;
    Atomics.store(this.#shared, _DEADLINE_INDEX, 0n);
    for (const listener of this.#onLost.splice(0)) listener(reason);
  }

  /**
   * Measures the Worker's clock against this thread's: a Worker instant read between our t0 and t1
   * is at most `workerMs - t0` ahead, so subtracting that bounds the deadline from below.
   */
  async #calibrate(): Promise<void> {
    const t0 = _now();
    const workerMs = await new Promise<number>((resolve) => {
      this.#worker.onmessage = (event) => resolve(Number(event.data.nowMs));
      this.#worker.postMessage({ kind: "clock" });
    });
    this.#clockSkewMs = workerMs - t0;
  }
}

function _fenceMs(ttlS: number): number {
  return ttlS * 1000 * FENCE_FRACTION_OF_TTL;
}

function _now(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * The Worker's whole program (serialised with `toString`, so it may use nothing from outside).
 * Renews the lease every interval, sequentially, rotating endpoints on failure and trying again
 * after `retryMs`, re-authenticating when etcd's token expired; publishes the deadline after each
 * answered keepalive; reports loss.
 */
// deno-lint-ignore no-explicit-any
function _keepaliveWorker(scope: any): void {
  const now = () => performance.timeOrigin + performance.now();
  // deno-lint-ignore no-explicit-any
  let config: any;
  let token: string | undefined;
  // deno-lint-ignore no-explicit-any
  let httpClient: any;
  const post = async (path: string, body: unknown) => {
    const endpoint = config.endpoints[0];
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (token) headers.authorization = token;
    const response = await fetch(`${endpoint}${path}`, {
      method: "POST",
      headers,
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(config.timeoutMs),
      client: httpClient,
    });
    const json = JSON.parse((await response.text()) || "{}");
    return { status: response.status, json };
  };
  const authenticate = async () => {
    const answer = await post("/v3/auth/authenticate", {
      name: config.user,
      password: config.password ?? "",
    });
    token = answer.json.token;
  };
  const renew = async (): Promise<number> => {
    let answer = await post("/v3/lease/keepalive", { ID: config.leaseId });
    const message = String(answer.json.message ?? answer.json.error ?? "");
    if (config.user && (answer.status === 401 || message.includes("auth token"))) {
      await authenticate();
      answer = await post("/v3/lease/keepalive", { ID: config.leaseId });
    }
    if (answer.status !== 200) throw new Error(`keepalive answered ${answer.status}`);
    return Number(answer.json.result?.TTL ?? 0);
  };
  const loop = async () => {
    for (;;) {
      const sentAt = now();
      let nextAt = sentAt + config.intervalMs;
      try {
        const ttlS = await renew();
        if (ttlS <= 0) {
          Atomics.store(config.shared, 0, 0n);
          scope.postMessage({ kind: "lost", reason: "expired" });
          return;
        }
        const deadline = sentAt + ttlS * 1000 * config.fenceFraction;
        Atomics.store(config.shared, 0, BigInt(Math.floor(deadline * 1000)));
      } catch {
        config.endpoints.push(config.endpoints.shift());
        nextAt = Math.min(nextAt, now() + config.retryMs);
      }
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, nextAt - now())));
    }
  };
  // deno-lint-ignore no-explicit-any
  scope.onmessage = (event: any) => {
    if (event.data.kind === "clock") {
      scope.postMessage({ nowMs: now() });
      return;
    }
    config = event.data;
    token = config.token;
    if (config.caPem) httpClient = Deno.createHttpClient({ caCerts: [config.caPem] });
    loop();
  };
}
