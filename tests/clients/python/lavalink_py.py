"""Lavalink.py (PyPI `lavalink`) drives a Quaver node the way a bot does.

Run by tests/clients.rs with the node, media and fake Discord voice server given in
QUAVER_* environment variables. Only the library's public API is used; Discord's
gateway is stood in for by feeding `Client.voice_update_handler` the VOICE_STATE_UPDATE
and VOICE_SERVER_UPDATE payloads a Discord library would. Prints one JSON line per
check and exits non-zero if any check failed.
"""

import asyncio
import json
import os
import sys
import time

import lavalink
from lavalink import (LoadType, NodeReadyEvent, PlayerUpdateEvent, TrackEndEvent,
                      TrackStartEvent)
from lavalink.filters import Timescale

ENV = os.environ
GUILD = int(ENV['QUAVER_GUILD_ID'])
RECONNECTS = int(ENV.get('QUAVER_RECONNECTS', '20'))
STEP = 15  # seconds a single check may take
failures = []


def report(check, ok, **detail):
    print(json.dumps({'client': 'lavalink.py', 'check': check, 'ok': ok, **detail}), flush=True)
    if not ok:
        failures.append(check)


class Events:
    """Every event the client dispatches, with waiters for the next one matching."""

    def __init__(self):
        self.seen = []
        self.changed = asyncio.Condition()

    async def hook(self, event):
        async with self.changed:
            self.seen.append(event)
            self.changed.notify_all()

    async def wait(self, predicate, after=0, timeout=STEP):
        """The first event at index >= `after` matching `predicate` (index, event)."""
        async def find():
            async with self.changed:
                while True:
                    for i in range(after, len(self.seen)):
                        if predicate(self.seen[i]):
                            return i, self.seen[i]
                    await self.changed.wait()
        return await asyncio.wait_for(find(), timeout)


