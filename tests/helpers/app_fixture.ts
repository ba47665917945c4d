/** The HTTP app over a real primary (temp dir), driven through `app.request()`. */

import { Auth } from "../../src/http/auth.ts";
import { tokenHash } from "./tokens.ts";
import { createApp } from "../../src/http/primary_app.ts";
import { type AppDeps } from "../../src/http/router.ts";
import { Metrics } from "../../src/metrics/primary_metrics.ts";
import { silentLogger } from "../../src/core/log.ts";
import { StateApplier } from "../../src/state/applier.ts";
import { SnapshotServer } from "../../src/replication/snapshot.ts";
import { type FixtureOptions, type PrimaryFixture, withPrimary } from "./primary_fixture.ts";

/** Tokens every auth-on test uses. */
export const TOKENS = {
  admin: "admin-secret",
  writer: "writer-secret",
  replicaA: "replica-a-secret",
  replicaB: "replica-b-secret",
} as const;

/** An Auth with one token per role (replica tokens bound to "a" and "b"). */
export function testAuth(): Auth {
  return Auth.fromJson({
    tokens: [
      { sha256: tokenHash(TOKENS.admin), role: "admin" },
      { sha256: tokenHash(TOKENS.writer), role: "writer" },
      { sha256: tokenHash(TOKENS.replicaA), role: "replica", replica_id: "a" },
      { sha256: tokenHash(TOKENS.replicaB), role: "replica", replica_id: "b" },
    ],
  });
}

/** What an app test gets. */
export interface AppFixture extends PrimaryFixture {
  app: ReturnType<typeof createApp>;
  metrics: Metrics;
  /** The materialised state (started: it follows the spool in the background). */
  state: StateApplier;
  snapshots: SnapshotServer;
  /** Sends a request; `json` sets the body and content-type, `token` the bearer token. */
  call(
    method: string,
    path: string,
    options?: {
      json?: unknown;
      body?: BodyInit;
      token?: string;
      headers?: Record<string, string>;
      signal?: AbortSignal;
    },
  ): Promise<Response>;
}

/** Options of `withApp`. */
export interface AppFixtureOptions extends FixtureOptions {
  auth?: Auth;
  app?: Partial<AppDeps>;
}

/** Runs `fn` with the app over a fresh primary; everything is closed after. */
export async function withApp(
  options: AppFixtureOptions,
  fn: (fixture: AppFixture) => Promise<void>,
): Promise<void> {
  await withPrimary(options, async (primaryFixture) => {
    const metrics = new Metrics();
    const state = await StateApplier.open({ spool: primaryFixture.spool, kv: primaryFixture.kv });
    metrics.attachPrimary(primaryFixture.primary, { appliedLsn: () => state.appliedLsn() });
    const snapshots = new SnapshotServer(primaryFixture.primary, state, { concurrencyMax: 2 });
    state.start();
    const app = createApp({
      primary: primaryFixture.primary,
      auth: options.auth ?? Auth.disabled(),
      metrics,
      limits: { requestBytesMax: 4 << 20, recordBytesMax: 1 << 20, requestRecordsMax: 1000 },
      failOnCommitTimeout: false,
      isReady: () => true,
      logger: silentLogger,
      state,
      snapshots,
      ...options.app,
    });
    const call: AppFixture["call"] = (method, path, callOptions = {}) => {
      const headers: Record<string, string> = { ...callOptions.headers };
      if (callOptions.token) headers.authorization = `Bearer ${callOptions.token}`;
      let body = callOptions.body;
      if (callOptions.json !== undefined) {
        body = JSON.stringify(callOptions.json);
        headers["content-type"] ??= "application/json";
      }
      return Promise.resolve(
        app.request(`http://ferry.test${path}`, {
          method,
          headers,
          body,
          signal: callOptions.signal,
        }),
      );
    };
    try {
      await fn({ ...primaryFixture, app, metrics, state, snapshots, call });
    } finally {
      await state.stop();
    }
  });
}

/** A put record. */
export function put(key: string, value: unknown = { n: key }, collection = "users") {
  return { op: "put", collection, key, value };
}
