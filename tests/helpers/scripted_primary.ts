/**
 * A scripted primary behind a fake `fetch`, for replica runtime tests: each route answers what
 * the test says, every request is recorded, and a test can wait for a request to arrive (and hold
 * its answer) instead of waiting for time to pass.
 */

import { crc32 } from "node:zlib";
import { FerryClient } from "../../src/client/client.ts";

/** Which route a request went to. */
export type ScriptedRoute = "register" | "ack" | "rebootstrapping" | "wal" | "snapshot";

/** A request the scripted primary received. */
export interface ScriptedRequest {
  route: ScriptedRoute;
  query: URLSearchParams;
  json: Record<string, unknown> | undefined;
  /** The request's abort signal (held answers end with it). */
  signal: AbortSignal | undefined;
  /** How many requests of this route came before it. */
  index: number;
}

/** Answers one route; by default see `scriptedPrimary`. */
export type ScriptedHandler = (request: ScriptedRequest) => Response | Promise<Response>;

/** A primary answering through `fetch`, with `client` built on it. */
export interface ScriptedPrimary {
  fetch: typeof fetch;
  client: FerryClient;
  requests: ScriptedRequest[];
  /** The first request (already received or still to come) of `route` that `matches`. */
  waitFor(
    route: ScriptedRoute,
    matches?: (request: ScriptedRequest) => boolean,
  ): Promise<ScriptedRequest>;
}

const _utf8 = new TextEncoder();
/** Long enough for any test here; only a hung test ever reaches it. */
const _WAIT_GUARD_MS = 60_000;

/**
 * A scripted primary at `currentLsn`. Register and ack answer like ferry; `wal` defaults to no
 * frames, held until the pull is aborted when the replica asks the primary to hold it (a healthy
 * replica), so an idle replica waits instead of spinning; `snapshot` defaults to a 500.
 */
export function scriptedPrimary(
  options: { currentLsn: number; wal?: ScriptedHandler; snapshot?: ScriptedHandler },
): ScriptedPrimary {
  const requests: ScriptedRequest[] = [];
  const waiters: Array<
    {
      route: ScriptedRoute;
      matches: (r: ScriptedRequest) => boolean;
      resolve: (r: ScriptedRequest) => void;
    }
  > = [];
  const handlers: Record<ScriptedRoute, ScriptedHandler> = {
    register: () =>
      Response.json({ resume_lsn: 0, term: 1, timeline: 1, current_lsn: options.currentLsn }),
    rebootstrapping: () => Response.json({ ok: true }),
    ack: (request) =>
      Response.json({
        ok: true,
        replica_id: "r1",
        applied_lsn: request.json?.applied_lsn,
        durable_lsn: request.json?.durable_lsn ?? request.json?.applied_lsn,
        apply_errors_total: 0,
        divergence_total: 0,
      }),
    wal: options.wal ?? ((request) => idlePull(request, options.currentLsn)),
    snapshot: options.snapshot ?? (() => errorResponse(500, "internal", "no snapshot scripted")),
  };
  const fetchFn: typeof fetch = async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const route = _routeOf(init?.method ?? "GET", url.pathname);
    const request: ScriptedRequest = {
      route,
      query: url.searchParams,
      json: typeof init?.body === "string" ? JSON.parse(init.body) : undefined,
      signal: init?.signal ?? undefined,
      index: requests.filter((r) => r.route === route).length,
    };
    requests.push(request);
    for (const waiter of [...waiters]) {
      if (waiter.route === route && waiter.matches(request)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(request);
      }
    }
    return await _abortable(Promise.resolve(handlers[route](request)), request.signal);
  };
  return {
    fetch: fetchFn,
    client: new FerryClient("http://primary.test", { fetch: fetchFn }),
    requests,
    waitFor(route, matches = () => true) {
      const seen = requests.find((r) => r.route === route && matches(r));
      if (seen) return Promise.resolve(seen);
      const arrived = new Promise<ScriptedRequest>((resolve) =>
        waiters.push({ route, matches, resolve })
      );
      return _guarded(arrived, `a ${route} request`);
    },
  };
}

/** No frames at `currentLsn`; held until aborted when the pull asks to be held. */
export function idlePull(
  request: ScriptedRequest,
  currentLsn: number,
): Promise<Response> | Response {
  if (Number(request.query.get("await_timeout_ms") ?? "0") > 0) return new Promise(() => {});
  return framesResponse(new Uint8Array(0), currentLsn);
}

/** A pull answer carrying `frames` (concatenated), with the position headers. */
export function framesResponse(frames: Uint8Array<ArrayBuffer>, currentLsn: number): Response {
  return new Response(frames, {
    headers: {
      "content-type": "application/x-ferry-frames",
      "x-ferry-current-lsn": String(currentLsn),
      "x-ferry-oldest-lsn": "1",
      "x-ferry-term": "1",
      "x-ferry-timeline": "1",
      "x-ferry-start-lsn": "0",
    },
  });
}

