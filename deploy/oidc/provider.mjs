// A real OpenID Connect and OAuth 2.0 provider for Wagu's end-to-end social
// login tests (gateway/tests/oidc.rs, web/test/social.test.mjs): panva's
// oidc-provider, doing the real protocol (discovery, authorization code flow
// with PKCE S256, token endpoint, RS256-signed ID tokens, JWKS, userinfo),
// with one confidential client and one account.
//
// An authorization request without the `openid` scope is plain OAuth 2.0
// (oidc-provider issues an opaque access token and no ID token). For those,
// GET /v1/nid/me is a profile API shaped like Naver's
// (https://openapi.naver.com/v1/nid/me): it checks the bearer access token
// with oidc-provider's own store and answers
// {"resultcode":"00","message":"success","response":{"id",…}}, or 401 with
// resultcode "024" for a token it does not know.
//
// The interaction: by default /interaction/:uid signs the one account in and
// grants what was asked for at once, so a scripted "browser" that follows
// redirects completes the flow. With --interactive the provider shows its
// real login and consent pages instead (oidc-provider's devInteractions: type
// the subject as the login, any password; "[ Cancel ]" denies).
//
//   node provider.mjs --port P --client-id ID --client-secret S \
//     --redirect-uri URI [--subject SUB] [--email E] [--name N]
//     [--nickname N] [--picture URL] [--token-auth basic|post]
//     [--pkce required|optional] [--code-ttl SECONDS] [--interactive]
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
    name: { type: 'string', default: 'OIDC Tester' },
    nickname: { type: 'string', default: 'Tester Nick' },
    picture: { type: 'string', default: 'https://img.example.test/tester.png' },
    'token-auth': { type: 'string', default: 'basic' },
    pkce: { type: 'string', default: 'required' },
    'code-ttl': { type: 'string', default: '60' },
    interactive: { type: 'boolean', default: false },
  },
  strict: true,
});

for (const name of ['port', 'client-id', 'client-secret', 'redirect-uri']) {
  if (!args[name]) {
    console.error(`provider.mjs: --${name} is required`);
    process.exit(2);
  }
}

if (!['basic', 'post'].includes(args['token-auth']) || !['required', 'optional'].includes(args.pkce)) {
  console.error('provider.mjs: --token-auth is basic or post, --pkce required or optional');
  process.exit(2);
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
      name: args.name,
      nickname: args.nickname,
      picture: args.picture,
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
      token_endpoint_auth_method: args['token-auth'] === 'post' ? 'client_secret_post' : 'client_secret_basic',
    },
  ],
  async findAccount(_ctx, id) {
    return id === subject ? account : undefined;
  },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'picture'],
    // Kakao's consent items, as scopes (its ID token carries these claims).
    profile_nickname: ['nickname'],
    profile_image: ['picture'],
    // What a scope-less (Naver-style) request is granted; no claims of its own.
    naver_profile: [],
  },
  // Put the scopes' claims (email, name) in the ID token too, as Google and
  // most hosted providers do, and serve them from userinfo as well.
  conformIdTokenClaims: false,
  features: {
    devInteractions: { enabled: args.interactive },
  },
  ttl: { AuthorizationCode: Number.parseInt(args['code-ttl'], 10) },
  // PKCE for every client, confidential ones included (S256 is the only
  // method oidc-provider accepts), unless --pkce optional (Naver takes none).
  pkce: { required: () => args.pkce === 'required' },
  cookies: { keys: ['wagu-test-oidc-cookie-key-1', 'wagu-test-oidc-cookie-key-0'] },
  jwks: { keys: [signingKey] },
});
provider.proxy = false;

// Naver's authorization requests carry no scope (its consent items are set in
// its console), but oidc-provider denies a request that grants none: a
// scope-less authorization request here is given the scope naver_profile.
provider.use(async (ctx, next) => {
  if (ctx.path === '/auth' && ctx.method === 'GET' && !ctx.query.scope) {
    ctx.querystring = `${ctx.querystring}&scope=naver_profile`;
  }
  return next();
});

// The profile API of OAuth 2.0 log-ins, shaped like Naver's.
provider.use(async (ctx, next) => {
  if (ctx.path !== '/v1/nid/me') {
    return next();
  }
  ctx.set('cache-control', 'no-store');
  const auth = ctx.get('authorization');
  const token = /^Bearer (.+)$/i.exec(auth)?.[1];
  const found = token ? await provider.AccessToken.find(token) : undefined;
  if (!found || found.isExpired || found.accountId !== subject) {
    ctx.status = 401;
    ctx.body = { resultcode: '024', message: 'Authentication failed' };
    return undefined;
  }
  ctx.body = {
    resultcode: '00',
    message: 'success',
    response: {
      id: subject,
      nickname: args.nickname,
      name: args.name,
      email: args.email,
      profile_image: args.picture,
    },
  };
  return undefined;
});

// The interaction (without --interactive): completes at once, the way the
// login and consent forms would once submitted.
provider.use(async (ctx, next) => {
  const match = /^\/interaction\/([^/]+)$/.exec(ctx.path);
  if (args.interactive || ctx.method !== 'GET' || !match) {
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
