// Node tests (node --test) of the generated golden bindings over a fake JavaScript MeshClient:
// presence: joins, snapshots, typed events and states.

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  ChatAppClient,
  MeshError,
  SubscriptionDenied,
  type PresenceEvent,
} from "../golden/expected-ts/index.js";
import { FakeClient } from "./fake-client.js";

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
