// Every statement below must FAIL to compile: each carries `// @ts-expect-error`, which tsc itself
// reports as an error when the next line compiles. tests/codegen/test_ts_codegen.py checks that no
// statement lacks the directive.

import { CONTRACT, ChatAppClient, chatChannel, userProfileRecord, type MeshClientLike } from "../golden/expected-ts/index.js";
import { ChatClient } from "../../../examples/chat/web/generated/index.js";

interface Cursor {
  x: number;
}

export async function negative(app: ChatAppClient, client: MeshClientLike): Promise<void> {
  // @ts-expect-error a GetUserMetadataRequest is not a SendMessageRequest
  await app.commands.sendMessage({ userId: "u1" });
  // @ts-expect-error a required request member is missing
  await app.commands.sendMessage({ room: "lobby" });
  // @ts-expect-error an unknown request member (additionalProperties: false)
  await app.commands.sendMessage({ room: "lobby", text: "hi", extra: 1 });
  // @ts-expect-error a request member of the wrong type
  await app.commands.sendMessage({ room: "lobby", text: 42 });
  // @ts-expect-error the response has no such member
  void (await app.commands.sendMessage({ room: "lobby", text: "hi" })).messageId;
  // @ts-expect-error the response id is a number
  const id: string = (await app.commands.sendMessage({ room: "lobby", text: "hi" })).id;
  // @ts-expect-error an enum member outside the enum
  void ((await app.commands.getUserMetadata({ userId: "u1" })).tags[0] === "owner");
  // @ts-expect-error the contract has no such command
  await app.commands.deleteEverything({});
  // @ts-expect-error the command timeout is a number of milliseconds
  await app.commands.sendMessage({ room: "lobby", text: "hi" }, { timeoutMs: "5s" });
  // @ts-expect-error a template parameter is missing
  chatChannel({});
  // @ts-expect-error a template parameter is misspelt
  userProfileRecord({ user: "u1" });
  // @ts-expect-error channel messages have no such member
  await app.channels.chat({ room: "lobby" }, (event) => void event.body);
  // @ts-expect-error `text` exists only on ChatText: narrow on `type` first
  await app.channels.chat({ room: "lobby" }, (event) => void event.text);
  // @ts-expect-error historyLimit is a number
  await app.channels.chat({ room: "lobby" }, () => undefined, { historyLimit: "10" });
  // @ts-expect-error a channel subscription needs its parameters
  await app.channels.chat(() => undefined);
  // @ts-expect-error the record mode is "full" or "patch"
  await app.records.userProfile({ id: "u1" }, undefined, { mode: "diff" });
  // @ts-expect-error the value may be null (absent record): check before use
  void (await app.records.userProfile({ id: "u1" })).value.name;
  // @ts-expect-error a record that is not writable has no write method
  await app.records.writeRoomTopic({ room: "lobby" }, "topic");
  // @ts-expect-error a written value must be a whole UserProfile
  await app.records.writeUserProfile({ id: "u1" }, { name: "Ada" });
  // @ts-expect-error record values are typed: a topic is a string or null
  await app.records.roomTopic({ room: "lobby" }, (change) => void change.value?.toFixed());
  // @ts-expect-error presence states are typed by the client's parameter
  await new ChatAppClient<Cursor>(client).presence.publishState("lobby", { x: "1" });
  // @ts-expect-error presence events carry a typed state
  await new ChatAppClient<Cursor>(client).presence.join("lobby", (e) => void (e.type === "state" && e.state?.y));
  // @ts-expect-error an object without the client's methods is not a MeshClientLike
  void new ChatAppClient({ command: async () => null });
  // @ts-expect-error contractCheck is "warn", "strict" or "off"
  void new ChatAppClient(client, { contractCheck: "loud" });
  // @ts-expect-error a contract warning handler gets the message string first
  void new ChatAppClient(client, { onContractWarning: (message: number) => void message });
  // @ts-expect-error the outcome of a check is null when the contracts match
  void (await app.checkContract()).message;
  // @ts-expect-error the commands of a mismatch are read-only
  app.contractMismatch?.onlyClient.push("chat/edit");
  // @ts-expect-error the generated contract description is read-only
  CONTRACT.fingerprint = "sha256:0";
  // @ts-expect-error the contract check listens to the client's connect event: `on` is required
  void new ChatAppClient(client as Omit<MeshClientLike, "on">);
  // @ts-expect-error the chat example's request has no replyTo
  await new ChatClient(client).commands.sendMessage({ room: "lobby", text: "hi", replyTo: 1 });
}
