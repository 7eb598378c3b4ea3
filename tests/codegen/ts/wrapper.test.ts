// Node tests (node --test) of the generated golden bindings over a fake JavaScript MeshClient:
// each family (commands, channels, records in full and patch mode, presence) end to end.

import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { describe, test } from "node:test";

import {
  ChatAppClient,
  CommandNotFoundError,
  ForbiddenError,
  MeshConnectionError,
  MeshError,
  MeshTimeoutError,
  RateLimitError,
  SubscriptionDenied,
  UnknownError,
  ValidationError,
  chatChannel,
  errorFromWire,
  userProfileRecord,
  type ChatEvent,
  type PresenceEvent,
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

function rejection(error: unknown): { reject: unknown } {
  return { reject: error };
}

describe("commands", () => {
  test("a result resolves typed, sent under the wire name with the timeout", async () => {
    const client = new FakeClient();
    client.replies.push({ id: 7, sentAt: "2026-01-01T00:00:00Z" });
    const app = new ChatAppClient(client, { timeoutMs: 2500 });
    const response = await app.commands.sendMessage({
      room: "lobby",
      text: "hi",
    });
    assert.deepEqual(response, { id: 7, sentAt: "2026-01-01T00:00:00Z" });
    assert.deepEqual(client.calls, [
      {
        method: "command",
        args: ["chat/send", { room: "lobby", text: "hi" }, 2500],
      },
    ]);
  });

  test("a per-call timeout wins; without any the client's default applies", async () => {
    const client = new FakeClient();
    client.replies.push({ userId: "u1", tags: [] }, { userId: "u1", tags: [] });
    const app = new ChatAppClient(client);
    await app.commands.getUserMetadata({ userId: "u1" });
    await app.commands.getUserMetadata({ userId: "u1" }, { timeoutMs: 10 });
    assert.deepEqual(
      client.calls.map((call) => call.args),
      [
        ["get-user-metadata", { userId: "u1" }],
        ["get-user-metadata", { userId: "u1" }, 10],
      ],
    );
  });

  test("an error reply (resolved by the JS client) rejects with the typed error", async () => {
    const client = new FakeClient();
    client.replies.push(
      { error: "nope", code: "EFORBIDDEN", name: "ForbiddenError" },
      {
        error: "bad",
        code: "EVALIDATION",
        name: "ValidationError",
        details: [{ path: "/text", message: "too long" }],
      },
      { error: "slow down", code: "ERATELIMIT", name: "RateLimitError" },
      { error: "demo", code: "EDEMO", name: "DemoError" },
      {
        error: 'Command "chat/send" not found',
        code: "ENOTFOUND",
        name: "CommandError",
      },
    );
    const app = new ChatAppClient(client);
    const send = () => app.commands.sendMessage({ room: "lobby", text: "hi" });
    await assert.rejects(send(), (error: unknown) => {
      assert.ok(
        error instanceof ForbiddenError && error instanceof MeshError && error instanceof Error,
      );
      assert.equal(error.code, "EFORBIDDEN");
      assert.equal(error.name, "ForbiddenError");
      assert.equal(error.message, "nope");
      assert.equal(String(error), "EFORBIDDEN (ForbiddenError): nope");
      return true;
    });
    await assert.rejects(send(), (error: unknown) => {
      assert.ok(error instanceof ValidationError);
      assert.deepEqual(error.details, [{ path: "/text", message: "too long" }]);
      return true;
    });
    await assert.rejects(send(), RateLimitError);
    await assert.rejects(send(), (error: unknown) => {
      // Unknown codes from a newer server stay a plain MeshError that keeps code and name.
      assert.ok(error instanceof MeshError);
      assert.equal(Object.getPrototypeOf(error), MeshError.prototype);
      assert.deepEqual([error.code, error.name], ["EDEMO", "DemoError"]);
      return true;
    });
    await assert.rejects(send(), CommandNotFoundError);
  });

  test("rejections of the JS client become typed errors carrying their cause", async () => {
    const client = new FakeClient();
    const timeout = Object.assign(new Error("Command timed out after 10ms."), {
      code: "ETIMEOUT",
      name: "TimeoutError",
    });
    const closed = Object.assign(new Error("WebSocket connection error"), {
      code: "ECONNECTION",
      name: "ConnectionError",
    });
    const bug = new TypeError("boom");
    client.replies.push(rejection(timeout), rejection(closed), rejection(bug));
    const app = new ChatAppClient(client);
    const send = () => app.commands.sendMessage({ room: "lobby", text: "hi" });
    await assert.rejects(send(), (error: unknown) => {
      assert.ok(error instanceof MeshTimeoutError);
      assert.equal(error.message, "Command timed out after 10ms.");
      assert.equal(error.cause, timeout);
      return true;
    });
    await assert.rejects(send(), MeshConnectionError);
    await assert.rejects(send(), (error: unknown) => {
      assert.ok(error instanceof UnknownError);
      assert.deepEqual([error.code, error.message, error.cause], ["EUNKNOWN", "boom", bug]);
      return true;
    });
  });

  test("a result that merely mentions error is not an error", async () => {
    const client = new FakeClient();
    client.replies.push({ id: 1, sentAt: "x", error: "not a reply shape" });
    const app = new ChatAppClient(client);
    const response = await app.commands.sendMessage({
      room: "lobby",
      text: "hi",
    });
    assert.equal(response.id, 1);
  });

  test("errorFromWire handles objects without a string code and non-objects", () => {
    assert.ok(errorFromWire({ error: "odd", code: 5 }) instanceof UnknownError);
    assert.equal(errorFromWire(null).message, "Unknown error");
    assert.equal(errorFromWire("text").message, "text");
    assert.equal(errorFromWire({ message: "m", code: "EUNAVAILABLE" }).name, "UnavailableError");
  });
});

describe("channels", () => {
  test("history arrives parsed and newest first; live messages follow", async () => {
    const client = new FakeClient();
    const history = [
      { type: "text", from: "u2", text: "second" },
      { type: "join", user: "u1" },
    ];
    client.subscribeReplies.push({
      success: true,
      history: history.map((m) => JSON.stringify(m)),
    });
    const app = new ChatAppClient(client);
    const received: ChatEvent[] = [];
    const subscription = await app.channels.chat(
      { room: "lobby" },
      (event) => void received.push(event),
      {
        historyLimit: 2,
      },
    );
    assert.deepEqual(client.calls, [
      { method: "subscribeChannel", args: ["chat:lobby", { historyLimit: 2 }] },
    ]);
    assert.deepEqual(subscription.history, history);
    assert.equal(subscription.channel, "chat:lobby");
    await client.pushMessage(
      "chat:lobby",
      JSON.stringify({ type: "text", from: "u1", text: "live" }),
    );
    assert.deepEqual(received, [...history, { type: "text", from: "u1", text: "live" }]);
  });

  test("messages that are not JSON are dropped and reported", async () => {
    const client = new FakeClient();
    client.subscribeReplies.push({
      success: true,
      history: ["{not json", '{"type":"join","user":"u1"}'],
    });
    const app = new ChatAppClient(client);
    const received: ChatEvent[] = [];
    const invalid: string[] = [];
    const subscription = await app.channels.chat(
      { room: "lobby" },
      (event) => void received.push(event),
      {
        onInvalid: (raw) => void invalid.push(raw),
      },
    );
    await client.pushMessage("chat:lobby", "plain text from redis-cli");
    assert.deepEqual(subscription.history, [{ type: "join", user: "u1" }]);
    assert.deepEqual(received, [{ type: "join", user: "u1" }]);
    assert.deepEqual(invalid, ["{not json", "plain text from redis-cli"]);
  });

  test("after unsubscribe nothing is delivered (SEED keeps its listener)", async () => {
    const client = new FakeClient();
    client.subscribeReplies.push({ success: true, history: [] });
    const app = new ChatAppClient(client);
    const received: ChatEvent[] = [];
    const subscription = await app.channels.chat(
      { room: "lobby" },
      (event) => void received.push(event),
    );
    assert.equal(await subscription.unsubscribe(), true);
    await client.pushMessage("chat:lobby", '{"type":"join","user":"u1"}');
    assert.equal(subscription.active, false);
    assert.deepEqual(received, []);
    assert.deepEqual(client.calls.at(-1), {
      method: "unsubscribeChannel",
      args: ["chat:lobby"],
    });
  });

  test("a denied subscription rejects with SubscriptionDenied and stays silent", async () => {
    const client = new FakeClient();
    client.subscribeReplies.push({ success: false, history: [] });
    const app = new ChatAppClient(client);
    const received: ChatEvent[] = [];
    await assert.rejects(
      app.channels.chat({ room: "secret" }, (e) => void received.push(e)),
      (error: unknown) => {
        assert.ok(error instanceof SubscriptionDenied && error instanceof ForbiddenError);
        assert.deepEqual(
          [error.code, error.name, error.target],
          ["EFORBIDDEN", "SubscriptionDenied", "chat:secret"],
        );
        return true;
      },
    );
    await client.pushMessage("chat:secret", '{"type":"join","user":"u1"}');
    assert.deepEqual(received, []);
  });

  test("name builders check their pattern", () => {
    assert.equal(chatChannel({ room: "lobby" }), "chat:lobby");
    assert.equal(userProfileRecord({ id: "u42" }), "user:u42");
    assert.throws(() => chatChannel({ room: "Not Valid" }), RangeError);
    assert.throws(() => userProfileRecord({ id: "42" }), RangeError);
    assert.throws(() => chatChannel({} as { room: string }), /missing parameter "room"/);
  });
});

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
    // The first write to a null record is a root replace (PROTOCOL §11.4).
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

describe("presence", () => {
  interface Cursor {
    x: number;
  }

  test("join resolves ids (SEED strings, HEAD members) and delivers typed events", async () => {
    const client = new FakeClient("seed");
    client.subscribeReplies.push(
      { success: true, present: ["c1", "c2"] },
      { success: true, present: [{ id: "c1", metadata: { name: "Ada" } }] },
    );
    const app = new ChatAppClient<Cursor>(client);
    const events: PresenceEvent<Cursor>[] = [];
    assert.deepEqual(await app.presence.join("lobby", (e) => void events.push(e)), ["c1", "c2"]);
    await client.pushPresence({
      type: "join",
      connectionId: "c3",
      roomName: "lobby",
      timestamp: 1,
    });
    await client.pushPresence({
      type: "state",
      connectionId: "c3",
      roomName: "lobby",
      state: { x: 4 },
    });
    assert.deepEqual(events, [
      { type: "join", connectionId: "c3", roomName: "lobby", timestamp: 1 },
      { type: "state", connectionId: "c3", roomName: "lobby", state: { x: 4 } },
    ]);
    assert.deepEqual(await app.presence.join("other"), ["c1"]);
    await app.presence.leave("lobby");
    assert.deepEqual(
      client.calls.map((c) => [c.method, ...c.args]),
      [
        ["joinRoom", "lobby"],
        ["joinRoom", "other"],
        ["leaveRoom", "lobby"],
      ],
    );
  });

  test("subscribe resolves the snapshot; HEAD's response-as-event is filtered out", async () => {
    const client = new FakeClient("head");
    client.subscribeReplies.push({
      success: true,
      present: [{ id: "c1", metadata: null }],
      states: { c1: { x: 1 } },
    });
    const app = new ChatAppClient<Cursor>(client);
    const events: PresenceEvent<Cursor>[] = [];
    const snapshot = await app.presence.subscribe("lobby", (e) => void events.push(e));
    assert.deepEqual(snapshot, { present: ["c1"], states: { c1: { x: 1 } } });
    await client.pushPresence({
      type: "leave",
      connectionId: "c1",
      roomName: "lobby",
    });
    assert.deepEqual(events, [{ type: "leave", connectionId: "c1", roomName: "lobby" }]);
    assert.equal(await app.presence.unsubscribe("lobby"), true);
  });

  test("denied joins and subscriptions reject with SubscriptionDenied", async () => {
    const client = new FakeClient();
    client.subscribeReplies.push({ success: false, present: [] }, { success: false, present: [] });
    const app = new ChatAppClient<Cursor>(client);
    await assert.rejects(app.presence.join("vip"), SubscriptionDenied);
    await assert.rejects(
      app.presence.subscribe("vip", () => undefined),
      SubscriptionDenied,
    );
  });

  test("states are published and cleared through commands with typed errors", async () => {
    const client = new FakeClient();
    client.replies.push(true, false, true, {
      error: "too big",
      code: "ETOOLARGE",
      name: "TooLargeError",
    });
    const app = new ChatAppClient<Cursor>(client);
    assert.equal(
      await app.presence.publishState("lobby", { x: 1 }, { expireAfterMs: 5000, silent: true }),
      true,
    );
    assert.equal(await app.presence.publishState("lobby", { x: 2 }), false);
    assert.equal(await app.presence.clearState("lobby"), true);
    await assert.rejects(app.presence.publishState("lobby", { x: 3 }), (error: unknown) => {
      assert.ok(error instanceof MeshError);
      assert.equal(error.code, "ETOOLARGE");
      return true;
    });
    assert.deepEqual(
      client.calls.map((c) => c.args),
      [
        [
          "mesh/publish-presence-state",
          {
            roomName: "lobby",
            state: { x: 1 },
            expireAfter: 5000,
            silent: true,
          },
        ],
        ["mesh/publish-presence-state", { roomName: "lobby", state: { x: 2 } }],
        ["mesh/clear-presence-state", { roomName: "lobby" }],
        ["mesh/publish-presence-state", { roomName: "lobby", state: { x: 3 } }],
      ],
    );
  });
});
