// Shoukaku (npm) drives a Quaver node the way a bot does. Shoukaku talks to Discord
// through a Connector; this one stands in for a Discord library: it is "ready" at once,
// and answers the join (op 4) it is asked to send with the VOICE_STATE_UPDATE and
// VOICE_SERVER_UPDATE Discord would dispatch. Public API only. One JSON line per check;
// exits non-zero if any failed.

import { Connector, Shoukaku } from "shoukaku";
import {
  CHANNEL, GUILD, USER, env, main, next, poll, report, voiceServerUpdate, voiceStateUpdate,
} from "./common.mjs";

const CLIENT = "shoukaku";
const check = (name, ok, detail) => report(CLIENT, name, ok, detail);

/** A Discord library with one shard, whose gateway is this process. */
class FakeGatewayConnector extends Connector {
  sent = [];

  getId() {
    return USER;
  }

  sendPacket(shardId, payload) {
    this.sent.push({ shardId, payload });
    if (payload.op === 4 && payload.d.channel_id) {
      setTimeout(() => {
        this.raw(voiceStateUpdate());
        this.raw(voiceServerUpdate());
      }, 10);
    }
  }

  listen(nodes) {
    setTimeout(() => this.ready(nodes), 0);
  }
}

main(CLIENT, async () => {
  const connector = new FakeGatewayConnector({});
  const errors = [];
  const nodes = [{
    name: "quaver",
    url: `${env("QUAVER_HOST")}:${env("QUAVER_PORT")}`,
    auth: env("QUAVER_PASSWORD"),
  }];
  const shoukaku = new Shoukaku(connector, nodes, {
    resume: true, resumeTimeout: 60, reconnectTries: 1, reconnectInterval: 1, moveOnDisconnect: false,
  });
  shoukaku.on("error", (name, error) => errors.push(String(error?.stack ?? error)));

  const [, lavalinkResume] = await next(shoukaku, "ready");
  const node = shoukaku.nodes.get("quaver");
  check("ready", node.sessionId && lavalinkResume === false, { sessionId: node.sessionId });

  const info = await node.rest.getLavalinkInfo();
  check("info", info?.version?.major === 4 && info.sourceManagers.includes("http"), { version: info?.version?.semver });

  const stats = await poll(async () => node.stats, (s) => s && s.cpu, "ws stats");
  check("stats", stats.cpu.cores > 0 && node.penalties >= 0, { players: stats.players, penalties: node.penalties });
  const restStats = await node.rest.stats();
  check("rest_stats", restStats?.frameStats === null, {
    frameStats: restStats?.frameStats === undefined ? "absent" : restStats.frameStats,
  });

  const loaded = await node.rest.resolve(env("QUAVER_MEDIA_URL"));
  check("load_track", loaded?.loadType === "track", { loadType: loaded?.loadType, title: loaded?.data?.info?.title });
  const missing = await node.rest.resolve(env("QUAVER_MISSING_URL"));
  check("load_404_is_empty", missing?.loadType === "empty", { loadType: missing?.loadType, data: missing?.data });
  if (loaded?.loadType !== "track") return;
  const track = loaded.data;

  const player = await shoukaku.joinVoiceChannel({ guildId: GUILD, channelId: CHANNEL, shardId: 0, deaf: true });
  check("join_sent_to_shard", connector.sent.some((p) => p.payload.op === 4 && p.payload.d.channel_id === CHANNEL));

  const started = next(player, "start");
  await player.playTrack({ track: { encoded: track.encoded } });
  const [start] = await started;
  check("track_start", start.track?.info?.identifier === track.info.identifier, { title: start.track?.info?.title });

  const [first] = await next(player, "update", (u) => u.state.connected, 20_000);
  const [later] = await next(player, "update", (u) => u.state.connected && u.state.position > first.state.position, 20_000);
  check("player_update_connected", true, { first: first.state.position, later: later.state.position });

  await player.setPaused(true);
  const pausedRaw = await node.rest.getPlayer(GUILD);
  await player.setPaused(false);
  const resumedRaw = await node.rest.getPlayer(GUILD);
  check("pause_resume", pausedRaw?.paused === true && resumedRaw?.paused === false && player.paused === false);

  await player.seekTo(20_000);
  const seeked = await poll(() => node.rest.getPlayer(GUILD), (p) => p.state.position >= 19_000, "position after seek");
  check("seek", true, { position: seeked.state.position });

  await player.setGlobalVolume(50);
  const volumeRaw = await node.rest.getPlayer(GUILD);
  check("volume", volumeRaw?.volume === 50 && player.volume === 50, { volume: volumeRaw?.volume });

  const bands = [{ band: 0, gain: 0.25 }, { band: 1, gain: 0.1 }];
  await player.setEqualizer(bands);
  const filterRaw = await node.rest.getPlayer(GUILD);
  const eq = filterRaw?.filters?.equalizer ?? [];
  check("filter_equalizer", bands.every((b) => eq.some((e) => e.band === b.band && e.gain === b.gain)), { filters: filterRaw?.filters });
  await player.clearFilters();

  const ended = next(player, "end");
  await player.stopTrack();
  const [end] = await ended;
  check("stop_track_end", end.reason === "stopped", { reason: end.reason });

  await shoukaku.leaveVoiceChannel(GUILD);
  const gone = await node.rest.getPlayer(GUILD).then((p) => p, (e) => ({ error: String(e) }));
  check("destroy", !gone || gone.error, { after: gone });
  check("leave_sent_to_shard", connector.sent.some((p) => p.payload.op === 4 && p.payload.d.channel_id === null));

  check("no_library_errors", errors.length === 0, { errors });
  node.disconnect(1000, "done");
});
