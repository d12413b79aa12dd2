// Troupe's web client: joins a room over the signaling WebSocket with the
// camera and microphone, and shows everyone else. One RTCPeerConnection
// carries everything. The server renegotiates when tracks come and go;
// this page is the impolite peer of perfect negotiation (on glare it keeps
// its own offer and the server rolls back).
'use strict';

const $ = (id) => document.getElementById(id);
const tokenMode = document.querySelector('meta[name="troupe-token-mode"]').content;

// window.troupe is the page's state, for people debugging it and for tests.
const troupe = (window.troupe = {
  state: 'idle', // idle | joining | joined | left | closed
  signaling: 'closed',
  connection: 'new',
  participantId: null,
  pc: null,
  ws: null,
  local: null,
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

const people = new Map(); // participant id -> {info, tile}
let chain = Promise.resolve(); // incoming messages, handled one at a time
let makingOffer = false;
let ignoreOffer = false;

function showState() {
  $('state').textContent = `${troupe.state} · signaling ${troupe.signaling} · media ${troupe.connection}`;
  const inRoom = troupe.state === 'joining' || troupe.state === 'joined';
  $('join').disabled = inRoom;
  $('leave').disabled = !inRoom;
  $('mute-audio').disabled = !inRoom || !troupe.local;
  $('mute-video').disabled = !inRoom || !troupe.local;
}

function showError(text) {
  $('error').textContent = text || '';
}

function send(msg) {
  if (troupe.ws && troupe.ws.readyState === WebSocket.OPEN) troupe.ws.send(JSON.stringify(msg));
}

function tileFor(id, label) {
  let p = people.get(id);
  if (!p) {
    p = { info: null, tile: document.createElement('div') };
    p.tile.className = 'tile';
    p.tile.dataset.participant = id;
    const video = document.createElement('video');
    video.autoplay = true;
    video.playsInline = true;
    const span = document.createElement('span');
    span.className = 'label';
    p.tile.append(video, span);
    $('tiles').append(p.tile);
    people.set(id, p);
  }
  if (label !== undefined) p.tile.querySelector('.label').textContent = label;
  return p;
}

function labelOf(info) {
  const name = info.name || info.identity;
  const muted = (info.tracks || []).filter((t) => t.muted).map((t) => t.kind);
  return muted.length ? `${name} (${muted.join(', ')} muted)` : name;
}

function addParticipant(info) {
  const p = tileFor(info.id);
  p.info = info;
  p.tile.querySelector('.label').textContent = labelOf(info);
}

function removeParticipant(id) {
  const p = people.get(id);
  if (!p) return;
  p.tile.remove();
  people.delete(id);
}

function updateTracks(participantId, fn) {
  const p = people.get(participantId);
  if (!p || !p.info) return;
  p.info.tracks = fn(p.info.tracks || []);
  p.tile.querySelector('.label').textContent = labelOf(p.info);
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
      showError(`offer failed: ${err}`);
    } finally {
      makingOffer = false;
    }
  };
  pc.ontrack = ({ track, streams }) => {
    // The server sends each participant's tracks in one stream whose id
    // is the participant's id.
    const stream = streams[0] || new MediaStream([track]);
    const p = tileFor(stream.id);
    const video = p.tile.querySelector('video');
    if (video.srcObject !== stream) video.srcObject = stream;
    video.play().catch(() => {}); // autoplay may need a click; the tile still updates
  };
  pc.onconnectionstatechange = () => {
    troupe.connection = pc.connectionState;
    showState();
  };
  return pc;
}

