// The reference @openzeppelin/merkle-tree, driven by JSON on stdin, for the Python compatibility tests and benchmarks.
//   {"op": "of", "values": [...], "encoding": [...]}  -> {"root", "proofs", "dump"}
//   {"op": "load", "dump": {...}}                     -> {"root", "proofs", "verified"}
//   {"op": "bench", "n": 10000}                       -> {"build_s", "proof_us"}
import { StandardMerkleTree } from "@openzeppelin/merkle-tree";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const request = JSON.parse(Buffer.concat(chunks).toString("utf8"));

function describe(tree) {
  const proofs = [];
  for (const [i] of tree.entries()) proofs.push(tree.getProof(i));
  return { root: tree.root, proofs };
}

let result;
if (request.op === "of") {
  const tree = StandardMerkleTree.of(request.values, request.encoding);
  result = { ...describe(tree), dump: tree.dump() };
} else if (request.op === "load") {
  const tree = StandardMerkleTree.load(request.dump);
  const { root, proofs } = describe(tree);
  const verified = [...tree.entries()].every(([i, v]) =>
    StandardMerkleTree.verify(root, request.dump.leafEncoding, v, proofs[i]),
  );
  result = { root, proofs, verified };
} else if (request.op === "bench") {
  const values = [];
  for (let i = 0; i < request.n; i++) {
    values.push([`0x${(i + 1).toString(16).padStart(40, "0")}`, (BigInt(i + 1) * 10n ** 18n).toString()]);
  }
  const start = performance.now();
  const tree = StandardMerkleTree.of(values, ["address", "uint256"]);
  const build = (performance.now() - start) / 1000;
  const p0 = performance.now();
  const count = Math.min(1000, request.n);
  for (let i = 0; i < count; i++) tree.getProof(i);
  result = { build_s: build, proof_us: ((performance.now() - p0) * 1000) / count, root: tree.root };
} else {
  throw new Error(`unknown op ${request.op}`);
}
process.stdout.write(JSON.stringify(result));
