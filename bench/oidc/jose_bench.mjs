// The Node.js side of bench/jose/jose_bench: RS256 sign and verify rates, one thread, with the
// `jose` package that oidc-provider signs its JWT access tokens with (and that resource
// servers in front of an oidc-provider typically verify them with), next to node:crypto's
// raw RSA-SHA256 sign and verify on the same bytes. Same claims as osbill's access tokens.
//
// Usage: node jose_bench.mjs [-t seconds per measurement] [-r rounds]
// Prints one machine-readable line per operation on stdout:
//   JOSEBENCH op=<name> ops=<ops/s, median of the rounds>
// and the per-round figures on stderr.

import { createPublicKey, generateKeyPairSync, randomUUID, sign, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

import { SignJWT, jwtVerify } from 'jose';

const ISS = 'https://osbill.example/identity';

let seconds = 2;
let rounds = 3;
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  if (args[i] === '-t' && i + 1 < args.length) seconds = Number(args[++i]);
  else if (args[i] === '-r' && i + 1 < args.length) rounds = Number(args[++i]);
  else {
    process.stderr.write('usage: node jose_bench.mjs [-t seconds] [-r rounds]\n');
    process.exit(2);
  }
}
if (!(seconds > 0) || !(rounds >= 1)) {
  process.stderr.write('usage: node jose_bench.mjs [-t seconds] [-r rounds]\n');
  process.exit(2);
}

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 65537 });
const publicKey = createPublicKey(privateKey);
const kid = 'bench';

function claims() {
  const now = Math.floor(Date.now() / 1000);
  return {
    iss: ISS,
    sub: 'osbill-1b4e28ba-2fa1-41d2-883f-0016d3cca427',
    iam_id: 'osbill-1b4e28ba-2fa1-41d2-883f-0016d3cca427',
    account: { bss: 'a7f3c2e1d0b94f6a8e5d4c3b2a190817' },
    client_id: 'default',
    grant_type: 'urn:ibm:params:oauth:grant-type:apikey',
    scope: 'osbill',
    iat: now,
    exp: now + 3600,
    jti: randomUUID(),
  };
}

function joseSign() {
  return new SignJWT(claims()).setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid }).sign(privateKey);
}

const token = await joseSign();
const dot = token.lastIndexOf('.');
const signed = Buffer.from(token.slice(0, dot));
const signature = Buffer.from(token.slice(dot + 1), 'base64url');

const ops = {
  'node:crypto sign': () => { sign('sha256', signed, privateKey); },
  'jose SignJWT': joseSign,
  'node:crypto verify': () => {
    if (!verify('sha256', signed, publicKey, signature)) throw new Error('raw verify failed');
  },
  'jose jwtVerify': () => jwtVerify(token, publicKey, { algorithms: ['RS256'], issuer: ISS }),
};

async function measure(op) {
  for (let i = 0; i < 20; i++) await op();
  const limit = seconds * 1e9;
  const start = process.hrtime.bigint();
  let n = 0;
  let el;
  do {
    for (let i = 0; i < 16; i++) await op();
    n += 16;
    el = Number(process.hrtime.bigint() - start);
  } while (el < limit);
  return (n * 1e9) / el;
}

const median = (v) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const runs = Object.fromEntries(Object.keys(ops).map((k) => [k, []]));
for (let r = 0; r < rounds; r++) {
  for (const [name, op] of Object.entries(ops)) {
    const v = await measure(op);
    runs[name].push(v);
    process.stderr.write(`round ${r + 1}/${rounds}  ${name.padEnd(20)} ${v.toFixed(0).padStart(10)} ops/s\n`);
  }
}

const require = createRequire(import.meta.url);
const joseVersion = JSON.parse(readFileSync(require.resolve('jose/package.json'), 'utf8')).version;
process.stdout.write(`JOSEBENCH node=${process.version} jose=${joseVersion} openssl=${process.versions.openssl}\n`);
for (const name of Object.keys(ops)) {
  process.stdout.write(`JOSEBENCH op=${name.replace(/[^A-Za-z0-9]+/g, '_')} ops=${median(runs[name]).toFixed(1)}\n`);
}
