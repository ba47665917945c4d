/**
 * `GET /v1/events` (SPEC.md 13.5, admin): Server-Sent Events, one JSON object per event (`data:`),
 * numbered (`id:`) in publish order. A subscriber that falls behind is dropped by the hub and its
 * stream ends; one that goes away releases its subscription at once.
 */

import { createRoute, z } from "@hono/zod-openapi";
import { UnavailableError } from "../../core/errors.ts";
import type { EventHub } from "../../core/events.ts";
import { requireRole } from "../guards.ts";
import { newRouter } from "../router.ts";
import { errorResponses } from "../schemas.ts";

/** Media type of an event stream. */
const EVENT_STREAM_MEDIA_TYPE = "text/event-stream";

const eventsRoute = createRoute({
  method: "get",
  path: "/v1/events",
  tags: ["admin"],
  responses: {
    200: {
      description: "live events: ticks (status, writes/s, lag), slot and replica changes",
      content: { [EVENT_STREAM_MEDIA_TYPE]: { schema: z.string() } },
    },
    ...errorResponses(401, 403, 503),
  },
});

/** The events route over `hub` (absent: 503). */
export function eventRoutes(options: { events?: EventHub }) {
  const app = newRouter();
  app.openapi(eventsRoute, (c) => {
    requireRole(c, "admin");
    if (!options.events) throw new UnavailableError("events are not enabled");
    const subscription = options.events.subscribe();
    const encoder = new TextEncoder();
    c.req.raw.signal.addEventListener("abort", () => subscription.close(), { once: true });
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        const event = await subscription.next();
        if (!event) {
          controller.close();
          return;
        }
        controller.enqueue(encoder.encode(`id: ${event.id}\ndata: ${event.json}\n\n`));
      },
      cancel() {
        subscription.close();
      },
    });
    return c.body(body, 200, {
      "content-type": EVENT_STREAM_MEDIA_TYPE,
      "cache-control": "no-store",
      "x-accel-buffering": "no",
    }) as never;
  });
  return app;
}
