// Troupe's web client: joins a room over the signaling WebSocket with the
// camera and microphone, and shows everyone else. One RTCPeerConnection
// carries everything. The server renegotiates when tracks come and go;
// this page is the impolite peer of perfect negotiation (on glare it keeps
// its own offer and the server rolls back). When the connection drops for
// a reason that is not final (a node of a cluster died, the server
// restarted), the page joins again by itself with a new peer connection,
// as docs/signaling.md says clients should.
'use strict';

const $ = (id) => document.getElementById(id);
const tokenMode = document.querySelector('meta[name="troupe-token-mode"]').content;
const roomIDPattern = /^[A-Za-z0-9_-]{1,64}$/;

// window.troupe is the page's state, for people debugging it and for tests.
const troupe = (window.troupe = {
  state: 'idle', // idle | joining | joined | reconnecting | left | closed
  reconnects: 0, // joins again after a lost connection
  attempt: 0, // the current attempt to join again, while reconnecting
  signaling: 'closed',
  connection: 'new',
  participantId: null,
  role: null,
  pc: null,
  ws: null,
  local: null,
  layers: null, // the last layers message: which of the camera's layers anyone watches
  dc: null, // the reliable data channel: chat goes out on it
  hands: [], // the raised hands, in the order they were raised
  prioritizeHands: false,
  toneOnEntry: false,
  chat: [], // the chat messages shown, oldest first
  // stats sums the inbound RTP the page has received so far.
  async stats() {
    const out = {
      videoFramesDecoded: 0, videoPacketsReceived: 0, videoKeyRequests: 0,
      audioPacketsReceived: 0, inboundVideo: 0, inboundAudio: 0,
    };
    if (!troupe.pc) return out;
    const report = await troupe.pc.getStats();
    report.forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      if (s.kind === 'video') {
        out.inboundVideo++;
        out.videoFramesDecoded += s.framesDecoded || 0;
        out.videoPacketsReceived += s.packetsReceived || 0;
        out.videoKeyRequests += (s.pliCount || 0) + (s.firCount || 0);
      } else if (s.kind === 'audio') {
        out.inboundAudio++;
        out.audioPacketsReceived += s.packetsReceived || 0;
      }
    });
    return out;
  },
});

// Everyone in the room, this page included: participant id -> {id, info,
// stream, tile}. info is what the server says of them, stream what it sends.
const people = new Map();
let chain = Promise.resolve(); // incoming messages, handled one at a time
let makingOffer = false;
let ignoreOffer = false;
// attempt counts joins and leaves, so that a join still waiting for a
// token or the camera when Leave is pressed gives up.
let attempt = 0;
// The join being kept up: its token (reused while valid), and, while the
// connection is lost, the attempt to come back and its timers.
let session = null; // {token, identity, room, name, tries, timer, iceTimer}

// Reconnecting waits 250 ms doubling to 5 s between attempts, each ±50% so
// that the pages of a lost node do not all come back at once, and gives up
// after reconnectTries attempts. ICE disconnected for iceGrace counts as
// lost; failed at once.
const backoffMin = 250;
const backoffMax = 5000;
const reconnectTries = 20;
const iceGrace = 5000;

// The camera goes out in three layers (simulcast), lowest first; the
// server sends each viewer one of them, and says which ones nobody
// watches (the layers message) so that the browser stops encoding them.
// A camera too small for a layer gets fewer: the browser decides.
const cameraLayers = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500000 },
  { rid: 'f', maxBitrate: 1500000 },
];

// What each leave reason means to the person who left. Only faults are
// shown as errors: leaving, being removed or the room ending are not.
// Faults are not final: after them the page joins again.
const leaveReasons = {
  left: [false, 'You left the room.'],
  kicked: [false, 'A moderator removed you from the room.'],
  replaced: [false, 'You joined this room again from another page, so this one left.'],
  'room-ended': [false, 'The room has ended.'],
  'room-deleted': [false, 'The room was deleted.'],
  'session-ended': [false, 'The session has ended.'],
  'remove-after-elapsed': [false, 'Your time in this room is up.'],
  'remove-at': [false, 'The room closed at its set time.'],
  disconnected: [true, 'The server lost the connection to this page.'],
  'connection-failed': [true, 'The media connection failed.'],
  failed: [true, 'The server had a problem with this connection and closed it.'],
  'server-shutdown': [true, 'The server is shutting down.'],
  'room-failed': [true, 'The room failed on the server.'],
};

