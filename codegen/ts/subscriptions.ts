/**
 * Subscriptions of the typed TypeScript bindings: channels, records and presence.
 *
 * Hand-written; codegen copies it verbatim into every generated folder (as `subscriptions.ts`),
 * next to `runtime.ts`, whose module documentation lists the guarantees.
 */

import { SubscriptionDenied, BindingGroup } from "./runtime.js";
import type {
  ApplyPatch,
  ChannelOptions,
  MeshClientLike,
  MessageCallback,
  PatchOperation,
  PresenceCallback,
  PresenceEvent,
  PresenceSnapshot,
  PresenceStateOptions,
  PresentMember,
  RawPresenceUpdate,
  RawRecordUpdate,
  RecordCallback,
  RecordChange,
  RecordOptions,
} from "./runtime.js";

function presentIds(present: ReadonlyArray<string | PresentMember> | undefined): string[] {
  return (present ?? []).map((member) => (typeof member === "string" ? member : member.id));
}

function isPresenceUpdate(value: unknown): value is RawPresenceUpdate {
  if (typeof value !== "object" || value === null) {
    return false;
  }
  const update = value as Record<string, unknown>;
  return (
    (update["type"] === "join" || update["type"] === "leave" || update["type"] === "state") &&
    typeof update["connectionId"] === "string" &&
    typeof update["roomName"] === "string"
  );
}

// -- Channels ---------------------------------------------------------------------------------

/** A live channel subscription with its decoded history. */
export class ChannelSubscription<T> {
  private _active = true;

  constructor(
    private readonly _client: MeshClientLike,
    /** The channel name. */
    readonly channel: string,
    /** The fetched history, newest first (protocol.md §9.5); undecodable entries are left out. */
    readonly history: readonly T[],
  ) {}

  /** Whether messages are still delivered. */
  get active(): boolean {
    return this._active;
  }

  /** Stops delivery; resolves `true` iff this connection was subscribed. */
  async unsubscribe(): Promise<boolean> {
    this._active = false;
    return this._client.unsubscribeChannel(this.channel);
  }

  /** @internal Ends delivery without a request (denied subscriptions). */
  _end(): void {
    this._active = false;
  }
}

type Decoded<T> = { ok: true; value: T } | { ok: false };

function decodeMessage<T>(
  raw: string,
  onInvalid?: (raw: string, error: unknown) => void,
): Decoded<T> {
  try {
    return { ok: true, value: JSON.parse(raw) as T };
  } catch (error) {
    onInvalid?.(raw, error);
    return { ok: false };
  }
}

/** Base of generated `<Name>Channels`. */
export class ChannelGroup extends BindingGroup {
  /** Subscribes to `channel`, delivering each message parsed from JSON as a `T`. */
  protected async _subscribe<T>(
    channel: string,
    callback: MessageCallback<T>,
    options?: ChannelOptions,
  ): Promise<ChannelSubscription<T>> {
    const client = this._context.client;
    let subscription: ChannelSubscription<T> | undefined;
    const onInvalid = options?.onInvalid;
    const deliver = async (raw: string): Promise<void> => {
      // SEED never removes its listener: an ended subscription must stay silent.
      if (subscription !== undefined && !subscription.active) {
        return;
      }
      const decoded = decodeMessage<T>(raw, onInvalid);
      if (decoded.ok) {
        await callback(decoded.value);
      }
    };
    const historyLimit = options?.historyLimit;
    const result = await client.subscribeChannel(
      channel,
      deliver,
      historyLimit === undefined ? {} : { historyLimit },
    );
    const history: T[] = [];
    for (const raw of result.history ?? []) {
      const decoded = decodeMessage<T>(raw);
      if (decoded.ok) {
        history.push(decoded.value);
      }
    }
    subscription = new ChannelSubscription<T>(client, channel, history);
    if (result.success !== true) {
      subscription._end();
      throw new SubscriptionDenied(channel);
    }
    return subscription;
  }
}

// -- Records ----------------------------------------------------------------------------------

/** A live record subscription holding the latest value. */
export class RecordSubscription<T> {
  private _value: T | null = null;
  private _version = 0;
  private _active = true;
  private _received = false;

  constructor(
    private readonly _client: MeshClientLike,
    /** The record id. */
    readonly recordId: string,
    private readonly _mode: "full" | "patch",
    private readonly _callback: RecordCallback<T> | undefined,
    private readonly _applyPatch: ApplyPatch | undefined,
  ) {}

  /** The latest value; `null` when absent or deleted. */
  get value(): T | null {
    return this._value;
  }

  /** The version of {@link value} (0: absent). */
  get version(): number {
    return this._version;
  }

  /** Whether changes are still delivered (false after unsubscribe, denial or deletion). */
  get active(): boolean {
    return this._active;
  }

  /** Stops delivery; resolves `true` iff this connection was subscribed. */
  async unsubscribe(): Promise<boolean> {
    this._active = false;
    return this._client.unsubscribeRecord(this.recordId);
  }

  /** @internal Subscribes through the client (also used to resync). */
  async _start(): Promise<boolean> {
    const result = await this._client.subscribeRecord(
      this.recordId,
      (update) => this._receive(update),
      { mode: this._mode },
    );
    if (result.success !== true) {
      this._active = false;
      return false;
    }
    // The JavaScript client delivers the subscribe response through the callback first; a
    // client that does not is caught up from the response (never moving backwards).
    if (!this._received || result.version > this._version) {
      this._set(result.record as T | null, result.version);
    }
    return true;
  }

