// Drives oxmed with Medplum's own client library, as a Medplum app would. Exits non-zero on the
// first failed check. Environment: OXMED_BASE_URL, ADMIN_EMAIL, ADMIN_PASSWORD (the super admin),
// USER_EMAIL, USER_PASSWORD (a user of an ordinary project, who gets refresh tokens),
// CLIENT_ID, CLIENT_SECRET (a client of that project).
import assert from 'node:assert/strict';
import { check, env } from './check.mjs';
import { createHash, randomBytes } from 'node:crypto';
import { MedplumClient, MemoryStorage } from '@medplum/core';

// processCode reads the PKCE verifier from the browser's sessionStorage; Node has none.
globalThis.sessionStorage ??= new MemoryStorage();

/**
 * PKCE for startLogin, made here: outside a browser the library's own startPkce hashes with
 * window.btoa, fails, and falls back to `plain`, which oxmed refuses for public clients (Medplum
 * accepts it). startLogin takes a given challenge; processCode sends the stored verifier.
 */
function pkce() {
  const verifier = randomBytes(48).toString('base64url');
  sessionStorage.setItem('codeVerifier', verifier);
  const codeChallenge = createHash('sha256').update(verifier).digest('base64url');
  return { codeChallenge, codeChallengeMethod: 'S256' };
}

const baseUrl = env('OXMED_BASE_URL');

function client() {
  return new MedplumClient({ baseUrl, fetch: globalThis.fetch, cacheTime: 0 });
}

// Password sign-in: startLogin (PKCE) + processCode, then /auth/me.
await check('password sign-in with startLogin + processCode', async () => {
  const medplum = client();
  const login = await medplum.startLogin({ email: env('ADMIN_EMAIL'), password: env('ADMIN_PASSWORD'), ...pkce() });
  assert.ok(login.login, 'a login id');
  assert.ok(login.code, 'a code');
  const profile = await medplum.processCode(login.code);
  assert.equal(profile.resourceType, 'Practitioner');
  assert.ok(medplum.isAuthenticated());
  const me = await medplum.get('auth/me');
  assert.equal(me.user.email, env('ADMIN_EMAIL'));
  assert.equal(me.project.superAdmin, true);
  assert.equal(me.profile.id, profile.id);
});

await check('wrong password is refused with the OperationOutcome text', async () => {
  const medplum = client();
  await assert.rejects(
    medplum.startLogin({ email: env('ADMIN_EMAIL'), password: 'not-the-password', ...pkce() }),
    (err) => {
      assert.match(String(err.message), /Email or password is invalid/);
      return true;
    }
  );
});

await check('create, read and search a Patient; refresh; sign out', async () => {
  const medplum = client();
  const login = await medplum.startLogin({
    email: env('USER_EMAIL'),
    password: env('USER_PASSWORD'),
    scope: 'openid offline_access',
    ...pkce(),
  });
  await medplum.processCode(login.code);
  const family = `Compat${Date.now()}`;
  const created = await medplum.createResource({ resourceType: 'Patient', name: [{ family, given: ['Ada'] }] });
  assert.ok(created.id);
  assert.equal(created.meta.versionId !== undefined, true);
  const read = await medplum.readResource('Patient', created.id);
  assert.equal(read.name[0].family, family);
  const found = await medplum.searchResources('Patient', { name: family });
  assert.equal(found.length, 1);
  assert.equal(found[0].id, created.id);
  const bundle = await medplum.search('Patient', `family=${family}&_count=5`);
  assert.equal(bundle.resourceType, 'Bundle');
  assert.equal(bundle.entry.length, 1);

  // Refresh: a new access token, and the old refresh token is spent.
  const before = medplum.getAccessToken();
  const refreshBefore = medplum.getActiveLogin()?.refreshToken;
  assert.ok(refreshBefore, 'offline_access gives a refresh token');
  await medplum.refreshIfExpired(24 * 3600 * 1000);
  const after = medplum.getAccessToken();
  assert.ok(after && after !== before, 'a new access token');
  assert.notEqual(medplum.getActiveLogin()?.refreshToken, refreshBefore, 'the refresh token rotated');
  const again = await medplum.readResource('Patient', created.id);
  assert.equal(again.id, created.id);

  await medplum.signOut();
  assert.equal(medplum.isAuthenticated(), false);
  const res = await fetch(`${baseUrl}fhir/R4/Patient/${created.id}`, {
    headers: { Authorization: `Bearer ${after}` },
  });
  assert.equal(res.status, 401, 'the token of a signed-out session is refused');
});

await check('client credentials sign-in with startClientLogin', async () => {
  const medplum = client();
  const profile = await medplum.startClientLogin(env('CLIENT_ID'), env('CLIENT_SECRET'));
  assert.equal(profile.resourceType, 'ClientApplication');
  const patients = await medplum.searchResources('Patient', { _count: '1' });
  assert.ok(Array.isArray(patients));
  const bad = client();
  await assert.rejects(bad.startClientLogin(env('CLIENT_ID'), 'wrong-secret'));
});
