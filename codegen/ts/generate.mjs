// Node side of `mesh codegen --lang ts` (codegen/ts_render.py runs it; not for direct use).
//
// stdin:  {"schema": bundle schema, "banner": header comment, "files": {name: TypeScript source}}
// stdout: {"files": {name: formatted source}} with "types.ts" added.
//
// json-schema-to-typescript compiles the bundle into types.ts; prettier formats every file. Both
// are pinned exactly by package-lock.json, so the output depends only on the input.

import { readFileSync } from "node:fs";

import { compile } from "json-schema-to-typescript";
import { format } from "prettier";

/** json-schema-to-typescript options (contract/README.md explains each choice). */
const COMPILE_OPTIONS = {
  format: false,
  ignoreMinAndMaxItems: true,
  strictIndexSignatures: true,
  unknownAny: true,
  unreachableDefinitions: false,
  $refOptions: { resolve: { external: false, file: false, http: false } },
};

/** Prettier options of every generated file (also how runtime.ts is formatted). */
const PRETTIER_OPTIONS = {
  ...JSON.parse(readFileSync(new URL(".prettierrc.json", import.meta.url), "utf8")),
  parser: "typescript",
};

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) {
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

const request = JSON.parse(await readStdin());
const types = await compile(request.schema, request.schema.title, {
  ...COMPILE_OPTIONS,
  bannerComment: request.banner,
});
const sources = { ...request.files, "types.ts": types };
const files = {};
for (const name of Object.keys(sources).sort()) {
  files[name] = await format(sources[name], PRETTIER_OPTIONS);
}
process.stdout.write(JSON.stringify({ files }));