// finalClose tells whether a socket closed with code and reason must not
// be followed by a new join: a leave reason that is not a fault, a join
// refused for good (4000 + 401, 403, 404, 409...), or a protocol error.
function finalClose(code, reason) {
  if (code === 1000) return Boolean(leaveReasons[reason] && !leaveReasons[reason][0]);
  if (code === 1008) return reason !== 'too slow';
  if (code === 1009) return true;
  if (code >= 4000 && code < 5000) return ![4429, 4502, 4503, 4504].includes(code);
  return false; // 1001 going away, 1006 no close frame (a node that died), 1011-1014
}

// tokenExpired reads the JWT's exp without checking it (the server does).
function tokenExpired(token) {
  try {
    const claims = JSON.parse(atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
    return typeof claims.exp === 'number' && claims.exp * 1000 <= Date.now() + 5000;
  } catch (err) {
    return false;
  }
}

function showState() {
  $('state').textContent = `${troupe.state} · signaling ${troupe.signaling} · media ${troupe.connection}`;
  const inRoom = troupe.state === 'joining' || troupe.state === 'joined' || troupe.state === 'reconnecting';
  $('join').disabled = inRoom;
  $('leave').disabled = !inRoom;
  $('mute-audio').disabled = !inRoom || !troupe.local;
  $('mute-video').disabled = !inRoom || !troupe.local;
  $('hand').disabled = troupe.state !== 'joined';
  $('hand').textContent = troupe.hands.some((h) => h.participant_id === troupe.participantId) ? 'Lower hand' : 'Raise hand';
}

// showHands lists the raised hands and marks their tiles; with
// prioritize_handraise their tiles come first, in the order raised.
function showHands(hands, prioritize) {
  troupe.hands = hands;
  troupe.prioritizeHands = prioritize;
  $('hands').hidden = hands.length === 0;
  $('hands').textContent = hands.length ? 'Hands up: ' + hands.map((h) => h.name || h.identity).join(', ') : '';
  people.forEach(markHand);
  showState();
}

function markHand(p) {
  if (!p.tile) return;
  const hands = troupe.hands;
  const at = hands.findIndex((h) => h.participant_id === p.id);
  p.tile.classList.toggle('hand', at >= 0);
  p.tile.style.order = troupe.prioritizeHands && at >= 0 ? String(at - hands.length) : '';
}

function showChat(msg) {
  troupe.chat.push(msg);
  const li = document.createElement('li');
  const who = document.createElement('b');
  who.textContent = (msg.name || msg.identity || 'server') + ': ';
  li.append(who, document.createTextNode(msg.text));
  $('chat-log').append(li);
  li.scrollIntoView({ block: 'end' });
}

// tone plays a short beep when someone enters or leaves, if the room asks.
function tone(freq) {
  if (!troupe.toneOnEntry || !window.AudioContext) return;
  const ctx = (tone.ctx = tone.ctx || new AudioContext());
  const osc = ctx.createOscillator();
  const gain = ctx.createGain();
  gain.gain.value = 0.05;
  osc.frequency.value = freq;
  osc.connect(gain).connect(ctx.destination);
  osc.start();
  osc.stop(ctx.currentTime + 0.15);
}

// showNotice tells what happened; a fault is shown as an error.
function showNotice(text, fault) {
  const n = $('notice');
  n.textContent = text || '';
  n.classList.toggle('fault', Boolean(text && fault));
  n.setAttribute('role', text && fault ? 'alert' : 'status');
}

function send(msg) {
  if (troupe.ws && troupe.ws.readyState === WebSocket.OPEN) troupe.ws.send(JSON.stringify(msg));
}

// keepInURL puts the room and name in the address, so that a reload comes
// back ready to join again. The token never goes there.
function keepInURL(room, name) {
  const q = name ? '?' + new URLSearchParams({ name }) : '';
  history.replaceState(null, '', '/rooms/' + encodeURIComponent(room) + q);
}

function person(id) {
  let p = people.get(id);
  if (!p) {
    p = { id, info: null, stream: null, tile: null };
    people.set(id, p);
  }
  return p;
}

const isSelf = (p) => p.id === troupe.participantId;
const nameOf = (info) => info.name || info.identity;

// publishes tells whether p sends anything: those who only watch get no
// tile, only a mention in the viewers' line.
function publishes(p) {
  if (isSelf(p)) return Boolean(troupe.local) && troupe.role !== 'subscriber';
  return (p.info.tracks || []).length > 0;
}

function mutedKinds(p) {
  if (isSelf(p)) {
    return ['audio', 'video'].filter((kind) => {
      const tracks = kind === 'audio' ? troupe.local.getAudioTracks() : troupe.local.getVideoTracks();
      return tracks.length > 0 && !tracks.some((t) => t.enabled);
    });
  }
  return (p.info.tracks || []).filter((t) => t.muted).map((t) => t.kind);
}

// showsVideo tells whether p's tile has a picture to show rather than a
// black box: a live camera that has sent a frame.
function showsVideo(p, video) {
  if (video.videoWidth === 0) return false;
  if (isSelf(p)) return troupe.local.getVideoTracks().some((t) => t.enabled);
  return (p.info.tracks || []).some((t) => t.kind === 'video' && !t.muted);
}

function newTile(p) {
  const tile = document.createElement('div');
  tile.className = 'tile no-video';
  tile.dataset.participant = p.id;
  const video = document.createElement('video');
  video.autoplay = true;
  video.playsInline = true;
  video.muted = isSelf(p); // no echo of one's own microphone
  // The first frame, or a new size, may turn the placeholder into video.
  const update = () => people.get(p.id) === p && render(p);
  video.addEventListener('resize', update);
  video.addEventListener('loadeddata', update);
  if (!isSelf(p)) new ResizeObserver(() => askTileSize(p, video)).observe(video);
  const avatar = document.createElement('div');
  avatar.className = 'avatar';
  avatar.append(document.createElement('span'));
  const label = document.createElement('span');
  label.className = 'label';
  tile.append(video, avatar, label);
  $('tiles').append(tile);
  return tile;
}

// askTileSize asks the server for the layers of p's simulcast camera that
// the tile's size needs, in device pixels; a small tile gets a small layer.
function askTileSize(p, video) {
  if (people.get(p.id) !== p || !p.info || troupe.state !== 'joined') return;
  const scale = window.devicePixelRatio || 1;
  const width = Math.round(video.clientWidth * scale);
  const height = Math.round(video.clientHeight * scale);
  if (width < 1 || height < 1) return;
  (p.info.tracks || []).forEach((t) => {
    if (t.kind !== 'video' || !t.simulcast) return;
    const size = `${width}x${height}`;
    if (p.asked && p.asked[t.id] === size) return;
    p.asked = { ...p.asked, [t.id]: size };
    send({ type: 'track-settings', track_id: t.id, width, height });
  });
}

function dropTile(p) {
  if (!p.tile) return;
  p.tile.querySelector('video').srcObject = null;
  p.tile.remove();
  p.tile = null;
}

// render shows p as it is now: a tile with video, a tile with their name
// when they send no picture, or no tile when they send nothing at all.
function render(p) {
  if (p.info && publishes(p)) {
    if (!p.tile) p.tile = newTile(p);
    const video = p.tile.querySelector('video');
    const src = isSelf(p) ? troupe.local : p.stream;
    if (video.srcObject !== src) {
      video.srcObject = src;
      if (src) video.play().catch(() => {}); // autoplay may need a click; the tile still updates
    }
    const name = nameOf(p.info);
    const muted = mutedKinds(p);
    p.tile.classList.toggle('no-video', !showsVideo(p, video));
    markHand(p);
    p.tile.querySelector('.avatar span').textContent = Array.from(name)[0].toUpperCase();
    p.tile.querySelector('.label').textContent =
      (isSelf(p) ? `${name} (you)` : name) + (muted.length ? ` (${muted.join(', ')} muted)` : '');
  } else {
    dropTile(p);
  }
  renderViewers();
}

function renderViewers() {
  const line = $('viewers');
  const viewers = [...people.values()].filter((p) => p.info && !publishes(p));
  line.replaceChildren();
  line.hidden = viewers.length === 0;
  if (line.hidden) return;
  line.append('Watching: ');
  viewers.forEach((p, i) => {
    const span = document.createElement('span');
    span.className = 'viewer';
    span.dataset.participant = p.id;
    span.textContent = isSelf(p) ? `${nameOf(p.info)} (you)` : nameOf(p.info);
    line.append(...(i ? [', ', span] : [span]));
  });
}

function addParticipant(info) {
  const p = person(info.id);
  p.info = info;
  render(p);
}

function removeParticipant(id) {
  const p = people.get(id);
  if (!p) return;
  dropTile(p);
  people.delete(id);
  renderViewers();
}

function updateTracks(participantId, fn) {
  const p = people.get(participantId);
  if (!p || !p.info) return;
  p.info.tracks = fn(p.info.tracks || []);
  render(p);
}

function newPeerConnection(iceServers) {
  const pc = new RTCPeerConnection({ iceServers, bundlePolicy: 'max-bundle' });
  pc.onicecandidate = ({ candidate }) => send({ type: 'candidate', candidate: candidate ? candidate.toJSON() : null });
  pc.onnegotiationneeded = async () => {
    try {
      makingOffer = true;
      await pc.setLocalDescription();
      send({ type: 'offer', sdp: pc.localDescription.sdp });
    } catch (err) {
      showNotice(`offer failed: ${err}`, true);
    } finally {
      makingOffer = false;
    }
  };
  pc.ontrack = ({ track, streams }) => {
    // The server sends each participant's tracks in one stream whose id
    // is the participant's id.
    const stream = streams[0] || new MediaStream([track]);
    const p = person(stream.id);
    p.stream = stream;
    render(p);
  };
  pc.onconnectionstatechange = () => {
    if (troupe.pc !== pc) return;
    troupe.connection = pc.connectionState;
    showState();
    if (!session) return;
    clearTimeout(session.iceTimer);
    if (pc.connectionState === 'failed') {
      reconnect('the media connection failed');
    } else if (pc.connectionState === 'disconnected') {
      session.iceTimer = setTimeout(() => troupe.pc === pc && reconnect('the media connection was lost'), iceGrace);
    }
  };
  return pc;
}

async function onMessage(msg) {
  const pc = troupe.pc;
  switch (msg.type) {
    case 'joined': {
      if (troupe.state === 'reconnecting') {
        troupe.reconnects++;
        showNotice('Reconnected.');
      }
      if (session) session.tries = 0;
      troupe.state = 'joined';
      troupe.participantId = msg.participant.id;
      troupe.role = msg.participant.role;
      // With a token, the room is the token's.
      if (tokenMode !== 'dev') keepInURL(msg.room.id, '');
      if (troupe.local && troupe.role === 'subscriber') {
        troupe.local.getTracks().forEach((t) => t.stop());
        troupe.local = null;
      }
      troupe.pc = newPeerConnection(msg.ice_servers);
      troupe.toneOnEntry = msg.room.config.tone_on_entry_and_exit;
      // Chat goes out on a data channel, opened before the first offer.
      $('chat').hidden = !msg.room.config.chat_enabled;
      troupe.dc = troupe.pc.createDataChannel('troupe-reliable');
      (msg.chat || []).forEach(showChat);
      if (msg.video_off && troupe.local) {
        // The room starts cameras off; the server mutes our video until we start it.
        troupe.local.getVideoTracks().forEach((t) => (t.enabled = false));
        $('mute-video').textContent = 'Start camera';
      }
      if (troupe.local) {
        troupe.local.getTracks().forEach((t) => {
          if (t.kind === 'video') {
            troupe.pc.addTransceiver(t, { direction: 'sendrecv', streams: [troupe.local], sendEncodings: cameraLayers });
          } else {
            troupe.pc.addTrack(t, troupe.local);
          }
        });
      }
      addParticipant(msg.participant);
      msg.participants.forEach(addParticipant);
      showHands(msg.hands || [], msg.room.config.prioritize_handraise);
      break;
    }
    case 'hands':
      showHands(msg.hands, msg.prioritize);
      break;
    case 'chat':
      showChat(msg.chat);
      break;
    case 'offer': {
      const collision = makingOffer || pc.signalingState !== 'stable';
      ignoreOffer = collision; // impolite: our offer wins; the server rolls back
      if (ignoreOffer) return;
      await pc.setRemoteDescription({ type: 'offer', sdp: msg.sdp });
      await pc.setLocalDescription();
      send({ type: 'answer', sdp: pc.localDescription.sdp });
      break;
    }
    case 'answer':
      await pc.setRemoteDescription({ type: 'answer', sdp: msg.sdp });
      break;
    case 'candidate':
      try {
        await pc.addIceCandidate(msg.candidate || undefined);
      } catch (err) {
        if (!ignoreOffer) throw err;
      }
      break;
    case 'participant-joined':
      addParticipant(msg.participant);
      tone(660);
      break;
    case 'participant-left':
      removeParticipant(msg.participant_id);
      tone(440);
      break;
    case 'track-published':
      updateTracks(msg.participant_id, (ts) => ts.concat([msg.track]));
      keepMuted(msg);
      break;
    case 'track-unpublished':
      updateTracks(msg.participant_id, (ts) => ts.filter((t) => t.id !== msg.track_id));
      break;
    case 'mute': {
      let kind = 'track';
      updateTracks(msg.participant_id, (ts) => ts.map((t) => {
        if (t.id !== msg.track_id) return t;
        kind = t.kind === 'audio' ? 'microphone' : 'camera';
        return { ...t, muted: msg.muted };
      }));
      if (msg.participant_id === troupe.participantId && msg.by_server) {
        showNotice(msg.muted ? `A moderator muted your ${kind}.` : '');
      }
      break;
    }
    case 'layers': {
      // Stop encoding the layers nobody receives; leave alone those the
      // server has not seen yet.
      troupe.layers = { active: msg.active, paused: msg.paused };
      const tr = pc.getTransceivers().find((t) => t.mid === msg.mid);
      if (!tr || !tr.sender.track) break;
      const params = tr.sender.getParameters();
      if (!params.encodings || params.encodings.length < 2) break;
      let changed = false;
      params.encodings.forEach((e) => {
        const active = msg.active.includes(e.rid) || !msg.paused.includes(e.rid);
        if (e.active !== active) {
          e.active = active;
          changed = true;
        }
      });
      if (changed) await tr.sender.setParameters(params);
      break;
    }
    case 'left': {
      const [fault, text] = leaveReasons[msg.reason] || [true, `Removed from the room: ${msg.reason}.`];
      if (fault && session) {
        reconnect(text);
        break;
      }
      troupe.state = 'left';
      showNotice(text, fault);
      endCall();
      break;
    }
    case 'error':
      showNotice(`${msg.code}: ${msg.message}`, true);
      break;
    case 'pong':
      break;
  }
  showState();
}

async function fetchDevToken(room, name) {
  const identity = 'web-' + Math.random().toString(36).slice(2, 10);
  const q = new URLSearchParams({ room, identity, name });
  const r = await fetch('/dev/token?' + q, { method: 'POST' });
  const body = await r.json();
  if (!r.ok) throw new Error(body.error ? body.error.message : r.statusText);
  return body.token;
}

// keepMuted tells the server again that a camera or microphone this page
// has muted is muted, when its track is published: after a reconnection
// the new participant's tracks start unmuted.
function keepMuted(msg) {
  if (msg.participant_id !== troupe.participantId || !troupe.local || msg.track.muted) return;
  const tracks = msg.track.kind === 'audio' ? troupe.local.getAudioTracks() : troupe.local.getVideoTracks();
  if (tracks.length > 0 && !tracks.some((t) => t.enabled)) send({ type: 'mute', track_id: msg.track.id, muted: true });
}

// whyNotJoin says what is missing before the page can join, or ''.
function whyNotJoin(room, name, token) {
  if (tokenMode !== 'dev') return token ? '' : 'Paste a join token to join: the server gives them out (POST /api/v1/rooms/{id}/tokens).';
  if (!room) return 'Enter a room id to join.';
  if (!roomIDPattern.test(room)) return 'A room id is 1 to 64 letters, digits, _ or -.';
  if (!name) return 'Enter your name to join.';
  return '';
}

async function join(ev) {
  ev.preventDefault();
  if (troupe.state === 'joining' || troupe.state === 'joined') return;
  const room = $('room').value.trim();
  const name = $('name').value.trim();
  let token = $('token').value.trim();
  const why = whyNotJoin(room, name, token);
  if (why) {
    showNotice(why, true);
    const missing = tokenMode !== 'dev' ? 'token' : !roomIDPattern.test(room) ? 'room' : 'name';
    $(missing).focus();
    return;
  }
  showNotice('');
  if (tokenMode === 'dev') keepInURL(room, name);
  const mine = ++attempt;
  troupe.state = 'joining';
  showState();
  try {
    if (tokenMode === 'dev') token = await fetchDevToken(room, name);
    let local = null;
    try {
      local = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
    } catch (err) {
      showNotice(`No camera or microphone (${err.name}): joining to watch only.`, true);
    }
    if (mine !== attempt) { // Leave was pressed meanwhile
      if (local) local.getTracks().forEach((t) => t.stop());
      return;
    }
    troupe.local = local;
    session = { token, room, name, tries: 0, timer: null, iceTimer: null };
    connect(token);
  } catch (err) {
    if (mine !== attempt) return;
    troupe.state = 'idle';
    showNotice(String(err.message || err), true);
    endCall();
  }
  showState();
}

function connect(token) {
  const url = new URL('/rtc', location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(url);
  troupe.ws = ws;
  troupe.signaling = 'connecting';
  // A socket the page has moved on from (after left, or a new join) is
  // ignored to the end.
  ws.onopen = () => {
    if (troupe.ws !== ws) return;
    troupe.signaling = 'open';
    showState();
    // The token goes in the first message, not the URL, to stay out of logs.
    send({ type: 'join', token });
  };
  ws.onmessage = (e) => {
    const msg = JSON.parse(e.data);
    chain = chain.then(() => troupe.ws === ws && onMessage(msg)).catch((err) => showNotice(`${msg.type}: ${err}`, true));
  };
  ws.onclose = (e) => {
    chain = chain.then(() => {
      if (troupe.ws !== ws) return;
      troupe.signaling = `closed (${e.code}${e.reason ? ' ' + e.reason : ''})`;
      const lost = e.code === 1001 ? 'The server went away.' : `Lost the connection to the server (${e.code}).`;
      if (session && !finalClose(e.code, e.reason)) {
        reconnect(lost);
        return;
      }
      // 4000 + status: the join was refused, and the error said why.
      if (e.code < 4000 || e.code >= 5000) {
        const known = e.code === 1000 && leaveReasons[e.reason];
        showNotice(known ? known[1] : lost, !known || known[0]);
      }
      if (e.code === 1000 && leaveReasons[e.reason]) troupe.state = 'left';
      endCall();
    });
  };
}

// reconnect lets go of the lost connection (keeping the camera and the
// microphone, muted or not) and joins again after a jittered backoff, with
// the same token while it is valid. The peer connection is new: the old
// one's server side is gone.
function reconnect(why) {
  if (!session) return;
  clearTimeout(session.timer);
  clearTimeout(session.iceTimer);
  dropConnection();
  if (session.tries >= reconnectTries) {
    troupe.state = 'closed';
    showNotice(`${why} Could not reconnect after ${session.tries} attempts; press Join to try again.`, true);
    endCall();
    return;
  }
  session.tries++;
  troupe.state = 'reconnecting';
  troupe.attempt = session.tries;
  const base = Math.min(backoffMin * 2 ** (session.tries - 1), backoffMax);
  const wait = base / 2 + Math.random() * base;
  showNotice(`${why} Reconnecting (attempt ${session.tries})…`, true);
  showState();
  const mine = session;
  session.timer = setTimeout(async () => {
    if (session !== mine) return;
    try {
      if (tokenExpired(mine.token)) {
        if (tokenMode !== 'dev') {
          session = null;
          troupe.state = 'closed';
          showNotice('Your join token has expired: paste a new one to join again.', true);
          endCall();
          return;
        }
        mine.token = await fetchDevToken(mine.room, mine.name);
        if (session !== mine) return;
      }
      connect(mine.token);
    } catch (err) {
      if (session === mine) reconnect(`${err.message || err}.`);
    }
  }, wait);
}

// dropConnection closes the socket and the peer connection and forgets
// the others' tiles (the new connection brings them back).
function dropConnection() {
  const ws = troupe.ws;
  troupe.ws = null;
  if (ws) ws.close(1000);
  troupe.signaling = 'closed';
  if (troupe.pc) troupe.pc.close();
  troupe.pc = null;
  troupe.connection = 'closed';
  people.forEach((_, id) => removeParticipant(id));
  makingOffer = ignoreOffer = false;
  troupe.dc = null;
  // The new connection's joined brings the chat's history and the hands again.
  troupe.chat = [];
  $('chat-log').replaceChildren();
  $('chat').hidden = true;
  showHands([], false);
}

// endCall lets go of the socket, the peer connection, the camera and the
// tiles; the page can join again.
function endCall() {
  if (session) {
    clearTimeout(session.timer);
    clearTimeout(session.iceTimer);
    session = null;
  }
  dropConnection();
  if (troupe.local) troupe.local.getTracks().forEach((t) => t.stop());
  troupe.local = null;
  if (troupe.state !== 'left' && troupe.state !== 'idle') troupe.state = 'closed';
  showState();
}

function leave() {
  if (troupe.state === 'joined' && troupe.ws && troupe.ws.readyState === WebSocket.OPEN) {
    send({ type: 'leave' }); // the server answers left
    return;
  }
  // Still joining: give up on it here.
  attempt++;
  troupe.state = 'left';
  showNotice(leaveReasons.left[1]);
  endCall();
}

function toggle(kind, button, on, off) {
  if (!troupe.local) return;
  const tracks = kind === 'audio' ? troupe.local.getAudioTracks() : troupe.local.getVideoTracks();
  const muted = tracks.some((t) => t.enabled);
  tracks.forEach((t) => (t.enabled = !muted));
  send({ type: 'mute', kind, muted });
  button.textContent = muted ? on : off;
  const me = people.get(troupe.participantId);
  if (me) render(me);
}

$('join-form').addEventListener('submit', join);
$('hand').addEventListener('click', () => {
  send({ type: 'hand', raised: !troupe.hands.some((h) => h.participant_id === troupe.participantId) });
});
$('chat-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const text = $('chat-text').value.trim();
  if (!text || !troupe.dc || troupe.dc.readyState !== 'open') return;
  troupe.dc.send(JSON.stringify({ topic: 'chat', data: text }));
  $('chat-text').value = '';
});
$('leave').addEventListener('click', leave);
$('mute-audio').addEventListener('click', (e) => toggle('audio', e.target, 'Unmute mic', 'Mute mic'));
$('mute-video').addEventListener('click', (e) => toggle('video', e.target, 'Start camera', 'Stop camera'));
// A token names the room and the person; without one (dev mode) the page asks.
$('token').hidden = tokenMode === 'dev';
$('room').hidden = $('name').hidden = tokenMode !== 'dev';
const m = location.pathname.match(/^\/rooms\/([^/]+)$/);
if (m) $('room').value = decodeURIComponent(m[1]);
const params = new URLSearchParams(location.search);
if (params.get('name')) $('name').value = params.get('name');
showState();
