/**
 * The replica's streaming pull (SPEC.md 13.1): follows one stream from its applied LSN until the
 * stream ends, applying each run of frames as it arrives (through the runtime, which judges and
 * applies them as it does a pull's) and acking at least every `REPLICA_STREAM_ACK_MS`, even with
 * nothing new: a replica is seen by its acks, never by its open socket. The runtime's loop then
 * resumes from its last LSN, with a new stream or, when streams do not work, a long-poll.
 *
 * `StreamPolicy` decides between the two: streams by default; long-polls for a while when the
 * server refuses `stream=1` (an older primary) or when streams keep breaking (a proxy that cuts
 * them, or buffers them so nothing arrives).
 *
 * @module
 */

import type { FerryClient } from "../client/client.ts";
import type { FrameStream, StreamOptions } from "../client/types.ts";
import { FerryHttpError, FerryResponseError, StreamRefusedError } from "../core/errors.ts";
import {
  REPLICA_STREAM_BREAKS_MAX,
  REPLICA_STREAM_RETRY_MS,
  REPLICA_STREAM_SHORT_MS,
} from "../core/limits.ts";
import type { Logger } from "../core/log.ts";
import type { DecodedFrame } from "../wal/frame.ts";
import type { ControlRecord } from "../wal/stream_codec.ts";

/** How a followed stream ended, for the runtime's loop. */
export type FollowEnd =
  /** The primary ended it (its life, its cap, shutdown): resume at once. */
  | "ended"
  /** The server does not stream: the policy fell back to long-polls. */
  | "refused"
  /** A frame stopped the apply (damage, a gap, a divergence): back off, as after a pull. */
  | "halted";

/** What the follower needs from the runtime. */
export interface StreamHost {
  client: FerryClient;
  request: StreamOptions;
  /** The runtime's stop: aborts the stream. */
  signal: AbortSignal;
  /** Acks at least this often while the stream is open. */
  ackEveryMs: number;
  /** Gives the stream up when nothing arrives for this long. */
  idleMs: number;
  /** Judges and applies frames (and a damaged item); true when following must stop (halted). */
  apply: (
    frames: DecodedFrame[],
    corrupt?: { offset: number; reason: string },
  ) => Promise<{ halted: boolean }>;
  /** Acks the applied (and durable) position. */
  ack: () => Promise<void>;
  /** The primary stands at least at `lsn` on `timeline`. */
  primaryAt: (lsn: number, timeline: number) => void;
  /** The stream opened (its first control record was accepted): the path works again. */
  opened?: () => void;
  /** Each control record, as received (a cluster leader's carry the failover slots). */
  control?: (record: ControlRecord) => void;
  logger: Logger;
}

/** When the replica streams and when it long-polls (see the module comment). */
export class StreamPolicy {
  #enabled: boolean;
  #logger: Logger;
  #clock: () => number;
  #breaks = 0;
  #pollUntilMs = 0;

  constructor(options: { enabled: boolean; logger: Logger; clock?: () => number }) {
    this.#enabled = options.enabled;
    this.#logger = options.logger;
    this.#clock = options.clock ?? Date.now;
  }

  /** True when the next step should open a stream (else: a long-poll). */
  useStream(): boolean {
    return this.#enabled && this.#clock() >= this.#pollUntilMs;
  }

  /** The server answered `stream=1` with a plain pull or a 400: long-polls for a while. */
  refused(why: string): void {
    this.#fallBack("refused", why);
  }

  /**
   * A stream ended: broken when it brought nothing, or was cut soon after it opened without
   * bringing a frame. Enough broken streams in a row mean streams do not work on this path:
   * long-polls for a while. A stream that brought frames worked, however soon it was cut (a
   * primary that restarted, a failover): resuming with a stream costs less than long-polls.
   */
  ended(outcome: { items: number; frames: number; livedMs: number; cut: boolean }): void {
    const broken = outcome.items === 0 ||
      (outcome.cut && outcome.livedMs < REPLICA_STREAM_SHORT_MS && outcome.frames === 0);
    if (!broken) {
      this.#breaks = 0;
      return;
    }
    this.#breaks += 1;
    if (this.#breaks >= REPLICA_STREAM_BREAKS_MAX) {
      this.#fallBack("broken", `${this.#breaks} streams in a row broke`);
    }
  }

  #fallBack(reason: string, why: string): void {
    this.#breaks = 0;
    this.#pollUntilMs = this.#clock() + REPLICA_STREAM_RETRY_MS;
    this.#logger.warn("replica.stream_fallback", {
      reason,
      message: `${why}; long-polls for ${REPLICA_STREAM_RETRY_MS} ms, then a stream again`,
    });
  }
}

/**
 * Follows one stream until it ends. Errors of the request (a 409, a 503, a dead primary) and a
 * stream cut or gone quiet are thrown to the runtime's loop, which handles them as a pull's; a
 * refused stream returns "refused" with the policy fallen back to long-polls.
 */
