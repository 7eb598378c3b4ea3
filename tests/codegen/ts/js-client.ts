// The JavaScript MeshClient's public surface at SEED and HEAD, transcribed from
// ../shared/JS-CLIENT.md (payloads `any`, as in the original). Declarations only: usage.ts checks
// that both revisions satisfy the generated bindings' structural MeshClientLike. The event
// emitter methods and `status` are not in JS-CLIENT.md: SEED (788bd5e) extends node's
// EventEmitter, HEAD (f89760d) eventemitter3's typed `EventEmitter<MeshClientEvents>`; both have
// `get status(): Status` and emit `connect` on the first connection and on each reconnect.

import type { Operation } from "fast-json-patch";

export type PresenceUpdate =
  | {
      type: "join" | "leave";
      connectionId: string;
      roomName: string;
      timestamp?: number;
    }
  | {
      type: "state";
      connectionId: string;
      roomName: string;
      state: any;
      timestamp?: number;
    };
export type PresenceUpdateCallback = (update: PresenceUpdate) => void | Promise<void>;
export type RecordUpdate = {
  recordId: string;
  full?: any;
  patch?: Operation[];
  version: number;
};

export declare enum Status {
  ONLINE = 3,
  CONNECTING = 2,
  RECONNECTING = 1,
  OFFLINE = 0,
}

interface MeshClientEvents {
  connect: [];
  disconnect: [];
  reconnect: [];
  reconnectfailed: [];
  close: [];
  error: [Error];
  ping: [];
  latency: [any];
  message: [any];
  republish: [];
}

export type MeshClientOptions = Partial<{
  pingTimeout: number;
  maxMissedPings: number;
  shouldReconnect: boolean;
  reconnectInterval: number;
  maxReconnectAttempts: number;
}>;

export declare class SeedMeshClient {
  constructor(url: string, opts?: MeshClientOptions);
  on(eventName: string | symbol, listener: (...args: any[]) => void): this;
  get status(): Status;
  connect(): Promise<void>;
  close(): Promise<void>;
  command(command: string, payload?: any, expiresIn?: number): Promise<any>;
  subscribeChannel(
    channel: string,
    callback: (message: string) => void | Promise<void>,
    options?: { historyLimit?: number },
  ): Promise<{ success: boolean; history: string[] }>;
  unsubscribeChannel(channel: string): Promise<boolean>;
  subscribeRecord(
    recordId: string,
    callback: (update: RecordUpdate) => void | Promise<void>,
    options?: { mode?: "patch" | "full" },
  ): Promise<{ success: boolean; record: any | null; version: number }>;
  unsubscribeRecord(recordId: string): Promise<boolean>;
  publishRecordUpdate(recordId: string, newValue: any): Promise<boolean>;
  joinRoom(
    roomName: string,
    onPresenceUpdate?: PresenceUpdateCallback,
  ): Promise<{ success: boolean; present: string[] }>;
  leaveRoom(roomName: string): Promise<{ success: boolean }>;
  subscribePresence(
    roomName: string,
    callback: PresenceUpdateCallback,
  ): Promise<{
    success: boolean;
    present: string[];
    states?: Record<string, Record<string, any>>;
  }>;
  unsubscribePresence(roomName: string): Promise<boolean>;
  publishPresenceState(
    roomName: string,
    options: { state: Record<string, any>; expireAfter?: number },
  ): Promise<boolean>;
  clearPresenceState(roomName: string): Promise<boolean>;
  getRoomMetadata(roomName: string): Promise<any>;
  getConnectionMetadata(connectionId?: string): Promise<any>;
  onConnect(cb: () => void): this;
  onDisconnect(cb: () => void): this;
  onReconnect(cb: () => void): this;
  onReconnectFailed(cb: () => void): this;
}

export declare class HeadMeshClient {
  constructor(url: string, opts?: MeshClientOptions);
  on<E extends keyof MeshClientEvents>(
    event: E,
    fn: (...args: MeshClientEvents[E]) => void,
    context?: any,
  ): this;
  get status(): Status;
  connect(): Promise<void>;
  close(): Promise<void>;
  command(command: string, payload?: any, expiresIn?: number): Promise<any>;
  subscribeChannel(
    channel: string,
    callback: (message: string) => void | Promise<void>,
    options?: { historyLimit?: number; since?: string | number },
  ): Promise<{ success: boolean; history: string[] }>;
  unsubscribeChannel(channel: string): Promise<boolean>;
  getChannelHistory(
    channel: string,
    options?: { limit?: number; since?: string | number },
  ): Promise<{ success: boolean; history: string[] }>;
  subscribeRecord(
    recordId: string,
    callback?: (update: RecordUpdate & { deleted?: boolean }) => void | Promise<void>,
    options?: { mode?: "patch" | "full" },
  ): Promise<{ success: boolean; record: any | null; version: number }>;
  unsubscribeRecord(recordId: string): Promise<boolean>;
  writeRecord(
    recordId: string,
    newValue: any,
    options?: { strategy?: "replace" | "merge" | "deepMerge" },
  ): Promise<boolean>;
  joinRoom(
    roomName: string,
    onPresenceUpdate?: PresenceUpdateCallback,
  ): Promise<{
    success: boolean;
    present: Array<{ id: string; metadata: any }>;
  }>;
  leaveRoom(roomName: string): Promise<{ success: boolean }>;
  subscribePresence(
    roomName: string,
    callback: PresenceUpdateCallback,
  ): Promise<{
    success: boolean;
    present: Array<{ id: string; metadata: any }>;
    states?: Record<string, Record<string, any>>;
  }>;
  unsubscribePresence(roomName: string): Promise<boolean>;
  publishPresenceState(
    roomName: string,
    options: {
      state: Record<string, any>;
      expireAfter?: number;
      silent?: boolean;
    },
  ): Promise<boolean>;
  clearPresenceState(roomName: string): Promise<boolean>;
  setConnectionMetadata(
    metadata: any,
    options?: { strategy?: "replace" | "merge" | "deepMerge" },
  ): Promise<boolean>;
  forcePresenceUpdate(roomName: string): Promise<boolean>;
  unsubscribeCollection(collectionId: string): Promise<boolean>;
  getRoomMetadata(roomName: string): Promise<any>;
  getConnectionMetadata(connectionId?: string): Promise<any>;
}
