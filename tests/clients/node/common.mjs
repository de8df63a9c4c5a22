// Shared by the client scripts: the QUAVER_* environment tests/clients.rs sets, one
// JSON line per check, bounded waits, and the Discord gateway payloads a bot's Discord
// library would receive when it joins the fake voice server.

export const env = (key) => {
  const value = process.env[key];
  if (value === undefined) throw new Error(`${key} is not set (run through tests/clients.rs)`);
  return value;
};

export const GUILD = env("QUAVER_GUILD_ID");
export const USER = env("QUAVER_USER_ID");
export const CHANNEL = env("QUAVER_VOICE_CHANNEL_ID");
/** Seconds one step may take before its check fails. */
export const STEP_MS = 15_000;

const failures = [];

export function report(client, check, ok, detail = {}) {
  console.log(JSON.stringify({ client, check, ok: Boolean(ok), ...detail }));
  if (!ok) failures.push(check);
}

/** The two Discord gateway dispatches a bot gets after asking to join a channel. */
export const voiceStateUpdate = () => ({
  t: "VOICE_STATE_UPDATE",
  d: {
    guild_id: GUILD,
    user_id: USER,
    channel_id: CHANNEL,
    session_id: env("QUAVER_VOICE_SESSION_ID"),
    deaf: false,
    mute: false,
    self_deaf: true,
    self_mute: false,
    suppress: false,
  },
});
export const voiceServerUpdate = () => ({
  t: "VOICE_SERVER_UPDATE",
  d: { guild_id: GUILD, token: env("QUAVER_VOICE_TOKEN"), endpoint: env("QUAVER_VOICE_ENDPOINT") },
});

/** Rejects after `ms` with `what` in the message. */
export function within(promise, what, ms = STEP_MS) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The next `event` from `emitter` whose arguments satisfy `predicate`. */
export function next(emitter, event, predicate = () => true, ms = STEP_MS) {
  let listener;
  const p = new Promise((resolve) => {
    listener = (...args) => {
      if (predicate(...args)) resolve(args);
    };
    emitter.on(event, listener);
  });
  return within(p, `event ${event}`, ms).finally(() => emitter.off(event, listener));
}

/** Calls `fetch` until `predicate` holds for its result; returns that result. */
export async function poll(fetch, predicate, what, ms = STEP_MS) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await fetch();
      if (predicate(last)) return last;
    } catch (e) {
      last = String(e);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what}: not within ${ms} ms; last: ${JSON.stringify(last)}`);
}

/** Runs `scenario`, reports an exception as a failed check, and exits 0 only when
 * every check passed. */
export async function main(client, scenario) {
  const limit = Number(process.env.QUAVER_SCRIPT_TIMEOUT ?? "100") * 1000;
  try {
    await within(scenario(), "the whole scenario", limit);
  } catch (e) {
    report(client, "script", false, { error: String(e?.stack ?? e) });
  }
  process.exit(failures.length ? 1 : 0);
}
