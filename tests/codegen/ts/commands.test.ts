// Node tests (node --test) of the generated golden bindings over a fake JavaScript MeshClient:
// commands: typed results, error replies and client rejections as typed errors.

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  ChatAppClient,
  CommandNotFoundError,
  ForbiddenError,
  MeshConnectionError,
  MeshError,
  MeshTimeoutError,
  RateLimitError,
  UnknownError,
  ValidationError,
  errorFromWire,
} from "../golden/expected-ts/index.js";
import { FakeClient } from "./fake-client.js";

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
