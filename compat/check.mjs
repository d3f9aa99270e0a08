// What both compatibility scripts share: required environment, and checks reported as TAP-like
// `ok - ` / `not ok - ` lines (the Rust test reads them); the first failure ends the script.
import assert from 'node:assert/strict';

export function env(name) {
  const v = process.env[name];
  assert.ok(v, `${name} is required`);
  return v;
}

export async function check(name, fn) {
  try {
    await fn();
    console.log(`ok - ${name}`);
  } catch (err) {
    console.log(`not ok - ${name}: ${err?.stack ?? err}`);
    if (err?.cause) console.log('cause:', err.cause);
    process.exitCode = 1;
    throw err;
  }
}
