/**
 * Contract check of the typed TypeScript bindings (contract/README.md "Fingerprint").
 *
 * Hand-written; codegen copies it verbatim into every generated folder (as `contract.ts`). The
 * generated `<Name>Client` extends {@link BindingClient}: on every `connect` event of the
 * JavaScript client (the first connection and each reconnect: both revisions emit `connect`
 * before `reconnect`) it sends `mesh/contract-info` through `command` and compares the server's
 * fingerprint with the generated `FINGERPRINT`, like the Python facade (`mesh_sdk.facade`):
 *
 * - `contractCheck: "warn"` (default): a mismatch, a server without contract or an older server
 *   (`ENOTFOUND`) is reported to `onContractWarning` (default: `console.warn` when a console
 *   exists), naming what differs; the client keeps working.
 * - `"strict"`: the same closes the client; `connect()` rejects with
 *   {@link ContractMismatchError} (kept in `contractError`). After a reconnect the close is the
 *   signal.
 * - `"off"`: nothing is asked.
 *
 * A check that fails for another reason (timeout, server error) is reported as a warning and
 * repeated on the next connect; one interrupted by a lost connection is simply repeated.
 */

import { CommandNotFoundError, MeshConnectionError, MeshError, ValidationError } from "./errors.js";
import { BindingContext, type BindingOptions, type MeshClientLike } from "./runtime.js";

/** The built-in command a server announces its contract with. */
export const CONTRACT_INFO_COMMAND = "mesh/contract-info";

/** What a client does when the server's contract differs: warn, reject and close, or not ask. */
export type ContractCheck = "warn" | "strict" | "off";

/** What the generated client knows of its contract. */
export interface ContractDescription {
  readonly name: string;
  readonly fingerprint: string;
  /** Command wire names, sorted. */
  readonly commands: readonly string[];
}

/** The server's answer to `mesh/contract-info` (nulls: the server has no contract). */
export interface ContractInfo {
  readonly name: string | null;
  readonly fingerprint: string | null;
  readonly commands: readonly string[];
}

/** How the server's contract differs from the client's. */
export interface ContractMismatch {
  readonly clientName: string;
  readonly clientFingerprint: string;
  /** `null`: no contract, or not announced. */
  readonly serverName: string | null;
  readonly serverFingerprint: string | null;
  /** Whether the server answered `mesh/contract-info` (older servers answer `ENOTFOUND`). */
  readonly announced: boolean;
  /** Commands only the client's contract has (calls answer `ENOTFOUND`). */
  readonly onlyClient: readonly string[];
  /** Commands only the server's contract has. */
  readonly onlyServer: readonly string[];
  /** One line naming what differs (the Python facade's wording). */
  readonly message: string;
}

/** Options of the contract check (part of a generated client's options). */
export interface ContractCheckOptions {
  /** `"warn"` (default), `"strict"` or `"off"`. */
  contractCheck?: ContractCheck | undefined;
  /**
   * Receives each warning of the check: the mismatch in warn mode, or the error of a check that
   * could not complete. Default: `console.warn` of the message, when a console exists.
   */
  onContractWarning?: ((message: string, cause: ContractMismatch | MeshError) => void) | undefined;
}

/** A generated client's options. */
export type ClientOptions = BindingOptions & ContractCheckOptions;

/** Strict mode: the server's contract differs, so the client was closed (`ECONNECTION`). */
export class ContractMismatchError extends MeshConnectionError {
  static override readonly defaultName: string = "ContractMismatchError";

  /** What differs. */
  readonly mismatch: ContractMismatch;

  constructor(mismatch: ContractMismatch) {
    super(mismatch.message);
    this.mismatch = mismatch;
  }
}

function sortedDifference(left: readonly string[], right: readonly string[]): string[] {
  const other = new Set(right);
  return [...new Set(left)].filter((name) => !other.has(name)).sort();
}

function describe(m: Omit<ContractMismatch, "message">): string {
  const client = `client contract ${m.clientName} (${m.clientFingerprint})`;
  if (!m.announced) {
    return (
      "the server does not announce its contract (mesh/contract-info is unknown to it: an " +
      `older server); ${client} cannot be checked`
    );
  }
  if (m.serverFingerprint === null) {
    return `the server has no application contract; ${client} cannot be checked`;
  }
  const parts = [
    `contract mismatch: ${client} != server contract ${String(m.serverName)} ` +
      `(${m.serverFingerprint})`,
  ];
  if (m.onlyClient.length > 0) {
    parts.push("commands only in the client: " + m.onlyClient.join(", "));
  }
  if (m.onlyServer.length > 0) {
    parts.push("commands only on the server: " + m.onlyServer.join(", "));
  }
  if (m.onlyClient.length === 0 && m.onlyServer.length === 0) {
    parts.push(
      "same commands: schemas, channels or records differ " +
        "(compare the two with `mesh contract diff`)",
    );
  }
  return parts.join("; ");
}

/**
 * Compares the client's contract with the server's announcement; `null` when they match.
 *
 * Only fingerprints decide: a renamed contract or class with the same wire behaviour matches.
 *
 * @param info The parsed answer; `null` when the server does not know the command.
 */
