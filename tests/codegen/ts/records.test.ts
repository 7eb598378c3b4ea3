// Node tests (node --test) of the generated golden bindings over a fake JavaScript MeshClient:
// records: full and patch mode (patches applied, stale versions, resync), deletion, writes.

import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { describe, test } from "node:test";

import {
  ChatAppClient,
  ForbiddenError,
  SubscriptionDenied,
  type RecordChange,
  type RoomTopic,
  type UserProfile,
} from "../golden/expected-ts/index.js";
import { FakeClient } from "./fake-client.js";

// fast-json-patch is CommonJS without named ESM exports; the JavaScript client re-exports its
// applyPatch, which is what applications pass in.
const { applyPatch } = createRequire(import.meta.url)(
  "fast-json-patch",
) as typeof import("fast-json-patch");

const PROFILE: UserProfile = {
  id: "u42",
  name: "Ada",
  createdAt: "2026-01-01T00:00:00Z",
  tags: ["admin"],
};

describe("records", () => {
  test("full mode: the current value, then every change, then deletion", async () => {
    const client = new FakeClient();
    client.subscribeReplies.push({
      success: true,
      record: PROFILE,
      version: 3,
    });
    const app = new ChatAppClient(client);
    const changes: RecordChange<UserProfile>[] = [];
    const subscription = await app.records.userProfile(
      { id: "u42" },
      (change) => void changes.push(change),
    );
    assert.deepEqual(client.calls, [
      { method: "subscribeRecord", args: ["user:u42", { mode: "full" }] },
    ]);
    assert.deepEqual([subscription.value, subscription.version], [PROFILE, 3]);
    const renamed = { ...PROFILE, name: "Grace" };
    await client.pushRecord({
      recordId: "user:u42",
      full: renamed,
      version: 4,
    });
    assert.deepEqual([subscription.value, subscription.version], [renamed, 4]);
    await client.pushRecord({
      recordId: "user:u42",
      deleted: true,
      version: 4,
    });
    assert.deepEqual([subscription.value, subscription.active], [null, false]);
    assert.deepEqual(
      changes.map((c) => [c.value?.name ?? null, c.version, c.deleted]),
      [
        ["Ada", 3, false],
        ["Grace", 4, false],
        [null, 4, true],
      ],
    );
    await client.pushRecord({
      recordId: "user:u42",
      full: PROFILE,
      version: 5,
    });
    assert.equal(changes.length, 3);
  });

  test("an absent record is null at version 0", async () => {
    const client = new FakeClient();
    client.subscribeReplies.push({ success: true, record: null, version: 0 });
    const app = new ChatAppClient(client);
    const topic = await app.records.roomTopic({ room: "lobby" });
    assert.deepEqual([topic.value, topic.version], [null, 0]);
    assert.equal(await topic.unsubscribe(), true);
    assert.equal(topic.active, false);
  });

  test("patch mode applies patches and delivers whole values", async () => {
    const client = new FakeClient();
    client.subscribeReplies.push({ success: true, record: null, version: 0 });
    const app = new ChatAppClient(client, { applyPatch });
    const changes: RecordChange<RoomTopic>[] = [];
    const topic = await app.records.roomTopic({ room: "lobby" }, (c) => void changes.push(c), {
      mode: "patch",
    });
    assert.deepEqual(client.calls, [
      {
        method: "subscribeRecord",
        args: ["room:lobby:topic", { mode: "patch" }],
      },
    ]);
    // The first write to a null record is a root replace (protocol.md §11.4).
    const patch = [{ op: "replace" as const, path: "", value: "Welcome" }];
    await client.pushRecord({
      recordId: "room:lobby:topic",
      patch,
      version: 1,
    });
    assert.deepEqual([topic.value, topic.version], ["Welcome", 1]);
    assert.deepEqual(changes.at(-1), {
      recordId: "room:lobby:topic",
      value: "Welcome",
      version: 1,
      deleted: false,
      patch,
    });
  });

  test("patch mode on objects keeps earlier values untouched and ignores stale versions", async () => {
    const client = new FakeClient();
    client.subscribeReplies.push({
      success: true,
      record: PROFILE,
      version: 1,
    });
    const app = new ChatAppClient(client, { applyPatch });
    const changes: RecordChange<UserProfile>[] = [];
    const profile = await app.records.userProfile({ id: "u42" }, (c) => void changes.push(c), {
      mode: "patch",
    });
    await client.pushRecord({
      recordId: "user:u42",
      patch: [
        { op: "replace", path: "/name", value: "Grace" },
        { op: "add", path: "/tags/1", value: "member" },
      ],
      version: 2,
    });
    await client.pushRecord({
      recordId: "user:u42",
      patch: [{ op: "remove", path: "/tags" }],
      version: 2,
    });
    assert.deepEqual(profile.value, {
      ...PROFILE,
      name: "Grace",
      tags: ["admin", "member"],
    });
    assert.equal(profile.version, 2);
    assert.deepEqual(changes[0]?.value, PROFILE);
    assert.equal(changes.length, 2);
  });

  test("a patch that does not apply resyncs like the client does on a version gap", async () => {
    const client = new FakeClient();
    const current = { ...PROFILE, name: "Current" };
    client.subscribeReplies.push(
      { success: true, record: PROFILE, version: 1 },
      { success: true, record: current, version: 5 },
    );
    const app = new ChatAppClient(client, { applyPatch });
    const profile = await app.records.userProfile({ id: "u42" }, undefined, {
      mode: "patch",
    });
    await client.pushRecord({
      recordId: "user:u42",
      patch: [{ op: "remove", path: "/nickname/x" }],
      version: 2,
    });
    assert.deepEqual(
      client.calls.map((c) => c.method),
      ["subscribeRecord", "unsubscribeRecord", "subscribeRecord"],
    );
    assert.deepEqual([profile.value, profile.version], [current, 5]);
  });

  test("patch mode without applyPatch is refused before subscribing", async () => {
    const client = new FakeClient();
    const app = new ChatAppClient(client);
    await assert.rejects(
      app.records.roomTopic({ room: "lobby" }, undefined, { mode: "patch" }),
      /applyPatch/,
    );
    assert.deepEqual(client.calls, []);
  });

  test("a denied record rejects with SubscriptionDenied", async () => {
    const client = new FakeClient();
    client.subscribeReplies.push({ success: false, record: null, version: 0 });
    const app = new ChatAppClient(client);
    await assert.rejects(app.records.userProfile({ id: "u1" }), SubscriptionDenied);
  });

  test("writes go through the command, so a refusal is a typed rejection", async () => {
    const client = new FakeClient();
    client.replies.push(
      { success: true },
      {
        error: 'Record "user:u42" is not writable by this connection.',
        code: "EFORBIDDEN",
        name: "ForbiddenError",
      },
    );
    const app = new ChatAppClient(client);
    await app.records.writeUserProfile({ id: "u42" }, PROFILE);
    assert.deepEqual(client.calls, [
      {
        method: "command",
        args: ["mesh/publish-record-update", { recordId: "user:u42", newValue: PROFILE }],
      },
    ]);
    await assert.rejects(app.records.writeUserProfile({ id: "u42" }, PROFILE), ForbiddenError);
  });
});