async function onMessage(msg) {
  const pc = troupe.pc;
  switch (msg.type) {
    case 'joined': {
      troupe.state = 'joined';
      troupe.participantId = msg.participant.id;
      const me = tileFor(msg.participant.id, `${msg.participant.name || msg.participant.identity} (you)`);
      if (troupe.local) {
        const video = me.tile.querySelector('video');
        video.muted = true;
        video.srcObject = troupe.local;
      }
      msg.participants.forEach(addParticipant);
      troupe.pc = newPeerConnection(msg.ice_servers);
      if (troupe.local && msg.participant.role !== 'subscriber') {
        troupe.local.getTracks().forEach((t) => troupe.pc.addTrack(t, troupe.local));
      }
      showState();
      break;
    }
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
      break;
    case 'participant-left':
      removeParticipant(msg.participant_id);
      break;
    case 'track-published':
      updateTracks(msg.participant_id, (ts) => ts.concat([msg.track]));
      break;
    case 'track-unpublished':
      updateTracks(msg.participant_id, (ts) => ts.filter((t) => t.id !== msg.track_id));
      break;
    case 'mute':
      updateTracks(msg.participant_id, (ts) => ts.map((t) => (t.id === msg.track_id ? { ...t, muted: msg.muted } : t)));
      if (msg.participant_id === troupe.participantId && msg.by_server) {
        showError(msg.muted ? 'a moderator muted one of your tracks' : '');
      }
      break;
    case 'left':
      troupe.state = 'left';
      showError(`left the room: ${msg.reason}`);
      break;
    case 'error':
      showError(`${msg.code}: ${msg.message}`);
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

async function join(ev) {
  ev.preventDefault();
  showError('');
  const room = $('room').value.trim();
  const name = $('name').value.trim();
  troupe.state = 'joining';
  showState();
  try {
    let token = $('token').value.trim();
    if (!token && tokenMode === 'dev') token = await fetchDevToken(room, name);
    if (!token) throw new Error('a join token is needed');
    try {
      troupe.local = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
    } catch (err) {
      showError(`no camera or microphone (${err.name}); joining to watch only`);
    }
    history.replaceState(null, '', '/rooms/' + encodeURIComponent(room));
    const url = new URL('/rtc', location.href);
    url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(url);
    troupe.ws = ws;
    troupe.signaling = 'connecting';
    ws.onopen = () => {
      troupe.signaling = 'open';
      showState();
      // The token goes in the first message, not the URL, to stay out of logs.
      send({ type: 'join', token });
    };
    ws.onmessage = (e) => {
      const msg = JSON.parse(e.data);
      chain = chain.then(() => onMessage(msg)).catch((err) => showError(`${msg.type}: ${err}`));
    };
    ws.onclose = (e) => {
      troupe.signaling = `closed (${e.code}${e.reason ? ' ' + e.reason : ''})`;
      chain = chain.then(cleanup);
    };
  } catch (err) {
    troupe.state = 'idle';
    showError(String(err.message || err));
    cleanup();
  }
  showState();
}

function cleanup() {
  if (troupe.pc) troupe.pc.close();
  troupe.pc = null;
  if (troupe.local) troupe.local.getTracks().forEach((t) => t.stop());
  troupe.local = null;
  troupe.ws = null;
  troupe.connection = 'closed';
  if (troupe.state !== 'left' && troupe.state !== 'idle') troupe.state = 'closed';
  people.forEach((_, id) => removeParticipant(id));
  makingOffer = ignoreOffer = false;
  showState();
}

function toggle(kind, button, on, off) {
  if (!troupe.local) return;
  const tracks = kind === 'audio' ? troupe.local.getAudioTracks() : troupe.local.getVideoTracks();
  const muted = tracks.some((t) => t.enabled);
  tracks.forEach((t) => (t.enabled = !muted));
  send({ type: 'mute', kind, muted });
  button.textContent = muted ? on : off;
}

$('join-form').addEventListener('submit', join);
$('leave').addEventListener('click', () => send({ type: 'leave' }));
$('mute-audio').addEventListener('click', (e) => toggle('audio', e.target, 'Unmute mic', 'Mute mic'));
$('mute-video').addEventListener('click', (e) => toggle('video', e.target, 'Start camera', 'Stop camera'));
$('token').hidden = tokenMode === 'dev';
const m = location.pathname.match(/^\/rooms\/([^/]+)$/);
if (m) $('room').value = decodeURIComponent(m[1]);
const params = new URLSearchParams(location.search);
if (params.get('name')) $('name').value = params.get('name');
showState();
