import assert from "node:assert/strict";
import { EtcdClient } from "../../src/cluster/etcd.ts";
import { EtcdUnavailableError } from "../../src/core/errors.ts";
import { ETCD_MISSING, startEtcd } from "../helpers/etcd.ts";
import { freePort } from "../helpers/process.ts";

const ignore = ETCD_MISSING !== undefined;

Deno.test({
  name: "EtcdClient reads, writes, lists by prefix and runs create-if-absent transactions",
  ignore,
  async fn() {
    const etcd = await startEtcd();
    const client = new EtcdClient({ endpoints: [etcd.url] });
    try {
      assert.equal(await client.get("ferry/t/term"), undefined);
      await client.put("ferry/t/timelines/1", '{"timeline":1}');
      await client.put("ferry/t/timelines/2", '{"timeline":2}');
      await client.put("ferry/u/timelines/9", "other cluster");
      const listed = await client.list("ferry/t/timelines/", 10);
      assert.deepEqual(listed.map((kv) => kv.value), ['{"timeline":1}', '{"timeline":2}']);

      const create = () =>
        client.txn(
          [{ key: "ferry/t/leader", target: "CREATE", createRevision: "0" }],
          [{ put: { key: "ferry/t/leader", value: "é-node" } }],
          [{ range: { key: "ferry/t/leader" } }],
        );
      const first = await create();
      assert.equal(first.succeeded, true);
      const second = await create();
      assert.equal(second.succeeded, false);
      assert.equal(second.ranges[0]![0]!.value, "é-node", "the failure branch reads the holder");
    } finally {
      client.close();
      await etcd.stop();
    }
  },
});

Deno.test({
  name: "EtcdClient leases: keys bound to a lease go when it is revoked; keepAlive then says 0",
  ignore,
  async fn() {
    const etcd = await startEtcd();
    const client = new EtcdClient({ endpoints: [etcd.url] });
    try {
      const lease = await client.grantLease(5);
      assert.ok(lease.ttlS >= 5);
      await client.put("ferry/t/leader", "a", lease.id);
      assert.ok(await client.keepAlive(lease.id) > 0);
      await client.revokeLease(lease.id);
      assert.equal(await client.get("ferry/t/leader"), undefined);
      assert.equal(await client.keepAlive(lease.id), 0);
    } finally {
      client.close();
      await etcd.stop();
    }
  },
});

Deno.test({
  name: "EtcdClient fails over to the next endpoint, and says etcd_unavailable when none answers",
  ignore,
  async fn() {
    const etcd = await startEtcd();
    const dead = `http://127.0.0.1:${freePort()}`;
    const client = new EtcdClient({ endpoints: [dead, etcd.url] });
    const nobody = new EtcdClient({ endpoints: [dead] });
    try {
      await client.put("k", "v");
      assert.equal((await client.get("k"))?.value, "v");
      assert.equal(client.endpoint, etcd.url, "the endpoint that answered is tried first");
      await assert.rejects(nobody.get("k"), (error: unknown) => {
        assert.ok(error instanceof EtcdUnavailableError);
        assert.equal(error.code, "etcd_unavailable");
        return true;
      });
    } finally {
      client.close();
      nobody.close();
      await etcd.stop();
    }
  },
});

Deno.test({
  name: "EtcdClient authenticates with etcd's users and refuses clearly without them",
  ignore,
  async fn() {
    const etcd = await startEtcd();
    const etcdctl = (...args: string[]) =>
      new Deno.Command("etcdctl", {
        args: [`--endpoints=${etcd.url}`, ...args],
        env: { ETCDCTL_API: "3" },
        stdout: "null",
        stderr: "piped",
      }).output();
    const authed = new EtcdClient({ endpoints: [etcd.url], user: "root", password: "s3cret" });
    const anonymous = new EtcdClient({ endpoints: [etcd.url] });
    try {
      for (const args of [["user", "add", "root:s3cret"], ["auth", "enable"]]) {
        const done = await etcdctl(...args);
        assert.ok(done.success, new TextDecoder().decode(done.stderr));
      }
      await authed.put("ferry/a/term", "1");
      assert.equal((await authed.get("ferry/a/term"))?.value, "1");
      const lease = await authed.grantLease(5);
      assert.ok(await authed.keepAlive(lease.id) > 0);
      await assert.rejects(anonymous.get("ferry/a/term"), EtcdUnavailableError);
    } finally {
      authed.close();
      anonymous.close();
      await etcd.stop();
    }
  },
});
