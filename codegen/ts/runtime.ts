/**
 * Runtime of the typed TypeScript bindings that `mesh codegen --lang ts` generates.
 *
 * Hand-written; codegen copies it verbatim into every generated folder (as `runtime.ts`, with
 * `subscriptions.ts`) so the bindings need no package beyond the JavaScript Mesh client they wrap.
 * The generated `client.ts` holds only typed signatures, each making one call into the groups
 * here and in `subscriptions.ts`, which own every behaviour.
 *
 * The client is typed structurally by {@link MeshClientLike}: the part of the original
 * `MeshClient` (`@prsm/mesh/client`) that both its SEED and HEAD revisions have, so the bindings
 * compile and run against either, or against a fake in tests, without the package installed.
 *
 * Guarantees and limits:
 * - Types are compile-time only: messages, values and responses are parsed (`JSON.parse` for
 *   channel messages) but not validated against their schemas at run time.
 * - Error replies: the JavaScript client resolves them as results (`{error, code, name}`); the
 *   bindings recognise that shape and reject with the typed error of its code instead.
 * - Channel messages that are not JSON are dropped (reported to `onInvalid` when given).
 * - Records in patch mode: the JavaScript client checks version contiguity and resubscribes on a
 *   gap (protocol.md §11.5) but hands patches to the application; the bindings apply them (with the
 *   `applyPatch` passed in, e.g. the one `@prsm/mesh/client` exports) and deliver whole values.
 */

import { ForbiddenError, MeshError, UnknownError, errorFromWire } from "./errors.js";

// -- The JavaScript client, structurally ------------------------------------------------------

/** One RFC 6902 operation; the server sends only these three (protocol.md §11.4). */
export type PatchOperation =
  | { op: "add"; path: string; value: unknown }
  | { op: "remove"; path: string }
  | { op: "replace"; path: string; value: unknown };

/** An RFC 6902 operation as the JavaScript client types it (fast-json-patch's `Operation`). */
export interface RawOperation {
  op: string;
  path: string;
  value?: unknown;
  from?: string | undefined;
}

/** A record update as the JavaScript client hands it to its callback (HEAD adds `deleted`). */
export interface RawRecordUpdate {
  recordId: string;
  full?: unknown;
  patch?: readonly RawOperation[] | undefined;
  version: number;
  deleted?: boolean | undefined;
}

/** A present connection as HEAD reports it; SEED (and mesh-py) report bare ids. */
export interface PresentMember {
  id: string;
  metadata: unknown;
}

/** A presence event as the JavaScript client hands it to its callback (protocol.md §8). */
export type RawPresenceUpdate =
  | {
      type: "join" | "leave";
      connectionId: string;
      roomName: string;
      timestamp?: number | undefined;
    }
  | {
      type: "state";
      connectionId: string;
      roomName: string;
      state: unknown;
      timestamp?: number | undefined;
    };

/** The part of the JavaScript `MeshClient` (SEED and HEAD) that the bindings call. */
export interface MeshClientLike {
  connect(): Promise<void>;
  close(): Promise<void>;
  /** Both revisions are event emitters; `connect` fires on the first connection and each reconnect. */
  on(event: "connect", listener: () => void): unknown;
  /** `Status` of the client (`3`: online); read to check at once a client already connected. */
  readonly status?: number;
  command(command: string, payload?: unknown, expiresIn?: number): Promise<unknown>;
  subscribeChannel(
    channel: string,
    callback: (message: string) => void | Promise<void>,
    options?: { historyLimit?: number },
  ): Promise<{ success: boolean; history: string[] }>;
  unsubscribeChannel(channel: string): Promise<boolean>;
  subscribeRecord(
    recordId: string,
    callback: (update: RawRecordUpdate) => void | Promise<void>,
    options?: { mode?: "patch" | "full" },
  ): Promise<{ success: boolean; record: unknown; version: number }>;
  unsubscribeRecord(recordId: string): Promise<boolean>;
  joinRoom(
    roomName: string,
    onPresenceUpdate?: (update: RawPresenceUpdate) => void | Promise<void>,
  ): Promise<{ success: boolean; present: Array<string | PresentMember> }>;
  leaveRoom(roomName: string): Promise<{ success: boolean }>;
  subscribePresence(
    roomName: string,
    callback: (update: RawPresenceUpdate) => void | Promise<void>,
  ): Promise<{
    success: boolean;
    present: Array<string | PresentMember>;
    states?: Record<string, unknown>;
  }>;
  unsubscribePresence(roomName: string): Promise<boolean>;
}

// -- Options and callbacks --------------------------------------------------------------------

/** Applies an RFC 6902 patch without mutating its input, like fast-json-patch's `applyPatch`. */
export type ApplyPatch = (
  document: unknown,
  patch: readonly PatchOperation[],
  validateOperation: boolean,
  mutateDocument: boolean,
) => { newDocument: unknown };

/** Options of a generated client. */
export interface BindingOptions {
  /** Default command timeout in milliseconds (the JavaScript client's default: 30000). */
  timeoutMs?: number | undefined;
  /** Patch applier for records in patch mode: `applyPatch` from `@prsm/mesh/client`. */
  applyPatch?: ApplyPatch | undefined;
}

/** Options of one command call. */
export interface CommandOptions {
  /** Timeout in milliseconds; rejects with `MeshTimeoutError` when it passes. */
  timeoutMs?: number | undefined;
}

