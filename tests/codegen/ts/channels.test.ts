// Node tests (node --test) of the generated golden bindings over a fake JavaScript MeshClient:
// channels: JSON messages, history, invalid messages, unsubscribe, denial, name builders.

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  ChatAppClient,
  ForbiddenError,
  SubscriptionDenied,
  chatChannel,
  userProfileRecord,
  type ChatEvent,
} from "../golden/expected-ts/index.js";
import { FakeClient } from "./fake-client.js";

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