async def poll(fetch, predicate, timeout=STEP):
    """Calls `fetch` until `predicate` holds for its result; returns that result."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = await fetch()
            if predicate(last):
                return last
        except Exception as exc:  # pylint: disable=broad-except
            last = repr(exc)
        await asyncio.sleep(0.2)
    raise AssertionError(f'condition not met within {timeout} s; last: {last}')


async def main():
    client = lavalink.Client(ENV['QUAVER_USER_ID'])
    events = Events()
    client.add_event_hook(events.hook)
    node = client.add_node(ENV['QUAVER_HOST'], int(ENV['QUAVER_PORT']), ENV['QUAVER_PASSWORD'],
                           'local', 'quaver')
    try:
        await scenario(client, node, events)
    finally:
        await client.close()


async def scenario(client, node, events):
    # connect + ready
    _, ready = await events.wait(lambda e: isinstance(e, NodeReadyEvent))
    report('ready', ready.resumed is False and bool(ready.session_id),
           session_id=ready.session_id, resumed=ready.resumed)

    info = await node.get_info()
    report('info', info['version']['major'] == 4 and 'http' in info['sourceManagers'],
           version=info['version']['semver'], sources=info['sourceManagers'])

    # stats: the `stats` op sent on connect is parsed into node.stats
    stats = await poll(lambda: asyncio.sleep(0, node.stats), lambda s: not s.is_fake)
    report('stats', stats.uptime >= 0 and stats.cpu_cores > 0, players=stats.players,
           cpu_cores=stats.cpu_cores, frames_sent=stats.frames_sent)
    rest_stats = await node.get_stats()
    report('rest_stats', 'frameStats' in rest_stats and rest_stats['frameStats'] is None,
           frameStats=rest_stats.get('frameStats', 'absent'))

    loaded = await client.get_tracks(ENV['QUAVER_MEDIA_URL'])
    report('load_track', loaded.load_type == LoadType.TRACK and len(loaded.tracks) == 1,
           load_type=loaded.load_type.value,
           title=loaded.tracks[0].title if loaded.tracks else None)
    missing = await client.get_tracks(ENV['QUAVER_MISSING_URL'])
    report('load_404_is_empty', missing.load_type == LoadType.EMPTY,
           load_type=missing.load_type.value,
           error=getattr(missing.error, 'message', None))
    if loaded.load_type != LoadType.TRACK:
        return
    track = loaded.tracks[0]

    # a bot joins a voice channel: Discord sends its gateway these two payloads
    player = client.player_manager.create(GUILD)
    await client.voice_update_handler({'t': 'VOICE_STATE_UPDATE', 'd': {
        'guild_id': str(GUILD), 'user_id': ENV['QUAVER_USER_ID'],
        'session_id': ENV['QUAVER_VOICE_SESSION_ID'],
        'channel_id': ENV['QUAVER_VOICE_CHANNEL_ID']}})
    await client.voice_update_handler({'t': 'VOICE_SERVER_UPDATE', 'd': {
        'guild_id': str(GUILD), 'token': ENV['QUAVER_VOICE_TOKEN'],
        'endpoint': ENV['QUAVER_VOICE_ENDPOINT']}})

    mark = len(events.seen)
    player.add(track)
    await player.play()
    _, start = await events.wait(lambda e: isinstance(e, TrackStartEvent), mark)
    report('track_start', start.track.identifier == track.identifier, title=start.track.title)

    def connected_update(e):
        return isinstance(e, PlayerUpdateEvent) and e.connected is True
    i, first = await events.wait(connected_update, mark, timeout=20)
    _, later = await events.wait(
        lambda e: connected_update(e) and e.position > first.position, i + 1, timeout=20)
    report('player_update_connected', True, first=first.position, later=later.position)

    await player.set_pause(True)
    paused = (await node.get_player(GUILD))['paused']
    await player.set_pause(False)
    resumed = (await node.get_player(GUILD))['paused']
    report('pause_resume', paused is True and resumed is False and player.paused is False)

    await player.seek(20_000)
    raw = await poll(lambda: node.get_player(GUILD), lambda p: p['state']['position'] >= 19_000)
    report('seek', True, position=raw['state']['position'])

    await player.set_volume(50)
    raw = await node.get_player(GUILD)
    report('volume', raw['volume'] == 50 and player.volume == 50, volume=raw['volume'])

    await player.set_filter(Timescale(speed=1.25))
    raw = await node.get_player(GUILD)
    report('filter_timescale', raw['filters'].get('timescale', {}).get('speed') == 1.25,
           filters=raw['filters'])
    await player.clear_filters()

    mark = len(events.seen)
    await player.stop()
    _, end = await events.wait(lambda e: isinstance(e, TrackEndEvent), mark)
    report('stop_track_end', end.reason.value == 'stopped', reason=end.reason.value)

    mark = len(events.seen)
    player.add(track)
    await player.play()
    await events.wait(lambda e: isinstance(e, TrackStartEvent), mark)
    await reconnects(node, events, player, track)

    await client.player_manager.destroy(GUILD)
    try:
        await node.get_player(GUILD)
        report('destroy', False, detail='the player still exists')
    except lavalink.RequestError as exc:
        report('destroy', exc.status == 404, status=exc.status)


async def reconnects(node, events, player, track):
    """With resuming on and a player playing, force a reconnect RECONNECTS times: each
    must resume the same session, and the player must still be there afterwards."""
    await node.update_session(resuming=True, timeout=60)
    session = node.session_id
    outcomes = []
    for n in range(RECONNECTS):
        mark = len(events.seen)
        await asyncio.wait_for(node.connect(force=True), STEP)
        try:
            _, ready = await events.wait(lambda e: isinstance(e, NodeReadyEvent), mark)
        except asyncio.TimeoutError:
            outcomes.append({'n': n, 'error': 'no ready'})
            break
        if not ready.resumed or ready.session_id != session:
            outcomes.append({'n': n, 'resumed': ready.resumed, 'session_id': ready.session_id,
                             'expected': session})
            # A new session: turn resuming on again and put the player back, so that
            # the next rounds test resuming again rather than this failure's aftermath.
            session = ready.session_id
            await node.update_session(resuming=True, timeout=60)
            await player.change_node(node)
            continue
        try:
            # Lavalink.py moves the player back onto the node after a ready (destroying
            # and re-creating it); it must end up playing the same track.
            await poll(lambda: node.get_player(GUILD),
                       lambda p: (p.get('track') or {}).get('info', {}).get('identifier')
                       == track.identifier, timeout=5)
        except AssertionError as exc:
            outcomes.append({'n': n, 'player': str(exc)[:300]})
    report('reconnect_resume', not outcomes, reconnects=RECONNECTS, failures=outcomes[:5],
           failed=len(outcomes))


if __name__ == '__main__':
    try:
        asyncio.run(asyncio.wait_for(main(), float(ENV.get('QUAVER_SCRIPT_TIMEOUT', '100'))))
    except Exception as exc:  # pylint: disable=broad-except
        report('script', False, error=repr(exc))
    sys.exit(1 if failures else 0)
