// A real OpenID Connect provider for Wagu's end-to-end social login test
// (gateway/tests/oidc.rs): panva's oidc-provider, doing the real protocol
// (discovery, authorization code flow with PKCE S256, token endpoint,
// RS256-signed ID tokens, JWKS, userinfo), with one confidential client and
// one account. The only thing that is not a real provider's is the
// interaction: instead of a login form and a consent page, /interaction/:uid
// signs the one account in and grants what was asked for at once, so a
// scripted "browser" that follows redirects completes the flow.
//
//   node provider.mjs --port P --client-id ID --client-secret S \
//     --redirect-uri URI [--subject SUB] [--email E]
//
// Issuer http://127.0.0.1:P. Prints "ready" on stdout once listening; logs
// protocol errors on stderr. State is in memory: it ends with the process.
// oidc-provider must resolve from this file's directory (a node_modules next
// to it or above it): ESM imports ignore NODE_PATH.
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    'client-id': { type: 'string' },
    'client-secret': { type: 'string' },
    'redirect-uri': { type: 'string' },
    subject: { type: 'string', default: 'oidc-tester-1' },
    email: { type: 'string', default: 'oidc-tester@example.test' },
  },
  strict: true,
});

for (const name of ['port', 'client-id', 'client-secret', 'redirect-uri']) {
  if (!args[name]) {
    console.error(`provider.mjs: --${name} is required`);
    process.exit(2);
  }
}

const port = Number.parseInt(args.port, 10);
const issuer = `http://127.0.0.1:${port}`;
const subject = args.subject;
const clientId = args['client-id'];

// A fresh RS256 signing key for each run; its public half is served at /jwks.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = {
  ...privateKey.export({ format: 'jwk' }),
  kid: randomUUID(),
  alg: 'RS256',
  use: 'sig',
};

const account = {
  accountId: subject,
  async claims() {
    return {
      sub: subject,
      email: args.email,
      email_verified: true,
      name: 'OIDC Tester',
    };
  },
};

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: clientId,
      client_secret: args['client-secret'],
      redirect_uris: [args['redirect-uri']],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  async findAccount(_ctx, id) {
    return id === subject ? account : undefined;
  },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
  },
  // Put the scopes' claims (email, name) in the ID token too, as Google and
  // most hosted providers do, and serve them from userinfo as well.
  conformIdTokenClaims: false,
  features: {
    devInteractions: { enabled: false },
  },
  // PKCE for every client, confidential ones included (S256 is the only
  // method oidc-provider accepts).
  pkce: { required: () => true },
  cookies: { keys: ['wagu-test-oidc-cookie-key-1', 'wagu-test-oidc-cookie-key-0'] },
  jwks: { keys: [signingKey] },
});
provider.proxy = false;

// The interaction: completes at once, the way the example app's login and
// consent forms would once submitted.
provider.use(async (ctx, next) => {
  const match = /^\/interaction\/([^/]+)$/.exec(ctx.path);
  if (ctx.method !== 'GET' || !match) {
    return next();
  }
  ctx.set('cache-control', 'no-store');
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const { prompt, params } = details;
  let result;
  if (prompt.name === 'login') {
    result = { login: { accountId: subject } };
  } else if (prompt.name === 'consent') {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
    const { missingOIDCScope, missingOIDCClaims, missingResourceScopes } = prompt.details;
    if (missingOIDCScope) {
      grant.addOIDCScope(missingOIDCScope.join(' '));
    }
    if (missingOIDCClaims) {
      grant.addOIDCClaims(missingOIDCClaims);
    }
    if (missingResourceScopes) {
      for (const [indicator, scopes] of Object.entries(missingResourceScopes)) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
    }
    const grantId = await grant.save();
    result = { consent: details.grantId ? {} : { grantId } };
  } else {
    ctx.status = 400;
    ctx.body = { error: 'unsupported_prompt', error_description: prompt.name };
    return undefined;
  }
  const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, {
    mergeWithLastSubmission: prompt.name !== 'login',
  });
  ctx.status = 303;
  ctx.redirect(returnTo);
  return undefined;
});

for (const event of ['server_error', 'authorization.error', 'grant.error', 'userinfo.error']) {
  provider.on(event, (_ctx, err) => {
    console.error(`[oidc-provider] ${event}: ${err.name}: ${err.message}${err.error_description ? ` (${err.error_description})` : ''}`);
  });
}

const server = provider.listen(port, '127.0.0.1', () => {
  console.log('ready');
});
server.on('error', (err) => {
  console.error(`provider.mjs: ${err.message}`);
  process.exit(1);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close();
    process.exit(0);
  });
}
