"""String templates of the generated TypeScript ``client.ts``, ``errors.ts`` and ``index.ts``.

Strings are embedded with :func:`json.dumps`, whose escaping is valid TypeScript; the output is
reformatted by the pinned prettier anyway (``codegen/ts/generate.mjs``). Stubs stay thin: a typed
signature and one call into the hand-written ``runtime.ts``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

__all__ = [
    "TsChannel",
    "TsCommand",
    "TsError",
    "TsRecord",
    "camel",
    "client_module",
    "constant",
    "errors_module",
    "index_module",
]


def camel(snake_name: str) -> str:
    """``get_user_metadata`` → ``getUserMetadata``."""
    head, *rest = snake_name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def constant(snake_name: str) -> str:
    """``get_user_metadata`` → ``GET_USER_METADATA``."""
    return snake_name.upper()


def _doc(text: str) -> str:
    text = " ".join(text.split()).replace("*/", "*\\/")
    return text.rstrip(".") + "." if text else ""


@dataclass(frozen=True)
class TsCommand:
    """A command as the client template needs it."""

    method: str
    constant: str
    wire: str
    request: str
    response: str
    description: str


@dataclass(frozen=True)
class TsChannel:
    """A channel or record family as the client template needs it."""

    method: str
    constant: str
    template: str
    pattern: str
    type_name: str
    params: tuple[str, ...]
    description: str


@dataclass(frozen=True)
class TsRecord(TsChannel):
    """A record family (a channel-like family that may be writable)."""

    writable: bool = False


@dataclass(frozen=True)
class TsError:
    """One row of the error table."""

    code: str
    name: str
    class_name: str
    description: str
    client_only: bool


def _about(family: TsChannel) -> str:
    """The family's description as a second doc paragraph (empty without one)."""
    return f"\n   *\n   * {_doc(family.description)}" if family.description else ""


def _params_type(params: tuple[str, ...]) -> str:
    return "{ " + "; ".join(f"{p}: string" for p in params) + " }"


def _family(kind: str, family: TsChannel, extra: str) -> str:
    builder = f"{family.method}{kind}"
    const = f"{family.constant}_{kind.upper()}"
    what = "channel name" if kind == "Channel" else "record id"
    if family.params:
        signature = f"params: {_params_type(family.params)}"
        call = "params"
    else:
        signature = ""
        call = "{}"
    return f"""
/** The {kind.lower()} family `{family.template}`: template and pattern (full match). */
export const {const} = {{
  template: {json.dumps(family.template)},
  pattern: new RegExp({json.dumps(family.pattern)}),{extra}
}} as const;

/**
 * Returns the {what} `{family.template}` for the given parameters.
 *
 * @throws RangeError The name does not match `{family.pattern}`.
 */
export function {builder}({signature}): string {{
  return fillTemplate({const}, {call});
}}
"""


def _leading(params: tuple[str, ...]) -> tuple[str, str]:
    if params:
        return f"params: {_params_type(params)}, ", "params"
    return "", ""


