// A streaming pull through nginx with its default buffering (SPEC.md 13.1): ferry's
// `X-Accel-Buffering: no` makes nginx pass each chunk on at once, so a write's frame reaches the
// stream's reader within 100 ms (the median over several writes; the bound is the issue's). Real
// processes: a primary, nginx in front of it (tests/helpers/nginx.ts; `proxy_pass` alone for
// /v1/wal, so buffering and the upstream protocol are nginx's defaults; stopped by PID), a reader
// through nginx.

import assert from "node:assert/strict";
import { FerryClient } from "../../src/client/client.ts";
import { type Node, startPrimary, stop, write } from "../helpers/cluster.ts";
import { findNginx, type RunningNginx, startNginx } from "../helpers/nginx.ts";
import { withTempDir } from "../helpers/temp.ts";

const NGINX = await findNginx();
const WRITES = 15;
const WRITE_GAP_MS = 40;
const ARRIVAL_MEDIAN_MS_MAX = 100;

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

Deno.test({
  name:
    "frames reach a stream's reader through nginx (default buffering) within 100 ms of the write",
  ignore: "skip" in NGINX,
  fn: async () => {
    if ("skip" in NGINX) return;
    await withTempDir(async (dir) => {
      const primary: Node = await startPrimary(`${dir}/data`);
      let nginx: RunningNginx | undefined;
      try {
        nginx = await startNginx(NGINX.path, {
          upstream: `127.0.0.1:${primary.port}`,
          cacheSegments: false,
          // Nothing but the proxy: nginx's own defaults (buffering on, HTTP/1.0 upstream).
          locations: "location /v1/wal { proxy_pass http://ferry; }",
        });
        const stream = await new FerryClient(nginx.base).streamFrames({ replicaId: "edge-1" });
        const arrivedAt = new Map<number, number>();
        const reading = (async () => {
          for await (const item of stream) {
            if (item.kind !== "frames") continue;
            for (const frame of item.frames) arrivedAt.set(frame.lsn, performance.now());
            if (arrivedAt.size >= WRITES) return;
          }
        })();
        const sentAt = new Map<number, number>();
        for (let i = 0; i < WRITES; i++) {
          const started = performance.now();
          const { status, body } = await write(primary.base, [
            { op: "put", collection: "c", key: `k${i}`, value: i },
          ]);
          assert.equal(status, 200);
          sentAt.set(body.last_lsn as number, started);
          await new Promise((resolve) => setTimeout(resolve, WRITE_GAP_MS));
        }
        await reading;
        await stream.cancel();
        const delays = [...sentAt].map(([lsn, at]) => arrivedAt.get(lsn)! - at);
        const delay = median(delays);
        assert.ok(
          delay < ARRIVAL_MEDIAN_MS_MAX,
          `median ${delay.toFixed(1)} ms from write to frame through nginx: ${
            delays.map((d) => d.toFixed(1)).join(", ")
          }`,
        );
      } finally {
        await nginx?.stop();
        await stop(primary);
      }
    });
  },
});
