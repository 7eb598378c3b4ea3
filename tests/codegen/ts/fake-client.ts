// A fake JavaScript MeshClient for the node tests: it records every call, answers commands from a
// script, and replays server frames into the callbacks the way the real client does (SEED feeds
// channel history to the callback; both revisions deliver the subscribe response of a record as a
// `full` update; HEAD also calls the presence callback with the subscribe response).

import type {
  MeshClientLike,
  PresentMember,
  RawPresenceUpdate,
  RawRecordUpdate,
} from "../golden/expected-ts/index.js";

export interface Call {
  method: string;
  args: unknown[];
}

type Reply = unknown | { reject: unknown };

export class FakeClient implements MeshClientLike {
  readonly calls: Call[] = [];
  /** Replies to `command`, in order; `{ reject }` makes the call reject. */
  readonly replies: Reply[] = [];
  /** Replies to `subscribeChannel`, `subscribeRecord`, `joinRoom`, `subscribePresence`, in order. */
  readonly subscribeReplies: unknown[] = [];
  private readonly channels = new Map<string, (message: string) => void | Promise<void>>();
  private readonly records = new Map<string, (update: RawRecordUpdate) => void | Promise<void>>();
  private readonly rooms = new Map<string, (update: RawPresenceUpdate) => void | Promise<void>>();

  /** `Status` of the real client: 3 online, 0 offline. */
  status = 0;
  private readonly connectListeners: Array<() => void> = [];

  constructor(private readonly revision: "seed" | "head" = "seed") {}

  on(event: "connect", listener: () => void): this {
    this.connectListeners.push(listener);
    return this;
  }

  /** Like the real client: `connect` is emitted (synchronously) before `connect()` resolves. */
  async connect(): Promise<void> {
    this.calls.push({ method: "connect", args: [] });
    if (this.status !== 3) {
      this.status = 3;
      this.emitConnect();
    }
  }

  async close(): Promise<void> {
    this.calls.push({ method: "close", args: [] });
    this.status = 0;
  }

  /** A reconnect as both revisions report it: `connect` (then `reconnect`, unused here). */
  reconnect(): void {
    this.status = 3;
    this.emitConnect();
  }

  private emitConnect(): void {
    for (const listener of this.connectListeners) {
      listener();
    }
  }

  private nextSubscribeReply<T>(): T {
    if (this.subscribeReplies.length === 0) {
      throw new Error("no subscribe reply scripted");
    }
    return this.subscribeReplies.shift() as T;
  }

  async command(command: string, payload?: unknown, expiresIn?: number): Promise<unknown> {
    this.calls.push({
      method: "command",
      args: expiresIn === undefined ? [command, payload] : [command, payload, expiresIn],
    });
    if (this.replies.length === 0) {
      throw new Error(`no reply scripted for ${command}`);
    }
    const reply = this.replies.shift();
    if (typeof reply === "object" && reply !== null && "reject" in reply) {
      throw (reply as { reject: unknown }).reject;
    }
    return reply;
  }

  async subscribeChannel(
    channel: string,
    callback: (message: string) => void | Promise<void>,
    options?: { historyLimit?: number },
  ): Promise<{ success: boolean; history: string[] }> {
    this.calls.push({ method: "subscribeChannel", args: [channel, options] });
    this.channels.set(channel, callback);
    const result = this.nextSubscribeReply<{
      success: boolean;
      history: string[];
    }>();
    if (result.success) {
      for (const message of result.history) {
        void callback(message);
      }
    }
    return result;
  }

  async unsubscribeChannel(channel: string): Promise<boolean> {
    this.calls.push({ method: "unsubscribeChannel", args: [channel] });
    // Like SEED, the listener stays registered: the bindings must ignore later messages.
    return true;
  }

  async subscribeRecord(
    recordId: string,
    callback: (update: RawRecordUpdate) => void | Promise<void>,
    options?: { mode?: "patch" | "full" },
  ): Promise<{ success: boolean; record: unknown; version: number }> {
    this.calls.push({ method: "subscribeRecord", args: [recordId, options] });
    const result = this.nextSubscribeReply<{
      success: boolean;
      record: unknown;
      version: number;
    }>();
    if (result.success) {
      this.records.set(recordId, callback);
      await callback({
        recordId,
        full: result.record,
        version: result.version,
      });
    }
    return result;
  }

  async unsubscribeRecord(recordId: string): Promise<boolean> {
    this.calls.push({ method: "unsubscribeRecord", args: [recordId] });
    this.records.delete(recordId);
    return true;
  }

  async joinRoom(
    roomName: string,
    onPresenceUpdate?: (update: RawPresenceUpdate) => void | Promise<void>,
  ): Promise<{ success: boolean; present: Array<string | PresentMember> }> {
    this.calls.push({ method: "joinRoom", args: [roomName] });
    const result = this.nextSubscribeReply<{
      success: boolean;
      present: Array<string | PresentMember>;
    }>();
    if (result.success && onPresenceUpdate !== undefined) {
      this.rooms.set(roomName, onPresenceUpdate);
    }
    return result;
  }

  async leaveRoom(roomName: string): Promise<{ success: boolean }> {
    this.calls.push({ method: "leaveRoom", args: [roomName] });
    this.rooms.delete(roomName);
    return { success: true };
  }

  async subscribePresence(
    roomName: string,
    callback: (update: RawPresenceUpdate) => void | Promise<void>,
  ): Promise<{
    success: boolean;
    present: Array<string | PresentMember>;
    states?: Record<string, unknown>;
  }> {
    this.calls.push({ method: "subscribePresence", args: [roomName] });
    const result = this.nextSubscribeReply<{
      success: boolean;
      present: Array<string | PresentMember>;
      states?: Record<string, unknown>;
    }>();
    if (result.success) {
      this.rooms.set(roomName, callback);
      if (this.revision === "head" && result.present.length > 0) {
        // HEAD hands the subscribe response itself to the callback.
        await (callback as (update: unknown) => Promise<void>)(result);
      }
    }
    return result;
  }

  async unsubscribePresence(roomName: string): Promise<boolean> {
    this.calls.push({ method: "unsubscribePresence", args: [roomName] });
    return this.rooms.delete(roomName);
  }

  /** Replays a `mesh/subscription-message` push. */
  async pushMessage(channel: string, message: string): Promise<void> {
    await this.channels.get(channel)?.(message);
  }

  /** Replays a record push as the client hands it over (`mesh/record-update` or deletion). */
  async pushRecord(update: RawRecordUpdate): Promise<void> {
    await this.records.get(update.recordId)?.(update);
  }

  /** Replays a `mesh/presence-update` push. */
  async pushPresence(update: RawPresenceUpdate): Promise<void> {
    await this.rooms.get(update.roomName)?.(update);
  }
}
