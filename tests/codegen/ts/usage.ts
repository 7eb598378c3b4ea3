// Must compile under tsc --strict: the generated bindings used as a front end would use them,
// over both revisions of the JavaScript client. Never run (declarations only at the top level).

import {
  CONTRACT,
  ChatAppClient,
  ContractMismatchError,
  FINGERPRINT,
  ForbiddenError,
  MeshError,
  MeshTimeoutError,
  SEND_MESSAGE_COMMAND,
  SubscriptionDenied,
  USER_PROFILE_RECORD,
  chatChannel,
  userProfileRecord,
  type ChatEvent,
  type ContractMismatch,
  type ContractRoot,
  type MeshClientLike,
  type PresenceEvent,
  type RecordChange,
  type RoomTopic,
  type SendMessageResponse,
  type UserProfile,
} from "../golden/expected-ts/index.js";
import { ChatClient, type ChatMessage } from "../../../examples/chat/web/generated/index.js";
import { HeadMeshClient, SeedMeshClient } from "./js-client.js";

declare const applyPatch: typeof import("fast-json-patch").applyPatch;

// Both revisions of the JavaScript client are MeshClientLike, structurally.
export const seed: MeshClientLike = new SeedMeshClient("ws://localhost:8080");
export const head: MeshClientLike = new HeadMeshClient("ws://localhost:8080");

interface Cursor {
  x: number;
  y: number;
}

export async function commands(app: ChatAppClient): Promise<number> {
  const sent: SendMessageResponse = await app.commands.sendMessage(
    { room: "lobby", text: "hi", replyTo: null },
    { timeoutMs: 5000 },
  );
  const meta = await app.commands.getUserMetadata({ userId: "u1" });
  try {
    await app.commands.sendMessage({ room: "lobby", text: "again" });
  } catch (error) {
    if (error instanceof ForbiddenError || error instanceof MeshTimeoutError) {
      return error.code.length;
    }
    if (error instanceof MeshError) {
      return error.details === undefined ? 0 : 1;
    }
  }
  return (
    sent.id +
    sent.sentAt.length +
    meta.tags.length +
    (meta.score ?? 0) +
    SEND_MESSAGE_COMMAND.length
  );
}

export async function channels(app: ChatAppClient): Promise<void> {
  const texts: string[] = [];
  const subscription = await app.channels.chat(
    { room: "lobby" },
    (event: ChatEvent) => {
      if (event.type === "text") {
        texts.push(event.from, event.text, event.at ?? "");
      } else {
        texts.push(event.user);
      }
    },
    { historyLimit: 10, onInvalid: (raw) => texts.push(raw) },
  );
  const newest: ChatEvent | undefined = subscription.history[0];
  texts.push(newest?.type ?? "", subscription.channel, chatChannel({ room: "lobby" }));
  await subscription.unsubscribe();
}

export async function records(app: ChatAppClient): Promise<string> {
  const topic = await app.records.roomTopic(
    { room: "lobby" },
    (change: RecordChange<RoomTopic>) => {
      const text: string | null = change.value;
      return void text;
    },
  );
  const profile = await app.records.userProfile(
    { id: "u42" },
    (change) => {
      if (change.deleted || change.value === null) {
        return;
      }
      const user: UserProfile = change.value;
      void (user.settings?.theme === "dark" ? user.scores?.["a"] : user.tags[0]);
    },
    { mode: "patch" },
  );
  await app.records.writeUserProfile(
    { id: "u42" },
    {
      id: "u42",
      name: "Ada",
      createdAt: "2026-01-01T00:00:00Z",
      tags: ["admin"],
    },
  );
  const value: UserProfile | null = profile.value;
  await profile.unsubscribe();
  return `${topic.value ?? ""}${topic.version}${value?.name ?? ""}${userProfileRecord({ id: "u42" })}${String(USER_PROFILE_RECORD.writable)}`;
}

export async function presence(client: MeshClientLike): Promise<number> {
  const app = new ChatAppClient<Cursor>(client, {
    applyPatch,
    timeoutMs: 1000,
  });
  const events: PresenceEvent<Cursor>[] = [];
  const present: string[] = await app.presence.join("lobby", (event) => {
    events.push(event);
    if (event.type === "state" && event.state !== null) {
      void (event.state.x + event.state.y);
    }
  });
  const snapshot = await app.presence.subscribe("lobby", (event) => void events.push(event));
  const cursor: Cursor | undefined = snapshot.states[present[0] ?? ""];
  await app.presence.publishState("lobby", { x: 1, y: 2 }, { expireAfterMs: 5000 });
  await app.presence.clearState("lobby");
  await app.presence.leave("lobby");
  return events.length + (cursor?.x ?? 0) + snapshot.present.length;
}

export async function chatExample(client: MeshClientLike): Promise<string> {
  const chat = new ChatClient(client);
  const sent = await chat.commands.sendMessage({ room: "lobby", text: "hi" });
  const messages: ChatMessage[] = [];
  await chat.channels.chat({ room: "lobby" }, (message) => void messages.push(message), {
    historyLimit: 5,
  });
  await chat.records.writeRoomTopic({ room: "lobby" }, { topic: "Welcome", updatedBy: "ada" });
  return `${sent.id} ${sent.sentAt} ${messages.map((m) => `${m.from}: ${m.text}`).join()}`;
}

export function denied(error: unknown): string | undefined {
  return error instanceof SubscriptionDenied ? error.target : undefined;
}

export type Everything = ContractRoot[keyof ContractRoot];

export async function contractCheck(client: MeshClientLike): Promise<string> {
  const warnings: string[] = [];
  const app = new ChatAppClient(client, {
    contractCheck: "strict",
    timeoutMs: 5000,
    onContractWarning: (message, cause) => {
      warnings.push(message, cause instanceof MeshError ? cause.code : (cause.serverName ?? ""));
    },
  });
  try {
    await app.connect();
  } catch (error) {
    if (error instanceof ContractMismatchError) {
      return error.code + error.mismatch.onlyClient.join(", ") + String(app.contractError);
    }
  }
  const mismatch: ContractMismatch | null = await app.checkContract();
  const quiet = new ChatClient(client, { contractCheck: "off" });
  await quiet.close();
  return [
    mismatch?.message ?? "",
    String(app.contractMismatch?.announced),
    CONTRACT.fingerprint === FINGERPRINT ? app.contractCheck : "",
    ...CONTRACT.commands,
    ...warnings,
  ].join();
}
