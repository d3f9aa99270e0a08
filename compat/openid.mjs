// Drives oxmed with openid-client (an OpenID Certified relying party library): discovery, the
// authorization code flow with PKCE through oxmed's sign-in page (the page's form posted as a
// browser would), ID token validation including its signature, client credentials, refresh,
// userinfo, introspection and revocation. Exits non-zero on the first failed check.
// Environment: OXMED_BASE_URL, USER_EMAIL, USER_PASSWORD, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI.
import assert from 'node:assert/strict';
import { check, env } from './check.mjs';
import * as client from 'openid-client';

const baseUrl = env('OXMED_BASE_URL');
const redirectUri = env('REDIRECT_URI');

let config;
await check('discovery', async () => {
  config = await client.discovery(new URL(baseUrl), env('CLIENT_ID'), env('CLIENT_SECRET'), undefined, {
    execute: [client.allowInsecureRequests],
  });
  const meta = config.serverMetadata();
  assert.equal(meta.issuer, baseUrl);
  assert.equal(meta.authorization_endpoint, `${baseUrl}oauth2/authorize`);
  assert.ok(meta.code_challenge_methods_supported.includes('S256'));
  assert.equal(meta.authorization_response_iss_parameter_supported, true);
  // ID tokens are checked against the JWKS too, not only their claims.
  client.enableNonRepudiationChecks(config);
});

/** A cookie jar of one origin, enough for the sign-in page. */
const jar = new Map();
function keepCookies(res) {
  for (const c of res.headers.getSetCookie()) {
    const [pair] = c.split(';');
    const i = pair.indexOf('=');
    jar.set(pair.slice(0, i), pair.slice(i + 1));
  }
}
const cookieHeader = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');

function hiddenFields(html) {
  const fields = new URLSearchParams();
  for (const m of html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) {
    const value = m[2]
      .replaceAll('&quot;', '"')
      .replaceAll('&#x27;', "'")
      .replaceAll('&lt;', '<')
      .replaceAll('&gt;', '>')
      .replaceAll('&amp;', '&');
    fields.append(m[1], value);
  }
  return fields;
}

/** The authorization code flow through the sign-in page: the redirect back, and the verifier. */
async function pageSignIn({ scope, state, nonce }) {
  const verifier = client.randomPKCECodeVerifier();
  const challenge = await client.calculatePKCECodeChallenge(verifier);
  const params = {
    redirect_uri: redirectUri,
    scope,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    state,
    prompt: 'login',
  };
  if (nonce) params.nonce = nonce;
  const url = client.buildAuthorizationUrl(config, params);
  const page = await fetch(url, { redirect: 'manual', headers: { cookie: cookieHeader() } });
  assert.equal(page.status, 200);
  keepCookies(page);
  const html = await page.text();
  assert.match(html, /<form method="post"/);
  const form = hiddenFields(html);
  assert.ok(form.get('csrf'), 'the page has a CSRF token');
  form.set('email', env('USER_EMAIL'));
  form.set('password', env('USER_PASSWORD'));
  const posted = await fetch(`${baseUrl}oauth2/authorize`, {
    method: 'POST',
    redirect: 'manual',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      cookie: cookieHeader(),
      origin: new URL(baseUrl).origin,
    },
    body: form,
  });
  assert.equal(posted.status, 303, await posted.clone().text());
  keepCookies(posted);
  const back = new URL(posted.headers.get('location'));
  assert.equal(back.origin + back.pathname, redirectUri);
  return { back, verifier };
}

let tokens;
await check('authorization code with PKCE through the sign-in page', async () => {
  const state = client.randomState();
  const nonce = client.randomNonce();
  const { back, verifier } = await pageSignIn({ scope: 'openid profile email offline_access', state, nonce });
  tokens = await client.authorizationCodeGrant(config, back, {
    pkceCodeVerifier: verifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  });
  const claims = tokens.claims();
  assert.equal(claims.iss, baseUrl);
  assert.equal(claims.aud, env('CLIENT_ID'));
  assert.equal(claims.nonce, nonce);
  assert.equal(claims.email, env('USER_EMAIL'));
  assert.ok(tokens.access_token);
  assert.ok(tokens.refresh_token, 'offline_access gives a refresh token');
});

await check('an existing session gives a code with prompt=none', async () => {
  const verifier = client.randomPKCECodeVerifier();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: 'openid',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state: 's',
    prompt: 'none',
  });
  const res = await fetch(url, { redirect: 'manual', headers: { cookie: cookieHeader() } });
  assert.equal(res.status, 302);
  const back = new URL(res.headers.get('location'));
  const t = await client.authorizationCodeGrant(config, back, { pkceCodeVerifier: verifier, expectedState: 's' });
  assert.ok(t.access_token);
});

await check('userinfo', async () => {
  const sub = tokens.claims().sub;
  const info = await client.fetchUserInfo(config, tokens.access_token, sub);
  assert.equal(info.sub, sub);
  assert.equal(info.email, env('USER_EMAIL'));
  assert.ok(info.profile);
});

await check('refresh', async () => {
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  assert.ok(refreshed.access_token);
  assert.notEqual(refreshed.access_token, tokens.access_token);
  assert.ok(refreshed.refresh_token && refreshed.refresh_token !== tokens.refresh_token);
  tokens = refreshed;
});

await check('client credentials', async () => {
  const cc = await client.clientCredentialsGrant(config, { scope: 'openid' });
  assert.ok(cc.access_token);
  assert.equal(cc.token_type.toLowerCase(), 'bearer');
  const res = await fetch(`${baseUrl}fhir/R4/Patient?_count=1`, {
    headers: { Authorization: `Bearer ${cc.access_token}` },
  });
  assert.equal(res.status, 200);
});

await check('introspection and revocation', async () => {
  const active = await client.tokenIntrospection(config, tokens.access_token);
  assert.equal(active.active, true);
  assert.equal(active.client_id, env('CLIENT_ID'));
  await client.tokenRevocation(config, tokens.access_token);
  const after = await client.tokenIntrospection(config, tokens.access_token);
  assert.equal(after.active, false);
  const res = await fetch(`${baseUrl}fhir/R4/Patient?_count=1`, {
    headers: { Authorization: `Bearer ${tokens.access_token}` },
  });
  assert.equal(res.status, 401);
});

await check('the same code twice is refused', async () => {
  const { back, verifier } = await pageSignIn({ scope: 'openid', state: 's2' });
  await client.authorizationCodeGrant(config, back, { pkceCodeVerifier: verifier, expectedState: 's2' });
  await assert.rejects(
    client.authorizationCodeGrant(config, back, { pkceCodeVerifier: verifier, expectedState: 's2' }),
    (err) => err.error === 'invalid_grant'
  );
});
