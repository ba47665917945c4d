/**
 * Live events for operators (SPEC.md 13.5, `GET /v1/events`): one JSON object per event, in order,
 * to every subscriber. Publishing never waits: each subscriber has a bounded buffer, and one that
 * falls behind past it is dropped (its stream ends; it may reconnect), so a stalled browser tab can
 * never slow a write.
 *
 * @module
 */

import { OverloadedError } from "./errors.ts";
import {
  EVENTS_SUBSCRIBER_BUFFER_BYTES_MAX,
  EVENTS_SUBSCRIBER_BUFFER_EVENTS_MAX,
  EVENTS_SUBSCRIBERS_MAX,
} from "./limits.ts";
import type { LogFields, Logger } from "./log.ts";

/** One published event, already serialized once for every subscriber. */
export interface PublishedEvent {
  id: number;
  json: string;
}

/** A subscriber's end: events in order, until it is closed or dropped. */
export interface Subscription {
  /** The next event; undefined once the subscription ended (closed, dropped, or hub closed). */
  next(): Promise<PublishedEvent | undefined>;
  /** Ends the subscription (the client went away). */
  close(): void;
  /** Why it ended, once it has: "closed" or "dropped" (fell behind). */
  readonly ended: "closed" | "dropped" | undefined;
}

class _Subscriber implements Subscription {
  #queue: PublishedEvent[] = [];
  #queuedBytes = 0;
  #waiting: ((event: PublishedEvent | undefined) => void) | undefined;
  #onEnd: (subscriber: _Subscriber) => void;
  ended: "closed" | "dropped" | undefined;

  constructor(onEnd: (subscriber: _Subscriber) => void) {
    this.#onEnd = onEnd;
  }

  /** Delivers at once to a waiting reader, else queues; past the buffer bounds, drops. */
  offer(event: PublishedEvent): void {
    if (this.ended) return;
    if (this.#waiting) {
      const deliver = this.#waiting;
      this.#waiting = undefined;
      deliver(event);
      return;
    }
    this.#queue.push(event);
    this.#queuedBytes += event.json.length;
    if (
      this.#queue.length > EVENTS_SUBSCRIBER_BUFFER_EVENTS_MAX ||
      this.#queuedBytes > EVENTS_SUBSCRIBER_BUFFER_BYTES_MAX
    ) {
      this.#end("dropped");
    }
  }

  next(): Promise<PublishedEvent | undefined> {
    const queued = this.#queue.shift();
    if (queued) {
      this.#queuedBytes -= queued.json.length;
      return Promise.resolve(queued);
    }
    if (this.ended) return Promise.resolve(undefined);
    return new Promise((resolve) => (this.#waiting = resolve));
  }

  close(): void {
    this.#end("closed");
  }

  #end(why: "closed" | "dropped"): void {
    if (this.ended) return;
    this.ended = why;
    this.#queue = [];
    this.#queuedBytes = 0;
    this.#waiting?.(undefined);
    this.#waiting = undefined;
    this.#onEnd(this);
  }
}

/** The events of one ferry process. */
export class EventHub {
  #subscribers = new Set<_Subscriber>();
  #nextId = 1;
  #dropped = 0;

  /** Subscribers right now. */
  get subscribers(): number {
    return this.#subscribers.size;
  }

  /** Subscribers dropped for falling behind, since start. */
  get droppedTotal(): number {
    return this.#dropped;
  }

  /** Sends `{type, ...fields}` to every subscriber, in publish order. Never waits. */
  publish(type: string, fields: Record<string, unknown> = {}): void {
    if (this.#subscribers.size === 0) return;
    const id = this.#nextId++;
    const event = { id, json: JSON.stringify({ type, ts_unix_ms: Date.now(), ...fields }) };
    for (const subscriber of this.#subscribers) subscriber.offer(event);
  }

  /** A new subscription; `OverloadedError` past {@link EVENTS_SUBSCRIBERS_MAX}. */
  subscribe(): Subscription {
    if (this.#subscribers.size >= EVENTS_SUBSCRIBERS_MAX) {
      throw new OverloadedError(`at most ${EVENTS_SUBSCRIBERS_MAX} event subscribers`);
    }
    const subscriber = new _Subscriber((ended) => {
      this.#subscribers.delete(ended);
      if (ended.ended === "dropped") this.#dropped += 1;
    });
    this.#subscribers.add(subscriber);
    return subscriber;
  }

  /** Ends every subscription (shutdown). */
  close(): void {
    for (const subscriber of [...this.#subscribers]) subscriber.close();
  }
}

/**
 * A logger that also publishes the log events an operator watches (`events`, by name) to `hub`,
 * with their fields: slot invalidations, registrations, health flips, re-bootstraps.
 */
export function publishingLogger(
  base: Logger,
  hub: EventHub,
  events: ReadonlySet<string>,
): Logger {
  const tee = (level: "info" | "warn" | "error") => (event: string, fields?: LogFields) => {
    base[level](event, fields);
    if (events.has(event)) hub.publish(event, { level, ...fields });
  };
  return { info: tee("info"), warn: tee("warn"), error: tee("error") };
}
