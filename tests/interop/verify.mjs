// Verifies an osbill access token with panva/jose, a JOSE implementation independent of ours:
// the keys come from the platform's JWKS URL (createRemoteJWKSet), the signature must be RS256
// and iss must equal the expected issuer (jwtVerify also checks exp, nbf and iat).
//
// Usage: node verify.mjs JWKS_URL ISSUER [TOKEN]
//   TOKEN defaults to standard input (surrounding whitespace is ignored), which keeps it off
//   the process list.
// On success: prints the verified payload as one line of JSON on stdout and exits 0.
// On failure: prints the reason (jose's error code and message) on stderr and exits 1.
// Usage errors exit 2.

import { createRemoteJWKSet, jwtVerify } from 'jose';

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

async function main(argv) {
  if (argv.length < 2 || argv.length > 3) {
    process.stderr.write('usage: node verify.mjs JWKS_URL ISSUER [TOKEN]\n');
    return 2;
  }
  const [jwksUrl, issuer] = argv;
  let url;
  try {
    url = new URL(jwksUrl);
  } catch {
    process.stderr.write(`not a URL: ${jwksUrl}\n`);
    return 2;
  }
  const token = (argv.length === 3 ? argv[2] : await readStdin()).trim();
  if (!token) {
    process.stderr.write('no token given\n');
    return 2;
  }
  const jwks = createRemoteJWKSet(url, { timeoutDuration: 10000 });
  try {
    const { payload, protectedHeader } = await jwtVerify(token, jwks, {
      algorithms: ['RS256'],
      issuer,
    });
    if (protectedHeader.alg !== 'RS256') throw new Error(`unexpected alg ${protectedHeader.alg}`);
    process.stdout.write(JSON.stringify(payload) + '\n');
    return 0;
  } catch (err) {
    process.stderr.write(`verification failed: ${err.code || err.name}: ${err.message}\n`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
