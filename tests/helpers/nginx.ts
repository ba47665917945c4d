/**
 * nginx (Debian's package) in front of a ferry process, for tests and benchmarks: a config in a
 * temp directory, nginx on a free loopback port, stopped by its PID. By default it caches sealed
 * segments the way the README's "Many edges" section shows (`segmentsCacheLocation`), and proxies
 * everything else uncached; `locations` adds blocks (streams, other routes) before the catch-all.
 *
 * `findNginx()` installs the package with apt-get when it is missing (as root); where that cannot
 * work, tests skip with the reason, unless `FERRY_REQUIRE_NGINX=1` (CI) makes that a failure.
 */

import { freePort, programSucceeds, waitUntil } from "./process.ts";

/** Where nginx was found, or why the tests that need it skip. */
export type NginxFound = { path: string } | { skip: string };

/** Options of `startNginx`. */
export interface NginxOptions {
  /** The ferry process nginx proxies to, `host:port`. */
  upstream: string;
  /** Cache sealed segments under `/v1/segments/` (default true). */
  cacheSegments?: boolean;
  /** More `location` blocks (nginx syntax) for the server, before the catch-all `location /`. */
  locations?: string;
  /** Directives for the catch-all `location /` besides `proxy_pass` (default: none). */
  defaultLocation?: string;
  /** `worker_processes` (default 1). */
  workers?: number;
}

/** A running nginx. */
export interface RunningNginx {
  port: number;
  /** `http://127.0.0.1:<port>` */
  base: string;
  /** The temp directory of its config, cache, logs and PID file. */
  dir: string;
  pid: number;
  /** Lines of its access log: `<status> <cache status> <bytes sent> <request uri>`. */
  accessLog(): string[];
  /** Stops nginx (SIGTERM to the master's PID), waits for it, removes its directory. */
  stop(): Promise<void>;
}

/** True when FERRY_REQUIRE_NGINX=1: a missing nginx fails the tests instead of skipping them. */
export const NGINX_REQUIRED = Deno.env.get("FERRY_REQUIRE_NGINX") === "1";

/**
 * nginx's path, installed with `apt-get install nginx` when missing and this process is root; else
 * why not. Throws when it is missing and `FERRY_REQUIRE_NGINX=1`.
 */
export async function findNginx(): Promise<NginxFound> {
  let path = await _nginxPath();
  if (path === undefined && Deno.uid() === 0) {
    await _aptInstall("nginx");
    path = await _nginxPath();
  }
  if (path !== undefined) return { path };
  const skip = "nginx is not installed and apt-get could not install it (Debian's nginx package)";
  if (NGINX_REQUIRED) throw new Error(`FERRY_REQUIRE_NGINX=1 but ${skip}`);
  return { skip };
}

/**
 * The `location` block that caches sealed segments: every 200/206 kept (for as long as ferry's
 * `Cache-Control` says: a year, immutable), errors never (ferry marks them `no-store`, and
 * `proxy_cache_valid` names no other status), one upstream request per segment at a time
 * (`proxy_cache_lock`, waiting long enough for a whole segment), and the cache key including the
 * query string, so a signed URL is its own entry.
 */
export function segmentsCacheLocation(upstream = "ferry", zone = "ferry_segments"): string {
  return `location /v1/segments/ {
      proxy_pass http://${upstream};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache ${zone};
      proxy_cache_key $scheme$proxy_host$request_uri;
      proxy_cache_valid 200 206 1h;
      proxy_cache_lock on;
      proxy_cache_lock_timeout 120s;
      proxy_cache_lock_age 120s;
      add_header X-Cache-Status $upstream_cache_status always;
    }`;
}

/** Writes a config for `options` in a temp directory and starts nginx on a free loopback port. */
export async function startNginx(path: string, options: NginxOptions): Promise<RunningNginx> {
  const dir = await Deno.makeTempDir({ prefix: "ferry-nginx-" });
  // Workers may run as another user: they must be able to write the cache and temp files.
  await Deno.chmod(dir, 0o777);
  const port = freePort();
  await Deno.writeTextFile(`${dir}/nginx.conf`, _config(dir, port, options));
  const child = new Deno.Command(path, {
    args: ["-p", dir, "-c", `${dir}/nginx.conf`, "-e", `${dir}/error.log`],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  let exited = false;
  child.status.then(() => (exited = true));
  try {
    await waitUntil("nginx to listen", async () => {
      if (exited) throw new Error(`nginx exited: ${await stderr}\n${_read(`${dir}/error.log`)}`);
      return await _accepts(port);
    }, 10_000);
  } catch (error) {
    if (!exited) child.kill("SIGKILL");
    await child.status;
    await Deno.remove(dir, { recursive: true });
    throw error;
  }
  return {
    port,
    base: `http://127.0.0.1:${port}`,
    dir,
    pid: child.pid,
    accessLog: () => _read(`${dir}/access.log`).split("\n").filter((line) => line !== ""),
    async stop() {
      if (!exited) Deno.kill(child.pid, "SIGTERM");
      await child.status;
      await stderr;
      await Deno.remove(dir, { recursive: true });
    },
  };
}

function _config(dir: string, port: number, options: NginxOptions): string {
  const cache = options.cacheSegments ?? true;
  return `# Written by tests/helpers/nginx.ts for one test run.
${Deno.uid() === 0 ? "user root;" : ""}
daemon off;
worker_processes ${options.workers ?? 1};
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 8192; }
http {
  log_format ferry '$status $upstream_cache_status $body_bytes_sent $request_uri';
  access_log ${dir}/access.log ferry;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy_temp;
  fastcgi_temp_path ${dir}/fastcgi_temp;
  uwsgi_temp_path ${dir}/uwsgi_temp;
  scgi_temp_path ${dir}/scgi_temp;
  proxy_cache_path ${dir}/cache levels=1:2 keys_zone=ferry_segments:10m max_size=20g inactive=1d use_temp_path=off;
  upstream ferry {
    server ${options.upstream};
    keepalive 64;
  }
  server {
    listen 127.0.0.1:${port};
    ${cache ? segmentsCacheLocation() : ""}
    ${options.locations ?? ""}
    location / {
      proxy_pass http://ferry;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      ${options.defaultLocation ?? ""}
    }
  }
}
`;
}

async function _accepts(port: number): Promise<boolean> {
  try {
    (await Deno.connect({ hostname: "127.0.0.1", port })).close();
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.ConnectionRefused) return false;
    throw error;
  }
}

function _read(path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return "";
    throw error;
  }
}

async function _nginxPath(): Promise<string | undefined> {
  for (const candidate of ["nginx", "/usr/sbin/nginx"]) {
    try {
      const result = await new Deno.Command(candidate, {
        args: ["-v"],
        stdout: "null",
        stderr: "null",
      })
        .output();
      if (result.success) return candidate;
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
  return undefined;
}

/** `apt-get install` of `name` (after `apt-get update` when the first try fails); quiet. */
async function _aptInstall(name: string): Promise<void> {
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  const run = (args: string[]) => programSucceeds("apt-get", { args, env });
  const install = ["install", "-y", "--no-install-recommends", name];
  if (!(await run(install)) && (await run(["update"]))) await run(install);
}
