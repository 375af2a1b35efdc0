// A token endpoint on oidc-provider for bench/run-token-bench: one confidential client
// (client_secret_basic) with the client_credentials grant, whose access tokens are RS256 JWTs
// for one resource server. JWT access tokens in oidc-provider come from the resource
// indicators feature: defaultResource() picks the bench resource when the request names none,
// and getResourceServerInfo() gives it accessTokenFormat 'jwt' signed RS256.
//
// Environment:
//   PORT                  loopback port to listen on (default 0: any free port)
//   BENCH_CLIENT_ID       client id (default bench)
//   BENCH_CLIENT_SECRET   client secret (default bench-secret-pw)
//
// Prints "listening on http://127.0.0.1:PORT" once it accepts requests. The signing key is a
// fresh RSA 2048 key per start (e = 65537), as osbill's is after `osbill init`.

import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import http from 'node:http';

import Provider, { errors } from 'oidc-provider';

const port = Number(process.env.PORT || 0);
const clientId = process.env.BENCH_CLIENT_ID || 'bench';
const clientSecret = process.env.BENCH_CLIENT_SECRET || 'bench-secret-pw';
const RESOURCE = 'urn:osbill:bench:api';
const SCOPE = 'osbill';

function signingJwk() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 65537 });
  const jwk = privateKey.export({ format: 'jwk' });
  // RFC 7638 thumbprint as the kid, like osbill's.
  const canon = JSON.stringify({ e: jwk.e, kty: jwk.kty, n: jwk.n });
  const kid = createHash('sha256').update(canon).digest('base64url');
  return { ...jwk, kid, use: 'sig', alg: 'RS256' };
}

const server = http.createServer();
server.listen(port, '127.0.0.1', () => {
  const actual = server.address().port;
  const issuer = `http://127.0.0.1:${actual}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: clientId,
      client_secret: clientSecret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      scope: SCOPE,
    }],
    jwks: { keys: [signingJwk()] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    scopes: [SCOPE],
    ttl: { ClientCredentials: 3600 },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resourceIndicator) => {
          if (resourceIndicator !== RESOURCE) {
            throw new errors.InvalidTarget();
          }
          return {
            scope: SCOPE,
            audience: RESOURCE,
            accessTokenTTL: 3600,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
  });
  provider.on('server_error', (ctx, err) => {
    process.stderr.write(`server_error: ${err.stack || err}\n`);
  });
  server.on('request', provider.callback());
  process.stdout.write(`listening on ${issuer}\n`);
});

function shutdown() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