  private _set(value: T | null, version: number): void {
    this._value = value;
    this._version = version;
    this._received = true;
  }

  private async _emit(
    change: Omit<RecordChange<T>, "recordId" | "value" | "version">,
  ): Promise<void> {
    await this._callback?.({
      recordId: this.recordId,
      value: this._value,
      version: this._version,
      ...change,
    });
  }

  private async _receive(update: RawRecordUpdate): Promise<void> {
    if (!this._active) {
      return;
    }
    if (update.deleted === true) {
      this._set(null, update.version);
      this._active = false;
      await this._emit({ deleted: true });
      return;
    }
    if (update.patch !== undefined) {
      // The server sends only add, remove and replace (protocol.md §11.4).
      const patch = update.patch as readonly PatchOperation[];
      // Clients ignore versions they already have (protocol.md §11.5).
      if (update.version <= this._version) {
        return;
      }
      const apply = this._applyPatch;
      let next: unknown;
      try {
        // RecordGroup requires applyPatch for patch mode; full mode gets no patches.
        if (apply === undefined) {
          throw new TypeError("patch received without an applyPatch binding option");
        }
        // Use the returned document: root operations cannot apply in place (protocol.md §11.4).
        next = apply(this._value, patch, false, false).newDocument;
      } catch {
        await this._resync();
        return;
      }
      this._set(next as T | null, update.version);
      await this._emit({ deleted: false, patch });
      return;
    }
    this._set((update.full ?? null) as T | null, update.version);
    await this._emit({ deleted: false });
  }

  /** A patch that does not apply means a lost update: start over, as the client does on gaps. */
  private async _resync(): Promise<void> {
    await this._client.unsubscribeRecord(this.recordId);
    this._received = false;
    await this._start();
  }
}

/** Base of generated `<Name>Records`. */
export class RecordGroup extends BindingGroup {
  /** Subscribes to `recordId`; values are typed as `T`. */
  protected async _subscribe<T>(
    recordId: string,
    callback: RecordCallback<T> | undefined,
    options?: RecordOptions,
  ): Promise<RecordSubscription<T>> {
    const mode = options?.mode ?? "full";
    const applyPatch = this._context.options.applyPatch;
    if (mode === "patch" && applyPatch === undefined) {
      throw new TypeError("patch mode needs the applyPatch binding option");
    }
    const subscription = new RecordSubscription<T>(
      this._context.client,
      recordId,
      mode,
      callback,
      applyPatch,
    );
    if (!(await subscription._start())) {
      throw new SubscriptionDenied(recordId);
    }
    return subscription;
  }

  /** Replaces the value of a writable record; rejects with `ForbiddenError` when not allowed. */
  protected async _write<T>(recordId: string, value: T): Promise<void> {
    await this._context.command("mesh/publish-record-update", { recordId, newValue: value });
  }
}

// -- Presence ---------------------------------------------------------------------------------

/** Rooms and presence with a typed state `S` (the contract does not describe presence state). */
export class PresenceGroup<S> extends BindingGroup {
  private _filter(callback: PresenceCallback<S>): (update: unknown) => Promise<void> {
    // HEAD also calls the callback with the subscribe response itself: keep only real events.
    return async (update: unknown) => {
      if (isPresenceUpdate(update)) {
        await callback(update as PresenceEvent<S>);
      }
    };
  }

  /** Joins `room` (and subscribes to its presence with a callback); resolves the present ids. */
  async join(room: string, callback?: PresenceCallback<S>): Promise<string[]> {
    const client = this._context.client;
    const result =
      callback === undefined
        ? await client.joinRoom(room)
        : await client.joinRoom(room, this._filter(callback));
    if (result.success !== true) {
      throw new SubscriptionDenied(room);
    }
    return presentIds(result.present);
  }

  /** Leaves `room` (and ends its presence subscription). */
  async leave(room: string): Promise<void> {
    await this._context.client.leaveRoom(room);
  }

  /** Subscribes to presence events of `room`; resolves who is present and their states. */
  async subscribe(room: string, callback: PresenceCallback<S>): Promise<PresenceSnapshot<S>> {
    const result = await this._context.client.subscribePresence(room, this._filter(callback));
    if (result.success !== true) {
      throw new SubscriptionDenied(room);
    }
    return {
      present: presentIds(result.present),
      states: (result.states ?? {}) as Record<string, S>,
    };
  }

  /** Ends the presence subscription of `room`; resolves `true` iff there was one. */
  async unsubscribe(room: string): Promise<boolean> {
    return this._context.client.unsubscribePresence(room);
  }

  /** Publishes this connection's state; `false` if not present in a tracked room (§7). */
  async publishState(room: string, state: S, options?: PresenceStateOptions): Promise<boolean> {
    const payload: Record<string, unknown> = { roomName: room, state };
    if (options?.expireAfterMs !== undefined) {
      payload["expireAfter"] = options.expireAfterMs;
    }
    if (options?.silent !== undefined) {
      payload["silent"] = options.silent;
    }
    return (await this._context.command("mesh/publish-presence-state", payload)) === true;
  }

  /** Clears this connection's state; `false` if not present in a tracked room (§7). */
  async clearState(room: string): Promise<boolean> {
    return (await this._context.command("mesh/clear-presence-state", { roomName: room })) === true;
  }
}
