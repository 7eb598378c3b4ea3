// Node tests (node --test) of the generated golden bindings over a fake JavaScript MeshClient:
// the contract check on connect and after each reconnect (mesh/contract-info vs FINGERPRINT).

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  CONTRACT,
  ChatAppClient,
  ContractMismatchError,
  FINGERPRINT,
  MeshConnectionError,
  MeshError,
  MeshTimeoutError,
  ValidationError,
  type ClientOptions,
  type ContractMismatch,
} from "../golden/expected-ts/index.js";
import { FakeClient } from "./fake-client.js";

const CLIENT = `client contract ChatApp (${FINGERPRINT})`;
const OTHER = "sha256:1111";

interface Warning {
  message: string;
  cause: ContractMismatch | MeshError;
}

function setup(options: ClientOptions = {}): {
  client: FakeClient;
  app: ChatAppClient;
  warnings: Warning[];
} {
  const client = new FakeClient();
  const warnings: Warning[] = [];
  const app = new ChatAppClient(client, {
    onContractWarning: (message, cause) => warnings.push({ message, cause }),
    ...options,
  });
  return { client, app, warnings };
}

function asked(client: FakeClient): unknown[][] {
  return client.calls.filter((call) => call.method === "command").map((call) => call.args);
}

function info(fingerprint: string | null, commands: string[], name: string | null = "ChatApp") {
  return { name, fingerprint, commands };
}