export function compareContract(
  contract: ContractDescription,
  info: ContractInfo | null,
): ContractMismatch | null {
  if (info !== null && info.fingerprint !== null && info.fingerprint === contract.fingerprint) {
    return null;
  }
  const fields = {
    clientName: contract.name,
    clientFingerprint: contract.fingerprint,
    serverName: info?.name ?? null,
    serverFingerprint: info?.fingerprint ?? null,
    announced: info !== null,
    onlyClient: info === null ? [] : sortedDifference(contract.commands, info.commands),
    onlyServer: info === null ? [] : sortedDifference(info.commands, contract.commands),
  };
  return { ...fields, message: describe(fields) };
}

/**
 * Reads a `mesh/contract-info` answer (unknown members are ignored, like every client read).
 *
 * @throws ValidationError The answer does not have the built-in schema's shape.
 */
export function parseContractInfo(value: unknown): ContractInfo {
  const fields =
    typeof value === "object" && value !== null ? (value as Record<string, unknown>) : {};
  const { name, fingerprint, commands } = fields;
  const nullableString = (v: unknown): v is string | null => v === null || typeof v === "string";
  if (
    nullableString(name) &&
    nullableString(fingerprint) &&
    Array.isArray(commands) &&
    commands.every((command) => typeof command === "string")
  ) {
    return { name, fingerprint, commands: commands as string[] };
  }
  throw new ValidationError(`Invalid response for "${CONTRACT_INFO_COMMAND}"`, {
    details: value,
  });
}

/** The JavaScript client's `Status.ONLINE` (both revisions). */
const ONLINE = 3;

function consoleWarning(message: string): void {
  // No DOM or Node types: the bindings compile with `lib` ES2022 only.
  const host = globalThis as { console?: { warn?: (message: string) => void } };
  host.console?.warn?.(message);
}

/** Base of the generated `<Name>Client`: holds the client and checks the server's contract. */
export class BindingClient {
  /** The outcome of the last completed check (`null`: it matched, or none completed yet). */
  contractMismatch: ContractMismatch | null = null;
  /** In strict mode, the error that closed the client. */
  contractError: ContractMismatchError | null = null;
  /** What a server with another contract causes. */
  readonly contractCheck: ContractCheck;
  protected readonly _context: BindingContext;
  private readonly _warn: (message: string, cause: ContractMismatch | MeshError) => void;
  private _check: Promise<void> | null = null;

  /** @throws RangeError Unknown `contractCheck`. */
  constructor(
    readonly client: MeshClientLike,
    readonly contract: ContractDescription,
    options: ClientOptions = {},
  ) {
    const mode = options.contractCheck ?? "warn";
    if (mode !== "warn" && mode !== "strict" && mode !== "off") {
      throw new RangeError(`contractCheck must be "warn", "strict" or "off", not ${String(mode)}`);
    }
    this.contractCheck = mode;
    this._context = new BindingContext(client, options);
    this._warn = options.onContractWarning ?? consoleWarning;
    if (mode !== "off") {
      client.on("connect", () => this._startCheck());
      if (client.status === ONLINE) {
        this._startCheck();
      }
    }
  }

  /**
   * Connects the client and waits for the contract check of this connection.
   *
   * @throws ContractMismatchError Strict mode and the server's contract differs (the client is
   *   closed).
   */
  async connect(): Promise<void> {
    await this.client.connect();
    await this._check;
    if (this.contractError !== null) {
      throw this.contractError;
    }
  }

  /** Closes the client. */
  async close(): Promise<void> {
    await this.client.close();
  }

  /**
   * Asks the server for its contract now and compares; `null` when the fingerprints match.
   *
   * Neither warns nor closes for a mismatch (the connect checks do); records the outcome in
   * `contractMismatch`.
   *
   * @throws ValidationError The answer does not have the built-in schema's shape.
   * @throws MeshError The command failed otherwise (e.g. `ECONNECTION`, `ETIMEOUT`).
   */
  async checkContract(): Promise<ContractMismatch | null> {
    let info: ContractInfo | null;
    try {
      info = parseContractInfo(await this._context.command(CONTRACT_INFO_COMMAND, {}));
    } catch (error) {
      if (!(error instanceof CommandNotFoundError)) {
        throw error;
      }
      info = null; // a server older than mesh/contract-info
    }
    const mismatch = compareContract(this.contract, info);
    this.contractMismatch = mismatch;
    return mismatch;
  }

  private _startCheck(): void {
    this._check = this._checked();
  }

  /** One background check; never rejects (its outcome is a warning, an error or nothing). */
  private async _checked(): Promise<void> {
    let mismatch: ContractMismatch | null;
    try {
      mismatch = await this.checkContract();
    } catch (error) {
      if (error instanceof MeshConnectionError) {
        return; // the connection dropped meanwhile: the next connect checks again
      }
      const failure = error instanceof MeshError ? error : new MeshError(String(error));
      this._warn(`could not check the server's contract: ${failure.message}`, failure);
      return;
    }
    if (mismatch === null) {
      this.contractError = null; // e.g. reconnected to a server built from our contract
      return;
    }
    if (this.contractCheck === "strict") {
      const error = new ContractMismatchError(mismatch);
      this.contractError = error;
      try {
        await this.client.close();
      } catch (failure) {
        // Nobody awaits a reconnect's check: report instead of an unhandled rejection.
        this._warn(`could not close the client: ${String(failure)}`, error);
      }
      return;
    }
    this._warn(mismatch.message, mismatch);
  }
}
