// lavalink-client (npm, by Tomato6966) drives a Quaver node the way a bot does: a
// LavalinkManager whose sendToShard goes nowhere (there is no Discord gateway), fed the
// gateway's voice dispatches through sendRawData. Public API only. One JSON line per
// check; exits non-zero if any failed.

import { LavalinkManager } from "lavalink-client";
import {
  CHANNEL, GUILD, USER, env, main, next, poll, report, voiceServerUpdate, voiceStateUpdate,
} from "./common.mjs";

const CLIENT = "lavalink-client";
const check = (name, ok, detail) => report(CLIENT, name, ok, detail);

main(CLIENT, async () => {
  const shardPayloads = [];
  const manager = new LavalinkManager({
    nodes: [{
      id: "quaver",
      host: env("QUAVER_HOST"),
      port: Number(env("QUAVER_PORT")),
      authorization: env("QUAVER_PASSWORD"),
      retryAmount: 1,
      retryDelay: 1000,
    }],
    sendToShard: (guildId, payload) => shardPayloads.push({ guildId, payload }),
    client: { id: USER, username: "quaver-tests" },
    autoSkip: false,
    playerOptions: { onEmptyQueue: { destroyAfterMs: -1 } },
  });
  const errors = [];
  manager.nodeManager.on("error", (node, error, payload) => errors.push(String(error?.stack ?? error)));

  // connect + ready + /v4/info (the library fetches it when the socket opens)
  const connected = next(manager.nodeManager, "connect");
  await manager.init({ id: USER, username: "quaver-tests" });
  const [node] = await connected;
  await poll(async () => node.sessionId, Boolean, "ready's sessionId");
  check("ready", node.connected && node.sessionId, { sessionId: node.sessionId });
  check("info", node.info?.version?.major === 4 && node.info.sourceManagers.includes("http"), {
    version: node.info?.version?.semver,
  });

  // stats: the op sent on connect lands in node.stats; REST /v4/stats too
  const stats = await poll(async () => node.stats, (s) => s && s.uptime >= 0 && s.cpu, "ws stats");
  check("stats", stats.cpu.cores > 0 && stats.memory, { players: stats.players });
  const restStats = await node.fetchStats();
  check("rest_stats", restStats.frameStats === null, { frameStats: restStats.frameStats === undefined ? "absent" : restStats.frameStats });

  const loaded = await node.search({ query: env("QUAVER_MEDIA_URL"), source: "http" }, { id: USER });
  check("load_track", loaded.loadType === "track" && loaded.tracks.length === 1, {
    loadType: loaded.loadType, title: loaded.tracks[0]?.info?.title,
  });
  const missing = await node.search({ query: env("QUAVER_MISSING_URL"), source: "http" }, { id: USER });
  check("load_404_is_empty", missing.loadType === "empty", {
    loadType: missing.loadType, exception: missing.exception,
  });
  if (loaded.loadType !== "track") return;
  const track = loaded.tracks[0];

  const player = manager.createPlayer({
    guildId: GUILD, voiceChannelId: CHANNEL, textChannelId: CHANNEL, selfDeaf: true, volume: 100,
  });
  await player.connect();
  check("join_sent_to_shard", shardPayloads.some((p) => p.payload.op === 4 && p.payload.d.channel_id === CHANNEL));
  await manager.sendRawData(voiceStateUpdate());
  await manager.sendRawData(voiceServerUpdate());

  const started = next(manager, "trackStart", (p) => p.guildId === GUILD);
  await player.queue.add(track);
  await player.play({ paused: false });
  const [, startTrack] = await started;
  check("track_start", startTrack?.info?.identifier === track.info.identifier, { title: startTrack?.info?.title });

  const [, first] = await next(manager, "playerUpdate", (_, p) => p.guildId === GUILD && p.connected, 20_000);
  const firstPosition = first.lastPosition;
  const [, later] = await next(manager, "playerUpdate",
    (_, p) => p.guildId === GUILD && p.connected && p.lastPosition > firstPosition, 20_000);
  check("player_update_connected", true, { first: firstPosition, later: later.lastPosition });

  await player.pause();
  const pausedRaw = await node.fetchPlayer(GUILD);
  await player.resume();
  const resumedRaw = await node.fetchPlayer(GUILD);
  check("pause_resume", pausedRaw.paused === true && resumedRaw.paused === false && !player.paused);

  await player.seek(20_000);
  const seeked = await poll(() => node.fetchPlayer(GUILD), (p) => p.state.position >= 19_000, "position after seek");
  check("seek", true, { position: seeked.state.position });

  await player.setVolume(50);
  const volumeRaw = await node.fetchPlayer(GUILD);
  check("volume", volumeRaw.volume === 50, { volume: volumeRaw.volume });

  await player.filterManager.setSpeed(1.25);
  const filterRaw = await node.fetchPlayer(GUILD);
  check("filter_timescale", filterRaw.filters?.timescale?.speed === 1.25, { filters: filterRaw.filters });
  await player.filterManager.resetFilters();

  // With the queue empty, the library reports the TrackEndEvent as queueEnd.
  const ended = next(manager, "queueEnd", (p, _, payload) => p.guildId === GUILD && payload?.type === "TrackEndEvent");
  await player.stopPlaying(true, false);
  const [, , endPayload] = await ended;
  check("stop_track_end", endPayload.reason === "stopped", { reason: endPayload.reason });

  await player.destroy("test done");
  const gone = await node.fetchPlayer(GUILD).then((p) => p, (e) => ({ error: String(e) }));
  check("destroy", !gone || gone.error, { after: gone });

  check("no_library_errors", errors.length === 0, { errors });
  await manager.nodeManager.disconnectAll(true, false).catch(() => {});
});