describe("contract check", () => {
  test("the generated contract description holds the fingerprint and sorted wire names", () => {
    assert.equal(CONTRACT.name, "ChatApp");
    assert.equal(CONTRACT.fingerprint, FINGERPRINT);
    assert.match(FINGERPRINT, /^sha256:[0-9a-f]{64}$/);
    assert.deepEqual(CONTRACT.commands, ["chat/send", "get-user-metadata"]);
  });

  test("a matching server: mesh/contract-info is asked once on connect, nothing is reported", async () => {
    const { client, app, warnings } = setup();
    client.replies.push(info(FINGERPRINT, ["chat/send", "get-user-metadata"], "Renamed"));
    await app.connect();
    assert.deepEqual(asked(client), [["mesh/contract-info", {}]]);
    assert.deepEqual(warnings, []);
    assert.equal(app.contractMismatch, null);
    assert.equal(app.contractError, null);
  });

  test("a mismatch warns naming the commands only on one side; the client keeps working", async () => {
    const { client, app, warnings } = setup();
    client.replies.push(info(OTHER, ["chat/edit", "chat/send"], "Chat2"));
    await app.connect();
    const expected =
      `contract mismatch: ${CLIENT} != server contract Chat2 (${OTHER}); ` +
      "commands only in the client: get-user-metadata; commands only on the server: chat/edit";
    assert.deepEqual(
      warnings.map((w) => w.message),
      [expected],
    );
    const mismatch = app.contractMismatch;
    assert.ok(mismatch !== null);
    assert.equal(warnings[0]?.cause, mismatch);
    assert.deepEqual(
      [mismatch.announced, mismatch.onlyClient, mismatch.onlyServer, mismatch.serverName],
      [true, ["get-user-metadata"], ["chat/edit"], "Chat2"],
    );
    assert.ok(!client.calls.some((call) => call.method === "close"));
  });

  test("the same commands with another fingerprint: the schemas differ", async () => {
    const { client, app, warnings } = setup();
    client.replies.push(info(OTHER, ["get-user-metadata", "chat/send"]));
    await app.connect();
    assert.equal(
      warnings[0]?.message,
      `contract mismatch: ${CLIENT} != server contract ChatApp (${OTHER}); same commands: ` +
        "schemas, channels or records differ (compare the two with `mesh contract diff`)",
    );
  });

  test("strict mode: connect rejects with ContractMismatchError and closes the client", async () => {
    const { client, app, warnings } = setup({ contractCheck: "strict" });
    client.replies.push(info(OTHER, ["chat/send"]));
    await assert.rejects(app.connect(), (error: unknown) => {
      assert.ok(error instanceof ContractMismatchError);
      assert.ok(error instanceof MeshConnectionError);
      assert.deepEqual([error.code, error.name], ["ECONNECTION", "ContractMismatchError"]);
      assert.deepEqual(error.mismatch.onlyClient, ["get-user-metadata"]);
      assert.equal(error.message, error.mismatch.message);
      assert.equal(app.contractError, error);
      return true;
    });
    assert.deepEqual(warnings, []);
    assert.deepEqual(
      client.calls.map((call) => call.method),
      ["connect", "command", "close"],
    );
    // Reconnected to a server built from this contract: the error is cleared.
    client.replies.push(info(FINGERPRINT, ["chat/send", "get-user-metadata"]));
    client.reconnect();
    await app.connect();
    assert.equal(app.contractError, null);
    assert.equal(app.contractMismatch, null);
  });

  test("strict mode: a close that fails is reported, not an unhandled rejection", async () => {
    const { client, app, warnings } = setup({ contractCheck: "strict" });
    client.close = async () => {
      throw new Error("socket gone");
    };
    client.replies.push(info(OTHER, []));
    await assert.rejects(app.connect(), ContractMismatchError);
    assert.deepEqual(
      warnings.map((w) => [w.message, w.cause]),
      [["could not close the client: Error: socket gone", app.contractError]],
    );
  });

  test("a server without contract answers nulls: a mismatch (strict mode rejects)", async () => {
    const { client, app, warnings } = setup();
    client.replies.push(info(null, [], null));
    await app.connect();
    assert.deepEqual(
      warnings.map((w) => w.message),
      [`the server has no application contract; ${CLIENT} cannot be checked`],
    );
    assert.deepEqual(app.contractMismatch?.onlyClient, ["chat/send", "get-user-metadata"]);

    const strict = setup({ contractCheck: "strict" });
    strict.client.replies.push(info(null, [], null));
    await assert.rejects(strict.app.connect(), ContractMismatchError);
  });

  test("an older server answers ENOTFOUND: the contract cannot be checked", async () => {
    const { client, app, warnings } = setup();
    client.replies.push({
      error: 'Command "mesh/contract-info" not found',
      code: "ENOTFOUND",
      name: "CommandError",
    });
    await app.connect();
    assert.deepEqual(
      warnings.map((w) => w.message),
      [
        "the server does not announce its contract (mesh/contract-info is unknown to it: an " +
          `older server); ${CLIENT} cannot be checked`,
      ],
    );
    assert.equal(app.contractMismatch?.announced, false);
    assert.deepEqual(app.contractMismatch?.onlyClient, []);
  });

  test("every reconnect checks again", async () => {
    const { client, app, warnings } = setup();
    client.replies.push(info(FINGERPRINT, []), info(OTHER, []), info(FINGERPRINT, []));
    await app.connect();
    client.reconnect();
    await app.connect(); // already online: waits for the running check
    assert.equal(warnings.length, 1);
    client.reconnect();
    await app.connect();
    assert.equal(asked(client).length, 3);
    assert.equal(app.contractMismatch, null);
  });

  test("a client that is already connected is checked at once", async () => {
    const client = new FakeClient();
    client.status = 3;
    client.replies.push(info(OTHER, []));
    const warnings: string[] = [];
    const app = new ChatAppClient(client, { onContractWarning: (m) => warnings.push(m) });
    await app.connect();
    assert.equal(asked(client).length, 1);
    assert.equal(warnings.length, 1);
  });

  test('contractCheck "off" asks nothing; an unknown mode is refused', async () => {
    const { client, app } = setup({ contractCheck: "off" });
    await app.connect();
    client.reconnect();
    assert.deepEqual(asked(client), []);
    const mode = "loud" as ClientOptions["contractCheck"];
    assert.throws(() => new ChatAppClient(client, { contractCheck: mode }), RangeError);
  });

  test("a failed check is a warning, a lost connection is not; neither closes", async () => {
    const { client, app, warnings } = setup({ contractCheck: "strict" });
    const timeout = Object.assign(new Error("Command timed out after 30000ms."), {
      code: "ETIMEOUT",
      name: "TimeoutError",
    });
    const lost = Object.assign(new Error("WebSocket connection error"), {
      code: "ECONNECTION",
      name: "ConnectionError",
    });
    client.replies.push({ reject: timeout }, { reject: lost }, { fingerprint: 5 });
    await app.connect();
    client.reconnect();
    await app.connect();
    client.reconnect();
    await app.connect();
    assert.deepEqual(
      warnings.map((w) => w.message),
      [
        "could not check the server's contract: Command timed out after 30000ms.",
        `could not check the server's contract: Invalid response for "mesh/contract-info"`,
      ],
    );
    assert.ok(warnings[0]?.cause instanceof MeshTimeoutError);
    assert.ok(warnings[1]?.cause instanceof ValidationError);
    assert.ok(!client.calls.some((call) => call.method === "close"));
    assert.equal(app.contractError, null);
  });

  test("checkContract asks on demand without reporting", async () => {
    const { client, app, warnings } = setup({ contractCheck: "off" });
    client.replies.push(info(OTHER, ["chat/send", "get-user-metadata", "x/y"]));
    const mismatch = await app.checkContract();
    assert.deepEqual(mismatch?.onlyServer, ["x/y"]);
    assert.equal(app.contractMismatch, mismatch);
    assert.deepEqual(warnings, []);
  });

  test("by default a warning goes to console.warn", async (t) => {
    const seen: unknown[] = [];
    t.mock.method(console, "warn", (message: unknown) => seen.push(message));
    const client = new FakeClient();
    client.replies.push(info(null, [], null));
    await new ChatAppClient(client).connect();
    assert.deepEqual(seen, [`the server has no application contract; ${CLIENT} cannot be checked`]);
  });
});