def client_module(
    header: str,
    name: str,
    commands: list[TsCommand],
    channels: list[TsChannel],
    records: list[TsRecord],
    fingerprint: str,
) -> str:
    """Render ``client.ts``: fingerprint, wire names, template builders and the typed wrapper."""
    parts = [
        f"""{header}
/**
 * Typed bindings of the {name} contract over the JavaScript Mesh client: wire names, name
 * builders and `{name}Client`, whose stubs each make one call into the runtime.
 */

import type * as T from "./types.js";
import {{ BindingClient, type ClientOptions, type ContractDescription }} from "./contract.js";
import {{
  CommandGroup,
  fillTemplate,
  type ChannelOptions,
  type CommandOptions,
  type MeshClientLike,
  type MessageCallback,
  type RecordCallback,
  type RecordOptions,
}} from "./runtime.js";
import {{
  ChannelGroup,
  PresenceGroup,
  RecordGroup,
  type ChannelSubscription,
  type RecordSubscription,
}} from "./subscriptions.js";

/**
 * Fingerprint of the {name} contract (contract/README.md "Fingerprint"): equal to what a server
 * built from the same contract answers to `mesh/contract-info`.
 */
export const FINGERPRINT = {json.dumps(fingerprint)};

/** What `{name}Client` compares with the server's `mesh/contract-info` answer on connect. */
export const CONTRACT: ContractDescription = {{
  name: {json.dumps(name)},
  fingerprint: FINGERPRINT,
  commands: {json.dumps(sorted(c.wire for c in commands))},
}};
"""
    ]
    for command in commands:
        parts.append(
            f"""
/** Wire name of the command {command.method} ({command.request} → {command.response}). */
export const {command.constant}_COMMAND = {json.dumps(command.wire)};
"""
        )
    for channel in channels:
        parts.append(_family("Channel", channel, ""))
    for record in records:
        parts.append(_family("Record", record, f"\n  writable: {json.dumps(record.writable)},"))

    parts.append(
        f"\n/** Typed commands of {name}. */\nexport class {name}Commands extends CommandGroup {{\n"
    )
    for command in commands:
        doc = (
            f"`{command.wire}`: {_doc(command.description)}"
            if command.description
            else f"`{command.wire}`."
        )
        parts.append(
            f"""  /**
   * {doc}
   *
   * @throws MeshError The typed error of an error reply (or of a timeout or lost connection).
   */
  {command.method}(
    request: T.{command.request},
    options?: CommandOptions,
  ): Promise<T.{command.response}> {{
    return this._call<T.{command.response}>({command.constant}_COMMAND, request, options);
  }}

"""
        )
    parts.append("}\n")

    parts.append(
        f"\n/** Typed channels of {name}. */\nexport class {name}Channels extends ChannelGroup {{\n"
    )
    for channel in channels:
        lead, args = _leading(channel.params)
        message = f"T.{channel.type_name}"
        about = _about(channel)
        parts.append(
            f"""  /**
   * Subscribes to `{channel.template}`: messages parsed from JSON as {{@link {message}}}.{about}
   *
   * @throws SubscriptionDenied The server refused the subscription.
   */
  {channel.method}(
    {lead}callback: MessageCallback<{message}>,
    options?: ChannelOptions,
  ): Promise<ChannelSubscription<{message}>> {{
    return this._subscribe<{message}>({channel.method}Channel({args}), callback, options);
  }}

"""
        )
    parts.append("}\n")

    parts.append(
        f"\n/** Typed records of {name}. */\nexport class {name}Records extends RecordGroup {{\n"
    )
    for record in records:
        lead, args = _leading(record.params)
        value = f"T.{record.type_name}"
        parts.append(
            f"""  /**
   * Subscribes to `{record.template}`: values typed as {{@link {value}}}.{_about(record)}
   *
   * @throws SubscriptionDenied The record is not readable.
   */
  {record.method}(
    {lead}callback?: RecordCallback<{value}>,
    options?: RecordOptions,
  ): Promise<RecordSubscription<{value}>> {{
    return this._subscribe<{value}>({record.method}Record({args}), callback, options);
  }}

"""
        )
        if record.writable:
            pascal = record.method[:1].upper() + record.method[1:]
            parts.append(
                f"""  /**
   * Replaces the value of `{record.template}`.
   *
   * @throws ForbiddenError The record is not writable by this connection.
   */
  write{pascal}({lead}value: {value}): Promise<void> {{
    return this._write<{value}>({record.method}Record({args}), value);
  }}

"""
            )
    parts.append("}\n")

    parts.append(
        f"""
/**
 * Typed client of {name} over a JavaScript `MeshClient` (or any {{@link MeshClientLike}}).
 *
 * `S` types presence states, which the contract does not describe. On every connect the
 * client checks the server's contract fingerprint (`contractCheck`, see `contract.ts`).
 */
export class {name}Client<S = Record<string, unknown>> extends BindingClient {{
  readonly commands: {name}Commands;
  readonly channels: {name}Channels;
  readonly records: {name}Records;
  readonly presence: PresenceGroup<S>;

  constructor(client: MeshClientLike, options: ClientOptions = {{}}) {{
    super(client, CONTRACT, options);
    this.commands = new {name}Commands(this._context);
    this.channels = new {name}Channels(this._context);
    this.records = new {name}Records(this._context);
    this.presence = new PresenceGroup<S>(this._context);
  }}
}}
"""
    )
    return "".join(parts)