/**
 * A stream answer sending `chunks`, one per read, then: "open" stays open until the request is
 * aborted, "end" ends the body cleanly, "cut" fails the connection. Headers as a pull at
 * `currentLsn`.
 */
export function streamResponse(
  request: ScriptedRequest,
  chunks: readonly Uint8Array[],
  then: "open" | "end" | "cut" = "open",
  currentLsn = 0,
): Response {
  let next = 0;
  const body = new ReadableStream<Uint8Array>({
    start: (controller) => _failOnAbort(request, controller),
    pull(controller) {
      const chunk = chunks[next++];
      if (chunk !== undefined) return controller.enqueue(chunk);
      if (then === "end") controller.close();
      if (then === "cut") controller.error(new TypeError("connection reset (scripted)"));
      return new Promise<void>(() => {});
    },
  }, { highWaterMark: 0 });
  return new Response(body, { headers: framesResponse(new Uint8Array(0), currentLsn).headers });
}

/** A ferry JSON error answer. */
export function errorResponse(
  status: number,
  error: string,
  message: string,
  details: Record<string, unknown> = {},
): Response {
  return Response.json({ error, message, ...details }, { status });
}

/** The 409 a primary answers when the replica must load a snapshot. */
export function rebootstrapResponse(reason: string, oldestLsn: number): Response {
  return errorResponse(409, "rebootstrap_required", `re-bootstrap (${reason})`, {
    invalidation_reason: reason,
    snapshot_url: "/v1/snapshot",
    oldest_lsn: oldestLsn,
  });
}

/** One entry of a scripted snapshot. */
export interface ScriptedEntry {
  collection: string;
  key: string;
  value: unknown;
  lsn: number;
}

/** The NDJSON lines of a whole snapshot: header, entries, and a trailer with their count and CRC. */
export function snapshotLines(startLsn: number, entries: readonly ScriptedEntry[]): string[] {
  const entryLines = entries.map((entry) => JSON.stringify({ type: "entry", ...entry }));
  let crc = 0;
  for (const line of entryLines) crc = crc32(_utf8.encode(line + "\n"), crc);
  return [
    JSON.stringify({ type: "header", start_lsn: startLsn, term: 1, timeline: 1, format: 1 }),
    ...entryLines,
    JSON.stringify({
      type: "trailer",
      end_lsn: startLsn,
      count: entries.length,
      crc32: crc,
    }),
  ];
}

/**
 * A snapshot answer sending `lines`, one per read; then, when `then` is "cut", the connection fails
 * (once the reader has taken every line: an error would drop lines still queued), and when it is a
 * promise, the stream stays open until it settles or the request is aborted.
 */
export function snapshotResponse(
  request: ScriptedRequest,
  lines: readonly string[],
  then: "end" | "cut" | Promise<void> = "end",
): Response {
  let next = 0;
  const body = new ReadableStream<Uint8Array>({
    start: (controller) => _failOnAbort(request, controller),
    async pull(controller) {
      const line = lines[next++];
      if (line !== undefined) return controller.enqueue(_utf8.encode(line + "\n"));
      if (then === "cut") return controller.error(new TypeError("connection reset (scripted)"));
      if (then !== "end") await then;
      if (!request.signal?.aborted) controller.close();
    },
  }, { highWaterMark: 0 });
  return new Response(body, { headers: { "content-type": "application/x-ndjson" } });
}

/** A promise and the function that resolves it. */
export function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** A scripted body fails with the request's abort reason, as a real response body does. */
function _failOnAbort(
  request: ScriptedRequest,
  controller: ReadableStreamDefaultController<Uint8Array>,
): void {
  request.signal?.addEventListener("abort", () => {
    try {
      controller.error(request.signal!.reason);
    } catch {
      // Already closed: the abort came after the whole answer.
    }
  }, { once: true });
}

function _routeOf(method: string, path: string): ScriptedRoute {
  if (path === "/v1/wal") return "wal";
  if (path === "/v1/snapshot") return "snapshot";
  if (path.endsWith("/rebootstrapping")) return "rebootstrapping";
  if (method === "POST" && path.endsWith("/ack")) return "ack";
  if (method === "PUT" && path.startsWith("/v1/replicas/")) return "register";
  throw new Error(`the scripted primary has no route for ${method} ${path}`);
}

/** `answer`, or the abort of `signal` as fetch reports it. */
function _abortable<T>(answer: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return answer;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    answer.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** `promise`, or a rejection naming `what` if a broken runtime never gets there. */
function _guarded<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} never arrived`)), _WAIT_GUARD_MS);
  });
  return Promise.race([promise, guard]).finally(() => clearTimeout(timer));
}
