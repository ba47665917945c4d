/** A private CA and server certificates made with `openssl`, for the TLS tests. */

import { programSucceeds } from "./process.ts";

/** True when `openssl` can be run (the TLS tests are skipped, saying so, without it). */
export function opensslAvailable(): Promise<boolean> {
  return programSucceeds("openssl", { args: ["version"] });
}

async function _openssl(args: string[], cwd: string): Promise<void> {
  const output = await new Deno.Command("openssl", { args, cwd, stdout: "piped", stderr: "piped" })
    .output();
  if (!output.success) {
    throw new Error(`openssl ${args.join(" ")}: ${new TextDecoder().decode(output.stderr)}`);
  }
}

/** Paths of one CA and one server certificate it signed (for 127.0.0.1 and localhost). */
export interface TestPki {
  caCert: string;
  serverCert: string;
  serverKey: string;
}

/** Makes a CA named `name` in `dir` and a server certificate it signs; returns the PEM paths. */
export async function makeTestPki(dir: string, name: string): Promise<TestPki> {
  await Deno.mkdir(dir, { recursive: true });
  const ca = `${name}-ca`;
  const server = `${name}-server`;
  await _openssl([
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    `${ca}.key`,
    "-out",
    `${ca}.pem`,
    "-days",
    "2",
    "-subj",
    `/CN=${name} test CA`,
  ], dir);
  await _openssl([
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    `${server}.key`,
    "-out",
    `${server}.csr`,
    "-subj",
    "/CN=localhost",
  ], dir);
  await Deno.writeTextFile(`${dir}/${server}.ext`, "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  await _openssl([
    "x509",
    "-req",
    "-in",
    `${server}.csr`,
    "-CA",
    `${ca}.pem`,
    "-CAkey",
    `${ca}.key`,
    "-CAcreateserial",
    "-out",
    `${server}.pem`,
    "-days",
    "2",
    "-extfile",
    `${server}.ext`,
  ], dir);
  return {
    caCert: `${dir}/${ca}.pem`,
    serverCert: `${dir}/${server}.pem`,
    serverKey: `${dir}/${server}.key`,
  };
}

/** A `fetch` that trusts `caPem`, and the client to close after. */
export function trustingFetch(caPem: string): { fetch: typeof fetch; close(): void } {
  const client = Deno.createHttpClient({ caCerts: [caPem] });
  return {
    fetch: (input, init) => fetch(input, { ...init, client }),
    close: () => client.close(),
  };
}
