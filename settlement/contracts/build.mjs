// Compiles src/*.sol with solc-js into artifacts/<Name>.json (abi, bytecode, compiler, settings, source hash).
//   node build.mjs          write the artifacts
//   node build.mjs --check  compile and exit 1 when a committed artifact differs (stale or hand-edited)
// Run `npm ci` in this folder first. The platform reads only the artifacts, never node.
import { createHash } from "node:crypto";
import { readFileSync, readdirSync, writeFileSync, mkdirSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const solc = require("solc");

const CONTRACTS = ["DatanetsToken", "RewardDistributor"];
const SETTINGS = {
  evmVersion: "cancun",
  optimizer: { enabled: true, runs: 200 },
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
};

const sha256 = (text) => createHash("sha256").update(text).digest("hex");

function readSource(path) {
  if (path.startsWith("src/")) return readFileSync(join(here, path), "utf8");
  return readFileSync(require.resolve(path), "utf8");
}

const sources = {};
for (const file of readdirSync(join(here, "src")).filter((f) => f.endsWith(".sol")).sort()) {
  sources[`src/${file}`] = { content: readSource(`src/${file}`) };
}
const loaded = {};
function findImports(path) {
  try {
    loaded[path] = readSource(path);
    return { contents: loaded[path] };
  } catch (err) {
    return { error: `cannot read ${path}: ${err.message}` };
  }
}

const input = { language: "Solidity", sources, settings: SETTINGS };
const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
const errors = (output.errors ?? []).filter((e) => e.severity === "error");
for (const e of output.errors ?? []) console.error(e.formattedMessage);
if (errors.length) process.exit(1);

// One hash over every source that went in (ours and OpenZeppelin's), in a fixed order.
const allSources = { ...Object.fromEntries(Object.entries(sources).map(([k, v]) => [k, v.content])), ...loaded };
const sourceHashes = Object.fromEntries(Object.keys(allSources).sort().map((k) => [k, sha256(allSources[k])]));
const sourceHash = sha256(Object.entries(sourceHashes).map(([k, v]) => `${k}:${v}\n`).join(""));
const ozVersion = JSON.parse(readFileSync(require.resolve("@openzeppelin/contracts/package.json"), "utf8")).version;

const outDir = join(here, "artifacts");
mkdirSync(outDir, { recursive: true });
let stale = 0;
for (const name of CONTRACTS) {
  const contract = output.contracts[`src/${name}.sol`][name];
  const artifact = {
    contractName: name,
    sourceName: `src/${name}.sol`,
    abi: contract.abi,
    bytecode: `0x${contract.evm.bytecode.object}`,
    deployedBytecode: `0x${contract.evm.deployedBytecode.object}`,
    compiler: { name: "solc-js", version: solc.version(), settings: { evmVersion: SETTINGS.evmVersion, optimizer: SETTINGS.optimizer } },
    openzeppelinContracts: ozVersion,
    sourceHash,
    sources: sourceHashes,
  };
  const text = `${JSON.stringify(artifact, null, 2)}\n`;
  const path = join(outDir, `${name}.json`);
  if (process.argv.includes("--check")) {
    const committed = existsSync(path) ? readFileSync(path, "utf8") : "";
    if (committed !== text) {
      console.error(`stale: artifacts/${name}.json differs from a fresh compile; run \`npm run build\` in settlement/contracts`);
      stale += 1;
    }
  } else {
    writeFileSync(path, text);
    console.log(`wrote artifacts/${name}.json (${contract.evm.deployedBytecode.object.length / 2} bytes deployed)`);
  }
}
if (stale) process.exit(1);
if (process.argv.includes("--check")) console.log(`artifacts up to date (source hash ${sourceHash})`);