def errors_module(header: str, errors: list[TsError]) -> str:
    """Render ``errors.ts``: ``MeshError`` and one class per code of the error table."""
    codes = " | ".join(json.dumps(e.code) for e in errors)
    tree = "\n".join(
        f" *   {e.class_name:<22} {e.code:<13} {e.name}{CLIENT_ONLY if e.client_only else ''}"
        for e in errors
    )
    classes = "".join(
        f"""
/** {_doc(e.description)} */
export class {e.class_name} extends MeshError {{
  static override readonly defaultCode: string = {json.dumps(e.code)};
  static override readonly defaultName: string = {json.dumps(e.name)};
}}
"""
        for e in errors
    )
    table = ",\n".join(f"  [{json.dumps(e.code)}, {e.class_name}]" for e in errors)
    return f"""{header}
/**
 * The Mesh error model (protocol.md §4): one class per code of the error table.
 *
 *   {"MeshError":<22} any code; unknown codes from a newer server stay plain MeshError
{tree}
 */

/** A code of the error table; applications define more (`^E[A-Z0-9_]{{2,31}}$`). */
export type ErrorCode = {codes};

/** Fields of a {{@link MeshError}} beyond its message. */
export interface MeshErrorOptions {{
  code?: string | undefined;
  name?: string | undefined;
  details?: unknown;
  cause?: unknown;
}}

/** An error with a wire code, a name, a human-readable message and optional details. */
export class MeshError extends Error {{
  static readonly defaultCode: string = "ESERVER";
  static readonly defaultName: string = "Error";

  /** Machine-readable code such as `ENOTFOUND` or an application code. */
  readonly code: string;
  /** Structured data of the error, when the client passed it on. */
  readonly details: unknown;

  constructor(message: string, options: MeshErrorOptions = {{}}) {{
    super(message, options.cause === undefined ? undefined : {{ cause: options.cause }});
    const kind = new.target as typeof MeshError;
    this.code = options.code ?? kind.defaultCode;
    this.name = options.name ?? kind.defaultName;
    this.details = options.details;
  }}

  override toString(): string {{
    return `${{this.code}} (${{this.name}}): ${{this.message}}`;
  }}
}}
{classes}
const ERROR_CLASSES: ReadonlyMap<string, typeof MeshError> = new Map<string, typeof MeshError>([
{table},
]);

/**
 * Builds the typed error of a wire error object (`{{error, code, name, details?}}`).
 *
 * Known codes become their class; unknown codes stay a plain `MeshError` that keeps code and
 * name; an object without a string `code` becomes `UnknownError` (protocol.md §4).
 */
export function errorFromWire(value: unknown, cause?: unknown): MeshError {{
  if (typeof value !== "object" || value === null) {{
    return new UnknownError(value == null ? "Unknown error" : String(value), {{ cause }});
  }}
  const fields = value as Record<string, unknown>;
  const text = fields["error"] ?? fields["message"];
  const message = typeof text === "string" ? text : "";
  const name = typeof fields["name"] === "string" ? fields["name"] : undefined;
  const code = fields["code"];
  const details = fields["details"];
  if (typeof code !== "string") {{
    return new UnknownError(message, {{ name, details, cause }});
  }}
  const kind = ERROR_CLASSES.get(code) ?? MeshError;
  return new kind(message, {{ code, name, details, cause }});
}}
"""


def index_module(header: str, name: str) -> str:
    """Render ``index.ts``: everything a front end imports."""
    return f"""{header}
/** Typed bindings of the {name} contract (see `client.ts`). */

export * from "./client.js";
export * from "./contract.js";
export * from "./errors.js";
export * from "./runtime.js";
export * from "./subscriptions.js";
export type * from "./types.js";
"""


CLIENT_ONLY = "  (client side only)"
"""Marks client-side codes in the error tree."""

TEMPLATE_PARAM = re.compile(r"\{([^{}]*)\}")
"""Placeholders of channel and record templates."""
