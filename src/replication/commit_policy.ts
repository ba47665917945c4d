/**
 * Commit policies (SPEC.md section 6): `local`, `ack_n=N`, `quorum`, `regions=a,b`; their strict
 * text form, how they compare with the server's floor, and the watermark each one has reached.
 *
 * @module
 */

import { BadRequestError } from "../core/errors.ts";
import {
  ACK_N_MAX,
  COMMIT_POLICY_CHARS_MAX,
  COMMIT_POLICY_ECHO_CHARS_MAX,
  COMMIT_POLICY_REGIONS_MAX,
  REGION_BYTES_MAX,
} from "../core/limits.ts";
import { REGION_PATTERN } from "../model/ids.ts";

/** How long a write waits for replicas after it is durable on the primary. */
export type CommitPolicy =
  | { kind: "local" }
  | { kind: "ack_n"; n: number }
  | { kind: "quorum" }
  | { kind: "regions"; regions: string[] };

const _ACK_N_PATTERN = new RegExp(`^ack_n=(0|[1-9][0-9]{0,${String(ACK_N_MAX).length - 1}})$`);
const _REGIONS_PREFIX = "regions=";

/**
 * Parses a commit policy strictly: exactly `local`, `quorum`, `ack_n=N` (N a whole number
 * 0..{@link ACK_N_MAX} written without sign, spaces or leading zeros) or `regions=a,b` (1..
 * {@link COMMIT_POLICY_REGIONS_MAX} comma-separated names of 1..{@link REGION_BYTES_MAX}
 * characters `[A-Za-z0-9_.-]`; duplicates are removed, first occurrence order kept). Matching is
 * case-sensitive and nothing is trimmed: `"Local"`, `" local"` and `"ACK_N=1"` are refused, never
 * read as a fallback.
 *
 * @throws {BadRequestError} code `bad_request`, details `{ field: "commit_policy", value }`.
 *
 * @example
 * ```ts
 * parseCommitPolicy("ack_n=2"); // { kind: "ack_n", n: 2 }
 * parseCommitPolicy("regions=eu,us,eu"); // { kind: "regions", regions: ["eu", "us"] }
 * parseCommitPolicy("Quorum"); // throws BadRequestError
 * ```
 */
export function parseCommitPolicy(text: string): CommitPolicy {
  if (text.length <= COMMIT_POLICY_CHARS_MAX) {
    if (text === "local") return { kind: "local" };
    if (text === "quorum") return { kind: "quorum" };
    const ackN = _ACK_N_PATTERN.exec(text);
    if (ackN) {
      const n = Number(ackN[1]);
      if (n <= ACK_N_MAX) return { kind: "ack_n", n };
    }
    if (text.startsWith(_REGIONS_PREFIX)) {
      const regions = _parseRegionList(text.slice(_REGIONS_PREFIX.length));
      if (regions) return { kind: "regions", regions };
    }
  }
  const shown = _echo(text);
  throw new BadRequestError(
    `commit_policy ${JSON.stringify(shown)} is not valid; expected "local", "quorum", ` +
      `"ack_n=N" (N a whole number 0..${ACK_N_MAX}) or "regions=a,b" ` +
      `(1..${COMMIT_POLICY_REGIONS_MAX} names of 1..${REGION_BYTES_MAX} characters ` +
      `[A-Za-z0-9_.-]); matching is case-sensitive`,
    { field: "commit_policy", value: shown },
  );
}

/** The text form of a policy; `parseCommitPolicy(formatCommitPolicy(p))` equals `p`. */
export function formatCommitPolicy(policy: CommitPolicy): string {
  switch (policy.kind) {
    case "local":
    case "quorum":
      return policy.kind;
    case "ack_n":
      return `ack_n=${policy.n}`;
    case "regions":
      return `${_REGIONS_PREFIX}${policy.regions.join(",")}`;
  }
}

/**
 * True when `request` is at least as strong as the server's `floor`: floor `local` or `ack_n=0`
 * accepts anything; `ack_n=N` accepts `ack_n=M` with M ≥ N; `quorum` accepts only `quorum`;
 * `regions=R` accepts `regions=S` with S ⊇ R. Every other pair is false (the kinds do not
 * compare: a quorum is not "stronger" than ack_n=2, since it depends on the registered count).
 */
export function isAtLeastAsStrong(request: CommitPolicy, floor: CommitPolicy): boolean {
  switch (floor.kind) {
    case "local":
      return true;
    case "ack_n":
      return floor.n === 0 || (request.kind === "ack_n" && request.n >= floor.n);
    case "quorum":
      return request.kind === "quorum";
    case "regions": {
      if (request.kind !== "regions") return false;
      const requested = new Set(request.regions);
      return floor.regions.every((region) => requested.has(region));
    }
  }
}

/**
 * Refuses a per-request policy weaker than the server's floor (SPEC.md section 6).
 *
 * @throws {BadRequestError} details `{ field: "commit_policy", value, floor }` (text forms).
 */
export function checkPolicyAgainstFloor(request: CommitPolicy, floor: CommitPolicy): void {
  if (isAtLeastAsStrong(request, floor)) return;
  const value = formatCommitPolicy(request);
  const floorText = formatCommitPolicy(floor);
  throw new BadRequestError(
    `commit_policy "${value}" is weaker than the server's floor "${floorText}"; ` +
      `a request may only ask for the same or a stronger policy`,
    { field: "commit_policy", value, floor: floorText },
  );
}

/** What a policy's watermark is computed from. */
export interface WatermarkInputs {
  currentLsn: number;
  /** The n-th highest durable LSN of the replicas commit waits count (0 with fewer). */
  nthDurable: (n: number) => number;
  /** How many replicas commit waits count. */
  counted: number;
  /** The highest durable LSN of a live replica in `region` (0 with none). */
  regionDurable: (region: string) => number;
}

/** The highest LSN that meets `policy` now (the current LSN for `local` and `ack_n=0`). */
export function policyWatermark(policy: CommitPolicy, inputs: WatermarkInputs): number {
  switch (policy.kind) {
    case "local":
      return inputs.currentLsn;
    case "ack_n":
      return policy.n === 0 ? inputs.currentLsn : inputs.nthDurable(policy.n);
    case "quorum":
      return inputs.nthDurable(Math.floor(inputs.counted / 2) + 1);
    case "regions":
      return Math.min(...policy.regions.map(inputs.regionDurable));
  }
}

/** The names of `a,b,...`, duplicates removed in order; undefined when the list is not valid. */
function _parseRegionList(list: string): string[] | undefined {
  const names = list.split(",");
  if (names.length > COMMIT_POLICY_REGIONS_MAX) return undefined;
  if (!names.every((name) => REGION_PATTERN.test(name))) return undefined;
  return [...new Set(names)];
}

/** A bad value as echoed back to the client: cut to a bounded length. */
function _echo(text: string): string {
  return text.length <= COMMIT_POLICY_ECHO_CHARS_MAX
    ? text
    : `${text.slice(0, COMMIT_POLICY_ECHO_CHARS_MAX)}...`;
}