export async function followStream(policy: StreamPolicy, host: StreamHost): Promise<FollowEnd> {
  const watchdog = new _Watchdog(host.idleMs);
  const signal = AbortSignal.any([host.signal, watchdog.signal]);
  const openedAtMs = Date.now();
  let stream: FrameStream;
  try {
    stream = await host.client.streamFrames({ ...host.request, signal });
  } catch (error) {
    watchdog.stop();
    if (
      error instanceof StreamRefusedError ||
      (error instanceof FerryHttpError && error.status === 400)
    ) {
      policy.refused((error as Error).message);
      return "refused";
    }
    if (watchdog.fired) {
      policy.ended({ items: 0, frames: 0, livedMs: Date.now() - openedAtMs, cut: true });
    }
    throw watchdog.fired ? watchdog.error() : error;
  }
  const acker = new _Acker(host.ack, host.ackEveryMs);
  const outcome = { items: 0, frames: 0, cut: false };
  // The request's abort does not reliably end a body read already waiting (measured on Deno
  // 2.9: a stop or a quiet stream could hang there): cancel the body too.
  const cancel = () => void stream.cancel();
  signal.addEventListener("abort", cancel, { once: true });
  try {
    host.primaryAt(stream.position.currentLsn, stream.position.timeline);
    const end = await _consume(stream, host, { watchdog, acker, outcome });
    // Cancelled rather than ended by the server: a stop, or a stream gone quiet.
    if (host.signal.aborted) return "ended";
    if (watchdog.fired) throw watchdog.error();
    await acker.flush();
    return end;
  } catch (error) {
    // A failed ack is the ack's error (the loop handles it), not a sign of a broken stream.
    outcome.cut = !acker.failedWith(error);
    if (host.signal.aborted) return "ended";
    throw watchdog.fired ? watchdog.error() : error;
  } finally {
    signal.removeEventListener("abort", cancel);
    watchdog.stop();
    acker.stop();
    await stream.cancel();
    policy.ended({ ...outcome, livedMs: Date.now() - openedAtMs });
  }
}

/** Reads the stream's items, applying frames and noting the primary's position, until it ends. */
async function _consume(
  stream: FrameStream,
  host: StreamHost,
  parts: { watchdog: _Watchdog; acker: _Acker; outcome: { items: number; frames: number } },
): Promise<FollowEnd> {
  const { watchdog, acker, outcome } = parts;
  let timeline = stream.position.timeline;
  let primaryLsn = stream.position.currentLsn;
  for await (const item of stream) {
    watchdog.feed();
    outcome.items += 1;
    acker.check();
    if (item.kind === "control") {
      timeline = item.control.timeline;
      primaryLsn = Math.max(primaryLsn, item.control.currentLsn);
      host.primaryAt(primaryLsn, timeline);
      host.control?.(item.control);
      // The first one opens the stream: the replica is following, healthy until a frame says not.
      // It acks at once: a primary that just restarted learns where the replica stands.
      if (outcome.items === 1) {
        if ((await host.apply([])).halted) return "halted";
        host.opened?.();
        acker.request();
      }
      continue;
    }
    const corrupt = item.kind === "corrupt"
      ? { offset: item.offset, reason: item.reason }
      : undefined;
    const frames = item.kind === "frames" ? item.frames : [];
    outcome.frames += frames.length;
    primaryLsn = Math.max(primaryLsn, frames[frames.length - 1]?.lsn ?? 0);
    host.primaryAt(primaryLsn, timeline);
    const { halted } = await host.apply(frames, corrupt);
    if (halted) {
      await acker.flush(true);
      return "halted";
    }
    acker.request();
  }
  return "ended";
}

/** Aborts when nothing arrives for `idleMs` (a dead path, or a proxy that buffers the stream). */
class _Watchdog {
  #controller = new AbortController();
  #idleMs: number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  fired = false;

  constructor(idleMs: number) {
    this.#idleMs = idleMs;
    this.feed();
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Something arrived: the idle time starts over. */
  feed(): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.fired = true;
      this.#controller.abort();
    }, this.#idleMs);
  }

  stop(): void {
    clearTimeout(this.#timer);
  }

  error(): FerryResponseError {
    return new FerryResponseError(`the stream brought nothing for ${this.#idleMs} ms`);
  }
}

/**
 * The acks of one stream: one after each applied run (one at a time: progress made while an ack
 * is on its way goes in the next one), and one whenever `everyMs` passed without any. A failed
 * ack is thrown from the next `check`, `request` or `flush`.
 */
class _Acker {
  #ack: () => Promise<void>;
  #everyMs: number;
  #inFlight: Promise<void> | undefined;
  #dirty = false;
  #lastMs = Date.now();
  #failure: { error: unknown } | undefined;
  #timer: ReturnType<typeof setInterval>;

  constructor(ack: () => Promise<void>, everyMs: number) {
    this.#ack = ack;
    this.#everyMs = everyMs;
    // Half the period: an ack goes out at most `everyMs` after the last, whatever the timer's phase.
    this.#timer = setInterval(() => {
      if (Date.now() - this.#lastMs >= this.#everyMs / 2) this.request();
    }, this.#everyMs / 2);
  }

  /** True when `error` is the failure of one of these acks. */
  failedWith(error: unknown): boolean {
    return this.#failure !== undefined && this.#failure.error === error;
  }

  /** Throws the failure of an earlier ack. */
  check(): void {
    if (this.#failure) throw this.#failure.error;
  }

  /** Acks now, or right after the ack on its way. */
  request(): void {
    this.check();
    if (this.#inFlight) {
      this.#dirty = true;
      return;
    }
    this.#lastMs = Date.now();
    this.#inFlight = this.#ack()
      .catch((error) => void (this.#failure = { error }))
      .finally(() => {
        this.#inFlight = undefined;
        if (this.#dirty && !this.#failure) {
          this.#dirty = false;
          this.request();
        }
      });
  }

  /** Waits for the acks on their way (and, with `now`, sends one more), then throws a failure. */
  async flush(now = false): Promise<void> {
    if (now) this.#dirty = true;
    while (this.#inFlight) await this.#inFlight;
    if (now && this.#dirty && !this.#failure) {
      this.#dirty = false;
      await this.#ack().catch((error) => void (this.#failure = { error }));
    }
    this.check();
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}