/** Options of a channel subscription. */
export interface ChannelOptions {
  /** How many of the most recent messages to fetch; they arrive newest first (protocol.md §9.5). */
  historyLimit?: number | undefined;
  /** Called with each message that is not JSON (and therefore dropped). */
  onInvalid?: ((raw: string, error: unknown) => void) | undefined;
}

/** Options of a record subscription. */
export interface RecordOptions {
  /** `full` (default): whole values; `patch`: RFC 6902 patches, applied by the bindings. */
  mode?: "full" | "patch" | undefined;
}

/** Options of a presence state publication. */
export interface PresenceStateOptions {
  /** Milliseconds after which the state expires (0 or absent: never). */
  expireAfterMs?: number | undefined;
  /** Publish without a `state` event (HEAD protocol). */
  silent?: boolean | undefined;
}

/** Called with each decoded channel message (history first, in the order the client gives). */
export type MessageCallback<T> = (message: T) => void | Promise<void>;

/** One observed state of a record. */
export interface RecordChange<T> {
  recordId: string;
  /** The whole value after this change; `null` when absent (version 0) or deleted. */
  value: T | null;
  version: number;
  /** The patch that produced `value` (patch mode only). */
  patch?: readonly PatchOperation[];
  /** The record was deleted; the subscription has ended (protocol.md §11.6). */
  deleted: boolean;
}

/** Called with the current value on subscribe, then with every change. */
export type RecordCallback<T> = (change: RecordChange<T>) => void | Promise<void>;

/** A presence event with a typed state. */
export type PresenceEvent<S> =
  | { type: "join" | "leave"; connectionId: string; roomName: string; timestamp?: number }
  | { type: "state"; connectionId: string; roomName: string; state: S | null; timestamp?: number };

/** Called with each presence event of a room. */
export type PresenceCallback<S> = (event: PresenceEvent<S>) => void | Promise<void>;

/** Who is present in a room, and their states. */
export interface PresenceSnapshot<S> {
  present: string[];
  states: Record<string, S>;
}

// -- Errors and helpers -----------------------------------------------------------------------

/** A subscription or join was denied (`{"success": false}`): not exposed, or a guard failed. */
export class SubscriptionDenied extends ForbiddenError {
  static override readonly defaultName: string = "SubscriptionDenied";

  /** The channel, record id or room that was refused. */
  readonly target: string;

  constructor(target: string) {
    super(`Subscription to "${target}" was denied`);
    this.target = target;
  }
}

/** A channel or record template with its name pattern (full match, protocol.md §11.1). */
export interface NameTemplate {
  readonly template: string;
  readonly pattern: RegExp;
}

/**
 * Fills the `{param}` placeholders of a template and checks the result against its pattern.
 *
 * @throws RangeError A parameter is missing or the name does not fully match the pattern.
 */
export function fillTemplate(
  family: NameTemplate,
  params: Readonly<Record<string, string>>,
): string {
  const name = family.template.replace(/\{([^{}]*)\}/g, (_match, key: string) => {
    const value = Object.prototype.hasOwnProperty.call(params, key) ? params[key] : undefined;
    if (typeof value !== "string") {
      throw new RangeError(`missing parameter "${key}" for "${family.template}"`);
    }
    return value;
  });
  const match = family.pattern.exec(name);
  if (match === null || match[0] !== name) {
    throw new RangeError(`"${name}" does not match ${String(family.pattern)}`);
  }
  return name;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The reference error object `{error, code, name}` the JavaScript client resolves with (§4). */
function isErrorPayload(value: unknown): boolean {
  return (
    isObject(value) &&
    typeof value["error"] === "string" &&
    typeof value["code"] === "string" &&
    typeof value["name"] === "string"
  );
}

/** The JavaScript client rejects with `CodeError`s (`ETIMEOUT`, `ECONNECTION`) or plain errors. */
function errorFromRejection(error: unknown): MeshError {
  if (error instanceof MeshError) {
    return error;
  }
  const message = error instanceof Error ? error.message : String(error);
  if (isObject(error) && typeof error["code"] === "string") {
    const name = typeof error["name"] === "string" ? error["name"] : undefined;
    return errorFromWire({ error: message, code: error["code"], name }, error);
  }
  return new UnknownError(message, { cause: error });
}

/** What every group of a generated client shares. */
export class BindingContext {
  constructor(
    readonly client: MeshClientLike,
    readonly options: Readonly<BindingOptions> = {},
  ) {}

  /** Sends a command; resolves with its result, rejects with the typed error of an error reply. */
  async command(name: string, payload: unknown, timeoutMs?: number): Promise<unknown> {
    const timeout = timeoutMs ?? this.options.timeoutMs;
    let result: unknown;
    try {
      result =
        timeout === undefined
          ? await this.client.command(name, payload)
          : await this.client.command(name, payload, timeout);
    } catch (error) {
      throw errorFromRejection(error);
    }
    if (isErrorPayload(result)) {
      throw errorFromWire(result);
    }
    return result;
  }
}

/** Base of every group of a generated client. */
export class BindingGroup {
  constructor(protected readonly _context: BindingContext) {}
}

// -- Commands ---------------------------------------------------------------------------------

/** Base of generated `<Name>Commands`. */
export class CommandGroup extends BindingGroup {
  /** Sends `name`; the response type is the contract's (not checked at run time). */
  protected async _call<R>(name: string, request: unknown, options?: CommandOptions): Promise<R> {
    return (await this._context.command(name, request, options?.timeoutMs)) as R;
  }
}
